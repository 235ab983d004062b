r"""Cold-start evaluation: fold-in of users held out of training.

  python -m experiments.cold_start --config=experiments/configs/cold_start.py \
      --workdir=/tmp/gnas_cold --config.data_dir=../shared/datasets
"""

import ml_collections

from experiments.configs import train


def get_config() -> ml_collections.ConfigDict:
  """Returns the cold-start configuration (training protocol included)."""
  config = train.get_config()
  config.dataset = 'ml-100k'
  config.arch = 'lightgcn'
  config.cold = ml_collections.ConfigDict()
  # Share of eligible users held out of training entirely.
  config.cold.fraction = 0.1
  # Users need this many interactions to be held out (history + targets).
  config.cold.min_interactions = 10
  # Interactions the model is given for each held-out user.
  config.cold.history_sizes = (1, 3, 5)
  # Seeds the choice of users and the order of their interactions.
  config.cold.seed = 0
  # Also train with each history inside the training data, for reference.
  config.cold.compare_in_training = True
  return config
