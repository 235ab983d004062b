"""The user-item bipartite graph and message propagation over it.

Users are nodes `0..U-1` and items `U..U+I-1`; every training interaction
(u, i) gives the two directed edges u -> U+i and U+i -> u, so the adjacency
matrix A is symmetric. Every aggregation in the model family is a product
`A_v h` with per-edge values `v` on A's fixed pattern. The degree
normalisations D^-a A D^-b are such values, `v_e = d_r^-a d_s^-b` for the
edge e = (r <- s), with (a, b) = (1/2, 1/2) symmetric, (1, 0) left (mean),
(0, 1) right and (0, 0) none (DESIGN.md, decision 3); the renormalised
self-loops of GCN are the symmetric values on degrees plus one, and a
self-loop term the model adds. One sparse pattern serves every
normalisation, and the graph stores every value array so that choosing one
costs nothing at run time. Edge dropout multiplies them
by a mask; attention replaces them. Three backends compute the product:

* ``'segment'``: jraph-style gather of senders then `segment_sum` onto
  receivers. Simple and general; slow on CPU for large graphs.
* ``'sparse'``: a CSR sparse-dense product (`jax.experimental.sparse.BCSR`)
  with a custom VJP. The backward of `y = A_v h` is `A_v^T g`, and because
  the pattern is symmetric `A_v^T` is the same CSR with the transposed
  values (those of the reverse edges; for a normalisation D^-a A D^-b, the
  values of D^-b A D^-a); the backward therefore keeps only node-sized
  tensors, never an `[edges, dim]` message tensor.
* ``'dense'``: the two `[U, I]` blocks of A as dense matrices; matrix units
  make this the fastest choice for small graphs.

`choose_backend` picks one from the graph size (see its docstring for the
measurements behind the rule).
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import jraph
import numpy as np
from jax.experimental import sparse as jsparse

BACKENDS = ('segment', 'sparse', 'dense')

# Exponents (a, b) of D^-a A D^-b for each normalisation, in the order the
# search space lists them, the index of each one's transpose, and whether it
# adds self-loops. 'renorm' is Kipf & Welling's renormalisation
# D'^-1/2 (A + I) D'^-1/2 with D' = D + I: its edge values use the degrees
# plus one, and its self-loops give each node `h / (d + 1)` of its own
# (`self_loop_weights`).
NORMALISATIONS = ('sym', 'left', 'right', 'none', 'renorm')
NORMALISATION_EXPONENTS = ((0.5, 0.5), (1.0, 0.0), (0.0, 1.0), (0.0, 0.0),
                           (0.5, 0.5))
TRANSPOSED_NORMALISATION = (0, 2, 1, 3, 4)
NORMALISATION_SELF_LOOPS = (False, False, False, False, True)

# Largest U * I for which `choose_backend` picks the dense backend.
DENSE_MAX_ENTRIES = 4_000_000


@flax.struct.dataclass
class BipartiteGraph:
  """The user-item graph with everything propagation needs, as device arrays.

  Attributes:
    graph: jraph `GraphsTuple` with `senders`/`receivers` `[2E]` (sorted by
      receiver, then sender), `n_node = [N]`, `n_edge = [2E]`; no features.
    degrees: `[N]` float32 node degrees (interactions per user or item).
    norm_values: `[len(NORMALISATIONS), 2E]` float32 edge values of each
      normalised adjacency D^-a A D^-b, aligned with `senders`.
    edge_interaction: `[2E]` int32 index in `[0, E)` of the interaction each
      directed edge comes from (both directions share it, which keeps edge
      dropout symmetric).
    reverse_edge: `[2E]` int32 position of each edge's reverse edge.
    indptr: `[N + 1]` int32 CSR row pointers of A (rows are receivers).
    dense_user_item: `[U, I]` float32 block of A (user rows) for the dense
      backend, or None.
    num_users: U (static).
    num_items: I (static).
    backend: the propagation backend (static), one of `BACKENDS`.
  """
  graph: jraph.GraphsTuple
  degrees: jax.Array
  norm_values: jax.Array
  edge_interaction: jax.Array
  reverse_edge: jax.Array
  indptr: jax.Array
  dense_user_item: jax.Array | None
  num_users: int = flax.struct.field(pytree_node=False)
  num_items: int = flax.struct.field(pytree_node=False)
  backend: str = flax.struct.field(pytree_node=False)

  @property
  def num_nodes(self) -> int:
    return self.num_users + self.num_items

  @property
  def num_interactions(self) -> int:
    return self.graph.senders.shape[0] // 2

  @property
  def senders(self) -> jax.Array:
    return self.graph.senders

  @property
  def receivers(self) -> jax.Array:
    return self.graph.receivers


def choose_backend(num_users: int, num_items: int,
                   platform: str | None = None) -> str:
  """Picks the propagation backend from the graph size and the platform.

  On CPU the CSR product wins at every size measured on this project's
  2-core reference machine: a LightGCN training step on MovieLens-100K takes
  11.6 ms with 'sparse' against 24 ms with 'dense', and on Gowalla one
  64-column product takes about 16-30 ms against 400 ms for gather +
  `segment_sum`. On accelerators, whose matrix units favour dense products,
  graphs whose `[U, I]` block has at most `DENSE_MAX_ENTRIES` entries use
  'dense' (a threshold not yet measured on such hardware).
  """
  platform = platform or jax.default_backend()
  if platform != 'cpu' and num_users * num_items <= DENSE_MAX_ENTRIES:
    return 'dense'
  return 'sparse'


def columns_per_product(num_nodes: int, platform: str | None = None) -> int:
  """Feature columns per sparse product when a population stacks its members.

  On this project's 2-core CPU the kernel's cost per column is flat from 64
  to 512 columns (Gowalla: 23.6, 21.8, 26.5 and 27.2 ms per 64 columns at
  64, 128, 256 and 512 columns; MovieLens-100K: 1.0, 1.1, 0.8, 1.3 ms) and
  rises beyond (40-60 ms per 64 at 1024), so CPUs take blocks of 256.
  Accelerators, whose sparse kernels gain from wide operands, stack a whole
  population (up to 8192 columns).
  """
  del num_nodes  # The rule above held on both graph sizes measured.
  platform = platform or jax.default_backend()
  return 256 if platform == 'cpu' else 8192


def interaction_matrix(train: np.ndarray, num_users: int,
                       num_items: int) -> np.ndarray:
  """`[U, I]` float32 matrix with ones at the `[n, 2]` training pairs."""
  matrix = np.zeros((num_users, num_items), np.float32)
  matrix[train[:, 0], train[:, 1]] = 1.0
  return matrix


def build_graph(train: np.ndarray, num_users: int, num_items: int,
                backend: str = 'auto') -> BipartiteGraph:
  """Builds the bipartite graph of the training interactions.

  Args:
    train: `[E, 2]` int (user, item) internal ids, without duplicates.
    num_users: U.
    num_items: I.
    backend: one of `BACKENDS`, or 'auto' for `choose_backend`.

  Returns:
    The graph on the default device.
  """
  if backend == 'auto':
    backend = choose_backend(num_users, num_items)
  if backend not in BACKENDS:
    raise ValueError(
        f'Unknown propagation backend {backend!r}; choose from '
        f'{("auto",) + BACKENDS}.')
  train = np.asarray(train, dtype=np.int64)
  num_nodes = num_users + num_items
  num_interactions = train.shape[0]
  users, items = train[:, 0], train[:, 1] + num_users
  receivers = np.concatenate([users, items])
  senders = np.concatenate([items, users])
  interaction = np.concatenate([np.arange(num_interactions)] * 2)
  order = np.lexsort((senders, receivers))
  receivers, senders, interaction = (
      receivers[order], senders[order], interaction[order])
  # Edge e = (r <- s) has its reverse (s <- r) at the position of the same
  # interaction in the other direction.
  position = np.empty_like(order)
  position[order] = np.arange(order.size)
  reverse = np.concatenate([position[num_interactions:],
                            position[:num_interactions]])[order]
  degrees = np.bincount(receivers, minlength=num_nodes)
  indptr = np.concatenate([[0], np.cumsum(degrees)])
  norm_values = np.stack([
      np.exp(-a * log_degree[receivers] - b * log_degree[senders])
      for (a, b), log_degree in zip(
          NORMALISATION_EXPONENTS,
          _log_degrees(degrees.astype(np.float64), np))]).astype(np.float32)
  dense = None
  if backend == 'dense':
    dense = jnp.asarray(interaction_matrix(train, num_users, num_items))
  graph = jraph.GraphsTuple(
      nodes=None, edges=None, globals=None,
      senders=jnp.asarray(senders, jnp.int32),
      receivers=jnp.asarray(receivers, jnp.int32),
      n_node=jnp.asarray([num_nodes], jnp.int32),
      n_edge=jnp.asarray([2 * num_interactions], jnp.int32))
  return BipartiteGraph(
      graph=graph,
      degrees=jnp.asarray(degrees, jnp.float32),
      norm_values=jnp.asarray(norm_values),
      edge_interaction=jnp.asarray(interaction, jnp.int32),
      reverse_edge=jnp.asarray(reverse, jnp.int32),
      indptr=jnp.asarray(indptr, jnp.int32),
      dense_user_item=dense,
      num_users=num_users, num_items=num_items, backend=backend)


def _log_degrees(degrees, xp) -> list:
  """`[N]` log of the degree each normalisation scales by, in the order of
  `NORMALISATIONS`: the degree plus one with self-loops. (Without them an
  isolated node has no edges, so its infinite scale never matters.)"""
  plain, looped = xp.log(xp.maximum(degrees, 1)), xp.log(degrees + 1)
  return [looped if loops else plain for loops in NORMALISATION_SELF_LOOPS]


def normalised_edge_values(graph: BipartiteGraph,
                           norm: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Edge values `(v, v^T)`, each `[2E]`, of normalisation index `norm`.

  `v^T` holds the values of the transposed matrix at the same positions,
  which the sparse backend's backward pass needs. A Python int `norm`
  selects statically (no copy); an array selects at run time.
  """
  if isinstance(norm, int):
    return (graph.norm_values[norm],
            graph.norm_values[TRANSPOSED_NORMALISATION[norm]])
  transposed = jnp.asarray(TRANSPOSED_NORMALISATION)[norm]
  return graph.norm_values[norm], graph.norm_values[transposed]


