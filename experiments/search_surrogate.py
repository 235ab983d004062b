r"""Compares search strategies on a synthetic objective (no GNN training).

  python -m experiments.search_surrogate --seeds=20 [--out=FILE.json]

Every strategy, with its default options, searches the real search space
for the top 1% of a hidden scoring function (`gnas_jax.search.surrogate`),
proposing `--batch_size` architectures per round; the table gives the
median and interquartile range over seeds of the evaluations needed.
"""

import json
import time

from absl import app
from absl import flags
import numpy as np

from experiments import common
from gnas_jax import space
from gnas_jax.search import strategies
from gnas_jax.search import surrogate

_SEEDS = flags.DEFINE_integer('seeds', 20, 'Search seeds per strategy.')
_BATCH = flags.DEFINE_integer('batch_size', 16, 'Proposals per round.')
_MAX = flags.DEFINE_integer('max_evaluations', 1000,
                            'Give up after this many evaluations.')
_QUANTILE = flags.DEFINE_float('quantile', 0.99,
                               'Target: this quantile of uniform samples.')
_STRATEGIES = flags.DEFINE_list('strategies', list(strategies.STRATEGIES),
                                'Strategies to compare.')
_OBJECTIVE_SEED = flags.DEFINE_integer('objective_seed', 0,
                                       'Seed of the hidden objective.')
_OUT = flags.DEFINE_string('out', None, 'JSON file for the records.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  objective = surrogate.SurrogateObjective(_OBJECTIVE_SEED.value)
  threshold = objective.threshold(_QUANTILE.value)
  records = []
  print(f'| strategy | median evaluations to the top '
        f'{100 * (1 - _QUANTILE.value):g}% | interquartile range | '
        'not reached | seconds |')
  print('| --- | ---: | ---: | ---: | ---: |')
  for name in _STRATEGIES.value:
    strategy = strategies.make_strategy(name, space.search_space())
    start = time.perf_counter()
    counts = [surrogate.evaluations_to_reach(
        strategy, objective, threshold, seed, _BATCH.value, _MAX.value)
              for seed in range(_SEEDS.value)]
    seconds = time.perf_counter() - start
    q1, median, q3 = np.percentile(counts, [25, 50, 75])
    missed = sum(c > _MAX.value for c in counts)
    records.append({'strategy': name, 'evaluations': counts,
                    'median': median, 'q1': q1, 'q3': q3,
                    'not_reached': missed, 'seconds': seconds})
    print(f'| {name} | {median:.1f} | {q1:.1f}-{q3:.1f} | {missed} | '
          f'{seconds:.1f} |', flush=True)
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      json.dump(records, f, indent=2)


if __name__ == '__main__':
  app.run(main)
