"""Tests for the search over the GNN space: strategies, their networks, the
surrogate and the trial store."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import search as search_config
from gnas_jax import search
from gnas_jax import space
from gnas_jax.search import evaluation
from gnas_jax.search import loop
from gnas_jax.search import networks
from gnas_jax.search import store as store_lib
from gnas_jax.search import strategies
from gnas_jax.search import surrogate
from gnas_jax.search.strategies import evolution

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Excludes the defaults that canonical forms fall back to (temperature 0.1,
# mean readout, LightGCN aggregation), which strategies must not trip on;
# under the cosine decoder the 'sum' readout is the 'mean' one, which the
# space holds although it does not list it.
_RESTRICTED = ('width=16/32,layers=0/1/2,temperature=0.5,readout=sum/last,'
               'agg=gcn/sage,residual=1')


def _restricted():
  return space.search_space(space.subspace_from_string(_RESTRICTED))


def test_uniform_respects_a_subspace():
  choices = space.subspace_from_string('width=16/32,layers=1/2,agg=gcn')
  archs = space.from_tokens(space.search_space(choices).uniform(
      np.random.default_rng(0), 500))
  assert {a.width for a in archs} == {16, 32}
  assert {a.layers for a in archs} == {1, 2}
  assert {g for a in archs for g in a.agg} == {'gcn'}


def test_subspace_string_errors_name_the_decision():
  with pytest.raises(ValueError, match="'depth'"):
    space.subspace_from_string('depth=1/2')
  with pytest.raises(ValueError, match="'width'"):
    space.subspace_from_string('width=17')


@pytest.mark.parametrize('name', sorted(strategies.STRATEGIES))
def test_strategies_propose_distinct_unseen_architectures(name,
                                                          small_strategy):
  restricted = _restricted()
  shape = evaluation.search_shape(space.subspace_from_string(_RESTRICTED))
  strategy = small_strategy(name, restricted)
  objective = surrogate.SurrogateObjective(0)
  key = jax.random.PRNGKey(0)
  state = strategy.init(key)
  seen = set()
  for round_index in range(4):
    tokens = strategy.ask(state, jax.random.fold_in(key, round_index), 8)
    np.testing.assert_array_equal(restricted.canonical(tokens), tokens)
    assert restricted.contains(tokens).all()
    archs = space.from_tokens(tokens)
    strings = {a.to_string() for a in archs}
    assert len(strings) == 8 and not strings & seen
    for arch in archs:
      assert arch == arch.canonical() and shape.covers(arch)
      assert set(arch.agg) <= {'gcn', 'sage'} and all(arch.residual)
    seen |= strings
    state, metrics = strategy.tell(state, tokens,
                                   objective.score_tokens(tokens))
    for value in metrics.values():
      assert np.isfinite(value) and abs(value) < 1e6
  assert state.archive.size == 32
  # `ask` is a pure function of the state and the key.
  again = strategy.ask(state, jax.random.PRNGKey(7), 8)
  np.testing.assert_array_equal(
      again, strategy.ask(state, jax.random.PRNGKey(7), 8))


def test_a_search_of_an_exhausted_space_stops():
  choices = space.subspace_from_string(
      'width=16,layers=0,decoder=dot,loss=bpr,lr=0.001,l2=0.0')
  assert space.count_canonical(choices) == 1
  strategy = strategies.make_strategy('random', space.search_space(choices))
  trace = search.run(strategy, lambda configs: [0.5] * len(configs),
                     budget=3, batch_size=2)
  assert len(trace) == 1


def test_sampled_tokens_are_canonical_and_rescore_to_their_log_probs():
  """On a restricted space, the generator samples canonical tokens, and
  scoring them gives the log-probabilities they were sampled with (also
  for 'sum' readouts merged into a 'mean' the space does not list)."""
  restricted = _restricted()
  generator = networks.make_generator(restricted, 16)
  params = networks.init_generator(generator, jax.random.PRNGKey(0))
  params = jax.tree.map(lambda x: x + 0.3 * jax.random.normal(
      jax.random.PRNGKey(1), x.shape), params)
  sampled, log_probs, _ = networks.generate(generator, params, restricted,
                                            jax.random.PRNGKey(2), 256)
  sampled = np.asarray(sampled)
  np.testing.assert_array_equal(restricted.canonical(sampled), sampled)
  assert restricted.contains(sampled).all()
  cosine = sampled[:, space.index('decoder')] == space.choice_index(
      'decoder', 'cosine')
  mean = sampled[:, space.index('readout')] == space.choice_index(
      'readout', 'mean')
  assert (cosine & mean).any()
  _, rescored, _ = networks.rollout(generator, params, restricted, 256,
                                    given=jnp.asarray(sampled))
  np.testing.assert_allclose(np.asarray(rescored), np.asarray(log_probs),
                             rtol=1e-5, atol=1e-5)


def test_untrained_generator_is_uniform_over_reachable_choices():
  declared = space.SEARCH_SPACE
  generator = networks.make_generator(declared, 8)
  zero = networks.init_generator(generator, jax.random.PRNGKey(0))
  sampled, log_probs, _ = networks.generate(generator, zero, declared,
                                            jax.random.PRNGKey(3), 64)
  sampled = np.asarray(sampled)
  # log p is minus the sum of log(choices) over the active positions.
  choices = np.stack([declared.reachable(p, sampled).sum(-1)
                      for p in range(declared.num_positions)], -1)
  expected = -(declared.active(sampled) * np.log(choices)).sum(-1)
  np.testing.assert_allclose(log_probs, expected, rtol=1e-5)


def test_evolution_children_differ_from_a_parent_in_one_decision():
  declared = space.SEARCH_SPACE
  rng = np.random.default_rng(0)
  for parent in declared.uniform(rng, 200):
    child = evolution.mutate(declared, parent, rng)
    assert declared.contains(child) and (child != parent).any()
    # Setting one active decision of the parent to the child's choice, then
    # canonicalising, gives the child, but for the decisions that change
    # made active, which draw a choice of their own.
    fresh = declared.active(child) & ~declared.active(parent)
    changed = np.flatnonzero((child != parent) & declared.active(parent))
    candidates = []
    for position in changed:
      moved = parent.copy()
      moved[position] = child[position]
      candidates.append(declared.canonical(moved))
    assert any(np.array_equal(c[~fresh], child[~fresh])
               for c in candidates), (space.decode(parent),
                                      space.decode(child))
    if space.decode(child).layers != space.decode(parent).layers:
      # The surviving layers keep their choices.
      child_arch, parent_arch = space.decode(child), space.decode(parent)
      common = min(child_arch.layers, parent_arch.layers)
      assert all(getattr(child_arch, d.name)[:common] ==
                 getattr(parent_arch, d.name)[:common]
                 for d in space.DECISIONS if d.per_layer)


def test_a_mutation_is_told_apart_by_the_decision_it_changed():
  """Setting a 'sum' readout's decoder to cosine also rewrites the readout,
  an earlier position: the mutation is the decoder's, not the readout's."""
  declared = space.SEARCH_SPACE
  parent = space.to_tokens([space.from_string(
      'width=64,layers=2,norm=sym,readout=sum,edge_dropout=0.0,decoder=dot,'
      'loss=bpr,lr=0.01,l2=0.0001,agg=gcn/gcn,act=relu/relu,'
      'residual=0/0')])[0]
  rng = np.random.default_rng(0)
  neighbours, changed = declared.mutations(parent, rng)
  np.testing.assert_array_equal(
      neighbours, declared.neighbours(parent, np.random.default_rng(0)))
  cosine = [i for i, row in enumerate(neighbours)
            if space.decode(row).decoder == 'cosine']
  assert len(cosine) == 1
  (row,) = neighbours[cosine]
  assert space.decode(row).readout == 'mean'
  assert changed[cosine[0]] == space.index('decoder')
  # Every other neighbour differs from the parent first where it changed.
  rest = np.ones(len(neighbours), bool)
  rest[cosine] = False
  np.testing.assert_array_equal(
      np.argmax(neighbours[rest] != parent, axis=-1), changed[rest])


def test_unknown_strategy_and_bad_option_are_named():
  with pytest.raises(ValueError, match="'annealing'.*adversarial"):
    strategies.make_strategy('annealing', space.SEARCH_SPACE)
  with pytest.raises(ValueError, match="'population'.*'random'"):
    strategies.make_strategy('random', space.SEARCH_SPACE, population=3)


# Fewer and cheaper training steps than the defaults: the adversarial
# strategy's round compiles for a minute or more on a CPU, and the two tests
# below share one program.
_FAST_ADVERSARIAL = {'hidden': 32, 'discriminator_steps': 20,
                     'generator_steps': 10, 'ppo_epochs': 1}


def test_adversarial_beats_random_on_the_surrogate():
  """Median evaluations to the top 1% over 10 seeds (same objective)."""
  objective = surrogate.SurrogateObjective(0)
  threshold = objective.threshold()
  medians = {}
  for name in ('random', 'adversarial'):
    strategy = strategies.make_strategy(
        name, space.SEARCH_SPACE,
        **(_FAST_ADVERSARIAL if name == 'adversarial' else {}))
    medians[name] = np.median([
        surrogate.evaluations_to_reach(strategy, objective, threshold, seed,
                                       max_evaluations=400)
        for seed in range(10)])
  assert medians['adversarial'] < medians['random'], medians


def test_each_truth_architecture_weighs_the_same_in_the_refit():
  """The truth set is padded to a fixed shape by repeating its rows; the
  weights of the generator's refit undo the repeats."""
  strategy = strategies.make_strategy('adversarial', space.SEARCH_SPACE,
                                      truth_size=10)
  truth = space.SEARCH_SPACE.uniform(np.random.default_rng(0), 3)
  padded, weights = strategy._padded_truth(truth)
  assert padded.shape == (10, truth.shape[1])
  padded, weights = np.asarray(padded), np.asarray(weights)
  for row in truth:
    same = np.all(padded == row, axis=1)
    assert same.sum() >= 3  # repeated by the padding: rows 0-2, 3-5, 6-9
    np.testing.assert_allclose(weights[same].sum(), 1 / 3, rtol=1e-6)


