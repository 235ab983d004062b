"""Tests for declared search spaces and for searches over any of them."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnas_jax import search
from gnas_jax import space as gnn_space


def conditional_space(**allowed):
  """Two layers' operations, a decoder with a temperature, and a merge."""
  return search.SearchSpace(
      {'layers': (1, 2), 'op_0': ('gcn', 'gat', 'sage'),
       'op_1': ('gcn', 'gat', 'sage'), 'decoder': ('dot', 'cosine'),
       'temperature': (0.1, 0.5), 'readout': ('last', 'mean', 'sum')},
      conditions={'op_1': {'layers': (2,)},
                  'temperature': {'decoder': ('cosine',)}},
      defaults={'temperature': 0.5},
      equivalences=[search.Equivalence('readout', {'sum': 'mean'},
                                       {'decoder': ('cosine',)})],
      allowed=allowed or None)


def symmetric_space():
  """Two unordered operations: swapping them is the same architecture."""

  def canonicalize(config):
    first, second = sorted((config['op_a'], config['op_b']))
    return dict(config, op_a=first, op_b=second)

  return search.SearchSpace(
      {'op_a': ('x', 'y', 'z'), 'op_b': ('x', 'y', 'z'), 'width': (1, 2)},
      canonicalize=canonicalize)


TOY = search.SearchSpace({'op0': ('a', 'b', 'c'), 'op1': ('a', 'b')})


def gnn_restricted(text):
  return gnn_space.search_space(gnn_space.subspace_from_string(text))


# Restrictions of the GNN space, some allowing a choice (the 'sum'
# readout) that merges under the cosine decoder into one they exclude.
GNN_RESTRICTIONS = (
    'width=16,layers=0/1,agg=lightgcn/gcn,act=identity/relu,residual=0,'
    'readout=sum/last,lr=0.001,l2=0.0,temperature=0.5,norm=sym,'
    'edge_dropout=0,loss=bpr',
    'width=16,layers=0/1/2,agg=lightgcn/gat,act=relu,residual=0,'
    'decoder=dot/cosine,readout=sum/mean,temperature=0.1/0.5,norm=sym/none,'
    'edge_dropout=0/0.1,loss=bpr,lr=0.001,l2=0.0',
    'width=32,layers=2,agg=gat,act=elu/relu,residual=0/1,norm=left/none,'
    'readout=concat,decoder=cosine,temperature=0.05,loss=softmax,lr=0.01,'
    'l2=0.0,edge_dropout=0',
)


def test_configurations_round_trip_through_tokens():
  space = conditional_space()
  rows = space.enumerate()
  for row in rows:
    config = space.decode(row)
    np.testing.assert_array_equal(space.encode(config), row)
    # Inactive decisions may be left out.
    active = space.active(row)
    np.testing.assert_array_equal(space.encode(
        {n: v for n, v, a in zip(space.names, config.values(), active)
         if a}), row)
  # An inactive decision's choice and a merged choice canonicalise.
  one_layer = space.encode({'layers': 1, 'op_0': 'gat', 'op_1': 'sage',
                            'decoder': 'cosine', 'temperature': 0.1,
                            'readout': 'sum'})
  assert space.decode(one_layer) == {
      'layers': 1, 'op_0': 'gat', 'op_1': 'gcn', 'decoder': 'cosine',
      'temperature': 0.1, 'readout': 'mean'}
  assert space.decode(space.encode({
      'layers': 2, 'op_0': 'gcn', 'op_1': 'gcn', 'decoder': 'dot',
      'readout': 'sum'}))['temperature'] == 0.5  # The declared default.


@pytest.mark.parametrize('space', [
    conditional_space(),
    conditional_space(readout=('sum', 'last')),
    conditional_space(layers=(2,), op_1=('gat',), decoder=('cosine',)),
    symmetric_space(),
    TOY,
] + [gnn_restricted(text) for text in GNN_RESTRICTIONS],
                         ids=lambda space: f'{space.raw_size()}_raw')
