"""Tests for the population engine: vmap equivalence, isolation, compiles."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import compilations
from conftest import random_pairs
from gnas_jax import graph as graph_lib
from gnas_jax import metrics
from gnas_jax import models
from gnas_jax import population as population_lib
from gnas_jax import space
from gnas_jax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_USERS, NUM_ITEMS, STEPS = 40, 50, 50
# Every aggregation, activation, normalisation, readout, decoder, loss and
# dropout, at small widths and depths so that the one compilation stays
# quick.
CHOICES = space.subspace(width=(16, 32), layers=(0, 1, 2),
                         norm=space.DECISION_BY_NAME['norm'].choices,
                         message_dropout=(0.0, 0.1))


@pytest.fixture(scope='module')
def problem():
  pairs = random_pairs(NUM_USERS, NUM_ITEMS, 400, seed=3)
  # experiments/device_check.sh runs these tests with each backend.
  graph = graph_lib.build_graph(pairs, NUM_USERS, NUM_ITEMS,
                                os.environ.get('GNAS_TEST_BACKEND', 'sparse'))
  sampler = train.BatchSampler(pairs, NUM_ITEMS, 64, 4, seed=0)
  batches = [sampler.epoch(e) for e in range(-(-STEPS //
                                               sampler.steps_per_epoch))]
  batches = [jax.tree.map(lambda x, s=s: jnp.asarray(x[s]), b)
             for b in batches for s in range(sampler.steps_per_epoch)]
  model = models.GNNRecommender(NUM_USERS, NUM_ITEMS,
                                models.ModelShape(tuple(CHOICES.items())))
  return graph, batches[:STEPS], model


@pytest.fixture(autouse=True)
def fresh_program_count(monkeypatch):
  """Each test counts its own programs, and the maps of the whole test
  process never empty the caches: a test that counts compilations sees
  only its own."""
  monkeypatch.setattr(population_lib, '_cached_programs', set())
  monkeypatch.setattr(population_lib, 'MAX_MAP_SHARE', 1.0)


def random_archs(seed, num):
  return space.sample(np.random.default_rng(seed), num, CHOICES)


def train_population(model, graph, batches, archs, keys, learning_rates=None,
                     mode='map'):
  population = population_lib.init_population(
      model, train.create_optimizer(), graph, population_lib.encode(archs),
      keys)
  if learning_rates is not None:
    population.state.opt_state.hyperparams['learning_rate'] = jnp.asarray(
        learning_rates, jnp.float32)
  losses = []
  for batch in batches:
    population, step_metrics = population_lib.train_step(
        model, population, graph, batch, keys, mode)
    losses.append(step_metrics['loss'])
  return population, np.stack(losses, 1)


def candidate(tree, i):
  return jax.tree.map(lambda x: x[i], tree)


def within():
  return models.ModelShape(tuple(CHOICES.items()))


def test_program_shape_keeps_width_depth_concat_and_attention_apart():
  shape = population_lib.program_shape(
      space.from_string('gin,width=32,layers=2,readout=mean'), within())
  assert shape.values('width') == (32,) and shape.values('layers') == (2,)
  assert shape.values('agg') == ('lightgcn', 'gcn', 'sage', 'gin', 'ngcf')
  assert shape.values('readout') == ('last', 'mean', 'sum', 'weighted')
  assert shape.values('act') == CHOICES['act']
  attending = population_lib.program_shape(
      space.from_string('gat,width=16,layers=1,readout=concat'), within())
  assert 'gat' in attending.values('agg')
  assert attending.values('readout') == ('concat',)
  # Architectures that differ in anything else share the program.
  assert population_lib.program_shape(space.from_string(
      'ngcf,width=32,layers=2,readout=sum,act=tanh,norm=left'),
                                      within()) == shape
  assert population_lib.program_shape(space.from_string(
      'gin,width=32,layers=2,readout=mean,loss=softmax'),
                                      within()).values('loss') == ('softmax',)
  # At depth 0 only the width and the loss tell programs apart.
  shallow = {population_lib.program_shape(a, within()) for a in
             space.sample(np.random.default_rng(0), 200, CHOICES)
             if a.layers == 0}
  assert len(shallow) == 4


def test_program_shape_refuses_an_architecture_outside_the_shape():
  with pytest.raises(ValueError, match='width=64.* outside the model shape'):
    population_lib.program_shape(space.from_string('lightgcn,width=64'),
                                 within())


@pytest.mark.parametrize('size,multiple,expected', [
    (1, 1, 1), (2, 1, 2), (3, 1, 4), (5, 1, 8), (16, 1, 16), (3, 4, 4),
    (5, 4, 8), (1, 3, 3), (5, 3, 9)])
def test_groups_are_padded_to_powers_of_two(size, multiple, expected):
  assert population_lib.padded_size(size, multiple) == expected


def train_grouped(graph, batches, archs, keys, mode):
  population = population_lib.GroupedPopulation(
      NUM_USERS, NUM_ITEMS, within(), graph, archs, keys, keys, mode)
  for batch in batches:
    population.step(batch)
  return population


def two_programs_of_three():
  """Six random architectures, interleaved, that fall in two programs of
  three (each padded to four): two attending layers, and one layer without
  attention and with the other loss."""
  by_shape = {}
  for arch in random_archs(0, 400):
    by_shape.setdefault(population_lib.program_shape(arch, within()),
                        []).append(arch)
  attending_shape, attending = next(
      (s, a) for s, a in by_shape.items()
      if s.values('layers') == (2,) and 'gat' in s.values('agg'))
  plain = next(a for s, a in by_shape.items()
               if s.values('layers') == (1,) and 'gat' not in s.values('agg')
               and s.values('loss') != attending_shape.values('loss'))
  return [arch for pair in zip(plain[:3], attending[:3]) for arch in pair]


@pytest.fixture(scope='module')
def trained_alone(problem):
  """`(archs, keys, [(state, last loss)])`: each architecture trained as
  its own program (its `ModelShape.covering`) would train it alone."""
  graph, batches, _ = problem
  archs = two_programs_of_three()
  keys = jax.random.split(jax.random.PRNGKey(0), len(archs))
  alone = []
  for arch, key in zip(archs, keys):
    own = models.build_model(NUM_USERS, NUM_ITEMS, [arch])
    state = train.init_state(own, train.create_optimizer(), graph,
                             jnp.asarray(arch.encode()), key)
    for batch in batches:
      state, step_metrics = train.train_step(own, state, graph, batch, key)
    alone.append((state, step_metrics['loss']))
  return archs, keys, alone


@pytest.mark.parametrize('mode', population_lib.MODES)
def test_grouped_population_equals_each_architecture_trained_alone(
    problem, trained_alone, mode):
  """Each candidate trains in its group's program as it would alone:
  grouping changes the cost, not the result."""
  graph, batches, _ = problem
  archs, keys, alone = trained_alone
  population = train_grouped(graph, batches, archs, keys, mode)
  assert len(population.groups) == 2
  failed = population.failed
  assert failed.sum() < len(archs) // 2  # The comparison must mean much.
  for i, (state, loss) in enumerate(alone):
    _, trained = population.candidate(i)
    if failed[i]:
      assert not np.isfinite(float(loss)) or not all(
          np.isfinite(x).all() for x in jax.tree.leaves(state.params))
      continue
    assert int(trained.step) == len(batches)
    for name, value in state.params['params'].items():
      np.testing.assert_allclose(trained.params['params'][name], value,
                                 rtol=2e-4, atol=2e-5, err_msg=f'{i} {name}')


@pytest.mark.parametrize('mode', population_lib.MODES)
def test_a_diverging_candidate_touches_no_other(problem, mode):
  graph, batches, model = problem
  archs = [space.from_string(f'{name},width=32,layers=2')
           for name in ('lightgcn', 'ngcf', 'gcn', 'gat')]
  keys = jax.random.split(jax.random.PRNGKey(1), 5)
  rates = [a.lr for a in archs]
  # A sum-readout GIN trains at its own learning rate; at 1e3 it overflows
  # within steps. The rates are data: both runs share one program.
  diverging = space.from_string('gin,width=32,layers=2,readout=sum')
  base, base_losses = train_population(model, graph, batches,
                                       archs + [diverging], keys,
                                       rates + [diverging.lr], mode)
  assert not np.asarray(base.failed).any()
  with_bad, losses = train_population(
      model, graph, batches, archs + [diverging], keys, rates + [1e3], mode)
  assert np.asarray(with_bad.failed).tolist() == [False] * 4 + [True]
  assert np.asarray(with_bad.active).tolist() == [True] * 4 + [False]
  np.testing.assert_array_equal(losses[:4], base_losses[:4])
  # In either mode, a candidate reports a loss of 0 once it no longer trains.
  failed_at = np.flatnonzero(~np.isfinite(losses[4]) | (losses[4] == 0))[0]
  assert failed_at < len(batches) - 1
  np.testing.assert_array_equal(losses[4, failed_at + 1:], 0)
  for i in range(4):
    jax.tree.map(np.testing.assert_array_equal,
                 candidate(with_bad.state.params, i),
                 candidate(base.state.params, i))
  # The failed candidate stays frozen at finite values.
  assert all(np.isfinite(x).all() for x in
             jax.tree.leaves(candidate(with_bad.state.params, 4)))


def test_a_round_compiles_one_program_per_new_group_and_size(problem):
  graph, batches, _ = problem

  def programs(archs):
    """The (shape, padded group size) pairs of a round of `archs`."""
    shapes = [population_lib.program_shape(a, within()) for a in archs]
    return {(shape, population_lib.padded_size(shapes.count(shape)))
            for shape in shapes}

  # Three programs: one shared by two candidates, two of one each.
  first = [space.from_string(text) for text in (
      'lightgcn,width=16,layers=1', 'mf,width=16', 'gcn,width=16,layers=1',
      'ngcf,width=32,layers=1')]
  # The first group's shape alone (a new size), a met shape and size (MF
  # by another decoder), and a new shape (the other loss).
  second = [space.from_string(text) for text in (
      'sage,width=16,layers=1', 'mf,width=16,decoder=cosine',
      'ngcf,width=32,layers=1,loss=softmax')]
  assert (len(programs(first)), len(programs(second) - programs(first))) == (
      3, 2)
  keys = jax.random.split(jax.random.PRNGKey(2), 4)
  # Counted from an empty cache (other tests compile some of the same).
  population_lib.train_step.clear_cache()
  before = compilations(population_lib.train_step)
  train_grouped(graph, batches[:2], first, keys, 'map')
  assert compilations(population_lib.train_step) - before == 3
  # A later round compiles only the (shape, size) pairs it has not met.
  before = compilations(population_lib.train_step)
  train_grouped(graph, batches[:2], second, keys[:3], 'map')
  assert compilations(population_lib.train_step) - before == 2
  before = compilations(population_lib.train_step)
  train_grouped(graph, batches[:2], list(reversed(second)), keys[:3], 'map')
  assert compilations(population_lib.train_step) == before


@pytest.mark.parametrize('bound', ['programs', 'maps'])
def test_emptying_the_program_caches_changes_no_result(problem, monkeypatch,
                                                      bound):
  """With room for one program (or the memory maps over their share), a
  group's step and evaluation empty JAX's caches before they compile;
  the candidates train and score as they do with every program kept."""
  graph, batches, _ = problem
  archs = random_archs(0, 4)
  keys = jax.random.split(jax.random.PRNGKey(4), 4)
  task = metrics.build_ranking_task(
      NUM_USERS, NUM_ITEMS, [],
      np.asarray(random_pairs(NUM_USERS, NUM_ITEMS, 200, seed=9)), 16)
  popularity = jnp.ones(NUM_ITEMS)

  def trained():
    population = train_grouped(graph, batches[:2], archs, keys, 'map')
    return population, population.evaluate(task, popularity)

  kept, kept_scores = trained()
  assert len(kept.groups) > 1
  cleared = []
  if bound == 'programs':
    monkeypatch.setattr(population_lib, 'MAX_CACHED_PROGRAMS', 1)
  else:
    monkeypatch.setattr(population_lib, 'memory_maps', lambda: (3, 4))
    monkeypatch.setattr(population_lib, 'MAX_MAP_SHARE', 0.5)
  monkeypatch.setattr(population_lib, '_cached_programs', set())
  monkeypatch.setattr(jax, 'clear_caches',
                      lambda clear=jax.clear_caches: cleared.append(clear()))
  emptied, emptied_scores = trained()
  # Each group's programs meet a cache emptied for the group before.
  assert len(cleared) >= len(kept.groups) - 1
  for position in range(len(archs)):
    jax.tree.map(np.testing.assert_array_equal,
                 kept.candidate(position)[1].params,
                 emptied.candidate(position)[1].params)
  assert emptied_scores == kept_scores


def test_memory_maps_are_read_where_the_system_tells_them():
  maps = population_lib.memory_maps()
  if sys.platform.startswith('linux'):
    used, limit = maps
    assert 0 < used < limit
  else:
    assert maps is None


def test_stopped_candidates_stay_where_they_stopped(problem):
  graph, batches, _ = problem
  archs = random_archs(5, 4)
  keys = jax.random.split(jax.random.PRNGKey(5), 4)
  population = train_grouped(graph, batches[:2], archs, keys, 'map')
  population.keep(np.array([True, False, True, False]))
  assert population.active.tolist() == [True, False, True, False]
  for batch in batches[2:4]:
    population.step(batch)
  steps = [int(population.candidate(i)[1].step) for i in range(4)]
  assert steps == [4, 2, 4, 2]


def test_a_group_without_a_training_candidate_is_not_stepped(problem):
  graph, batches, _ = problem
  archs = [space.from_string('lightgcn,width=16,layers=1'),
           space.from_string('lightgcn,width=16,layers=1,lr=0.01'),
           space.from_string('gcn,width=32,layers=2')]
  keys = jax.random.split(jax.random.PRNGKey(6), 3)
  population = train_grouped(graph, batches[:1], archs, keys, 'map')
  assert len(population.groups) == 2
  population.keep(np.array([False, False, True]))
  stopped = population.groups[0].population
  for batch in batches[1:3]:
    population.step(batch)
  # Not even a step that would leave every candidate where it was.
  assert population.groups[0].population is stopped
  steps = [int(population.candidate(i)[1].step) for i in range(3)]
  assert steps == [1, 1, 3]


def train_alone(graph, batches, arch, init_key, train_key):
  own = models.build_model(NUM_USERS, NUM_ITEMS, [arch])
  state = train.init_state(own, train.create_optimizer(), graph,
                           jnp.asarray(arch.encode()), init_key)
  for batch in batches:
    state, _ = train.train_step(own, state, graph, batch, train_key)
  return state


def test_an_added_candidate_takes_a_stopped_slot_and_trains_as_alone(
    problem):
  graph, batches, _ = problem
  archs = [space.from_string('lightgcn,width=16,layers=1'),
           space.from_string('lightgcn,width=16,layers=1,lr=0.01'),
           space.from_string('gcn,width=32,layers=2')]
  keys = jax.random.split(jax.random.PRNGKey(7), 5)
  population = train_grouped(graph, batches[:2], archs, keys[:3], 'map')
  population.keep(np.array([True, False, True]))
  before = compilations(population_lib.train_step)
  like_the_stopped = space.from_string('lightgcn,width=16,layers=1,l2=0.001')
  another_shape = space.from_string('sage,width=16,layers=1')
  positions = population.add([like_the_stopped, another_shape], keys[3:],
                             keys[3:])
  assert positions.tolist() == [3, 4] and population.size == 5
  # The first took the stopped candidate's slot; the second has a group.
  assert len(population.groups) == 3
  assert population.groups[0].slots.tolist() == [0, 3]
  for batch in batches[2:5]:
    population.step(batch)
  # Only the new group compiled a program.
  assert compilations(population_lib.train_step) - before == 1
  assert population.active.tolist() == [True, False, True, True, True]
  assert population.failed.tolist() == [False] * 5
  for position, arch, key, trained_on in (
      (0, archs[0], keys[0], batches[:5]), (2, archs[2], keys[2],
                                            batches[:5]),
      (3, like_the_stopped, keys[3], batches[2:5]),
      (4, another_shape, keys[4], batches[2:5])):
    alone = train_alone(graph, trained_on, arch, key, key)
    _, state = population.candidate(position)
    assert int(state.step) == len(trained_on)
    for name, value in alone.params['params'].items():
      np.testing.assert_allclose(state.params['params'][name], value,
                                 rtol=2e-4, atol=2e-5, err_msg=name)
  with pytest.raises(IndexError, match='slot was taken'):
    population.candidate(1)


def test_members_scoring_different_negatives_share_a_batch(problem):
  """One batch of 64 negatives per positive and 1024 per mini-batch serves
  candidates that score 32, 64, the protocol's 32 ('softmax') and 1024
  shared ones: each trains in a program of its loss as it would alone on a
  batch holding only its own negatives."""
  graph, _, _ = problem
  pairs = random_pairs(NUM_USERS, NUM_ITEMS, 400, seed=3)
  sampler = train.BatchSampler(pairs, NUM_ITEMS, 64, 64, seed=0,
                               protocol_negatives=32, shared_negatives=1024)
  epoch = sampler.epoch(0)
  batches = [jax.tree.map(lambda x, s=s: jnp.asarray(x[s]), epoch)
             for s in range(sampler.steps_per_epoch)]
  archs = [space.from_string(f'mf,width=16,lr=0.01,loss={loss}')
           for loss in ('softmax-32', 'softmax-64', 'softmax',
                        'shared-softmax-1024')]
  # One key for all: they differ in their negatives alone.
  keys = jnp.stack([jax.random.PRNGKey(3)] * len(archs))
  population = population_lib.GroupedPopulation(
      NUM_USERS, NUM_ITEMS, models.ModelShape.covering(archs), graph, archs,
      keys, keys, 'vmap')
  for batch in batches:
    population.step(batch)
  trained = [population.candidate(i)[1].params['params']['embedding']
             for i in range(len(archs))]
  for i, (arch, key, count) in enumerate(zip(archs, keys, (32, 64, 32, 0))):
    own = [train.Batch(b.users, b.positives, b.negatives[:, :count],
                       shared_negatives=None if count else b.shared_negatives)
           for b in batches]
    alone = train_alone(graph, own, arch, key, key)
    np.testing.assert_allclose(trained[i],
                               alone.params['params']['embedding'],
                               rtol=2e-4, atol=2e-5, err_msg=str(arch))
  # The counts matter: 32 and 64 negatives train apart, 32 named and 32
  # by the protocol alike.
  assert not np.allclose(trained[0], trained[1], atol=1e-3)
  np.testing.assert_allclose(trained[0], trained[2], rtol=1e-6)
  assert not np.allclose(trained[1], trained[3], atol=1e-3)


def test_population_evaluation_equals_single_evaluation(problem):
  graph, batches, model = problem
  archs = random_archs(4, 3)
  keys = jax.random.split(jax.random.PRNGKey(4), 3)
  population, _ = train_population(model, graph, batches[:5], archs, keys)
  pairs = np.asarray(random_pairs(NUM_USERS, NUM_ITEMS, 200, seed=9))
  task = metrics.build_ranking_task(NUM_USERS, NUM_ITEMS, [], pairs, 16)
  popularity = jnp.ones(NUM_ITEMS)
  together = population_lib.evaluate(model, population, graph, task,
                                     popularity)
  vectorised = population_lib.evaluate(model, population, graph, task,
                                       popularity, mode='vmap')
  for i, result in enumerate(together):
    assert vectorised[i] == pytest.approx(result, rel=1e-5, abs=1e-6)
    alone = train.evaluate(model, candidate(population.state, i), graph,
                           task, popularity)
    assert result == pytest.approx(alone, rel=1e-5, abs=1e-6)


SHARDED_CHECK = r'''
import jax, jax.numpy as jnp, numpy as np
from conftest import random_pairs
from gnas_jax import graph as graph_lib, models, population as population_lib
from gnas_jax import space, train
assert jax.device_count() == 4, jax.devices()
pairs = random_pairs(30, 40, 300, seed=5)
graph = graph_lib.build_graph(pairs, 30, 40, 'sparse')
choices = space.subspace(width=(16, 32), layers=(1, 2),
                         agg=('lightgcn', 'gcn'), act=('identity', 'relu'))
archs = space.sample(np.random.default_rng(0), 6, choices)
model = models.GNNRecommender(30, 40, models.ModelShape(tuple(choices.items())))
keys = jax.random.split(jax.random.PRNGKey(0), 6)
sampler = train.BatchSampler(pairs, 40, 32, 4, seed=0)
batches = sampler.epoch(0)
single = population_lib.init_population(model, train.create_optimizer(),
                                        graph, population_lib.encode(archs),
                                        keys)
mesh = population_lib.candidate_mesh()
sharded, padded_keys = population_lib.pad_population(single, keys, 4)
assert sharded.size == 8 and not np.asarray(sharded.active)[6:].any()
sharded = jax.device_put(sharded, jax.sharding.NamedSharding(
    mesh, jax.sharding.PartitionSpec(population_lib.CANDIDATE_AXIS)))
step = population_lib.sharded_train_step(model, mesh)
for s in range(5):
  batch = jax.tree.map(lambda x: jnp.asarray(x[s]), batches)
  single, _ = population_lib.train_step(model, single, graph, batch, keys)
  sharded, _ = step(sharded, graph, batch, padded_keys)
assert len(sharded.state.params['params']['embedding'].sharding.device_set) == 4
jax.tree.map(lambda a, b: np.testing.assert_allclose(a[:6], b, rtol=1e-5,
                                                     atol=1e-6),
             sharded.state.params, single.state.params)
print('sharded population matches')
'''


def test_sharded_over_four_cpu_devices_matches_one_device(tmp_path):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, 'tests')]))
  result = subprocess.run([sys.executable, '-c', SHARDED_CHECK], env=env,
                          cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'sharded population matches' in result.stdout


EVALUATOR_RUN = r'''
import json, sys
import jax, numpy as np
from experiments.configs import search_test
from gnas_jax import data, driver, space
from gnas_jax.search import evaluation
config = search_test.get_config()
choices = space.subspace_from_string(config.space)
# Three candidates of one program, so that its group of three is padded.
one_program = dict(choices, width=(32,), layers=(1,))
archs = space.sample(np.random.default_rng(3), 3, one_program)
assert len({a.to_string() for a in archs}) == 3
evaluator = evaluation.PopulationEvaluator(
    config, driver.TrainingData.from_config(config), choices)
result = evaluator(archs, jax.random.PRNGKey(7))
print(json.dumps({'devices': jax.device_count(),
                  **{k: np.asarray(v).tolist() for k, v in result.items()
                     if k != 'archs'}}))
'''


def test_search_rounds_shard_over_four_devices_as_on_one():
  """A round of 3 candidates of one program, padded to 4 and split over 4
  devices, scores as on one device."""
  results = []
  for flags in ('', '--xla_force_host_platform_device_count=4'):
    env = dict(os.environ, XLA_FLAGS=flags, PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, '-c', EVALUATOR_RUN], env=env,
                         cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results.append(json.loads(run.stdout.strip().splitlines()[-1]))
  one, four = results
  assert (one['devices'], four['devices']) == (1, 4)
  assert len(four['ndcg']) == 3
  np.testing.assert_allclose(four['ndcg'], one['ndcg'], rtol=1e-4)
  assert four['epochs'] == one['epochs'] and four['failed'] == one['failed']
  # The curve holds every evaluation; its best is the score.
  np.testing.assert_allclose(four['curve'], one['curve'], rtol=1e-4)
  np.testing.assert_allclose(np.nanmax(one['curve'], 1), one['ndcg'])
