"""Tests for the search space: encoding, strings, presets, canonical forms."""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnas_jax import space


@pytest.mark.parametrize('name', sorted(space.PRESETS))
def test_presets_round_trip_through_strings_and_vectors(name):
  arch = space.PRESETS[name]
  assert space.from_string(arch.to_string()) == arch
  assert space.decode(arch.encode()) == arch
  assert space.from_string(name) == arch


def test_vector_layout():
  arch = space.preset('lightgcn')
  vector = arch.encode()
  assert vector.shape == (space.NUM_DECISIONS,) == (11 + 3 * space.MAX_LAYERS,)
  assert vector[space.index('width')] == space.choice_index('width', 64)
  assert vector[space.index('layers')] == 3
  # Unused layer slots hold choice 0.
  assert vector[space.POSITIONS['agg']].tolist() == [0, 0, 0, 0]


def test_an_optional_decision_is_written_only_when_set():
  """Message dropout, outside the default search, keeps the strings of
  models without it as they were before it existed."""
  lightgcn = space.preset('lightgcn')
  assert 'message_dropout' not in lightgcn.to_string()
  assert lightgcn.to_string() == (
      'width=64,layers=3,norm=sym,readout=mean,edge_dropout=0.0,decoder=dot,'
      'temperature=0.1,loss=bpr,lr=0.001,l2=0.0001,'
      'agg=lightgcn/lightgcn/lightgcn,act=identity/identity/identity,'
      'residual=0/0/0')
  ngcf = space.preset('ngcf')
  assert ngcf.message_dropout == 0.1
  assert ngcf.to_string().endswith(',message_dropout=0.1')
  assert space.from_string('lightgcn,message_dropout=0') == lightgcn
  # Without layers there is nothing to drop.
  assert space.from_string('mf,message_dropout=0.2').canonical() == (
      space.preset('mf').canonical())


def test_the_number_of_negatives_is_part_of_the_loss():
  """'softmax' scores the protocol's count, so strings keep their meaning;
  'softmax-N' its own, explored only where a search space names it."""
  wide = space.from_string('mf,loss=softmax-128')
  assert wide.to_string().replace('loss=softmax-128', 'loss=softmax') == (
      space.from_string('mf,loss=softmax').to_string())
  assert space.from_string(wide.to_string()) == wide
  assert space.subspace()['loss'] == ('bpr', 'softmax')
  assert space.subspace_from_string('loss=softmax/softmax-64')['loss'] == (
      'softmax', 'softmax-64')
  with pytest.raises(ValueError, match=r"Invalid value 'softmax-100'.*"
                     r"bpr, softmax, softmax-32, softmax-64, softmax-128"):
    space.from_string('mf,loss=softmax-100')


def test_preset_with_overrides_and_per_layer_values():
  arch = space.from_string('lightgcn, layers=2, width=32, act=relu/tanh')
  assert (arch.layers, arch.width) == (2, 32)
  assert arch.agg == ('lightgcn', 'lightgcn')
  assert arch.act == ('relu', 'tanh')
  assert space.from_string('mf,layers=2').agg == ('lightgcn', 'lightgcn')
  deeper = space.from_string('gcn,layers=4')
  assert deeper.agg == ('gcn',) * 4 and deeper.act == ('relu',) * 4


def test_values_parse_in_any_numeric_spelling():
  arch = space.from_string('lightgcn,lr=1e-3,l2=0.00001,residual=true')
  assert arch.lr == 1e-3 and arch.l2 == 1e-5
  assert arch.residual == (True,) * 3


@pytest.mark.parametrize('text, message', [
    ('lightgcnn', r"Unknown architecture preset 'lightgcnn'; choose from .*"
                  r"lightgcn.*ngcf"),
    ('lightgcn,width=48', r"Invalid value '48' for architecture decision "
                          r"'width'; choose from 16, 32, 64, 128"),
    ('lightgcn,depth=2', r"Unknown architecture decision 'depth'"),
    ('lightgcn,agg=gcn/gcn', r"'agg' has 2 values .* for layers=3"),
    ('width=64,ngcf', r'a preset name may only come first'),
    ('', 'Empty architecture string'),
])
def test_bad_strings_name_the_problem(text, message):
  with pytest.raises(ValueError, match=message):
    space.from_string(text)


