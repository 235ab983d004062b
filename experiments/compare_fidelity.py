r"""A fixed-fidelity search against a multi-fidelity one at equal wall time.

  python -m experiments.compare_fidelity --config.dataset=ml-100k \
      --config.data_dir=/path/to/datasets --workdir=/tmp/compare_fidelity \
      --wall_seconds=1800 --epochs=27 --rungs=1,3 --eta=3 --refill=32

Runs, for each seed of `--seeds`, the search of `--config` twice with
`config.max_wall_seconds=--wall_seconds` and no limit on evaluations
(`config.budget=0`). The wall time is checked after each round, so a
search's last round may run over it: the table gives each search's own
seconds. The two searches:

* `fixed`: the config's own fidelity (every candidate trains
  `fidelity.epochs` epochs, early stopping aside);
* `multi-fidelity`: up to `--epochs` epochs, successive halving at
  `--rungs` with `--eta`, and `--refill` new proposals per round in the
  slots halving frees.

Each search's `final.top_k` best candidates are then retrained under the
config's full training protocol (seed `final.seeds`), and the table
reports the best full-protocol validation NDCG@20 each search found (and
that finalist's test NDCG@20, which decides nothing). Both searches are
resumable workdirs under `--workdir`, so a run continues where it
stopped. Writes `<out>.md` and `<out>.json`.

Each finished search's row is added to a record (`--record`, by default
`<out>_searches.jsonl`); run again with that record, the comparison runs
only the searches it lacks, so more seeds may be added in another session
or on another machine from the committed record alone. A row recorded
under another protocol (wall time, fidelity, data, retraining...) is
refused.

`--variants` runs one variant's searches alone, so that the searches of
several seeds may run side by side under the same load, one pinned
process per seed and core; a last run with every variant and seed then
only reads the record and writes the table:

  for seed in 0 1; do taskset -c $seed python -m experiments.compare_fidelity \
      ... --seeds=$seed --variants=fixed & done; wait
  (the same with --variants=multi-fidelity)
  python -m experiments.compare_fidelity ... --seeds=0,1
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from experiments import fidelity

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/search.py',
    'Search configuration: data, space, strategy, fixed fidelity and the '
    'full training protocol.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where the searches live.')
_WALL_SECONDS = flags.DEFINE_integer(
    'wall_seconds', 1800, 'Wall time of each search (its rounds; the '
    'retraining of its finalists comes on top).', lower_bound=1)
_SEEDS = common.define_integer_list('seeds', [0], 'Search seeds.')
_EPOCHS = flags.DEFINE_integer(
    'epochs', 27, 'Most epochs a multi-fidelity candidate trains.',
    lower_bound=1)
_RUNGS = common.define_integer_list(
    'rungs', [1, 3], 'Successive-halving rungs of the multi-fidelity search '
    '(epochs).')
_ETA = flags.DEFINE_integer('eta', 3, 'A rung keeps the best 1/eta.')
_REFILL = flags.DEFINE_integer(
    'refill', 32, 'New proposals per multi-fidelity round.', lower_bound=0)
_VARIANTS = flags.DEFINE_list(
    'variants', list(fidelity.VARIANTS), 'Which searches to run for each '
    'seed, in this order: fixed, multi-fidelity or both.')
_OUT = flags.DEFINE_string('out', 'results/multi_fidelity',
                           'Output path without its extension.')
_RECORD = flags.DEFINE_string(
    'record', None, 'JSON-lines record of the finished searches\' rows '
    '(default: <out>_searches.jsonl).')
flags.mark_flags_as_required(['workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  config = _CONFIG.value
  out = _OUT.value
  rows = fidelity.compare(
      config, _WORKDIR.value, _SEEDS.value, _WALL_SECONDS.value,
      _EPOCHS.value, _RUNGS.value, _ETA.value, _REFILL.value,
      record=_RECORD.value or out + '_searches.jsonl',
      variants=tuple(_VARIANTS.value))
  text = fidelity.table(rows, config, _WALL_SECONDS.value)
  os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
  with open(out + '.md', 'w') as f:
    f.write(text + '\n')
  with open(out + '.json', 'w') as f:
    json.dump(rows, f, indent=1)
  print(text)


if __name__ == '__main__':
  common.run(main)
