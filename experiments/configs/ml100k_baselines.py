r"""Hand-designed baselines on MovieLens-100K: MF-BPR, LightGCN and NGCF.

  python -m experiments.baselines \
      --config=experiments/configs/ml100k_baselines.py \
      --workdir=/tmp/ml100k_baselines --config.data_dir=../shared/datasets

All ratings as implicit feedback, a per-user random 80/10/10 split (one
split for every model and seed), width 64, Adam 1e-3, L2 1e-4, batch 2048,
early stopping on validation NDCG@20 after 50 evaluations without
improvement; test metrics as mean and standard deviation over seeds.
"""

import ml_collections

from experiments.configs import train


def get_config() -> ml_collections.ConfigDict:
  """Returns the baselines configuration."""
  config = train.get_config()
  config.dataset = 'ml-100k'
  config.data.split = 'random'
  config.data.split_ratios = (0.8, 0.1, 0.1)
  config.batch_size = 2048
  config.epochs = 1000
  config.patience = 50
  config.progress = False
  # Each architecture is trained once per seed.
  config.archs = ('mf', 'lightgcn', 'ngcf')
  config.seeds = (0, 1, 2)
  # What the architectures are, for baselines.csv: 'hand-designed' or
  # 'searched'.
  config.kind = 'hand-designed'
  # The (lr, L2) grid each architecture is tuned on, at one seed, before
  # its seeds train the setting with the best validation NDCG@20, with the
  # numbers of negatives a sampled-softmax one is tuned on (0: the
  # protocol's num_negatives); empty grids train each architecture as
  # written.
  config.tuning = ml_collections.ConfigDict()
  config.tuning.lr = ()
  config.tuning.l2 = ()
  config.tuning.negatives = ()
  config.tuning.seed = 0
  return config
