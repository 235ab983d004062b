r"""Trains hand-designed models over several seeds, tuned alike, and
tabulates their tests.

  python -m experiments.baselines \
      --config=experiments/configs/ml100k_baselines.py \
      --workdir=/tmp/ml100k_baselines --config.data_dir=../shared/datasets

With a tuning grid (`--config.tuning.lr='(1e-3, 3e-3, 1e-2)'
--config.tuning.l2='(1e-5, 1e-4, 1e-3)'`), every architecture of
`config.archs` is first trained with each (lr, L2) of the grid at
`config.tuning.seed` (then, with `--config.tuning.negatives='(0, 64, 128)'`,
a sampled-softmax architecture's selected setting with each of those
numbers of negatives: loss `softmax`, the protocol's, `softmax-64` and
`softmax-128`; an entry may also name a loss over negatives shared by a
mini-batch, `'shared-softmax-4096'`), and the setting with the best validation NDCG@20 is
then trained with every seed of `config.seeds` (if a seed diverges, the
next best setting, and the table names the one passed over): each model
gets the same tuning budget, and the test split decides nothing. Without
one, each architecture trains as written.

Each (architecture, seed) run lives in `WORKDIR/<arch>/seed_<seed>` (a
tuned setting's directory names its lr and L2); a run whose `results.json`
exists is not repeated, and an interrupted one resumes from its checkpoint.
Writes `WORKDIR/baselines.md` (mean ± standard deviation over seeds),
`WORKDIR/baselines.csv` (one row per model, machine-readable, with the
full architecture string that `experiments.train --config.arch=...`
retrains, and the models' `config.kind`: 'hand-designed' by default, or
'searched'; a user subsample's dataset is named by its share, such as
`gowalla-sub10`) and `WORKDIR/baselines.json` (every run's results, and the
tuning's).
"""

import csv
import json
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from experiments import tuning

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/ml100k_baselines.py',
    'Configuration with `archs` and `seeds` lists.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
_RECORD = flags.DEFINE_string(
    'record', None, 'JSON-lines record of finished trainings (results '
    'only): a training it holds is read from it, whatever the workdir, and '
    'every other is added to it.')
flags.mark_flags_as_required(['workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  workdir = _WORKDIR.value
  # Every run may come from the record, which creates no directory.
  os.makedirs(workdir, exist_ok=True)
  # Checked before hours of training, not after.
  kind = tuning.check_kind(_CONFIG.value.get('kind', 'hand-designed'))
  results = tuning.run_all(_CONFIG.value, workdir, record=_RECORD.value)
  table = tuning.summary_table(results)
  with open(os.path.join(workdir, 'baselines.md'), 'w') as f:
    f.write(table + '\n')
  dataset = tuning.dataset_label(
      next(iter(results.values()))['runs'][0]['dataset'],
      _CONFIG.value.data.get('user_fraction', 1.0))
  with open(os.path.join(workdir, 'baselines.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, tuning.CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(tuning.csv_rows(results, dataset, kind))
  with open(os.path.join(workdir, 'baselines.json'), 'w') as f:
    json.dump(results, f, indent=2)
  print(table)


if __name__ == '__main__':
  common.run(main)
