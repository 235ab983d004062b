r"""Trains one recommender and tests its best validation state.

  python -m experiments.train --config=experiments/configs/train.py \
      --workdir=/tmp/gnas_train [--config.dataset=ml-100k \
      --config.data_dir=../shared/datasets --config.arch=ngcf]

Prints a table of test metrics and writes `WORKDIR/results.json`.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from gnas_jax import driver

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/train.py', 'Training configuration.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for checkpoints, logs and results.json.')
flags.mark_flags_as_required(['workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  results = driver.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(driver.format_results_table(results))
  print(f'best epoch {results["best_epoch"]}, '
        f'{results["train_seconds_per_epoch"]:.3f} s per training epoch, '
        f'peak RSS {results["peak_rss_mb"]:.0f} MiB; '
        f'results in {_WORKDIR.value}/results.json, model in '
        f'{_WORKDIR.value}/model')


if __name__ == '__main__':
  common.run(main)