def normalisation_scales(graph: BipartiteGraph,
                         norm: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Node scalings `(d^-a, d^-b)`, each `[N]`, of normalisation index `norm`.

  `D^-a A D^-b h = d^-a * (A (d^-b * h))`: the form in which members of a
  population with different normalisations share one product with A.
  """
  exponents = jnp.asarray(NORMALISATION_EXPONENTS, jnp.float32)[norm]
  log_degree = jnp.stack(_log_degrees(graph.degrees, jnp))[norm]
  return (jnp.exp(-exponents[0] * log_degree),
          jnp.exp(-exponents[1] * log_degree))


def self_loop_weights(graph: BipartiteGraph, norm: jax.Array) -> jax.Array:
  """`[N]` weight of each node's self-loop under normalisation index `norm`:
  `1 / (d + 1)` for 'renorm', zero for the others."""
  loops = jnp.asarray(NORMALISATION_SELF_LOOPS)[norm]
  return jnp.where(loops, 1.0 / (graph.degrees + 1.0), 0.0)


def propagate(graph: BipartiteGraph, h: jax.Array,
              edge_values: jax.Array | None = None,
              transposed_values: jax.Array | None = None) -> jax.Array:
  """Computes `A_v h`: for each node, the `v`-weighted sum of its neighbours.

  Args:
    graph: the bipartite graph; its `backend` selects the implementation.
    h: `[N, d]` node features.
    edge_values: `[2E]` per-edge weights `v` aligned with `graph.senders`, or
      None for all ones. Gradients flow to them (attention).
    transposed_values: `[2E]` values of `A_v^T` at the same positions
      (`v[graph.reverse_edge]`), if the caller has them at hand; derived
      from `edge_values` otherwise.

  Returns:
    `[N, d]` aggregated features.
  """
  if graph.backend == 'segment':
    messages = h[graph.senders]
    if edge_values is not None:
      messages = messages * edge_values[:, None]
    return jax.ops.segment_sum(messages, graph.receivers, graph.num_nodes,
                               indices_are_sorted=True)
  if graph.backend == 'sparse':
    if edge_values is None:
      edge_values = transposed_values = jnp.ones(graph.senders.shape,
                                                 h.dtype)
    elif transposed_values is None:
      transposed_values = edge_values[graph.reverse_edge]
    return _csr_matmul(edge_values, transposed_values, graph.senders,
                       graph.indptr, graph.receivers, h)
  if graph.backend == 'dense':
    return _dense_matmul(graph, h, edge_values)
  raise ValueError(f'Unknown propagation backend {graph.backend!r}; choose '
                   f'from {BACKENDS}.')


def _dense_matmul(graph, h, edge_values):
  """`A_v h` with the two bipartite blocks as dense matrices."""
  num_users = graph.num_users
  h_users, h_items = h[:num_users], h[num_users:]
  if edge_values is None:
    block = graph.dense_user_item
    return jnp.concatenate([block @ h_items, block.T @ h_users])
  # Edges whose receiver is a user fill the user block; the others the item
  # block. Values need not be symmetric (attention), so build both.
  shape = (num_users, graph.num_items)
  receivers, senders = graph.receivers, graph.senders
  to_user = receivers < num_users
  user_rows = jnp.where(to_user, receivers, num_users)  # out of range: drop
  item_cols = jnp.where(to_user, senders - num_users, 0)
  user_block = jnp.zeros(shape, h.dtype).at[user_rows, item_cols].add(
      edge_values, mode='drop')
  item_rows = jnp.where(to_user, graph.num_items, receivers - num_users)
  item_block = jnp.zeros(shape[::-1], h.dtype).at[item_rows, senders].add(
      edge_values, mode='drop')
  return jnp.concatenate([user_block @ h_items, item_block @ h_users])


@jax.custom_batching.custom_vmap
def _csr_product(values, indices, indptr, h):
  """`A_v h` with the CSR kernel; `h` is `[N, d]`."""
  num_nodes = indptr.shape[0] - 1
  matrix = jsparse.BCSR((values, indices, indptr),
                        shape=(num_nodes, num_nodes))
  return matrix @ h


@_csr_product.def_vmap
def _csr_product_batched(axis_size, in_batched, values, indices, indptr, h):
  """A population's products: one kernel call per column block.

  JAX's own batching rule for BCSR products is many times slower than the
  product itself. Here the candidates' features are laid side by side as
  the columns of one `[N, P * d]` matrix, so the pattern is read once per
  block of `columns_per_product(N)` columns. Candidates with their own edge
  values (edge dropout, attention) cannot share a matrix and take one
  product each.
  """
  values_batched, indices_batched, indptr_batched, h_batched = in_batched
  if indices_batched or indptr_batched:
    raise ValueError('A population shares one graph: its indices cannot '
                     'differ per candidate.')
  if not h_batched:
    h = jnp.broadcast_to(h, (axis_size,) + h.shape)
  if values_batched:
    out = jax.lax.map(
        lambda args: _csr_product(args[0], indices, indptr, args[1]),
        (values, h))
    return out, True
  num_nodes, width = h.shape[1], h.shape[2]
  per_block = max(1, columns_per_product(num_nodes) // width)
  blocks = -(-axis_size // per_block)
  padded = jnp.pad(h, ((0, blocks * per_block - axis_size), (0, 0), (0, 0)))
  # [blocks, per_block, N, d] -> [blocks, N, per_block * d]
  columns = padded.reshape(blocks, per_block, num_nodes, width).transpose(
      0, 2, 1, 3).reshape(blocks, num_nodes, per_block * width)
  out = jax.lax.map(lambda x: _csr_product(values, indices, indptr, x),
                    columns)
  out = out.reshape(blocks, num_nodes, per_block, width).transpose(
      0, 2, 1, 3).reshape(blocks * per_block, num_nodes, width)
  return out[:axis_size], True


@jax.custom_vjp
def _csr_matmul(values, transposed_values, indices, indptr, rows, h):
  """`A_v h` for a CSR matrix with a symmetric pattern."""
  del transposed_values, rows  # Used by the backward pass only.
  return _csr_product(values, indices, indptr, h)


def _csr_matmul_fwd(values, transposed_values, indices, indptr, rows, h):
  out = _csr_product(values, indices, indptr, h)
  return out, (values, transposed_values, indices, indptr, rows, h)


def _csr_matmul_bwd(residuals, g):
  values, transposed_values, indices, indptr, rows, h = residuals
  del values
  grad_h = _csr_product(transposed_values, indices, indptr, g)
  # d(A_v h)_r / dv_e = h_s for edge e = (r <- s). Unused (and removed by
  # XLA) unless the values are differentiated, as attention weights are.
  # The output does not depend on `transposed_values`: it only describes
  # A_v^T for this backward pass.
  grad_values = jnp.sum(g[rows] * h[indices], axis=-1)
  return grad_values, None, None, None, None, grad_h


_csr_matmul.defvjp(_csr_matmul_fwd, _csr_matmul_bwd)


def edge_softmax(graph: BipartiteGraph, logits: jax.Array,
                 mask: jax.Array | None = None) -> jax.Array:
  """Softmax of `[2E]` edge logits over each receiver's incoming edges.

  Edges with `mask == False` get weight 0; a node whose edges are all masked
  gets all-zero weights (not NaN).
  """
  receivers = graph.receivers
  if mask is not None:
    logits = jnp.where(mask, logits, -jnp.inf)
  node_max = jax.ops.segment_max(logits, receivers, graph.num_nodes,
                                 indices_are_sorted=True)
  node_max = jnp.where(jnp.isfinite(node_max), node_max, 0.0)
  weights = jnp.exp(logits - jax.lax.stop_gradient(node_max)[receivers])
  totals = jax.ops.segment_sum(weights, receivers, graph.num_nodes,
                               indices_are_sorted=True)
  return weights / jnp.maximum(totals[receivers], 1e-16)

