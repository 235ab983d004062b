"""A tiny search for end-to-end tests: seconds per round on a CPU.

  python -m experiments.search --config=experiments/configs/search_test.py \
      --workdir=/tmp/gnas_search_test
"""

import ml_collections

from experiments.configs import search
from experiments.configs import test


def get_config() -> ml_collections.ConfigDict:
  """Returns the search configuration shrunk for tests."""
  config = search.get_config()
  small = test.get_config()
  config.data = small.data
  config.update({k: small[k] for k in (
      'epochs', 'batch_size', 'patience', 'eval_batch_size', 'progress')})
  config.space = ('width=16/32,layers=0/1/2,agg=lightgcn/gcn,'
                  'act=identity/relu,readout=last/mean,decoder=dot,loss=bpr')
  config.population_size = 4
  config.budget = 16
  config.fidelity.epochs = 2
  config.fidelity.eval_every = 1
  config.fidelity.batch_size = 512
  config.strategies.adversarial.update(
      truth_size=2, discriminator_steps=5, generator_steps=5,
      ranking_factor=4, batch_size=16, hidden=16, ppo_epochs=1)
  config.final.top_k = 1
  config.final.seeds = (0,)
  return config
