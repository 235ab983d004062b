"""A tiny configuration for end-to-end tests: seconds on a CPU.

  python -m experiments.train --config=experiments/configs/test.py \
      --workdir=/tmp/gnas_test
"""

import ml_collections

from experiments.configs import train


def get_config() -> ml_collections.ConfigDict:
  """Returns the training configuration shrunk for tests."""
  config = train.get_config()
  config.data.synthetic.num_users = 120
  config.data.synthetic.num_items = 150
  config.data.synthetic.num_communities = 4
  config.data.synthetic.interactions_per_user = 15
  config.arch = 'lightgcn,width=16,layers=2'
  config.epochs = 3
  config.batch_size = 256
  config.patience = 100
  config.eval_batch_size = 64
  config.progress = False
  return config
