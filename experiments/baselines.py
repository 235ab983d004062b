r"""Trains hand-designed models over several seeds, tuned alike, and
tabulates their tests.

  python -m experiments.baselines \
      --config=experiments/configs/ml100k_baselines.py \
      --workdir=/tmp/ml100k_baselines --config.data_dir=../shared/datasets

With a tuning grid (`--config.tuning.lr='(1e-3, 3e-3, 1e-2)'
--config.tuning.l2='(1e-5, 1e-4, 1e-3)'`), every architecture of
`config.archs` is first trained with each (lr, L2) of the grid at
`config.tuning.seed`, and the setting with the best validation NDCG@20 is
then trained with every seed of `config.seeds`: each model gets the same
tuning budget, and the test split decides nothing. Without one, each
architecture trains as written.

Each (architecture, seed) run lives in `WORKDIR/<arch>/seed_<seed>` (a
tuned setting's directory names its lr and L2); a run whose `results.json`
exists is not repeated, and an interrupted one resumes from its checkpoint.
Writes `WORKDIR/baselines.md` (mean ± standard deviation over seeds),
`WORKDIR/baselines.csv` (one row per model, machine-readable, with the
full architecture string that `experiments.train --config.arch=...`
retrains) and `WORKDIR/baselines.json` (every run's results, and the
tuning's).
"""

import csv
import json
import os

from absl import app
from absl import flags
from ml_collections import config_flags
import numpy as np

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


def tuning_grid(arch: str, tuning) -> list[str]:
  """`arch` with each (lr, L2) of `tuning`'s grid; `[arch]` without one."""
  if not tuning or not (tuning.get('lr') or tuning.get('l2')):
    return [arch]
  default = space.from_string(arch)
  return [f'{arch},lr={lr},l2={l2}'
          for lr in tuning.get('lr') or (default.lr,)
          for l2 in tuning.get('l2') or (default.l2,)]


def run_all(config, workdir: str) -> dict[str, dict]:
  """Tunes (`tuning_grid`) and trains each of `config.archs`.

  Returns:
    architecture -> {'selected': the setting trained with every seed,
    'runs': its runs, 'tuning': {setting: validation NDCG@20 at the tuning
    seed}}.
  """
  data = driver.TrainingData.from_config(config)

  def runs(arch, seeds):
    return driver.train_with_seeds(
        config, os.path.join(workdir, arch.replace(',', '_')),
        space.from_string(arch), seeds, data)

  results = {}
  tuning = config.get('tuning')
  for arch in config.archs:
    grid = tuning_grid(arch, tuning)
    scores = {}
    if len(grid) > 1:
      for setting in grid:
        (run,) = runs(setting, [tuning.seed])
        scores[setting] = run['valid/ndcg@20']
    selected = max(grid, key=lambda s: scores.get(s, 0.0))
    results[arch] = {'selected': selected, 'tuning': scores,
                     'runs': runs(selected, config.seeds)}
  return results


def summary_table(results: dict[str, dict]) -> str:
  """Markdown: one row per architecture, mean ± sample std over runs."""
  header = ['model', *COLUMNS, 'best epoch', 's / epoch', 'runs']
  lines = ['| ' + ' | '.join(header) + ' |',
           '| --- |' + ' ---: |' * (len(header) - 1)]
  for arch, result in results.items():
    runs = result['runs']
    cells = [driver.format_statistic(driver.seed_statistics(runs, column),
                                     4 if column in COLUMNS else 2)
             for column in (*COLUMNS, 'best_epoch',
                            'train_seconds_per_epoch')]
    label = arch if result['selected'] == arch else (
        f'{arch} ({result["selected"][len(arch) + 1:]})')
    lines.append(f'| {label} | ' + ' | '.join(cells) + f' | {len(runs)} |')
  return '\n'.join(lines)


CSV_COLUMNS = ('dataset', 'model', 'kind', 'arch', 'test_recall@20_mean',
               'test_recall@20_std', 'test_ndcg@20_mean', 'test_ndcg@20_std',
               'seeds', 'best_epoch')


def csv_rows(results: dict[str, dict], dataset: str) -> list[dict]:
  """One machine-readable row per model (`CSV_COLUMNS`); 'arch' is the
  selected setting's full string, which `experiments.train` retrains."""
  rows = []
  for arch, result in results.items():
    runs = result['runs']
    recall = driver.seed_statistics(runs, 'test/recall@20')
    ndcg = driver.seed_statistics(runs, 'test/ndcg@20')
    rows.append({
        'dataset': dataset, 'model': arch, 'kind': 'hand-designed',
        'arch': space.from_string(result['selected']).to_string(),
        'test_recall@20_mean': recall['mean'],
        'test_recall@20_std': recall['std'],
        'test_ndcg@20_mean': ndcg['mean'], 'test_ndcg@20_std': ndcg['std'],
        'seeds': ' '.join(map(str, ndcg['seeds'])),
        'best_epoch': float(np.mean([r['best_epoch'] for r in runs]))})
  return rows


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  workdir = _WORKDIR.value
  results = run_all(_CONFIG.value, workdir)
  table = summary_table(results)
  with open(os.path.join(workdir, 'baselines.md'), 'w') as f:
    f.write(table + '\n')
  dataset = next(iter(results.values()))['runs'][0]['dataset']
  with open(os.path.join(workdir, 'baselines.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(csv_rows(results, dataset))
  with open(os.path.join(workdir, 'baselines.json'), 'w') as f:
    json.dump(results, f, indent=2)
  print(table)


if __name__ == '__main__':
  common.run(main)
