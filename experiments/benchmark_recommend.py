r"""Latency of recommending with an exported model.

  python -m experiments.benchmark_recommend --model_dir=WORKDIR [--k=20]

Times `Recommender.recommend` (seen items excluded) for 1 user and for
`--many` users (drawn with replacement), and a fold-in recommendation for
one new user; medians of `--repeats` calls after a warm-up call.
"""

import time

from absl import app
from absl import flags
import numpy as np

from experiments import common
from gnas_jax import recommend

_MODEL_DIR = flags.DEFINE_string('model_dir', None, 'Exported model.')
_K = flags.DEFINE_integer('k', 20, 'Items per user.')
_MANY = flags.DEFINE_integer('many', 1000, 'Users in the batched request.')
_REPEATS = flags.DEFINE_integer('repeats', 20, 'Timed calls.')
flags.mark_flags_as_required(['model_dir'])


def _median_ms(fn, repeats):
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  start = time.perf_counter()
  model = recommend.Recommender.load(_MODEL_DIR.value)
  load_seconds = time.perf_counter() - start
  rng = np.random.default_rng(0)
  users = list(rng.choice(model.raw_user_ids, _MANY.value))
  history = list(rng.choice(model.raw_item_ids, 5, replace=False))
  k, repeats = _K.value, _REPEATS.value
  print(f'model {model.directory}: {model.num_users} users, '
        f'{model.num_items} items; loaded in {load_seconds:.2f} s')
  print('| request | median latency (ms) |')
  print('| --- | ---: |')
  print(f'| top-{k}, 1 user | '
        f'{_median_ms(lambda: model.recommend(users[:1], k), repeats):.2f} |')
  print(f'| top-{k}, {_MANY.value} users | '
        f'{_median_ms(lambda: model.recommend(users, k), repeats):.2f} |')
  fold = _median_ms(lambda: model.recommend_for_histories([history], k),
                    repeats)
  print(f'| top-{k}, 1 new user folded in from 5 items | {fold:.2f} |')


if __name__ == '__main__':
  app.run(main)
