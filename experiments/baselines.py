r"""Trains several architectures over several seeds and tabulates the tests.

  python -m experiments.baselines \
      --config=experiments/configs/ml100k_baselines.py \
      --workdir=/tmp/ml100k_baselines --config.data_dir=../shared/datasets

Each (architecture, seed) run lives in `WORKDIR/<arch>/seed_<seed>`; a run
whose `results.json` exists is not repeated, and an interrupted one resumes
from its checkpoint. Writes `WORKDIR/baselines.md` (mean ± standard
deviation over seeds) and `WORKDIR/baselines.json` (every run's results).
"""

import json
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from gnas_jax import driver
from gnas_jax import space

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/ml100k_baselines.py',
    'Configuration with `archs` and `seeds` lists.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['workdir'])

COLUMNS = ('test/recall@20', 'test/ndcg@20', 'test/recall@10',
           'test/ndcg@10')


def run_all(config, workdir: str) -> dict[str, list[dict]]:
  """Trains each of `config.archs` with each of `config.seeds`."""
  data = driver.TrainingData.from_config(config)
  return {arch: driver.train_with_seeds(
              config, os.path.join(workdir, arch.replace(',', '_')),
              space.from_string(arch), config.seeds, data)
          for arch in config.archs}


def summary_table(results: dict[str, list[dict]]) -> str:
  """Markdown: one row per architecture, mean ± sample std over runs."""
  header = ['model', *COLUMNS, 'best epoch', 's / epoch', 'runs']
  lines = ['| ' + ' | '.join(header) + ' |',
           '| --- |' + ' ---: |' * (len(header) - 1)]
  for arch, runs in results.items():
    cells = [driver.format_statistic(driver.seed_statistics(runs, column),
                                     4 if column in COLUMNS else 2)
             for column in (*COLUMNS, 'best_epoch',
                            'train_seconds_per_epoch')]
    lines.append(f'| {arch} | ' + ' | '.join(cells) + f' | {len(runs)} |')
  return '\n'.join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  workdir = _WORKDIR.value
  results = run_all(_CONFIG.value, workdir)
  table = summary_table(results)
  with open(os.path.join(workdir, 'baselines.md'), 'w') as f:
    f.write(table + '\n')
  with open(os.path.join(workdir, 'baselines.json'), 'w') as f:
    json.dump(results, f, indent=2)
  print(table)


if __name__ == '__main__':
  common.run(main)
