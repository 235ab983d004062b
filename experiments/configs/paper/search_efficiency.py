r"""Search efficiency: each strategy's best-so-far validation NDCG@20.

  python -m experiments.reproduce \
      --config=experiments/configs/paper/search_efficiency.py:small \
      --workdir=/tmp/gnas_paper --data_dir=../shared/datasets

Every architecture of `benchmark.space` is trained once on ML-100K at the
search's low fidelity (a tabular benchmark, `gnas_jax.search.tabular`);
each strategy then searches it `seeds` times with `batch_size` proposals
per round up to `budget` evaluations. Writes the curves against
evaluations and against wall time (median and interquartile band over
seeds), the evaluations needed to reach fixed thresholds, and the
frequency of each choice over the rounds of the adversarial search.

small: 580 architectures, 6 epochs each (measured: 25 minutes on 2 CPU
  cores, 2.5 s per architecture), then 20 seeds of 96 evaluations per
  strategy.
full: 4,624 architectures (two widths and normalisations, both decoders),
  8 epochs each, 20 seeds, 256 evaluations per search; about 4 hours of
  training on 2 CPU cores by the time per architecture above, meant for a
  GPU (not measured there).
"""

import ml_collections

from experiments.configs import paper
from experiments.configs import search

SPACES = {
    'small': ('width=64,layers=0/1/2,norm=sym,readout=last/mean,'
              'edge_dropout=0,decoder=dot,loss=bpr/softmax,lr=0.001/0.01,'
              'l2=0.0001,agg=lightgcn/gcn/ngcf/sage,act=identity/relu,'
              'residual=0'),
    'full': ('width=32/64,layers=0/1/2,norm=sym/left,readout=last/mean,'
             'edge_dropout=0,decoder=dot/cosine,temperature=0.1,'
             'loss=bpr/softmax,lr=0.001/0.01,l2=0.0001,'
             'agg=lightgcn/gcn/ngcf/sage,act=identity/relu,residual=0'),
}


def benchmark_config(scale: str) -> ml_collections.ConfigDict:
  """The search configuration whose evaluations fill the table."""
  config = search.get_config()
  config.dataset = 'ml-100k'
  config.data.split = 'random'
  config.data.split_ratios = (0.8, 0.1, 0.1)
  config.space = SPACES[scale]
  config.population_size = 32
  config.fidelity.epochs = 6 if scale == 'small' else 8
  config.fidelity.eval_every = 2
  config.fidelity.patience = 2
  config.fidelity.batch_size = 8192
  config.progress = True
  return config


def get_config(scale: str = 'small') -> ml_collections.ConfigDict:
  """Returns the search-efficiency configuration at `scale`."""
  paper.check_scale(scale)
  config = ml_collections.ConfigDict()
  config.benchmark = benchmark_config(scale)
  config.strategies = ('random', 'evolution', 'reinforce', 'tpe', 'local',
                       'adversarial')
  config.seeds = tuple(range(20))
  config.batch_size = 8
  config.budget = 96 if scale == 'small' else 256
  # Thresholds as quantiles of the table's validation NDCG@20 (1.0 is the
  # best architecture of the space).
  config.quantiles = (0.9, 0.99, 1.0)
  return config
