r"""Reproduces the project's tables and figures, one command per table.

  python -m experiments.reproduce --table=all --scale=small \
      --workdir=/tmp/gnas_paper --data_dir=../shared/datasets

Tables (each configured by `experiments/configs/paper/<table>.py`, whose
docstring gives its protocol and expected time):

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
rewritten in seconds.
"""

import json
import os
import signal
import sys
import time

from absl import app
from absl import flags

from experiments import common
from experiments import paper

_TABLE = flags.DEFINE_enum('table', None, (*paper.TABLES, 'all'),
                           'The table to reproduce, or all of them.')
_SCALE = flags.DEFINE_enum(
    'scale', 'small', ('small', 'full'),
    'small: a 2-core CPU in about 90 minutes for all tables; full: the '
    'configuration meant for a GPU or TPU.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', os.environ.get('GNAS_DATA_DIR', ''),
    'Folder holding ml-100k/ and gowalla/ (default: $GNAS_DATA_DIR, then '
    'the download cache).')
flags.mark_flags_as_required(['table', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  run = paper.Run(_WORKDIR.value, _SCALE.value, _DATA_DIR.value)
  workdir = run.workdir
  os.makedirs(workdir, exist_ok=True)
  names = paper.TABLES if _TABLE.value == 'all' else (_TABLE.value,)
  timings_path = os.path.join(workdir, 'timings.json')
  timings = {}
  if os.path.exists(timings_path):
    with open(timings_path) as f:
      timings = json.load(f)
  # A terminated run unwinds, so that its time is counted below.
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
  total = time.perf_counter()
  for name in names:
    start = time.perf_counter()
    key = f'{name}/{run.scale}'
    try:
      output = paper.RUNNERS[name](paper.paper_config(name, run.scale),
                                    run)
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
  app.run(main)