def test_canonical_collapses_choices_that_cannot_matter():
  dot = space.from_string('lightgcn,temperature=0.5')
  assert dot.canonical() == space.preset('lightgcn').canonical()
  cosine = space.from_string('lightgcn,decoder=cosine,temperature=0.5')
  assert cosine.canonical().temperature == 0.5
  mf_a = space.from_string('mf,norm=left,readout=sum,edge_dropout=0.2')
  assert mf_a.canonical() == space.preset('mf').canonical()
  gat = space.from_string('gat,norm=none').canonical()
  assert gat == space.preset('gat').canonical()
  gcn = space.from_string('gcn,norm=none').canonical()
  assert gcn != space.preset('gcn').canonical()


def test_decode_rejects_wrong_length_and_checks_values():
  with pytest.raises(ValueError, match='has shape'):
    space.decode(np.zeros(3, np.int32))
  with pytest.raises(ValueError, match="'agg' has 1 values for 2 layers"):
    dataclasses.replace(space.preset('gcn'), agg=('gcn',))


def test_random_architectures_round_trip_and_canonicalise_idempotently():
  rng = np.random.default_rng(0)
  for arch in space.sample(rng, 300):
    assert space.from_string(arch.to_string()) == arch
    assert space.decode(arch.encode()) == arch
    assert arch.canonical() == arch  # sample() returns canonical forms
    assert arch.canonical().canonical() == arch.canonical()


def test_sample_is_seeded_and_stays_in_the_subspace():
  choices = space.subspace(width=(32,), layers=(1, 2), agg=('gcn', 'gat'))
  first = space.sample(np.random.default_rng(1), 50, choices)
  again = space.sample(np.random.default_rng(1), 50, choices)
  assert first == again
  assert {a.width for a in first} == {32}
  assert {a.layers for a in first} == {1, 2}
  assert {g for a in first for g in a.agg} == {'gcn', 'gat'}


def brute_force_count(choices):
  """Distinct canonical encodings over every combination of choices."""
  seen = set()
  global_names = [d.name for d in space.DECISIONS
                  if not d.per_layer and d.name != 'layers']
  layer_names = [d.name for d in space.DECISIONS if d.per_layer]
  for layers in choices['layers']:
    global_values = itertools.product(*(choices[n] for n in global_names))
    for values in global_values:
      layer_options = itertools.product(
          *(itertools.product(choices[n], repeat=layers)
            for n in layer_names))
      for per_layer in layer_options:
        arch = space.Architecture(
            layers=layers, **dict(zip(global_names, values)),
            **dict(zip(layer_names, per_layer)))
        seen.add(arch.canonical().encode().tobytes())
  return len(seen)


@pytest.mark.parametrize('restriction', [
    dict(width=(16, 32), layers=(0, 1, 2), norm=('sym', 'left'),
         readout=('mean', 'sum', 'concat'), edge_dropout=(0.0,),
         decoder=('dot', 'cosine'), temperature=(0.1, 0.2), loss=('bpr',),
         lr=(1e-3,), l2=(1e-4,), agg=('lightgcn', 'gat'),
         act=('identity', 'relu'), residual=(False,)),
    dict(width=(64,), layers=(1, 2), norm=('right', 'none'),
         readout=('sum', 'last'), edge_dropout=(0.0, 0.1),
         decoder=('cosine',), temperature=(0.05,), loss=('bpr', 'softmax'),
         lr=(1e-3,), l2=(0.0,), agg=('gat',), act=('elu',),
         residual=(False, True)),
])
def test_count_matches_brute_force_enumeration(restriction):
  choices = space.subspace(**restriction)
  assert space.count_canonical(choices) == brute_force_count(choices)


def test_cosine_makes_sum_and_mean_readouts_identical():
  a = space.from_string('lightgcn,decoder=cosine,readout=sum')
  assert a.canonical() == space.from_string(
      'lightgcn,decoder=cosine,readout=mean').canonical()
  assert space.from_string('lightgcn,readout=sum').canonical().readout == (
      'sum')


def test_subspace_rejects_unknown_names_and_values():
  with pytest.raises(ValueError, match="Unknown architecture decisions"):
    space.subspace(depth=(1,))
  with pytest.raises(ValueError, match="Invalid choices \\[48\\]"):
    space.subspace(width=(48,))


def test_the_whole_space_counts_as_before():
  assert space.count_canonical() == 1_464_174_836_000