def test_discriminator_separates_a_planted_region_and_generator_follows():
  """Truth = wide LightGCN-only architectures; others score zero."""
  declared = space.SEARCH_SPACE
  strategy = strategies.make_strategy('adversarial', declared,
                                      **_FAST_ADVERSARIAL)
  rng = np.random.default_rng(0)
  planted = space.search_space(space.subspace(width=(128,),
                                              agg=('lightgcn',)))
  narrow = space.search_space(space.subspace(width=(16, 32)))
  good = planted.uniform(rng, 8)
  others = declared.uniform(rng, 24)
  others = others[others[:, space.index('width')] !=
                  space.choice_index('width', 128)]
  tokens = np.concatenate([good, others])
  fitness = np.array([1.0] * len(good) + [0.0] * len(others))
  state = strategy.init(jax.random.PRNGKey(0))

  def wide_share(state):
    sampled, _, _ = networks.generate(strategy.generator, state.generator,
                                      declared, jax.random.PRNGKey(1), 1000)
    return np.mean(np.asarray(sampled)[:, space.index('width')] ==
                   space.choice_index('width', 128))

  def scores(state, tokens):
    return np.asarray(networks.discriminate(
        strategy.discriminator, state.discriminator,
        jnp.asarray(declared.features(tokens))))

  before = wide_share(state)
  # The truth set is the 8 good ones. (Told more often, the generator
  # collapses onto wide architectures, and the discriminator turns to
  # what else tells its samples from them.)
  for _ in range(4):
    state, _ = strategy.tell(state, tokens, fitness)
  good_scores = scores(state, planted.uniform(np.random.default_rng(1), 50))
  other_scores = scores(state, narrow.uniform(np.random.default_rng(2), 50))
  # Ranking quality: the share of (good, other) pairs ordered correctly.
  auc = np.mean(good_scores[:, None] > other_scores[None, :])
  assert auc > 0.75, auc  # chance is 0.5
  after = wide_share(state)
  assert before < 0.35 and after > before + 0.2, (before, after)


