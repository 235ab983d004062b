"""Tests for the model family against a dense numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import compilations
from conftest import dense_adjacency
from gnas_jax import graph as graph_lib
from gnas_jax import models
from gnas_jax import space

NUM_USERS, NUM_ITEMS = 12, 15
EXPONENTS = {'sym': (0.5, 0.5), 'left': (1, 0), 'right': (0, 1),
             'none': (0, 0)}
ACTIVATIONS = {
    'identity': lambda x: x, 'relu': lambda x: np.maximum(x, 0),
    'leaky_relu': lambda x: np.where(x > 0, x, 0.2 * x), 'tanh': np.tanh,
    'elu': lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
}


def reference_forward(arch, params, pairs):
  """A direct numpy transcription of each aggregation's formula."""
  p = jax.tree.map(np.asarray, params['params'])
  adjacency = dense_adjacency(pairs, NUM_USERS, NUM_ITEMS)
  if arch.norm == 'renorm':
    # Kipf & Welling: D'^-1/2 (A + I) D'^-1/2 with D' the degrees of A + I.
    looped = adjacency + np.eye(len(adjacency))
    degrees = looped.sum(1)
    a_hat = degrees[:, None] ** -0.5 * looped * degrees ** -0.5
  else:
    degrees = np.maximum(adjacency.sum(1), 1)
    a, b = EXPONENTS[arch.norm]
    a_hat = degrees[:, None] ** -a * adjacency * degrees ** -b
  width = arch.width
  h = p['embedding'][:, :width]
  outputs, readout_inputs = [h], [h]
  for layer in range(arch.layers):
    agg = arch.agg[layer]
    w1 = p['w1'][layer, :width, :width] if 'w1' in p else None
    w2 = p['w2'][layer, :width, :width] if 'w2' in p else None
    b1 = p['b1'][layer, :width] if 'b1' in p else None
    b2 = p['b2'][layer, :width] if 'b2' in p else None
    if agg == 'lightgcn':
      out = a_hat @ h
    elif agg == 'gcn':
      out = a_hat @ h @ w1 + b1
    elif agg == 'sage':
      out = a_hat @ h @ w1 + h @ w2 + b1
    elif agg == 'gin':
      hidden = np.maximum(((1 + p['gin_eps'][layer]) * h + a_hat @ h) @ w1 +
                          b1, 0)
      out = hidden @ w2 + b2
    elif agg == 'ngcf':
      neighbours = a_hat @ h
      out = (h + neighbours) @ w1 + b1 + (h * neighbours) @ w2 + b2
    elif agg == 'gat':
      z = h @ w1
      dst = z @ p['att_dst'][layer, :width]
      src = z @ p['att_src'][layer, :width]
      out = np.zeros_like(z)
      for i in range(z.shape[0]):
        neighbours = np.flatnonzero(adjacency[i])
        scores = dst[i] + src[neighbours]
        scores = np.where(scores > 0, scores, 0.2 * scores)
        alpha = np.exp(scores - scores.max())
        alpha /= alpha.sum()
        out[i] = alpha @ z[neighbours]
      out = out + b1
    out = ACTIVATIONS[arch.act[layer]](out)
    if arch.residual[layer]:
      out = out + h
    h = out
    outputs.append(h)
    readout_inputs.append(
        h / np.linalg.norm(h, axis=1, keepdims=True) if agg == 'ngcf' else h)
  if arch.readout == 'last':
    reps = readout_inputs[-1]
  elif arch.readout == 'mean':
    reps = np.mean(readout_inputs, axis=0)
  elif arch.readout == 'sum':
    reps = np.sum(readout_inputs, axis=0)
  elif arch.readout == 'concat':
    reps = np.concatenate(readout_inputs, axis=1)
  else:
    logits = p['readout_logits'][:arch.layers + 1]
    weights = np.exp(logits) / np.exp(logits).sum()
    reps = np.einsum('l,lnd->nd', weights, np.stack(readout_inputs))
  if arch.decoder == 'cosine':
    reps = reps / np.linalg.norm(reps, axis=1, keepdims=True)
    reps = reps / np.sqrt(arch.temperature)
  return reps


def init(arch, graph, shape=None, seed=0):
  model = models.GNNRecommender(
      NUM_USERS, NUM_ITEMS, shape or models.ModelShape.covering([arch]))
  vector = jnp.asarray(arch.encode())
  params = model.init(jax.random.PRNGKey(seed), graph, vector)
  # Perturb the zero-initialised parameters so that they are tested too.
  params = jax.tree.map(
      lambda x: x + 0.1 * jax.random.normal(jax.random.PRNGKey(seed + 1),
                                            x.shape), params)
  return model, vector, params


CASES = sorted(space.PRESETS) + [
    'lightgcn,readout=sum,norm=left',
    'lightgcn,layers=2,readout=weighted,decoder=cosine,temperature=0.2',
    'gcn,layers=3,act=tanh/relu/leaky_relu,residual=1/0/1,readout=mean',
    'lightgcn,norm=renorm,edge_dropout=0.0',
    'width=32,layers=2,agg=sage/gat,act=relu/elu,norm=right,readout=concat',
]


