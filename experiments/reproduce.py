r"""Reproduces the project's tables and figures, one command per table.

  python -m experiments.reproduce --table=all --scale=small \
      --workdir=/tmp/gnas_paper --data_dir=../shared/datasets

Each table is configured by `experiments/configs/paper/<table>.py`, whose
docstring gives its protocol and expected time. `--table=NAME --scale=S`
is the same as `--config=experiments/configs/paper/NAME.py:S`, which also
takes overrides of its options:

  python -m experiments.reproduce \
      --config=experiments/configs/paper/accuracy.py:small \
      --config.seeds='(0,)' --workdir=/tmp/gnas_paper

Tables:

  search_efficiency  best-so-far validation NDCG@20 of each strategy against
                     evaluations and wall time, on a tabular benchmark
  ablations          variants of the adversarial strategy, same benchmark
  accuracy           hand-designed models and each strategy's best
                     architecture, test Recall@20 and NDCG@20
  throughput         population training speed against population size
  nas_benchmarks     every strategy and adversarial ablation on the nine
                     datasets of NAS-Bench-Graph, the field's protocol

For each table the workdir receives `NAME.md` (the Markdown table, headed
by the command, machine and wall time), `NAME.csv` and its PNG figures.
Everything expensive is kept in the workdir as it finishes (the tabular
benchmark per population, each search, each trained model), so an
interrupted command picks up where it stopped and a finished table is
rewritten in seconds. With `--records=DIR` the accuracy table's trainings
also go to `DIR/accuracy_<dataset>.jsonl` (results only, no checkpoints),
from which the table goes on without the workdir.
"""

import json
import os
import signal
import sys
import time

from absl import app
from absl import flags
import ml_collections
from ml_collections import config_flags

from experiments import common
from experiments import paper
from experiments.configs import paper as paper_configs

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'One table\'s configuration, '
    'experiments/configs/paper/<table>.py:<scale>, whose options '
    '--config.<option>=<value> overrides (instead of --table and --scale).',
    lock_config=True)
_TABLE = flags.DEFINE_enum('table', None, (*paper.TABLES, 'all'),
                           'The table to reproduce, or all of them.')
_SCALE = flags.DEFINE_enum(
    'scale', 'small', paper_configs.SCALES,
    'With --table. small: sized for a 2-core CPU (each table\'s config '
    'gives its time); full: the configuration meant for a GPU or TPU.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', os.environ.get('GNAS_DATA_DIR', ''),
    'Folder holding ml-100k/ and gowalla/ (default: $GNAS_DATA_DIR, then '
    'the download cache).')
_RECORDS = flags.DEFINE_string(
    'records', None, 'Folder of records of finished trainings, results '
    'only (the accuracy table: accuracy_<dataset>.jsonl): a training they '
    'hold is read from them, whatever the workdir, so a table carried over '
    'its committed records goes on in another session or on another '
    'machine.')
flags.mark_flag_as_required('workdir')


def _flag_text(value) -> str:
  """`value` as a `--config.<option>=` argument that parses back to it."""
  if isinstance(value, ml_collections.ConfigDict):
    value = value.to_dict()
  return value if isinstance(value, str) else repr(value)


def _tables() -> tuple[paper.Run, dict[str, ml_collections.ConfigDict]]:
  """The run and the configuration of each table, from the flags."""
  if (_CONFIG.value is None) == (_TABLE.value is None):
    raise app.UsageError('Give either --table (and --scale) or --config.')
  if _CONFIG.value is None:
    names = paper.TABLES if _TABLE.value == 'all' else (_TABLE.value,)
    run = paper.Run(_WORKDIR.value, _SCALE.value, _DATA_DIR.value,
                    records=_RECORDS.value or '')
    return run, {name: paper.paper_config(name, run.scale) for name in names}
  if flags.FLAGS['scale'].present:
    raise app.UsageError('With --config the scale follows the path: '
                         '--config=experiments/configs/paper/<table>.py:full')
  flag = flags.FLAGS['config']
  name, scale = paper.table_and_scale(flag.config_filename)
  overrides = config_flags.get_override_values(flag)
  args = (f'--config={flag.config_filename}',
          *(f'--config.{k}={_flag_text(v)}' for k, v in overrides.items()))
  run = paper.Run(_WORKDIR.value, scale, _DATA_DIR.value, args,
                  _RECORDS.value or '')
  return run, {name: _CONFIG.value}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  run, configs = _tables()
  workdir = run.workdir
  os.makedirs(workdir, exist_ok=True)
  timings_path = os.path.join(workdir, 'timings.json')
  timings = {}
  if os.path.exists(timings_path):
    with open(timings_path) as f:
      timings = json.load(f)
  # A terminated run unwinds, so that its time is counted below.
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
  total = time.perf_counter()
  for name, config in configs.items():
    start = time.perf_counter()
    # Overridden options make another table, which has its own time.
    key = ' '.join((f'{name}/{run.scale}', *run.config_args[1:]))
    try:
      output = paper.RUNNERS[name](config, run)
    finally:
      # Summed over runs, interrupted ones included: a table's time is
      # all the time spent making it (rewriting a finished one adds
      # seconds).
      seconds = time.perf_counter() - start
      timings[key] = timings.get(key, 0.0) + seconds
      with open(timings_path, 'w') as f:
        json.dump(timings, f, indent=2)
    print(output.write(run, name, timings[key]), flush=True)
    print(f'{name}: {seconds / 60:.1f} min in this run', flush=True)
  print(f'total: {(time.perf_counter() - total) / 60:.1f} min in this run; '
        + ', '.join(f'{k} {v / 60:.1f} min' for k, v in timings.items()))


if __name__ == '__main__':
  common.run(main)