def test_surrogate_scores_architectures_as_their_tokens():
  objective = surrogate.SurrogateObjective(0)
  archs = space.sample(np.random.default_rng(0), 20)
  np.testing.assert_allclose(objective(archs),
                             objective.score_tokens(space.to_tokens(archs)))
  # Scores depend on the canonical form only.
  cosine = space.from_string('lightgcn,decoder=cosine,readout=sum')
  assert objective([cosine]) == objective([cosine.canonical()])
  narrow = space.subspace_from_string('width=16,layers=0/1')
  assert objective.threshold(0.5, 2000, choices=narrow) != (
      objective.threshold(0.5, 2000))


def test_a_score_counts_below_every_score_of_a_higher_fidelity():
  archive = strategies.Archive.empty(2).add(
      np.zeros((4, 2)), [0.9, 0.3, 0.4, 0.1], [1, 27, 27, 3])
  np.testing.assert_array_equal(archive.ranking(), [2, 1, 3, 0])
  # The highest fidelity keeps its scores; a level below sits a whole span
  # (0.9 - 0.1 + 1) under it, two levels below two spans.
  np.testing.assert_allclose(archive.comparable(),
                             [0.9 - 2 * 1.8, 0.3, 0.4, 0.1 - 1.8], rtol=1e-6)
  # One fidelity: the scores as they are, and the order of the scores.
  uniform = strategies.Archive.empty(2).add(np.zeros((3, 2)),
                                            [0.2, 0.5, 0.2])
  np.testing.assert_array_equal(uniform.comparable(), uniform.fitness)
  np.testing.assert_array_equal(uniform.ranking(), [1, 0, 2])


