r"""LightGCN side by side with RecBole 1.2.1 on an identical split.

  python -m experiments.compare_recbole \
      --config=experiments/configs/compare_recbole.py \
      --workdir=/tmp/compare_recbole --config.data_dir=../shared/datasets

Both sides train LightGCN (3 layers, width 64, Adam 1e-3, L2 1e-4 on the
batch's layer-0 embeddings, batch 2048, one uniform negative) with early
stopping on validation NDCG@20 after `patience` evaluations without
improvement, and test the best validation state.
"""

import ml_collections

from experiments.configs import train


def get_config() -> ml_collections.ConfigDict:
  """Returns the comparison configuration."""
  config = train.get_config()
  config.dataset = 'ml-100k'
  config.data.split = 'random'
  config.data.split_ratios = (0.8, 0.1, 0.1)
  config.arch = 'lightgcn'
  config.batch_size = 2048
  config.epochs = 1000
  config.eval_every = 1
  config.patience = 50
  config.progress = False
  return config