def _canonical_by_hand(tokens):
  """The canonical rules written out one by one, on token arrays."""
  tokens = np.array(tokens)
  default = {name: space.choice_index(name, getattr(space.Architecture(),
                                                    name))
             for name in ('temperature', 'readout', 'norm', 'edge_dropout',
                          'message_dropout')}
  for row in tokens:
    layers = space.DECISION_BY_NAME['layers'].choices[
        row[space.index('layers')]]
    for decision in space.DECISIONS:
      if decision.per_layer:  # Layers beyond the depth do not exist.
        row[space.POSITIONS[decision.name]][layers:] = 0
    cosine = row[space.index('decoder')] == space.choice_index('decoder',
                                                                'cosine')
    if not cosine:
      row[space.index('temperature')] = default['temperature']
    elif row[space.index('readout')] == space.choice_index('readout', 'sum'):
      row[space.index('readout')] = space.choice_index('readout', 'mean')
    gat = space.choice_index('agg', 'gat')
    if layers == 0:
      for name in ('norm', 'readout', 'edge_dropout', 'message_dropout'):
        row[space.index(name)] = default[name]
    elif all(row[space.POSITIONS['agg']][:layers] == gat):
      row[space.index('norm')] = default['norm']
  return tokens


def test_declared_space_canonicalises_as_the_rules_say():
  rng = np.random.default_rng(0)
  sizes = np.array([len(space.SEARCH_SPACE.choices[n])
                    for n in space.SEARCH_SPACE.names])
  raw = (rng.random((3000, space.NUM_DECISIONS)) * sizes).astype(np.int32)
  # Enough all-attention rows to exercise that rule.
  raw[::7, space.POSITIONS['agg']] = space.choice_index('agg', 'gat')
  expected = _canonical_by_hand(raw)
  np.testing.assert_array_equal(space.SEARCH_SPACE.canonical(raw), expected)
  compiled = jax.jit(lambda t: space.SEARCH_SPACE.canonical(t, jnp))
  np.testing.assert_array_equal(np.asarray(compiled(raw)), expected)
  for row, canonical in zip(raw[:200], expected[:200]):
    assert space.decode(row).canonical().encode().tolist() == (
        canonical.tolist())


def test_tokens_are_the_encoded_vectors():
  declared = space.SEARCH_SPACE
  assert declared.names[space.POSITIONS['agg']] == tuple(
      f'agg_{layer}' for layer in range(space.MAX_LAYERS))
  for name in ('width', 'layers', 'decoder', 'residual'):
    assert declared.index(name if name in declared.names else f'{name}_0'
                          ) == space.index(name)
  archs = [space.preset(name) for name in sorted(space.PRESETS)]
  tokens = space.to_tokens(archs)
  assert tokens.shape == (len(archs), space.NUM_DECISIONS)
  assert space.from_tokens(tokens) == [a.canonical() for a in archs]
  np.testing.assert_array_equal(
      tokens, np.stack([a.canonical().encode() for a in archs]))
  assert space.to_tokens([]).shape == (0, space.NUM_DECISIONS)
  # Inactive decisions default to the dataclass's choices.
  for name in ('temperature', 'readout', 'norm', 'edge_dropout'):
    assert declared.defaults[name] == getattr(space.Architecture(), name)


def test_search_space_restricts_every_layer():
  choices = space.subspace(width=(32,), agg=('gcn', 'sage'))
  restricted = space.search_space(choices)
  assert restricted is space.search_space(dict(choices))
  assert space.search_space() is space.search_space(space.subspace())
  for layer in range(space.MAX_LAYERS):
    assert restricted.allowed[f'agg_{layer}'] == ('gcn', 'sage')
  assert restricted.allowed['width'] == (32,)
  assert restricted.count() == space.count_canonical(choices)
  with pytest.raises(ValueError, match="Unknown architecture decisions"):
    space.search_space({'depth': (1,)})


def test_a_choice_outside_the_searched_ones_is_searched_only_when_named():
  """'renorm' serves presets (GCN) and declared tokens, not default
  searches, so that what they and their benchmarks cover is unchanged."""
  assert 'renorm' in space.SEARCH_SPACE.choices['norm']
  assert space.subspace()['norm'] == ('sym', 'left', 'right', 'none')
  assert space.search_space().allowed['norm'] == ('sym', 'left', 'right',
                                                  'none')
  assert space.subspace_from_string('')['norm'] == space.subspace()['norm']
  assert not any(a.norm == 'renorm' for a in space.sample(
      np.random.default_rng(0), 300))
  named = space.subspace_from_string('norm=sym/renorm')
  assert named['norm'] == ('sym', 'renorm')
  assert {a.norm for a in space.sample(np.random.default_rng(0), 300, named)
          if a.layers} == {'sym', 'renorm'}
  gcn = space.preset('gcn')
  assert gcn.norm == 'renorm'
  assert space.from_string(gcn.to_string()) == gcn