def test_evolution_breeds_from_the_higher_fidelity_parent():
  """The better raw score was measured at epoch 1 and halted; the parent
  is the one that trained its whole budget."""
  declared = _restricted()
  strategy = strategies.make_strategy('evolution', declared, population=2,
                                      sample_size=2)
  state = strategy.init(jax.random.PRNGKey(0))
  halted, trained = declared.uniform(np.random.default_rng(0), 2)
  assert (halted != trained).any()
  state, _ = strategy.tell(state, np.stack([halted, trained]), [0.9, 0.5],
                           [1, 27])
  children = strategy.propose(state, jax.random.PRNGKey(1),
                              np.random.default_rng(1), 2)
  # The same draws, mutating the trained parent every time.
  rng = np.random.default_rng(1)
  expected = []
  for _ in range(len(children)):
    rng.choice(2, 2, replace=False)
    expected.append(evolution.mutate(declared, trained, rng))
  np.testing.assert_array_equal(children, np.stack(expected))


def test_trial_store_discards_an_unfinished_round(tmp_path):
  store = store_lib.TrialStore(str(tmp_path / 'trials.sqlite'))
  row = dict(valid_recall=0.0, failed=0, epochs=1, fidelity_epochs=1,
             seed=0, train_seconds=0.1)
  store.add_round([dict(row, round=0, slot=s, arch=f'a{s}',
                        valid_ndcg=0.1 * s) for s in range(3)])
  store.add_round([dict(row, round=1, slot=0, arch='a2', valid_ndcg=0.9)])
  assert [t['arch'] for t in store.best(2)] == ['a2', 'a1']
  # A score measured after more epochs ranks above any halted earlier.
  store.add_round([dict(row, round=2, slot=0, arch='b', valid_ndcg=0.05,
                        fidelity_epochs=3)])
  assert [t['arch'] for t in store.best(2)] == ['b', 'a2']
  store.discard_from(2)
  assert store.best(1)[0]['valid_ndcg'] == pytest.approx(0.9)
  assert store.discard_from(1) == 1
  assert len(store.trials()) == 3
  with pytest.raises(Exception, match='UNIQUE'):
    store.add_round([dict(row, round=0, slot=0, arch='x', valid_ndcg=0.0)])


