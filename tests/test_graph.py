"""Tests for the bipartite graph, normalisations and propagation backends."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import dense_adjacency
from gnas_jax import graph as graph_lib

# Users 0, 1; items 0, 1, 2 (nodes 2, 3, 4).
TINY_PAIRS = np.array([[0, 0], [0, 1], [1, 1], [1, 2]])


def test_tiny_graph_layout_and_degrees():
  graph = graph_lib.build_graph(TINY_PAIRS, 2, 3, 'segment')
  edges = set(zip(np.asarray(graph.receivers).tolist(),
                  np.asarray(graph.senders).tolist()))
  assert edges == {(0, 2), (0, 3), (1, 3), (1, 4),
                   (2, 0), (3, 0), (3, 1), (4, 1)}
  np.testing.assert_array_equal(graph.degrees, [2, 2, 1, 2, 1])
  np.testing.assert_array_equal(graph.indptr, [0, 2, 4, 5, 7, 8])
  assert graph.graph.n_node.tolist() == [5]
  assert graph.graph.n_edge.tolist() == [8]
  # Each edge's reverse swaps its ends and shares its interaction.
  senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
  reverse = np.asarray(graph.reverse_edge)
  np.testing.assert_array_equal(senders[reverse], receivers)
  np.testing.assert_array_equal(receivers[reverse], senders)
  interaction = np.asarray(graph.edge_interaction)
  np.testing.assert_array_equal(interaction[reverse], interaction)


def test_symmetric_normalisation_by_hand():
  graph = graph_lib.build_graph(TINY_PAIRS, 2, 3, 'sparse')
  values, transposed = graph_lib.normalised_edge_values(graph, 0)
  a_hat = graph_lib.propagate(graph, jnp.eye(5), values, transposed)
  # User 0 (degree 2) and item 0 (degree 1): 1 / sqrt(2 * 1).
  assert a_hat[0, 2] == pytest.approx(1 / np.sqrt(2))
  # User 0 and item 1 (degree 2): 1 / 2.
  assert a_hat[0, 3] == pytest.approx(0.5)
  assert a_hat[0, 4] == 0


@pytest.mark.parametrize('norm, exponents', [(0, (0.5, 0.5)), (1, (1, 0)),
                                             (2, (0, 1)), (3, (0, 0))])
def test_normalisations_match_dense_reference(small_pairs, small_graph, norm,
                                              exponents):
  adjacency = dense_adjacency(small_pairs, 12, 15)
  degrees = adjacency.sum(1)
  a, b = exponents
  expected_matrix = (degrees[:, None] ** -a) * adjacency * (degrees ** -b)
  h = np.random.default_rng(1).normal(size=(27, 5)).astype(np.float32)
  values, transposed = graph_lib.normalised_edge_values(small_graph, norm)
  got = graph_lib.propagate(small_graph, h, values, transposed)
  np.testing.assert_allclose(got, expected_matrix @ h, rtol=1e-5, atol=1e-6)
  # The transposed values describe the transposed matrix, which the sparse
  # backward pass multiplies by.
  np.testing.assert_allclose(
      transposed, values[small_graph.reverse_edge], rtol=1e-6)
  _, vjp = jax.vjp(lambda x: graph_lib.propagate(small_graph, x, values,
                                                 transposed), h)
  np.testing.assert_allclose(vjp(jnp.asarray(h))[0], expected_matrix.T @ h,
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('norm', range(4))
def test_node_scalings_equal_normalised_edge_values(small_graph, norm):
  h = np.random.default_rng(7).normal(size=(27, 3)).astype(np.float32)
  values, transposed = graph_lib.normalised_edge_values(small_graph, norm)
  scale_out, scale_in = graph_lib.normalisation_scales(small_graph, norm)
  np.testing.assert_allclose(
      scale_out[:, None] * graph_lib.propagate(small_graph,
                                               scale_in[:, None] * h),
      graph_lib.propagate(small_graph, h, values, transposed), rtol=1e-5,
      atol=1e-6)


def test_renormalisation_adds_self_loops_by_hand():
  graph = graph_lib.build_graph(TINY_PAIRS, 2, 3, 'sparse')
  renorm = graph_lib.NORMALISATIONS.index('renorm')
  values, transposed = graph_lib.normalised_edge_values(graph, renorm)
  a_hat = (graph_lib.propagate(graph, jnp.eye(5), values, transposed)
           + jnp.diag(graph_lib.self_loop_weights(graph, renorm)))
  # Degrees with the self-loop: users 3, 3; items 2, 3, 2.
  assert a_hat[0, 0] == pytest.approx(1 / 3)
  assert a_hat[2, 2] == pytest.approx(1 / 2)
  # User 0 and item 0: 1 / sqrt(3 * 2).
  assert a_hat[0, 2] == pytest.approx(1 / np.sqrt(6))
  assert a_hat[2, 0] == pytest.approx(1 / np.sqrt(6))
  assert a_hat[0, 4] == 0
  # The other normalisations have no self-loops.
  for norm in range(renorm):
    assert float(jnp.abs(graph_lib.self_loop_weights(graph, norm)).max()) == 0
  scale_out, scale_in = graph_lib.normalisation_scales(graph, renorm)
  np.testing.assert_allclose(
      scale_out[:, None] * graph_lib.propagate(graph, scale_in[:, None]
                                               * jnp.eye(5)),
      graph_lib.propagate(graph, jnp.eye(5), values, transposed), rtol=1e-6)


def test_left_normalisation_is_the_neighbour_mean(small_pairs, small_graph):
  h = np.random.default_rng(2).normal(size=(27, 3)).astype(np.float32)
  values, transposed = graph_lib.normalised_edge_values(small_graph, 1)
  got = graph_lib.propagate(small_graph, h, values, transposed)
  user = 0
  items = small_pairs[small_pairs[:, 0] == user, 1]
  np.testing.assert_allclose(got[user], h[12 + items].mean(0), rtol=1e-5)


def test_backends_agree_in_values_and_gradients(small_pairs):
  graphs = [graph_lib.build_graph(small_pairs, 12, 15, b)
            for b in graph_lib.BACKENDS]
  rng = np.random.default_rng(3)
  h = jnp.asarray(rng.normal(size=(27, 4)), jnp.float32)
  # Asymmetric edge values exercise the reverse-edge transpose.
  values = jnp.asarray(rng.uniform(size=graphs[0].senders.shape),
                       jnp.float32)
  weights = jnp.asarray(rng.normal(size=(27, 4)), jnp.float32)

  def loss(graph, values, h):
    return jnp.sum(weights * jnp.tanh(graph_lib.propagate(graph, h, values)))

  results = [jax.jit(jax.value_and_grad(loss, argnums=(1, 2)))(g, values, h)
             for g in graphs]
  reference_value, (reference_dv, reference_dh) = results[0]
  for value, (dv, dh) in results[1:]:
    np.testing.assert_allclose(value, reference_value, rtol=1e-5)
    np.testing.assert_allclose(dv, reference_dv, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dh, reference_dh, rtol=1e-4, atol=1e-6)


def test_sparse_backward_matches_dense_transpose(small_pairs):
  graph = graph_lib.build_graph(small_pairs, 12, 15, 'sparse')
  adjacency = dense_adjacency(small_pairs, 12, 15)
  rows, cols = np.asarray(graph.receivers), np.asarray(graph.senders)
  values = np.random.default_rng(4).uniform(size=rows.size)
  weighted = np.zeros_like(adjacency)
  weighted[rows, cols] = values
  g = np.random.default_rng(5).normal(size=(27, 2))
  _, vjp = jax.vjp(lambda h: graph_lib.propagate(graph, h, values),
                   jnp.zeros((27, 2)))
  np.testing.assert_allclose(vjp(jnp.asarray(g, jnp.float32))[0],
                             weighted.T @ g, rtol=1e-5, atol=1e-6)


def test_edge_softmax_sums_to_one_and_handles_masks(small_graph):
  logits = jnp.asarray(
      np.random.default_rng(6).normal(size=small_graph.senders.shape))
  weights = graph_lib.edge_softmax(small_graph, logits)
  totals = jax.ops.segment_sum(weights, small_graph.receivers, 27)
  np.testing.assert_allclose(totals, np.ones(27), rtol=1e-5)
  # Masking every edge of node 0 gives it zero weights, not NaN.
  mask = small_graph.receivers != 0
  masked = graph_lib.edge_softmax(small_graph, logits, mask)
  assert np.all(np.isfinite(masked))
  assert float(jnp.sum(jnp.where(mask, 0.0, masked))) == 0.0


def test_unknown_backend_lists_choices():
  with pytest.raises(ValueError, match=r"Unknown propagation backend 'csr'.*"
                     r"sparse"):
    graph_lib.build_graph(TINY_PAIRS, 2, 3, 'csr')


def test_interaction_matrix_marks_the_training_pairs():
  matrix = graph_lib.interaction_matrix(np.array([[0, 1], [2, 0], [2, 1]]),
                                        3, 2)
  np.testing.assert_array_equal(matrix, [[0, 1], [0, 0], [1, 1]])