@pytest.mark.parametrize('text', CASES)
def test_matches_numpy_reference(text, small_pairs, sparse_graph):
  arch = space.from_string(text)
  model, vector, params = init(arch, sparse_graph)
  got = jax.jit(model.apply)(params, sparse_graph, vector)
  expected = reference_forward(arch, params, small_pairs)
  assert got.shape == (NUM_USERS + NUM_ITEMS, model.output_dim)
  np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5)


def test_lightgcn_is_mean_of_normalised_powers(small_pairs):
  graph = graph_lib.build_graph(small_pairs, NUM_USERS, NUM_ITEMS, 'sparse')
  arch = space.preset('lightgcn')
  model, vector, params = init(arch, graph)
  e0 = np.asarray(params['params']['embedding'])
  adjacency = dense_adjacency(small_pairs, NUM_USERS, NUM_ITEMS)
  d = adjacency.sum(1) ** -0.5
  a_hat = d[:, None] * adjacency * d
  expected = (e0 + a_hat @ e0 + a_hat @ a_hat @ e0 +
              a_hat @ a_hat @ a_hat @ e0) / 4
  np.testing.assert_allclose(model.apply(params, graph, vector), expected,
                             rtol=1e-4, atol=1e-6)
  # LightGCN has no parameters but its embeddings.
  assert set(params['params']) == {'embedding'}


@pytest.mark.parametrize('text', ['gcn,width=32,readout=concat,'
                                  'decoder=cosine',
                                  'ngcf,width=32', 'gat,width=32'])
def test_narrow_architecture_in_wide_superset_equals_true_narrow_model(
    text, sparse_graph):
  arch = space.from_string(text)
  wide_shape = models.ModelShape.covering(
      [arch, space.from_string(text + ',width=64')])
  assert wide_shape.max_width == 64
  wide, vector, wide_params = init(arch, sparse_graph, wide_shape)
  narrow = models.GNNRecommender(NUM_USERS, NUM_ITEMS,
                                 models.ModelShape.covering([arch]))

  def leading_block(x):
    return x[tuple(slice(0, 32) if n == 64 else slice(None)
                   for n in x.shape)]

  narrow_params = jax.tree.map(leading_block, wide_params)
  wide_reps = jax.jit(wide.apply)(wide_params, sparse_graph, vector)
  narrow_reps = jax.jit(narrow.apply)(narrow_params, sparse_graph, vector)
  wide_scores = wide_reps[:NUM_USERS] @ wide_reps[NUM_USERS:].T
  narrow_scores = narrow_reps[:NUM_USERS] @ narrow_reps[NUM_USERS:].T
  np.testing.assert_allclose(wide_scores, narrow_scores, rtol=1e-5,
                             atol=1e-6)
  # The representations hold the narrow model's, padded with exact zeros,
  # and the unused embedding columns get no gradient.
  used = narrow.output_dim
  np.testing.assert_allclose(wide_reps[:, :used], narrow_reps, rtol=1e-5,
                             atol=1e-6)
  assert float(jnp.abs(wide_reps[:, used:]).max()) == 0.0
  grads = jax.jit(jax.grad(lambda p: jnp.sum(
      wide.apply(p, sparse_graph, vector) ** 2)))(wide_params)
  assert float(jnp.abs(grads['params']['embedding'][:, 32:]).max()) == 0.0


def test_initialisation_scales_with_the_architecture_width(sparse_graph):
  arch = space.from_string('gcn,width=16')
  shape = models.ModelShape.covering([arch, space.preset('gcn')])
  params = models.GNNRecommender(NUM_USERS, NUM_ITEMS, shape).init(
      jax.random.PRNGKey(0), sparse_graph, jnp.asarray(arch.encode()))
  block = params['params']['w1'][:, :16, :16]
  assert float(jnp.std(block)) == pytest.approx(16 ** -0.5, rel=0.1)


def test_one_program_computes_every_architecture(sparse_graph):
  model = models.GNNRecommender(NUM_USERS, NUM_ITEMS,
                                models.ModelShape.full())
  params = model.init(jax.random.PRNGKey(0), sparse_graph,
                      jnp.asarray(space.preset('lightgcn').encode()))
  def superset_forward(params, graph, arch):
    return model.apply(params, graph, arch)

  # Named for the compilation count: `own.apply` below compiles too.
  apply = jax.jit(superset_forward)
  before = compilations(apply)
  for text in ['lightgcn', 'ngcf,width=16', 'gat,layers=1']:
    arch = space.from_string(text)
    vector = jnp.asarray(arch.encode())
    reps = apply(params, sparse_graph, vector)
    assert reps.shape == (NUM_USERS + NUM_ITEMS, 5 * 128)
    # The architecture's own model, given the leading blocks it needs.
    own = models.GNNRecommender(NUM_USERS, NUM_ITEMS,
                                models.ModelShape.covering([arch]))
    own_shapes = jax.eval_shape(own.init, jax.random.PRNGKey(0),
                                sparse_graph, vector)['params']
    own_params = {'params': {
        name: params['params'][name][tuple(slice(0, n) for n in s.shape)]
        for name, s in own_shapes.items()}}
    own_reps = jax.jit(own.apply)(own_params, sparse_graph, vector)
    np.testing.assert_allclose(reps[:NUM_USERS] @ reps[NUM_USERS:].T,
                               own_reps[:NUM_USERS] @ own_reps[NUM_USERS:].T,
                               rtol=1e-4, atol=1e-5)
  assert compilations(apply) == before + 1