def test_count_equals_brute_force_enumeration(space):
  enumerated = space.enumerate()
  assert space.count() == len(enumerated)
  assert len(np.unique(enumerated, axis=0)) == len(enumerated)
  assert space.contains(enumerated).all()
  # Brute force: every raw configuration of the allowed choices,
  # canonicalised one at a time.
  grids = [[space.choice_index(n, v) for v in space.allowed[n]]
           for n in space.names]
  seen = {space.canonical(np.array(raw, np.int32)).tobytes()
          for raw in itertools.product(*grids)}
  assert len(seen) == len(enumerated)


def test_hand_counts():
  # One layer: 3 operations; two: 9. Readouts: 3 with the dot decoder,
  # and with the cosine decoder 2 (sum is mean) for each temperature.
  assert conditional_space().count() == (3 + 9) * (3 + 2 * 2)
  # A restriction keeps a merged choice that it does not list itself.
  assert conditional_space(readout=('sum', 'last')).count() == (
      (3 + 9) * (2 + 2 * 2))
  assert symmetric_space().count() == 6 * 2
  assert TOY.count() == 6


@pytest.mark.parametrize('space', [conditional_space(), symmetric_space(),
                                   gnn_space.SEARCH_SPACE],
                         ids=['conditional', 'symmetric', 'gnn'])
def test_canonical_is_idempotent_in_numpy_and_under_jit(space):
  rng = np.random.default_rng(0)
  sizes = np.array([len(space.choices[n]) for n in space.names])
  raw = (rng.random((2000, space.num_positions)) * sizes).astype(np.int32)
  canonical = space.canonical(raw)
  np.testing.assert_array_equal(space.canonical(canonical), canonical)
  compiled = jax.jit(lambda t: space.canonical(t, jnp))
  np.testing.assert_array_equal(np.asarray(compiled(raw)), canonical)
  np.testing.assert_array_equal(np.asarray(compiled(canonical)), canonical)


def test_restriction_keeps_the_layout_and_narrows_the_mask():
  space = conditional_space()
  narrow = space.restrict(op_0=('gat',), decoder=('dot',))
  assert narrow.names == space.names and narrow.vocab == space.vocab
  assert narrow.allowed['op_0'] == ('gat',)
  assert narrow.count() == 4 * 3
  assert narrow.contains(narrow.enumerate()).all()
  assert space.contains(narrow.enumerate()).all()
  assert not narrow.contains(space.enumerate()).all()


def test_a_decision_held_at_one_choice_draws_nothing():
  """Uniform samples of a space with a decision held at one choice have
  the other decisions' values of the space without that decision."""
  without = search.SearchSpace({'op0': ('a', 'b', 'c'), 'op1': ('a', 'b')})
  held = search.SearchSpace(
      {'op0': ('a', 'b', 'c'), 'op1': ('a', 'b'), 'extra': (0, 1, 2)},
      allowed={'extra': (1,)})
  expected = without.uniform(np.random.default_rng(4), 50)
  got = held.uniform(np.random.default_rng(4), 50)
  np.testing.assert_array_equal(got[:, :2], expected)
  np.testing.assert_array_equal(got[:, 2], 1)
  assert len({tuple(row) for row in got}) == 6


