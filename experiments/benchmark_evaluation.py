r"""Times one full-ranking evaluation of every test user, and its memory.

  python -m experiments.benchmark_evaluation \
      --config=experiments/configs/train.py --config.dataset=gowalla \
      --config.data.split=given --config.data_dir=../shared/datasets

Scores come from a freshly initialised `--config.arch` (speed and memory do
not depend on training). Prints the compile-and-run time of the first
evaluation, the median of `--repeats` further ones, the evaluated users, and
the process's peak resident memory before and after evaluating.
"""

import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

from experiments import common
from gnas_jax import data
from gnas_jax import driver
from gnas_jax import graph as graph_lib
from gnas_jax import metrics
from gnas_jax import models
from gnas_jax import space
from gnas_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/train.py', 'Training configuration.',
    lock_config=True)
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed evaluations.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  config = _CONFIG.value
  dataset = data.load_dataset(config)
  arch = space.from_string(config.arch)
  graph = graph_lib.build_graph(dataset.train, dataset.num_users,
                                dataset.num_items, config.backend)
  model = models.build_model(dataset.num_users, dataset.num_items, [arch])
  state = train.init_state(model, train.create_optimizer(), graph,
                           jnp.asarray(arch.encode()),
                           jax.random.PRNGKey(config.seed))
  task = metrics.build_ranking_task(
      dataset.num_users, dataset.num_items, [dataset.train, dataset.valid],
      dataset.test, config.eval_batch_size)
  popularity = jnp.asarray(dataset.item_popularity(), jnp.float32)
  user_reps, item_reps = jax.block_until_ready(
      train.representations(model, state.params, graph, state.arch))
  rss_before = driver.peak_rss_mb()

  def evaluate():
    start = time.perf_counter()
    metrics.evaluate_ranking(user_reps, item_reps, task, popularity,
                             tuple(config.ks))
    return time.perf_counter() - start

  first = evaluate()
  timed = [evaluate() for _ in range(_REPEATS.value)]
  print(f'{dataset.name}: {task.num_users} users ranked over '
        f'{dataset.num_items} items in batches of {config.eval_batch_size}')
  print(f'first evaluation (with compilation): {first:.2f} s')
  print(f'evaluation, median of {len(timed)}: {np.median(timed):.2f} s')
  print(f'peak RSS: {rss_before:.0f} MiB before evaluating, '
        f'{driver.peak_rss_mb():.0f} MiB after')


if __name__ == '__main__':
  common.run(main)