def test_jit_and_eager_agree_on_every_backend(small_graph, small_pairs):
  arch = space.from_string('width=16,layers=2,agg=ngcf/gat,act=relu/elu,'
                           'readout=concat')
  model, vector, params = init(arch, small_graph)
  eager = model.apply(params, small_graph, vector)
  np.testing.assert_allclose(
      jax.jit(model.apply)(params, small_graph, vector), eager, rtol=1e-5,
      atol=1e-6)
  np.testing.assert_allclose(eager, reference_forward(arch, params,
                                                      small_pairs),
                             rtol=2e-4, atol=2e-5)


def test_edge_dropout_only_in_training(sparse_graph):
  arch = space.from_string('lightgcn,edge_dropout=0.3')
  model, vector, params = init(arch, sparse_graph)
  evaluation = model.apply(params, sparse_graph, vector)
  clean = models.GNNRecommender(NUM_USERS, NUM_ITEMS, models.ModelShape.
                                covering([space.preset('lightgcn')]))
  np.testing.assert_allclose(
      evaluation, clean.apply(params, sparse_graph, vector), rtol=1e-6)
  train = [model.apply(params, sparse_graph, vector, train=True,
                       rngs={'dropout': jax.random.PRNGKey(k)})
           for k in range(2)]
  assert not np.allclose(train[0], evaluation)
  assert not np.allclose(train[0], train[1])


def test_message_dropout_drops_what_the_next_layer_and_the_readout_read(
    small_pairs, sparse_graph):
  """NGCF's message dropout on a 2-layer LightGCN with the layer outputs
  concatenated: each layer's block is its propagation of the previous
  block, with entries either dropped or scaled by 1 / (1 - rate)."""
  rate = 0.3
  arch = space.from_string(
      f'lightgcn,layers=2,readout=concat,message_dropout={rate}')
  model, vector, params = init(arch, sparse_graph)
  adjacency = dense_adjacency(small_pairs, NUM_USERS, NUM_ITEMS)
  degrees = np.maximum(adjacency.sum(1), 1)
  a_hat = degrees[:, None] ** -0.5 * adjacency * degrees ** -0.5
  reps = np.asarray(model.apply(params, sparse_graph, vector, train=True,
                                rngs={'dropout': jax.random.PRNGKey(3)}))
  blocks = np.split(reps, 3, axis=1)
  np.testing.assert_allclose(blocks[0], params['params']['embedding'])
  dropped = []
  for previous, block in zip(blocks, blocks[1:]):
    kept = a_hat @ previous / (1 - rate)
    assert np.all(np.isclose(block, kept, rtol=1e-4, atol=1e-6) |
                  (block == 0))
    dropped.append(np.mean(block == 0))
  # 27 x 64 entries per layer: the share dropped is near the rate.
  np.testing.assert_allclose(dropped, rate, atol=0.05)
  # Evaluation keeps every entry.
  evaluation = model.apply(params, sparse_graph, vector)
  np.testing.assert_allclose(evaluation, reference_forward(
      arch, params, small_pairs), rtol=2e-4, atol=2e-5)


def test_parameter_count():
  assert models.count_parameters(space.preset('lightgcn'), 10, 20) == 30 * 64
  assert models.count_parameters(space.preset('gcn'), 10, 20) == (
      30 * 64 + 2 * (64 * 64 + 64))


def test_full_space_gradients_are_finite_with_an_isolated_item():
  """An item without training interactions has a zero representation;
  normalising it, in NGCF's readout or the cosine decoder (options the
  architectures below do not all take), must not turn gradients into NaN."""
  pairs = np.array([[0, 0], [0, 1], [1, 1], [2, 0], [2, 2]])  # item 3 alone
  graph = graph_lib.build_graph(pairs, 3, 4, 'sparse')
  model = models.GNNRecommender(3, 4, models.ModelShape.full())

  @jax.jit
  def grads(params, arch):
    def loss(params):
      reps = model.apply(params, graph, arch)
      return jnp.sum(reps[:3] @ reps[3:].T)
    return jax.grad(loss)(params)

  for text in ('gcn,layers=1,act=elu', 'gcn,layers=1,act=elu,decoder=cosine'):
    arch = jnp.asarray(space.from_string(text).encode())
    params = model.init(jax.random.PRNGKey(0), graph, arch)
    result = grads(params, arch)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(result)), text
    assert np.any(np.asarray(result['params']['w1']) != 0), text
