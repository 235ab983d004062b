"""Prints a dataset's statistics after preprocessing and splitting.

  python -m experiments.dataset_stats --config=experiments/configs/train.py

  python -m experiments.dataset_stats --config=experiments/configs/train.py \
      --config.dataset=ml-100k --config.data_dir=../shared/datasets

  python -m experiments.dataset_stats --config=experiments/configs/train.py \
      --config.dataset=gowalla --config.data_dir=../shared/datasets \
      --config.data.split=given
"""

import time
from typing import Any

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from gnas_jax import data

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/train.py', 'Configuration file.',
    lock_config=True)

_ROWS = (
    ('users', 'users'),
    ('items', 'items'),
    ('interactions', 'interactions'),
    ('density', 'density'),
    ('train pairs', 'train'),
    ('valid pairs', 'valid'),
    ('test pairs', 'test'),
    ('users with valid items', 'users_with_valid'),
    ('users with test items', 'users_with_test'),
)


def format_table(name: str, split: str, statistics: dict[str, Any],
                 seconds: float) -> str:
  """Formats `Dataset.statistics()` as a two-column table."""
  rows = [('dataset', name), ('split', split)]
  for label, key in _ROWS:
    value = statistics[key]
    rows.append((label, f'{value:.6f}' if isinstance(value, float)
                 else f'{value:,}'))
  rows.append(('load time', f'{seconds:.2f} s'))
  width = max(len(label) for label, _ in rows)
  value_width = max(len(value) for _, value in rows)
  rule = '-' * (width + value_width + 3)
  lines = [rule]
  lines += [f'{label:<{width}} | {value:>{value_width}}'
            for label, value in rows]
  lines.append(rule)
  return '\n'.join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  start = time.perf_counter()
  dataset = data.load_dataset(config)
  seconds = time.perf_counter() - start
  print(format_table(dataset.name, config.data.split, dataset.statistics(),
                     seconds))


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  common.run(main)