def test_search_config_defaults_are_the_strategies_defaults():
  config = search_config.get_config()
  assert set(config.strategies) == set(strategies.STRATEGIES)
  for name, options in config.strategies.items():
    defaults = strategies.options(name)
    # Every option, so that each can be set from the command line.
    assert options.to_dict() == defaults, name
  strategy = loop.build_strategy(config)
  assert strategy.name == 'adversarial'
  config.strategies.adversarial.truth_sise = 3
  with pytest.raises(ValueError, match="'truth_sise'"):
    loop.build_strategy(config)


def test_search_config_imports_no_jax():
  # Configs load in launchers that choose the platform before JAX starts.
  code = ('import sys; from experiments.configs import search; '
          'search.get_config(); '
          'print(sorted({"jax", "flax", "optax"} & set(sys.modules)))')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, check=True, cwd=_ROOT)
  assert result.stdout.strip() == '[]'


def test_search_shape_covers_the_defaults_of_inactive_decisions():
  choices = space.subspace_from_string(
      'width=16/32,layers=0/1,readout=sum/last,temperature=0.5,norm=left,'
      'edge_dropout=0.1,agg=gcn,act=relu,residual=0,lr=0.001,l2=0.0')
  shape = evaluation.search_shape(choices)
  assert shape.values('width') == (16, 32)
  assert shape.values('readout') == ('last', 'mean', 'sum')
  assert shape.values('temperature') == (0.1, 0.5)
  assert shape.values('norm') == ('sym', 'left')
  assert shape.values('edge_dropout') == (0.0, 0.1)
  assert shape.values('agg') == ('gcn',)
  for arch in space.enumerate_canonical(choices):
    assert shape.covers(arch)


@pytest.mark.parametrize('name', ['random', 'evolution'])
def test_a_refilling_round_never_proposes_an_architecture_twice(name):
  """Mid-round asks exclude the round's candidates still training, which
  the archive does not hold yet."""
  small = space.search_space(space.subspace_from_string(
      'width=16,layers=1,agg=gcn/sage,act=relu/tanh,residual=0,norm=sym,'
      'readout=last,edge_dropout=0.0,decoder=dot,loss=bpr,'
      'lr=0.001/0.01,l2=0.0001/0.001'))
  assert small.count() == 16
  strategy = strategies.make_strategy(name, small)
  evaluated = []

  def evaluate(tokens, round_index, ask_more):
    del round_index
    scores = np.arange(len(tokens), dtype=np.float32)
    # The first two are halted at epoch 1 and make room for two more; the
    # others train their 3 epochs.
    new = ask_more(tokens[:2], scores[:2], np.ones(2), 2)
    everything = np.concatenate([tokens, new])
    evaluated.extend(small.keys(everything))
    told = np.arange(len(everything)) < 2
    fidelity = np.where(told, 1, 3)
    return (everything, np.arange(len(everything), dtype=np.float32),
            fidelity, told)

  for seed in range(5):
    evaluated.clear()
    state = search.fold(strategy, evaluate, budget=16, batch_size=4,
                        seed=seed, refills=True)
    assert len(evaluated) == len(set(evaluated)) == 16
    assert state.archive.size == 16
    # Each round: two halted at epoch 1, told first, then four at 3.
    np.testing.assert_array_equal(state.archive.fidelity,
                                  np.tile([1, 1, 3, 3, 3, 3], 3)[:16])


def test_a_failed_evaluation_ranks_below_every_real_one():
  strategy = strategies.make_strategy('random', _restricted())
  tokens = strategy.space.uniform(np.random.default_rng(0), 5)
  state = strategy.init(jax.random.PRNGKey(0))
  # Told in three batches, one of failures alone; the scores are negative.
  for told in ([-20.0, -10.0], [np.nan], [-5.0, np.nan]):
    start = state.archive.size
    state, _ = strategy.tell(state, tokens[start:start + len(told)], told)
  np.testing.assert_array_equal(state.archive.ranking(), [3, 1, 0, 2, 4])
  assert (state.archive.fitness[[2, 4]] < -20).all()
  # A failure at the highest fidelity ranks below a real score at the
  # lowest.
  state = strategy.init(jax.random.PRNGKey(0))
  state, _ = strategy.tell(state, tokens[:3], [np.nan, 0.2, 0.1], [27, 3, 1])
  np.testing.assert_array_equal(state.archive.ranking(), [1, 2, 0])
  np.testing.assert_array_equal(state.archive.fidelity,
                                [strategies.base.FAILED_FIDELITY, 3, 1])


