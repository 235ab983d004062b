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
from absl import logging
import numpy as np
from ml_collections import config_flags

from experiments import common
from gnas_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/ml100k_baselines.py',
    'Configuration with `archs` and `seeds` lists.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['workdir'])

COLUMNS = ('test/recall@20', 'test/ndcg@20', 'test/recall@10',
           'test/ndcg@10')


def run_all(config, workdir: str) -> dict[str, list[dict]]:
  """Trains each of `config.archs` with each of `config.seeds`."""
  results = {}
  for arch in config.archs:
    for seed in config.seeds:
      run_dir = os.path.join(workdir, arch.replace(',', '_'), f'seed_{seed}')
      path = os.path.join(run_dir, 'results.json')
      if os.path.exists(path):
        with open(path) as f:
          run = json.load(f)
      else:
        logging.info('Training %s with seed %d in %s.', arch, seed, run_dir)
        run_config = config.copy_and_resolve_references()
        run_config.arch, run_config.seed = arch, seed
        run = train.train_and_evaluate(run_config, run_dir)
      results.setdefault(arch, []).append(run)
  return results


def summary_table(results: dict[str, list[dict]]) -> str:
  """Markdown: one row per architecture, mean ± sample std over runs."""
  header = ['model', *COLUMNS, 'best epoch', 's / epoch', 'runs']
  lines = ['| ' + ' | '.join(header) + ' |',
           '| --- |' + ' ---: |' * (len(header) - 1)]
  for arch, runs in results.items():
    cells = []
    for column in (*COLUMNS, 'best_epoch', 'train_seconds_per_epoch'):
      values = np.array([run[column] for run in runs], float)
      digits = 4 if column in COLUMNS else 2
      spread = values.std(ddof=1) if len(values) > 1 else 0.0
      cells.append(f'{values.mean():.{digits}f} ± {spread:.{digits}f}')
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