def test_bad_configurations_are_named():
  narrow = conditional_space(op_0=('gcn',))
  with pytest.raises(ValueError, match="'gat' of decision 'op_0' is outside"):
    narrow.encode({'layers': 1, 'op_0': 'gat', 'decoder': 'dot',
                   'readout': 'last'})
  space = conditional_space()
  with pytest.raises(ValueError, match="Unknown decision 'op_2'"):
    space.encode({'layers': 1, 'op_0': 'gcn', 'op_2': 'gcn',
                  'decoder': 'dot', 'readout': 'last'})
  with pytest.raises(ValueError, match="Invalid choice 'gin' for decision "
                     "'op_0'"):
    space.encode({'layers': 1, 'op_0': 'gin', 'decoder': 'dot',
                  'readout': 'last'})
  with pytest.raises(ValueError, match="leaves out decision 'op_1'"):
    space.encode({'layers': 2, 'op_0': 'gcn', 'decoder': 'dot',
                  'readout': 'last'})
  with pytest.raises(ValueError, match="Unknown decision 'depth'"):
    search.SearchSpace({'op': ('a', 'b')}, conditions={'op': {'depth': (1,)}})
  with pytest.raises(ValueError, match='in a cycle'):
    search.SearchSpace({'a': (0, 1), 'b': (0, 1)},
                       conditions={'a': {'b': (1,)}, 'b': {'a': (1,)}})


def toy_objective(configs):
  return [float(c['op0'] == 'c') + 0.5 * (c['op1'] == 'b') for c in configs]


def test_run_searches_a_toy_space_with_a_python_objective():
  strategy = search.make_strategy('random', TOY)
  trace = search.run(strategy, toy_objective, budget=6, batch_size=4, seed=0)
  assert len(trace) == 6
  assert sorted((c['op0'], c['op1']) for c, _ in trace) == sorted(
      itertools.product('abc', 'ab'))
  best, score = max(trace, key=lambda pair: pair[1])
  assert best == {'op0': 'c', 'op1': 'b'} and score == 1.5


@pytest.mark.parametrize('name', sorted(search.STRATEGIES))
def test_strategies_are_deterministic_and_never_repeat(name, small_strategy):
  space = conditional_space()
  strategy = small_strategy(name, space)
  total = space.count()

  def objective(configs):
    return [float(c['op_0'] == 'sage') + 0.3 * (c['readout'] == 'last') +
            0.1 * c['layers'] for c in configs]

  budget = total - 4
  trace = search.run(strategy, objective, budget=budget, batch_size=8,
                     seed=3)
  again = search.run(strategy, objective, budget=budget, batch_size=8,
                     seed=3)
  assert trace == again
  rows = np.stack([space.encode(c) for c, _ in trace])
  assert len(rows) == budget
  # Distinct canonical architectures while unseen ones remain.
  assert len(np.unique(rows, axis=0)) == budget


@pytest.mark.parametrize('name', sorted(search.STRATEGIES))
def test_strategies_stop_when_the_space_is_exhausted(name, small_strategy):
  strategy = small_strategy(name, TOY)
  trace = search.run(strategy, toy_objective, budget=20, batch_size=4,
                     seed=0)
  # Every architecture once, then the search ends by itself.
  assert sorted((c['op0'], c['op1']) for c, _ in trace) == sorted(
      itertools.product('abc', 'ab'))
  state = strategy.init(jax.random.PRNGKey(0))
  state, _ = strategy.tell(state, TOY.enumerate(), np.arange(6.0))
  assert strategy.ask(state, jax.random.PRNGKey(1), 3).shape == (0, 2)


def test_run_rejects_bad_budgets_and_unknown_strategies():
  strategy = search.make_strategy('random', TOY)
  with pytest.raises(ValueError, match='budget >= 1'):
    search.run(strategy, toy_objective, budget=0)
  with pytest.raises(ValueError, match='batch_size >= 1'):
    search.run(strategy, toy_objective, budget=4, batch_size=0)
  with pytest.raises(ValueError, match="Unknown search strategy 'annealing'"):
    search.make_strategy('annealing', TOY)
  with pytest.raises(ValueError,
                     match="Unknown option 'population' for search strategy "
                     "'random'"):
    search.make_strategy('random', TOY, population=3)
  with pytest.raises(ValueError, match='returned 1 scores for 4'):
    search.run(strategy, lambda configs: [0.0], budget=4, batch_size=4)
