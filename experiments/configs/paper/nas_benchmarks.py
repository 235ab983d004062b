r"""NAS-Bench-Graph: every strategy on every dataset, the field's protocol.

  python -m experiments.reproduce \
      --config=experiments/configs/paper/nas_benchmarks.py:small \
      --workdir=/tmp/gnas_paper

The same as

  python -m experiments.benchmark_search --benchmark=nasbench_graph \
      --datasets=all --strategies=all --seeds=20 --budget=200 \
      --workdir=/tmp/gnas_paper/nas_benchmarks

NAS-Bench-Graph (Qin et al. 2022, `pip install 'gnas-jax[bench]'`, whose
wheel holds the tables, so it runs offline): nine datasets, 26,206
architectures each (2,021 on proteins). Each strategy (the baselines, the
adversarial one and its ablations) searches each dataset with 20 seeds,
10 proposals per round, 200 queries; the pick after 25, 50, 100 and 200
queries is the best by validation accuracy.

small and full are the same protocol (it costs no training): about 90
CPU-minutes (one process, 104 minutes beside other jobs on 2 CPU cores),
nearly all of it the networks of the adversarial variants.
"""

import ml_collections

from experiments.configs import paper


def get_config(scale: str = 'small') -> ml_collections.ConfigDict:
  """Returns the NAS-benchmark configuration (the same at every scale)."""
  paper.check_scale(scale)
  config = ml_collections.ConfigDict()
  config.benchmark = 'nasbench_graph'
  config.datasets = 'all'
  config.strategies = 'all'
  config.seeds = 20
  config.budget = 200
  config.batch_size = 10
  config.queries = (25, 50, 100, 200)
  return config
