"""Tests for the search strategies, their networks and the trial store."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnas_jax import space
from gnas_jax.search import loop
from gnas_jax.search import networks
from gnas_jax.search import store as store_lib
from gnas_jax.search import strategies
from gnas_jax.search import surrogate
from gnas_jax.search import tokens as tokens_lib


def _raw_tokens(num, seed=0):
  """Arbitrary token arrays, irrelevant positions included."""
  counts = tokens_lib.choice_mask().sum(-1)
  rng = np.random.default_rng(seed)
  return (rng.random((num, tokens_lib.NUM_POSITIONS)) * counts).astype(
      np.int32)


def test_vectorised_canonical_matches_architecture_canonical():
  raw = _raw_tokens(3000)
  reference = np.stack([space.decode(row).canonical().encode()
                        for row in raw])
  np.testing.assert_array_equal(tokens_lib.canonical(raw), reference)
  np.testing.assert_array_equal(
      np.asarray(jax.jit(lambda t: tokens_lib.canonical(t, jnp))(raw)),
      reference)


def test_uniform_respects_a_subspace():
  choices = space.subspace_from_string('width=16/32,layers=1/2,agg=gcn')
  archs = tokens_lib.to_architectures(tokens_lib.uniform(
      np.random.default_rng(0), 500, tokens_lib.choice_mask(choices)))
  assert {a.width for a in archs} == {16, 32}
  assert {a.layers for a in archs} == {1, 2}
  assert {g for a in archs for g in a.agg} == {'gcn'}


def test_subspace_string_errors_name_the_decision():
  with pytest.raises(ValueError, match="'depth'"):
    space.subspace_from_string('depth=1/2')
  with pytest.raises(ValueError, match="'width'"):
    space.subspace_from_string('width=17')


# Excludes the defaults that canonical forms fall back to (temperature 0.1,
# mean readout, LightGCN aggregation), which strategies must not trip on.
_RESTRICTED = ('width=16/32,layers=0/1/2,temperature=0.5,readout=sum/last,'
               'agg=gcn/sage,residual=1')


@pytest.mark.parametrize('name', sorted(strategies.STRATEGIES))
def test_strategies_propose_distinct_unseen_architectures(name):
  choices = space.subspace_from_string(_RESTRICTED)
  shape = loop.search_shape(choices)
  strategy = strategies.make_strategy(
      name, choices, **({'population': 8, 'sample_size': 4}
                        if name == 'evolution' else {}))
  objective = surrogate.SurrogateObjective(0)
  key = jax.random.PRNGKey(0)
  state = strategy.init(key)
  seen = set()
  for round_index in range(4):
    archs = strategy.ask(state, jax.random.fold_in(key, round_index), 8)
    strings = {a.to_string() for a in archs}
    assert len(strings) == 8 and not strings & seen
    for arch in archs:
      assert arch == arch.canonical() and shape.covers(arch)
      assert set(arch.agg) <= {'gcn', 'sage'} and all(arch.residual)
    seen |= strings
    state = strategy.tell(state, archs, objective(archs))
    for value in strategy.diagnostics(state, key).values():
      assert np.isfinite(value) and abs(value) < 1e6
  assert strategy.archive(state).size == 32
  # `ask` is a pure function of the state and the key.
  again = strategy.ask(state, jax.random.PRNGKey(7), 8)
  assert again == strategy.ask(state, jax.random.PRNGKey(7), 8)


def test_an_exhausted_space_repeats_instead_of_failing():
  choices = space.subspace_from_string(
      'width=16,layers=0,decoder=dot,loss=bpr,lr=0.001,l2=0.0')
  strategy = strategies.make_strategy('random', choices)
  state = strategy.init(jax.random.PRNGKey(0))
  first = strategy.ask(state, jax.random.PRNGKey(1), 1)
  state = strategy.tell(state, first, [0.5])
  assert strategy.ask(state, jax.random.PRNGKey(2), 2) == first * 2


def test_sampling_imposes_what_canonical_form_would():
  """Sampled tokens differ from their canonical form only where the
  canonical form decides nothing, and scoring the canonical form gives
  finite log-probabilities even where its defaults are outside the mask."""
  choices = space.subspace_from_string(_RESTRICTED)
  mask = jnp.asarray(tokens_lib.choice_mask(choices))
  generator = networks.ArchitectureGenerator(16)
  params = networks.init_generator(generator, jax.random.PRNGKey(0))
  params = jax.tree.map(lambda x: x + jax.random.normal(
      jax.random.PRNGKey(1), x.shape), params)
  sampled, log_probs, _ = networks.generate(generator, params, mask,
                                            jax.random.PRNGKey(2), 256)
  sampled = np.asarray(sampled)
  canonical = tokens_lib.canonical(sampled)
  changed = sampled != canonical
  assert not (changed & tokens_lib.decided(canonical)).any()
  _, rescored, _ = networks._rollout(generator, params, mask, 256,
                                     given=jnp.asarray(canonical))
  assert np.all(np.asarray(rescored) > -100)
  same = ~changed.any(-1)
  np.testing.assert_allclose(np.asarray(rescored)[same],
                             np.asarray(log_probs)[same], rtol=1e-5)


def test_evolution_children_differ_from_a_parent_in_one_decision():
  strategy = strategies.RegularizedEvolution(population=4, sample_size=2)
  rng = np.random.default_rng(0)
  for parent in tokens_lib.uniform(rng, 200, strategy.mask):
    child = space.decode(strategy._mutate(parent, rng))
    parent = space.decode(parent)
    assert child != parent
    if child.layers != parent.layers:
      # The surviving layers keep their choices.
      common = min(child.layers, parent.layers)
      assert all(getattr(child, d.name)[:common] ==
                 getattr(parent, d.name)[:common]
                 for d in space.DECISIONS if d.per_layer)
      continue
    # Setting one decision of the parent to the child's value, then
    # canonicalising, gives the child.
    assert any(dataclasses.replace(
        parent, **{d.name: getattr(child, d.name)}).canonical() == child
               for d in space.DECISIONS)


def test_unknown_strategy_and_bad_option_are_named():
  with pytest.raises(ValueError, match="'annealing'.*adversarial"):
    strategies.make_strategy('annealing')
  with pytest.raises(ValueError, match="'random'.*population"):
    strategies.make_strategy('random', population=3)


def test_adversarial_beats_random_on_the_surrogate():
  """Median evaluations to the top 1% over 20 seeds (same objective)."""
  objective = surrogate.SurrogateObjective(0)
  threshold = objective.threshold()
  medians = {}
  for name in ('random', 'adversarial'):
    strategy = strategies.make_strategy(name)
    medians[name] = np.median([
        surrogate.evaluations_to_reach(strategy, objective, threshold, seed,
                                       max_evaluations=400)
        for seed in range(20)])
  assert medians['adversarial'] < medians['random'], medians


def test_discriminator_separates_a_planted_region_and_generator_follows():
  """Truth = wide LightGCN-only architectures; others score zero."""
  strategy = strategies.AdversarialSearch(warmup=8, truth_size=8,
                                          discriminator_steps=100,
                                          generator_steps=60)
  rng = np.random.default_rng(0)
  planted = space.subspace_from_string('width=128,agg=lightgcn')
  good = tokens_lib.to_architectures(tokens_lib.uniform(
      rng, 8, tokens_lib.choice_mask(planted)))
  others = tokens_lib.to_architectures(tokens_lib.uniform(
      rng, 24, strategy.mask))
  others = [a for a in others if a.width != 128]
  state = strategy.init(jax.random.PRNGKey(0))

  def wide_share(state):
    sampled, _ = strategy._sample(state.generator, jax.random.PRNGKey(1),
                                  1000)
    return np.mean(tokens_lib.canonical(sampled)[:, space.index('width')] ==
                   space.choice_index('width', 128))

  before = wide_share(state)
  for _ in range(3):
    state = strategy.tell(state, good + others,
                          [1.0] * len(good) + [0.0] * len(others))
  held_out_good = tokens_lib.to_architectures(tokens_lib.uniform(
      np.random.default_rng(1), 50, tokens_lib.choice_mask(planted)))
  held_out_other = tokens_lib.to_architectures(tokens_lib.uniform(
      np.random.default_rng(2), 50, tokens_lib.choice_mask(
          space.subspace(width=(16, 32)))))
  good_scores = strategy.score(state, held_out_good)
  other_scores = strategy.score(state, held_out_other)
  # Ranking quality: the share of (good, other) pairs ordered correctly.
  auc = np.mean(good_scores[:, None] > other_scores[None, :])
  assert auc > 0.75, auc  # chance is 0.5
  after = wide_share(state)
  assert before < 0.35 and after > before + 0.2, (before, after)


def test_generator_log_probs_match_its_samples():
  generator = networks.ArchitectureGenerator(16)
  params = networks.init_generator(generator, jax.random.PRNGKey(0))
  params = jax.tree.map(lambda x: x + 0.3 * jax.random.normal(
      jax.random.PRNGKey(1), x.shape), params)
  mask = jnp.asarray(tokens_lib.choice_mask())
  sampled, log_probs, _ = networks.generate(generator, params, mask,
                                            jax.random.PRNGKey(2), 64)
  _, rescored, _ = networks._rollout(generator, params, mask, 64,
                                     given=sampled)
  np.testing.assert_allclose(rescored, log_probs, rtol=1e-5, atol=1e-5)
  # An untrained generator is uniform: log p is minus the sum of
  # log(choices) over the positions the architecture decides.
  zero = networks.init_generator(generator, jax.random.PRNGKey(0))
  sampled, log_probs, _ = networks.generate(generator, zero, mask,
                                            jax.random.PRNGKey(3), 64)
  counts = np.log(tokens_lib.choice_mask().sum(-1))
  decided = tokens_lib.decided(tokens_lib.canonical(np.asarray(sampled)))
  expected = -(decided * counts).sum(-1)
  np.testing.assert_allclose(log_probs, expected, rtol=1e-5)


def test_trial_store_discards_an_unfinished_round(tmp_path):
  store = store_lib.TrialStore(str(tmp_path / 'trials.sqlite'))
  row = dict(valid_recall=0.0, failed=0, epochs=1, fidelity_epochs=1,
             seed=0, train_seconds=0.1)
  store.add_round([dict(row, round=0, slot=s, arch=f'a{s}',
                        valid_ndcg=0.1 * s) for s in range(3)])
  store.add_round([dict(row, round=1, slot=0, arch='a2', valid_ndcg=0.9)])
  assert [t['arch'] for t in store.best(2)] == ['a2', 'a1']
  assert store.best(1)[0]['valid_ndcg'] == pytest.approx(0.9)
  assert store.discard_from(1) == 1
  assert len(store.trials()) == 3
  with pytest.raises(Exception, match='UNIQUE'):
    store.add_round([dict(row, round=0, slot=0, arch='x', valid_ndcg=0.0)])
