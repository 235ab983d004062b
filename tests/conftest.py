"""Shared fixtures: small graphs and datasets, and the real-data switch."""

import collections
import functools
import importlib.util
import os
import pathlib
import shutil
import tempfile
import time

import jax
import numpy as np
import pytest

from gnas_jax import graph as graph_lib

DATA_DIR = os.environ.get('GNAS_DATA_DIR', '')
_CACHE_VARIABLE = 'JAX_COMPILATION_CACHE_DIR'
_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'
_compiled = collections.Counter()  # Compilations by function name.


def pytest_configure(config):
  """Shares compiled programs between the test processes (xdist workers
  and the subprocesses tests start) through JAX's persistent cache, in a
  directory of this run: the search networks take a minute to compile on
  a CPU, and several processes compile the same ones."""
  if _CACHE_VARIABLE not in os.environ:
    directory = tempfile.mkdtemp(prefix='gnas_jax_compilation_cache_')
    os.environ[_CACHE_VARIABLE] = directory
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
  # This process imported JAX before the variable was set.
  jax.config.update('jax_compilation_cache_dir', os.environ[_CACHE_VARIABLE])
  jax.monitoring.register_event_duration_secs_listener(_count_compilation)


ROOT = pathlib.Path(__file__).resolve().parents[1]

needs_data = pytest.mark.skipif(
    not DATA_DIR, reason='GNAS_DATA_DIR is not set (CI points it at '
    '../shared/datasets); real-data tests are skipped.')


def make_config(**overrides):
  """Returns experiments/configs/train.py's config with dotted overrides."""
  spec = importlib.util.spec_from_file_location(
      'train_config', ROOT / 'experiments' / 'configs' / 'train.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for key, value in overrides.items():
    with_value(config, key, value)
  return config


def with_value(config, path, value):
  """`config` with the option at dotted `path` set to `value`."""
  *parents, name = path.split('.')
  node = config
  for parent in parents:
    node = node[parent]
  node[name] = value
  return config


def write(folder, name, content):
  """Writes `content` (text, as UTF-8, or bytes) to `folder/name`."""
  path = pathlib.Path(folder) / name
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(content.encode('utf-8') if isinstance(content, str)
                   else content)
  return path


def compilations(jitted):
  """The programs this process has compiled for a jitted function so far.

  Counted by name (jitted functions of one name count together) from JAX's
  compilation events, which report every compilation that its in-memory
  caches miss, a load from the persistent cache included: the count does
  not depend on what other test processes compiled.
  """
  return _compiled[f'jit({jitted.__name__})']


def _count_compilation(event, seconds, **kwargs):
  del seconds  # Unused.
  if event == _COMPILE_EVENT:
    _compiled[kwargs.get('fun_name')] += 1


def random_pairs(num_users, num_items, num_pairs, seed=0):
  """`[n, 2]` distinct (user, item) pairs covering every user and item."""
  rng = np.random.default_rng(seed)
  pairs = np.stack([rng.integers(0, num_users, num_pairs),
                    rng.integers(0, num_items, num_pairs)], axis=1)
  cover = np.stack([np.arange(max(num_users, num_items)) % num_users,
                    np.arange(max(num_users, num_items)) % num_items], 1)
  return np.unique(np.concatenate([pairs, cover]), axis=0)


@pytest.fixture(scope='session')
def small_pairs():
  """Training pairs of a 12-user, 15-item graph."""
  return random_pairs(12, 15, 60)


@pytest.fixture(scope='session', params=graph_lib.BACKENDS)
def small_graph(request, small_pairs):
  """The 12-user, 15-item graph, once per propagation backend."""
  return graph_lib.build_graph(small_pairs, 12, 15, request.param)


@pytest.fixture(scope='session')
def sparse_graph(small_pairs):
  """The 12-user, 15-item graph with the CSR backend."""
  return graph_lib.build_graph(small_pairs, 12, 15, 'sparse')


def dense_adjacency(pairs, num_users, num_items):
  """`[N, N]` numpy adjacency of the bipartite graph (reference)."""
  n = num_users + num_items
  adjacency = np.zeros((n, n))
  adjacency[pairs[:, 0], num_users + pairs[:, 1]] = 1
  adjacency[num_users + pairs[:, 1], pairs[:, 0]] = 1
  return adjacency


# Strategy options small enough for searches of a few rounds of a few
# proposals.
SMALL_OPTIONS = {
    'evolution': {'population': 4, 'sample_size': 2},
    'reinforce': {'hidden': 8, 'steps_per_round': 1},
    'tpe': {'startup_trials': 4},
    'adversarial': {'hidden': 8, 'truth_size': 4, 'discriminator_steps': 3,
                    'generator_steps': 2, 'batch_size': 8, 'ppo_epochs': 1,
                    'ranking_factor': 2},
}


@functools.lru_cache(maxsize=None)
def _small_strategy(name, space):
  from gnas_jax.search import strategies  # pylint: disable=g-import-not-at-top
  return strategies.make_strategy(name, space, **SMALL_OPTIONS.get(name, {}))


@pytest.fixture(scope='session')
def small_strategy():
  """`(name, space) -> strategy` with `SMALL_OPTIONS`, one per name and
  space, so that each strategy's programs compile once per session."""
  return _small_strategy


@pytest.fixture
def rounds_outlast_a_second(monkeypatch):
  """Every search round takes over a second, so that a one-second wall-time
  limit ends a search after its first round however warm the compile
  caches are."""
  from gnas_jax.search import evaluation  # pylint: disable=g-import-not-at-top
  train_round = evaluation.PopulationEvaluator.__call__

  def slow_round(self, *args, **kwargs):
    result = train_round(self, *args, **kwargs)
    time.sleep(1.1)
    return result

  monkeypatch.setattr(evaluation.PopulationEvaluator, '__call__', slow_round)
