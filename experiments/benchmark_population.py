r"""Measures population training: P candidates at once against one at a time.

  python -m experiments.benchmark_population --dataset=ml-100k \
      --data_dir=../shared/datasets --population_sizes=1,4,16,64 \
      --out=/tmp/population_ml100k.json

For each population size P, P architectures are drawn uniformly from the
search space (seeded), and one model of the full space's shape trains them
on shared mini-batches. It reports, per P:

  per_candidate_step_ms   median time of a population step, divided by P
  one_at_a_time_step_ms   the same architectures, each stepped alone by the
                          same compiled program, per candidate
  specialised_step_ms     the first (up to 8) architectures each stepped by
                          a program compiled for it alone (its own
                          `ModelShape`), per candidate; the compilations
                          (`specialised_compile_seconds`, all of them) are
                          what the population saves
  compile_seconds         compiling the population step
  candidates_per_hour     candidates trained for `--fidelity_epochs` epochs
                          per hour at the population's speed (compilation
                          and evaluation excluded)
  peak_rss_mb             peak resident memory of the process once the
                          population has trained (before the one-at-a-time
                          runs); each size runs in a process of its own

Timings are medians over `--steps` steps after compilation. They are
printed as a table and written to `--out` as a list of JSON records.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from experiments.configs import train as train_config
from gnas_jax import data
from gnas_jax import graph as graph_lib
from gnas_jax import models
from gnas_jax import population as population_lib
from gnas_jax import space
from gnas_jax import train

_DATASET = flags.DEFINE_string('dataset', 'ml-100k', 'Dataset name or path.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', os.environ.get('GNAS_DATA_DIR', ''), 'Data folder.')
_SIZES = flags.DEFINE_list('population_sizes', ['1', '4', '16', '64'],
                           'Population sizes to measure.')
_BACKEND = flags.DEFINE_enum('backend', 'auto', ('auto',) + graph_lib.BACKENDS,
                             'Propagation backend.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps per measurement.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 2048, 'Mini-batch size.')
_FIDELITY = flags.DEFINE_integer(
    'fidelity_epochs', 5, 'Epochs per candidate for candidates_per_hour.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the architectures.')
_MODE = flags.DEFINE_enum('mode', population_lib.default_mode(),
                          population_lib.MODES,
                          'How the population runs its candidates.')
_CHILD = flags.DEFINE_bool(
    'measure_one_size', False,
    'Internal: measure the single size given and print its JSON record.')
_SPECIALISED = 8
_OUT = flags.DEFINE_string('out', None, 'JSON file for the records.')


def _load(name: str) -> data.Dataset:
  config = train_config.get_config()
  config.dataset = name
  config.data_dir = _DATA_DIR.value
  if name in data.DATASETS and data.DATASETS[name].format == 'lightgcn':
    config.data.split = 'given'
  return data.load_dataset(config)


def _median_seconds(step, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(step())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def measure(dataset: data.Dataset, graph: graph_lib.BipartiteGraph,
            size: int) -> dict:
  """One record: population and one-at-a-time timings for `size` archs."""
  archs = space.sample(np.random.default_rng(_SEED.value), size)
  model = models.GNNRecommender(dataset.num_users, dataset.num_items,
                                models.ModelShape.full())
  keys = jax.random.split(jax.random.PRNGKey(_SEED.value), size)
  sampler = train.BatchSampler(dataset.train, dataset.num_items,
                               _BATCH_SIZE.value,
                               train_config.get_config().num_negatives,
                               seed=_SEED.value)
  batch = jax.tree.map(lambda x: jnp.asarray(x[0]), sampler.epoch(0))
  population = population_lib.init_population(
      model, graph, population_lib.encode(archs), keys)

  start = time.perf_counter()
  step = population_lib.train_step.lower(
      model, population, graph, batch, keys, _MODE.value).compile()
  compile_seconds = time.perf_counter() - start
  state = {'population': population}

  def population_step():
    state['population'], metrics = step(state['population'], graph, batch,
                                        keys)
    return metrics

  population_step()  # Warm-up.
  per_candidate = _median_seconds(population_step, _STEPS.value) / size
  population_peak_rss = train.peak_rss_mb()

  singles = [jax.tree.map(lambda x, i=i: x[i], state['population'].state)
             for i in range(size)]

  def one_at_a_time():
    outputs = []
    for i in range(size):
      singles[i], metrics = train.train_step(model, singles[i], graph, batch,
                                             keys[i])
      outputs.append(metrics)
    return outputs

  one_at_a_time()  # Compiles the single-candidate step once.
  alone = _median_seconds(one_at_a_time, max(1, _STEPS.value // 2)) / size

  specialised, specialised_compile = [], 0.0
  for arch, key in list(zip(archs, keys))[:_SPECIALISED]:
    own = models.build_model(dataset.num_users, dataset.num_items, [arch])
    own_state = train.init_state(own, graph, jnp.asarray(arch.encode()), key)
    start = time.perf_counter()
    own_step = train.train_step.lower(own, own_state, graph, batch,
                                      key).compile()
    specialised_compile += time.perf_counter() - start
    cell = {'state': own_state}

    def own_once(own_step=own_step, cell=cell, key=key):
      cell['state'], metrics = own_step(cell['state'], graph, batch, key)
      return metrics

    own_once()
    specialised.append(_median_seconds(own_once, max(1, _STEPS.value // 2)))
  steps_per_epoch = sampler.steps_per_epoch
  return {
      'dataset': dataset.name,
      'backend': graph.backend,
      'device': jax.devices()[0].device_kind,
      'population_size': size,
      'per_candidate_step_ms': per_candidate * 1e3,
      'one_at_a_time_step_ms': alone * 1e3,
      'speedup': alone / per_candidate,
      'specialised_step_ms': float(np.mean(specialised)) * 1e3,
      'specialised_candidates': len(specialised),
      'specialised_compile_seconds': specialised_compile,
      'mode': _MODE.value,
      'compile_seconds': compile_seconds,
      'fidelity_epochs': _FIDELITY.value,
      'steps_per_epoch': steps_per_epoch,
      'candidates_per_hour': 3600.0 / (per_candidate * steps_per_epoch *
                                       _FIDELITY.value),
      'failed': int(np.asarray(state['population'].failed).sum()),
      'peak_rss_mb': population_peak_rss,
  }


def _measure_in_child(size: int) -> dict:
  """Runs `measure` for one size in a fresh process (clean peak memory)."""
  with tempfile.NamedTemporaryFile(suffix='.json') as out:
    flags_to_pass = [f'--{name}={flags.FLAGS[name].value}' for name in (
        'dataset', 'data_dir', 'backend', 'steps', 'batch_size',
        'fidelity_epochs', 'seed', 'mode')]
    subprocess.run(
        [sys.executable, '-m', 'experiments.benchmark_population',
         *flags_to_pass, f'--population_sizes={size}', f'--out={out.name}',
         '--measure_one_size'], check=True)
    with open(out.name) as f:
      return json.load(f)[0]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  sizes = sorted(int(s) for s in _SIZES.value)
  if _CHILD.value:
    dataset = _load(_DATASET.value)
    graph = graph_lib.build_graph(dataset.train, dataset.num_users,
                                  dataset.num_items, _BACKEND.value)
    with open(_OUT.value, 'w') as f:
      json.dump([measure(dataset, graph, sizes[0])], f)
    return
  records = []
  print('| P | per-candidate step (ms) | one at a time (ms) | speed-up | '
        'specialised (ms) | compile (s) | candidates/hour | '
        'peak RSS (MiB) |')
  print('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for size in sizes:
    logging.info('Measuring P=%d on %s.', size, _DATASET.value)
    record = _measure_in_child(size)
    records.append(record)
    print(f'| {size} | {record["per_candidate_step_ms"]:.2f} | '
          f'{record["one_at_a_time_step_ms"]:.2f} | '
          f'{record["speedup"]:.2f} | '
          f'{record["specialised_step_ms"]:.2f} | '
          f'{record["compile_seconds"]:.1f} | '
          f'{record["candidates_per_hour"]:.0f} | '
          f'{record["peak_rss_mb"]:.0f} |', flush=True)
    if _OUT.value:
      with open(_OUT.value, 'w') as f:
        json.dump(records, f, indent=2)


if __name__ == '__main__':
  app.run(main)
