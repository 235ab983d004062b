r"""Measures population training against candidates compiled one by one.

  python -m experiments.benchmark_population --dataset=ml-100k \
      --data_dir=../shared/datasets --population_sizes=1,4,16,64 \
      --out=/tmp/population_ml100k.json

For each population size P, the first P of 256 architectures drawn
uniformly from the whole search space (seeded) train on shared mini-batches
in the grouped population (`population.GroupedPopulation`: one compiled
program per group of like architectures). It reports, per P:

  per_candidate_step_ms   median time of one step of every group, divided
                          by P (the programs already compiled)
  compile_count           programs compiled for the round (one per group)
  compile_seconds         seconds compiling them, all together
  candidates_per_hour     candidates trained for `--fidelity_epochs` epochs
                          per hour, programs cached (later rounds)
  first_round_candidates_per_hour  the same with the round's compilation
                          counted (a round whose groups are all new)
  superset_*              the same for one program of the search space's
                          shape (`evaluation.search_shape`, what a search
                          compiles for its candidates) training all P
                          (what grouping replaced)
  specialised_step_ms     the first (up to `--specialised`) architectures,
                          each stepped by a program compiled for it alone
                          (its own `ModelShape.covering`), mean per
                          candidate: the bar for the population
  specialised_amortised_step_ms  that step plus its compilation spread over
                          one candidate's training (`--fidelity_epochs`
                          epochs): what running candidates one by one costs
  specialised_candidates_per_hour  candidates per hour at that cost
  peak_rss_mb             peak resident memory of the process once
                          everything has stepped (each size runs in a
                          process of its own; with --superset=false and
                          --specialised=0, the grouped population's alone);
                          peak_device_mb, the accelerator's, where the
                          platform reports it

Every program is compiled first; then each of `--steps` repeats times one
step of the grouped population, of the superset and of every specialised
program in turn (so a slow spell of a shared machine falls on all alike),
and each figure is the median over the repeats. The records are printed as
a table and written to `--out` as a list of JSON records.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from experiments.configs import train as train_config
from gnas_jax import data
from gnas_jax import driver
from gnas_jax import graph as graph_lib
from gnas_jax import models
from gnas_jax import population as population_lib
from gnas_jax import space
from gnas_jax import train
from gnas_jax.search import evaluation

_DATASET = flags.DEFINE_string('dataset', 'ml-100k', 'Dataset name or path.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', os.environ.get('GNAS_DATA_DIR', ''), 'Data folder.')
_USER_FRACTION = flags.DEFINE_float(
    'user_fraction', 1.0, 'Share of the users kept (data.user_fraction), '
    'for graphs of several sizes.')
_SIZES = common.define_integer_list('population_sizes', [1, 4, 16, 64],
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
_SUPERSET = flags.DEFINE_bool(
    'superset', True, 'Also measure one program of the whole space.')
_SPECIALISED = flags.DEFINE_integer(
    'specialised', 16, 'Architectures also compiled and stepped alone (the '
    'first ones of the population; 0 skips them).')
_CHILD = flags.DEFINE_bool(
    'measure_one_size', False,
    'Internal: measure the single size given and print its JSON record.')
_OUT = flags.DEFINE_string('out', None, 'JSON file for the records.')
_DRAW = 256


def _load(name: str) -> data.Dataset:
  config = train_config.get_config()
  config.dataset = name
  config.data_dir = _DATA_DIR.value
  config.data.user_fraction = _USER_FRACTION.value
  if name in data.DATASETS and data.DATASETS[name].format == 'lightgcn':
    config.data.split = 'given'
  return data.load_dataset(config)


def _population_step(population: population_lib.GroupedPopulation, graph,
                     batch) -> tuple[Callable[[], Any], int, float]:
  """A step of every group, its programs count and their compile seconds.

  The programs are compiled here, ahead of time, so that timing the step
  times no compilation.
  """
  start = time.perf_counter()
  steps = [population_lib.train_step.lower(
      group.model, group.population, graph, batch, group.keys,
      population.mode).compile() for group in population.groups]
  compile_seconds = time.perf_counter() - start

  def step_all():
    outputs = []
    for group, step in zip(population.groups, steps):
      group.population, metrics = step(group.population, graph, batch,
                                       group.keys)
      outputs.append(metrics)
    return outputs

  return step_all, len(steps), compile_seconds


def _specialised_steps(dataset, graph, batch, archs, keys
                       ) -> tuple[list[Callable[[], Any]], float]:
  """A step of each of `archs` compiled alone; mean compile seconds."""
  steps, compile_seconds = [], []
  for arch, key in zip(archs, keys):
    own = models.build_model(dataset.num_users, dataset.num_items, [arch])
    state = train.init_state(own, train.create_optimizer(), graph,
                             jnp.asarray(arch.encode()), key)
    start = time.perf_counter()
    own_step = train.train_step.lower(own, state, graph, batch, key).compile()
    compile_seconds.append(time.perf_counter() - start)
    cell = {'state': state}

    def once(own_step=own_step, cell=cell, key=key):
      cell['state'], metrics = own_step(cell['state'], graph, batch, key)
      return metrics

    steps.append(once)
  return steps, float(np.mean(compile_seconds))


def _interleaved_medians(contenders: dict[str, list[Callable[[], Any]]],
                         repeats: int) -> dict[str, float]:
  """Median seconds of each contender's steps (summed over its list).

  Each repeat times every contender once, one after the other, so that a
  slow spell of a shared machine falls on all of them alike.
  """
  times = {name: [] for name in contenders}
  for repeat in range(repeats + 1):
    for name, steps in contenders.items():
      start = time.perf_counter()
      for step in steps:
        jax.block_until_ready(step())
      if repeat:  # The first round warms up.
        times[name].append(time.perf_counter() - start)
  return {name: float(np.median(t)) for name, t in times.items()}


def _per_hour(step_ms: float, steps_per_candidate: int,
              compile_seconds_per_candidate: float = 0.0) -> float:
  """Candidates trained per hour at `step_ms` per candidate and step."""
  return 3600.0 / (step_ms / 1e3 * steps_per_candidate +
                   compile_seconds_per_candidate)


def _peak_device_mb() -> float | None:
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get('peak_bytes_in_use')
  return peak / 2**20 if peak else None


def measure(dataset: data.Dataset, graph: graph_lib.BipartiteGraph,
            size: int) -> dict:
  """One record: grouped, superset and specialised timings for `size`."""
  # The first P of one seeded draw: larger populations extend smaller ones.
  draw = max(size, _DRAW)
  archs = space.sample(np.random.default_rng(_SEED.value), draw)[:size]
  keys = jax.random.split(jax.random.PRNGKey(_SEED.value), draw)[:size]
  sampler = train.BatchSampler(dataset.train, dataset.num_items,
                               _BATCH_SIZE.value,
                               train_config.get_config().num_negatives,
                               seed=_SEED.value)
  batch = jax.tree.map(lambda x: jnp.asarray(x[0]), sampler.epoch(0))
  steps_per_candidate = sampler.steps_per_epoch * _FIDELITY.value

  def population(grouped):
    return population_lib.GroupedPopulation(
        dataset.num_users, dataset.num_items,
        evaluation.search_shape(space.subspace()), graph,
        archs, keys, keys, _MODE.value, grouped=grouped)

  grouped = population(grouped=True)
  grouped_step, compiles, compile_seconds = _population_step(grouped, graph,
                                                             batch)
  contenders = {'grouped': [grouped_step]}
  if _SUPERSET.value:
    superset_step, _, superset_compile = _population_step(
        population(grouped=False), graph, batch)
    contenders['superset'] = [superset_step]
  count = min(size, _SPECIALISED.value)
  if count:
    contenders['specialised'], own_compile = _specialised_steps(
        dataset, graph, batch, archs[:count], keys[:count])
  seconds = _interleaved_medians(contenders, _STEPS.value)
  step_ms = seconds['grouped'] / size * 1e3
  record = {
      'dataset': dataset.name,
      'user_fraction': _USER_FRACTION.value,
      'num_users': dataset.num_users,
      'num_items': dataset.num_items,
      'num_interactions': int(len(dataset.train)),
      'backend': graph.backend,
      'device': jax.devices()[0].device_kind,
      'platform': jax.default_backend(),
      'mode': _MODE.value,
      'population_size': size,
      'per_candidate_step_ms': step_ms,
      'compile_count': compiles,
      'compile_seconds': compile_seconds,
      'candidates_per_hour': _per_hour(step_ms, steps_per_candidate),
      'first_round_candidates_per_hour': _per_hour(
          step_ms, steps_per_candidate, compile_seconds / size),
      'failed': int(grouped.failed.sum()),
      'fidelity_epochs': _FIDELITY.value,
      'steps_per_epoch': sampler.steps_per_epoch,
      'peak_rss_mb': driver.peak_rss_mb(),
      'peak_device_mb': _peak_device_mb(),
  }
  if _SUPERSET.value:
    superset_ms = seconds['superset'] / size * 1e3
    record.update(
        superset_step_ms=superset_ms,
        superset_compile_seconds=superset_compile,
        superset_candidates_per_hour=_per_hour(superset_ms,
                                               steps_per_candidate))
  if count:
    own_ms = seconds['specialised'] / count * 1e3
    amortised = own_ms + own_compile / steps_per_candidate * 1e3
    record.update(
        specialised_candidates=count,
        specialised_step_ms=own_ms,
        specialised_compile_seconds=own_compile,
        specialised_amortised_step_ms=amortised,
        specialised_candidates_per_hour=_per_hour(amortised,
                                                  steps_per_candidate))
  return record


_FORWARDED = ('dataset', 'data_dir', 'user_fraction', 'backend', 'steps',
              'batch_size', 'fidelity_epochs', 'seed', 'mode', 'superset',
              'specialised')


def _measure_in_child(size: int) -> dict:
  """Runs `measure` for one size in a fresh process (clean peak memory)."""
  with tempfile.NamedTemporaryFile(suffix='.json') as out:
    flags_to_pass = [f'--{name}={flags.FLAGS[name].value}'
                     for name in _FORWARDED]
    subprocess.run(
        [sys.executable, '-m', 'experiments.benchmark_population',
         *flags_to_pass, f'--population_sizes={size}', f'--out={out.name}',
         '--measure_one_size'], check=True)
    with open(out.name) as f:
      return json.load(f)[0]


# (column, record key, format) of the printed table.
COLUMNS = (
    ('P', 'population_size', 'd'),
    ('step / candidate (ms)', 'per_candidate_step_ms', '.2f'),
    ('programs', 'compile_count', 'd'),
    ('compile (s)', 'compile_seconds', '.1f'),
    ('superset step (ms)', 'superset_step_ms', '.2f'),
    ('specialised step (ms)', 'specialised_step_ms', '.2f'),
    ('specialised amortised (ms)', 'specialised_amortised_step_ms', '.2f'),
    ('candidates / hour', 'candidates_per_hour', '.0f'),
    ('first round / hour', 'first_round_candidates_per_hour', '.0f'),
    ('superset / hour', 'superset_candidates_per_hour', '.0f'),
    ('specialised / hour', 'specialised_candidates_per_hour', '.0f'),
    ('peak RSS (MiB)', 'peak_rss_mb', '.0f'),
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  sizes = sorted(_SIZES.value)
  if _CHILD.value:
    dataset = _load(_DATASET.value)
    graph = graph_lib.build_graph(dataset.train, dataset.num_users,
                                  dataset.num_items, _BACKEND.value)
    with open(_OUT.value, 'w') as f:
      json.dump([measure(dataset, graph, sizes[0])], f)
    return
  records = []
  print('| ' + ' | '.join(name for name, _, _ in COLUMNS) + ' |')
  print('|' + ' ---: |' * len(COLUMNS))
  for size in sizes:
    logging.info('Measuring P=%d on %s.', size, _DATASET.value)
    record = _measure_in_child(size)
    records.append(record)
    print('| ' + ' | '.join(common.table_cell(record, key, fmt)
                            for _, key, fmt in COLUMNS) + ' |', flush=True)
    if _OUT.value:
      with open(_OUT.value, 'w') as f:
        json.dump(records, f, indent=2)


if __name__ == '__main__':
  app.run(main)