def test_the_last_unseen_architecture_is_found_in_a_vast_raw_space():
  """The one layer-free subspace: 800 architectures among 2.75e12 raw
  configurations (the choices of inactive decisions). With all but one
  evaluated, uniform draws nearly always miss the last; enumerating the
  space's architectures finds it for every key."""
  declared = space.search_space(space.subspace_from_string('layers=0'))
  every = declared.enumerate()
  assert len(every) == 800 and declared.raw_size() > 10**12
  strategy = strategies.make_strategy('random', declared)
  state = strategy.init(jax.random.PRNGKey(0))
  state, _ = strategy.tell(state, every[1:], np.zeros(len(every) - 1))
  for seed in range(5):
    np.testing.assert_array_equal(
        strategy.ask(state, jax.random.PRNGKey(seed), 1), every[:1])


def test_neglected_choices_by_hand():
  """Of the N_p evaluations deciding a position, a uniform draw gives each
  of its A_p choices N_p / A_p; below half of that a choice is neglected,
  least often first (ties in position order)."""
  declared = search.SearchSpace(
      {'a': (0, 1, 2, 3), 'b': ('x', 'y'), 'c': ('u', 'v')},
      conditions={'c': {'b': ('y',)}})
  a = [0] * 6 + [1] * 5 + [2]
  b = ['x'] * 11 + ['y']
  tokens = declared.canonical(np.array([
      declared.encode({'a': i, 'b': j, 'c': 'u'}) for i, j in zip(a, b)]))
  # a: counts 6, 5, 1, 0 of 12 over 4 choices: shares 2, 5/3, 1/3, 0.
  # b: 11, 1 of 12 over 2: 11/6, 1/6. c decided once (b = 'y'): 2, 0.
  assert strategies.adversarial.neglected_choices(declared, tokens) == [
      (0, 3), (2, 1), (1, 1), (0, 2)]
  # Ties in random order with a generator.
  orders = {tuple(strategies.adversarial.neglected_choices(
      declared, tokens, np.random.default_rng(seed))[:2]) for seed in range(8)}
  assert orders == {((0, 3), (2, 1)), ((2, 1), (0, 3))}


def test_coverage_probes_a_choice_the_archive_never_tried():
  """Nine architectures, none with loss 'd' (the other choices near their
  uniform shares): a probe is a neighbour of the truth set with it, the
  best architecture's without the discriminator's ranking."""
  declared = search.SearchSpace({'loss': ('a', 'b', 'c', 'd'),
                                 'width': (1, 2, 3),
                                 'depth': (1, 2, 3, 4, 5)})
  tried = np.stack([
      declared.encode({'loss': loss, 'width': width, 'depth': depth % 5 + 1})
      for depth, (loss, width) in enumerate(
          (loss, width) for loss in 'abc' for width in (1, 2, 3))])
  best = 2  # loss a, width 3, depth 3.
  fitness = [1.0 if i == best else 0.1 * i for i in range(len(tried))]
  for ranked in (False, True):
    strategy = strategies.make_strategy(
        'adversarial', declared, coverage=1.0, rank_with_discriminator=ranked,
        **_FAST_ADVERSARIAL)
    state = strategy.init(jax.random.PRNGKey(0))
    state = state.replace(archive=state.archive.add(tried, fitness))
    probe = declared.decode(strategy.ask(state, jax.random.PRNGKey(1), 1)[0])
    assert probe['loss'] == 'd'
    if not ranked:
      assert probe == {'loss': 'd', 'width': 3, 'depth': 3}
  with pytest.raises(ValueError, match='0 <= coverage <= 1; got 1.5'):
    strategies.make_strategy('adversarial', declared, coverage=1.5)
