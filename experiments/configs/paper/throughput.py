r"""Throughput: population training speed against population size.

  python -m experiments.reproduce \
      --config=experiments/configs/paper/throughput.py:small \
      --workdir=/tmp/gnas_paper --data_dir=../shared/datasets

Runs `experiments.benchmark_population` (each size in its own process) on
the machine at hand and keeps its records per platform in the workdir, so
running the same command on a GPU (or TPU) with the same workdir adds that
platform's columns to the table. Random architectures of the whole space,
batch 2048; candidates per hour assume `fidelity_epochs` epochs each.

small: ML-100K, P = 1, 4, 16; about 5 minutes on 2 CPU cores.
full: ML-100K and Gowalla, P = 1, 4, 16, 64 (256 on ML-100K); meant for a
  GPU or TPU (not timed there). Memory grows with P: Gowalla at P=8 peaks
  at 4.9 GB on a CPU, so P=64 needs an accelerator with tens of GB.
"""

import ml_collections

from experiments.configs import paper


def get_config(scale: str = 'small') -> ml_collections.ConfigDict:
  """Returns the throughput configuration at `scale`."""
  paper.check_scale(scale)
  config = ml_collections.ConfigDict()
  if scale == 'small':
    config.population_sizes = ml_collections.ConfigDict(
        {'ml-100k': (1, 4, 16)})
  else:
    config.population_sizes = ml_collections.ConfigDict(
        {'ml-100k': (1, 4, 16, 64, 256), 'gowalla': (1, 4, 16, 64)})
  config.steps = 5 if scale == 'small' else 20
  config.batch_size = 2048
  config.fidelity_epochs = 5
  # Architectures also compiled one by one, the bar for the population.
  config.specialised = 16 if scale == 'small' else 4
  return config
