"""The GNN-for-collaborative-filtering model family.

One Flax module, `GNNRecommender`, computes every architecture of
`gnas_jax.space`: the architecture is an int array argument, so choices are
array selections (`jnp.where`, masks) rather than Python branches, and one
compiled program (or one `vmap` over a population) serves them all. The
static `ModelShape` says which choices can occur; parameters are the
superset those need: embeddings of the widest width and, per layer, the
weights of each aggregation type in use. A width below the superset's is a
mask, and behaves exactly like a narrower model given the same leading
block of parameters.

The representations it returns fold the decoder in: the score of a pair is
always the dot product of the user's and the item's representation (the
cosine decoder divides each side by its norm and by sqrt(temperature)).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gnas_jax import graph as graph_lib
from gnas_jax import space

AGGREGATIONS = space.DECISION_BY_NAME['agg'].choices
ACTIVATION_NAMES = space.DECISION_BY_NAME['act'].choices
ACTIVATIONS = {
    'identity': lambda x: x,
    'relu': jax.nn.relu,
    'leaky_relu': lambda x: jax.nn.leaky_relu(x, 0.2),
    'tanh': jnp.tanh,
    'gelu': jax.nn.gelu,
    'elu': jax.nn.elu,
}
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
_NGCF = AGGREGATIONS.index('ngcf')
_GAT_LEAKY_SLOPE = 0.2
# The randomly initialised parameters, in the order their keys are drawn.
_RANDOM_PARAMS = ('embedding', 'w1', 'w2', 'att_src', 'att_dst')


def arch_value(arch: jax.Array, name: str) -> jax.Array:
  """The numeric value of global decision `name` for an encoded `arch`."""
  return jnp.asarray(space.value_table(name))[arch[space.index(name)]]


def width_mask(arch: jax.Array, max_width: int) -> jax.Array:
  """`[max_width]` float mask of the dimensions the architecture uses."""
  width = arch_value(arch, 'width')
  return (jnp.arange(max_width) < width).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class ModelShape:
  """The static superset a model is compiled for: the choices in use.

  For each decision of the search space, the choices that some architecture
  of a population takes. The model computes only those (a population of
  LightGCNs never pays for attention, widths, residuals or cosine
  decoders), while `ModelShape.full()` covers the whole space so that one
  compiled program serves any population. Per-layer decisions pool the
  choices of every layer.
  """
  choices: tuple[tuple[str, tuple[Any, ...]], ...]

  def __post_init__(self):
    if [name for name, _ in self.choices] != [d.name for d in space.DECISIONS]:
      raise ValueError('ModelShape.choices must list every decision of the '
                       'search space, in order.')

  def values(self, name: str) -> tuple[Any, ...]:
    """The choices of decision `name` in use, in the space's order."""
    return dict(self.choices)[name]

  @property
  def max_width(self) -> int:
    return max(self.values('width'))

  @property
  def max_layers(self) -> int:
    return max(self.values('layers'))

  @property
  def concat_readout(self) -> bool:
    return 'concat' in self.values('readout') and self.max_layers > 0

  @property
  def edge_dropout(self) -> bool:
    return max(self.values('edge_dropout')) > 0 and self.max_layers > 0

  @property
  def message_dropout(self) -> bool:
    return max(self.values('message_dropout')) > 0 and self.max_layers > 0

  @classmethod
  def covering(cls, archs: Sequence[space.Architecture]) -> ModelShape:
    """The smallest shape that computes every architecture in `archs`."""
    if not archs:
      raise ValueError('ModelShape.covering needs at least one architecture.')
    archs = [a.canonical() for a in archs]
    choices = []
    for decision in space.DECISIONS:
      used = set()
      for arch in archs:
        value = getattr(arch, decision.name)
        used.update(value if decision.per_layer else (value,))
      choices.append((decision.name, tuple(
          c for c in decision.choices if c in used)))
    return cls(tuple(choices))

  @classmethod
  def full(cls) -> ModelShape:
    """The shape that computes every architecture of the search space."""
    return cls(tuple((d.name, d.choices) for d in space.DECISIONS))

  def covers(self, arch: space.Architecture) -> bool:
    """Whether a model of this shape computes `arch`."""
    needed = ModelShape.covering([arch])
    return all(set(values) <= set(self.values(name))
               for name, values in needed.choices)


def l2_normalise(x: jax.Array) -> jax.Array:
  """Rows of `x` divided by their L2 norm (zero rows stay zero).

  The gradient is finite at zero rows too. `jnp.linalg.norm`'s is NaN
  there, and when the normalised value is an option that a `jnp.where`
  leaves unselected, the NaN still reaches the selected option's gradient
  (0 * NaN): a GCN layer with ELU in the full-space model diverged on its
  first step wherever an item had no training interactions.
  """
  squared = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(squared, 1e-24))


def select(index: jax.Array, names: Sequence[str], choices: Sequence[Any],
           compute, vectorised: bool = False, remat: bool = True):
  """`compute(name)` for the choice `index` names, among `names` only.

  By default a `lax.switch` over the options in `names`: one model (or each
  candidate of a `lax.map`ped population) runs only its own branch. Each
  branch is rematerialised, because a switch under autodiff allocates (and
  zero-fills) every branch's residuals. With `vectorised`, for code under
  `vmap`, every option is computed and selected with `jnp.where` instead: a
  vmapped switch would compute them all anyway, and would also broadcast
  every array it closes over (the graph) to the batch. (On MovieLens-100K a
  LightGCN step of the full-space model takes about 60 ms with switches and
  590 ms with selects.)
  """
  if len(names) == 1:
    return compute(names[0])
  if vectorised:
    result = compute(names[-1])
    for name in reversed(names[:-1]):
      chosen = index == choices.index(name)
      result = jax.tree.map(lambda a, b, c=chosen: jnp.where(c, a, b),
                            compute(name), result)
    return result
  table = np.zeros(len(choices), np.int32)
  for position, name in enumerate(names):
    table[choices.index(name)] = position
  branches = [functools.partial(compute, name) for name in names]
  if remat:
    branches = [jax.checkpoint(branch) for branch in branches]
  return jax.lax.switch(jnp.asarray(table)[index], branches)


class GNNRecommender(nn.Module):
  """Embeddings propagated over the user-item graph by a chosen GNN.

  Attributes:
    num_users: U.
    num_items: I.
    shape: the static superset shape (see `ModelShape`).
    embedding_stddev: standard deviation of the normal initialisation of the
      embeddings (LightGCN's 0.1).
    vectorised: choose among options with selects rather than conditionals
      (see `select`); set for models run under `vmap`.
  """
  num_users: int
  num_items: int
  shape: ModelShape
  embedding_stddev: float = 0.1
  vectorised: bool = False

  @property
  def output_dim(self) -> int:
    blocks = self.shape.max_layers + 1 if self.shape.concat_readout else 1
    return blocks * self.shape.max_width

  @nn.compact
  def __call__(self, graph: graph_lib.BipartiteGraph, arch: jax.Array, *,
               train: bool = False) -> jax.Array:
    """Node representations.

    Args:
      graph: the bipartite training graph.
      arch: `[space.NUM_DECISIONS]` int32 encoded architecture.
      train: enables edge and message dropout (needs a 'dropout' RNG).

    Returns:
      `[N, output_dim]` representations, users first, then items; scores are
      dot products of a user's and an item's rows.
    """
    shape = self.shape
    num_nodes, max_width = self.num_users + self.num_items, shape.max_width
    num_layers = arch[space.index('layers')]
    widths = shape.values('width')
    varying_depth = len(shape.values('layers')) > 1
    # Initialise weights for the architecture's own width, so that its block
    # of the superset starts where a true model of that width would.
    weight_scale = jax.lax.rsqrt(arch_value(arch, 'width'))

    # Each random parameter's key is drawn in one fixed order, whichever
    # parameters the shape creates (Flax would otherwise key them by order
    # of creation), so an architecture starts from the same values in any
    # model whose shape has its width and depth: alone, or in a population.
    init_keys = ({name: self.make_rng('params') for name in _RANDOM_PARAMS}
                 if self.is_initializing() else {})

    # (Applying, Flax still traces an initialiser to check shapes: with the
    # key it passes, which is then as good as any.)

    def weights(name, *dims):
      return self.param(name, lambda key: weight_scale * jax.random.normal(
          init_keys.get(name, key), dims))

    embedding = self.param(
        'embedding', lambda key: self.embedding_stddev * jax.random.normal(
            init_keys.get('embedding', key), (num_nodes, max_width)))
    depth = shape.max_layers
    # Per-layer weights of the aggregation types the shape includes.
    aggregations = shape.values('agg')
    used = set(aggregations)
    params = {}
    if depth and used & {'gcn', 'sage', 'gin', 'ngcf', 'gat'}:
      params['w1'] = weights('w1', depth, max_width, max_width)
      params['b1'] = self.param('b1', nn.initializers.zeros,
                                (depth, max_width))
    if depth and used & {'sage', 'gin', 'ngcf'}:
      params['w2'] = weights('w2', depth, max_width, max_width)
    if depth and used & {'gin', 'ngcf'}:
      params['b2'] = self.param('b2', nn.initializers.zeros,
                                (depth, max_width))
    if depth and 'gin' in used:
      params['eps'] = self.param('gin_eps', nn.initializers.zeros, (depth,))
    if depth and 'gat' in used:
      params['att_src'] = weights('att_src', depth, max_width)
      params['att_dst'] = weights('att_dst', depth, max_width)
    readout_logits = None
    if depth and 'weighted' in shape.values('readout'):
      readout_logits = self.param('readout_logits', nn.initializers.zeros,
                                  (depth + 1,))
    edge_mask, message_keys = None, None
    if train and (shape.edge_dropout or shape.message_dropout):
      # The edge key comes first whether or not the shape drops edges, so
      # that an architecture draws the same masks alone and in any group.
      edge_key = self.make_rng('dropout')
      if shape.edge_dropout:
        edge_mask = self._edge_dropout(graph, arch, edge_key)
      if shape.message_dropout:
        # One key per layer, drawn here: a layer may run in `lax.cond`.
        message_keys = [self.make_rng('dropout') for _ in range(depth)]

    def forward(width: int, masked: bool) -> jax.Array:
      """The representations, computed at a static `width`."""
      mask = width_mask(arch, width) if masked else 1.0
      h = embedding[:, :width]
      if masked:
        h = h * mask
      if depth == 0:
        return self._decode(arch, h)
      p = {name: value[(slice(None),) + (slice(0, width),) *
                       (value.ndim - 1)]
           for name, value in params.items()}
      propagate = self._propagation(graph, arch, edge_mask)

      def aggregate(name, p, h, a):
        if name == 'lightgcn':
          return a
        if name == 'gcn':
          return a @ p['w1'] + p['b1']
        if name == 'sage':
          return a @ p['w1'] + h @ p['w2'] + p['b1']
        if name == 'gin':
          hidden = jax.nn.relu(((1 + p['eps']) * h + a) @ p['w1'] + p['b1'])
          return (hidden * mask) @ p['w2'] + p['b2']
        if name == 'ngcf':
          return (h + a) @ p['w1'] + p['b1'] + (h * a) @ p['w2'] + p['b2']
        assert name == 'gat', name
        z = (h @ p['w1']) * mask
        logits = jax.nn.leaky_relu(
            (z @ p['att_dst'])[graph.receivers] +
            (z @ p['att_src'])[graph.senders], _GAT_LEAKY_SLOPE)
        attention = graph_lib.edge_softmax(graph, logits, edge_mask)
        return graph_lib.propagate(graph, z, attention) + p['b1']

      needs_propagation = any(a != 'gat' for a in aggregations)
      residuals = shape.values('residual')

      def layer_output(h, layer_params, agg, act, residual, key):
        # One propagation serves every aggregation type but attention.
        aggregated = propagate(h) if needs_propagation else None
        pre_activation = select(
            agg, aggregations, AGGREGATIONS,
            lambda name: aggregate(name, layer_params, h, aggregated),
            self.vectorised)
        out = select(act, shape.values('act'), ACTIVATION_NAMES,
                     lambda name: ACTIVATIONS[name](pre_activation),
                     self.vectorised)
        if residuals == (True,):
          out = out + h
        elif True in residuals:
          out = out + jnp.where(residual == 1, h, 0.0)
        if key is not None:
          # NGCF's message dropout: on the output, which the next layer and
          # the readout both read (rate 0 keeps every entry).
          rate = arch_value(arch, 'message_dropout')
          keep = jax.random.bernoulli(key, 1.0 - rate, out.shape)
          out = jnp.where(keep, out / (1.0 - rate), 0.0)
        return out * mask if masked else out

      readout_inputs = [h]
      for layer in range(depth):
        layer_params = {name: value[layer] for name, value in p.items()}
        agg = arch[space.POSITIONS['agg'].start + layer]
        operands = (h, layer_params, agg,
                    arch[space.POSITIONS['act'].start + layer],
                    arch[space.POSITIONS['residual'].start + layer],
                    message_keys and message_keys[layer])
        if varying_depth and self.vectorised:
          h = jnp.where(layer < num_layers, layer_output(*operands), h)
        elif varying_depth:
          # Layers beyond the depth pass their input through unchanged, and
          # are not computed at all.
          h = jax.lax.cond(layer < num_layers, layer_output,
                           lambda h, *_: h, *operands)
        else:
          h = layer_output(*operands)
        if 'ngcf' in used:
          normalised = l2_normalise(h)
          readout_inputs.append(jnp.where(agg == _NGCF, normalised, h))
        else:
          readout_inputs.append(h)
      return self._decode(arch, self._readout(arch, readout_inputs,
                                              num_layers, readout_logits))

    if len(widths) == 1 or self.vectorised:
      # One width, or every candidate at the widest width with a mask.
      return forward(max_width, masked=len(widths) > 1)

    def at_width(width):
      # Each width computes at its own size; the representations are padded
      # to the superset's, which leaves every dot product unchanged.
      reps = forward(width, masked=False)
      blocks = reps.shape[-1] // width
      return jnp.pad(reps, ((0, 0), (0, blocks * (max_width - width))))

    # Rematerialised: otherwise the gradient keeps every width branch's
    # residuals at once (on Gowalla, P=8 peaked at 5.9 GB instead of 4.9).
    return select(arch[space.index('width')], widths,
                  space.DECISION_BY_NAME['width'].choices, at_width,
                  remat=True)

  def _propagation(self, graph, arch, edge_mask):
    """`x -> D^-a A_v D^-b x` for the architecture's normalisation, plus
    the self-loop term `x / (d + 1)` of the renormalised one (edge dropout
    keeps self-loops)."""
    propagate = self._edge_propagation(graph, arch, edge_mask)
    if 'renorm' not in self.shape.values('norm'):
      return propagate
    loops = graph_lib.self_loop_weights(graph, arch[space.index('norm')])
    return lambda x: propagate(x) + loops[:, None] * x

  def _edge_propagation(self, graph, arch, edge_mask):
    """`x -> D^-a A_v D^-b x`: the product over the graph's edges."""
    norms = self.shape.values('norm')
    keep = None
    if edge_mask is not None:
      rate = arch_value(arch, 'edge_dropout')
      keep = edge_mask.astype(jnp.float32) / (1.0 - rate)
    if len(norms) == 1 or not self.vectorised:
      # One normalisation for every member, or members that run one at a
      # time: the product reads the normalisation's edge values (data of the
      # graph, picked by the architecture at run time when the shape has
      # several), with no node-sized scaling passes.
      norm = (graph_lib.NORMALISATIONS.index(norms[0]) if len(norms) == 1
              else arch[space.index('norm')])
      edge_values, transposed_values = graph_lib.normalised_edge_values(
          graph, norm)
      if keep is not None:
        edge_values, transposed_values = (edge_values * keep,
                                          transposed_values * keep)
      return lambda x: graph_lib.propagate(graph, x, edge_values,
                                           transposed_values)
    # Vectorised members differ in normalisation: scale nodes around the 0/1
    # product (D^-a A D^-b h = d^-a * (A (d^-b * h))), so that every
    # member's product has the same matrix and a population can share it.
    scale_out, scale_in = graph_lib.normalisation_scales(
        graph, arch[space.index('norm')])
    return lambda x: scale_out[:, None] * graph_lib.propagate(
        graph, scale_in[:, None] * x, keep, keep)

  def _edge_dropout(self, graph, arch, key):
    """`[2E]` bool mask of the edges kept by edge dropout."""
    rate = arch_value(arch, 'edge_dropout')
    # Dropping an interaction removes both of its directed edges: the mask
    # is the same on an edge and its reverse, so it commutes with transposes.
    keep = jax.random.bernoulli(key, 1.0 - rate, (graph.num_interactions,))
    return keep[graph.edge_interaction]

  def _readout(self, arch, outputs, num_layers, logits):
    """Combines layer outputs 0..L as the architecture's readout says."""
    depth = len(outputs)
    layer = jnp.arange(depth)
    active = layer <= num_layers
    readouts = self.shape.values('readout')
    weights = {
        'last': lambda: (layer == num_layers).astype(jnp.float32),
        'mean': lambda: active / (num_layers + 1.0),
        # Concatenation masks its blocks the same way 'sum' weighs layers.
        'sum': lambda: active.astype(jnp.float32),
        'concat': lambda: active.astype(jnp.float32),
        'weighted': lambda: jax.nn.softmax(jnp.where(active, logits,
                                                     -jnp.inf)),
    }
    readout = arch[space.index('readout')]
    if self.shape.concat_readout:
      concat = jnp.concatenate(
          [jnp.where(active[l], out, 0.0) for l, out in enumerate(outputs)],
          axis=-1)
      if readouts == ('concat',):
        # Nothing to choose from: the weighted sum and the select would
        # cost a few passes over [N, (L + 1) d] for nothing.
        return concat
    # A few scalars: selecting costs less than branching.
    layer_weights = select(readout, readouts, space.DECISION_BY_NAME[
        'readout'].choices, lambda name: weights[name](), vectorised=True)
    # A weighted sum of the list fuses into one pass; stacking first would
    # copy every layer output and transpose it for the contraction.
    combined = sum(layer_weights[l] * out for l, out in enumerate(outputs))
    if not self.shape.concat_readout:
      return combined
    padded = jnp.pad(combined, ((0, 0), (0, concat.shape[-1] -
                                         combined.shape[-1])))
    is_concat = readout == space.choice_index('readout', 'concat')
    return jnp.where(is_concat, concat, padded)

  def _decode(self, arch, reps):
    """Folds the decoder into the representations (see module docstring)."""
    if 'cosine' not in self.shape.values('decoder'):
      return reps
    is_cosine = arch[space.index('decoder')] == space.choice_index(
        'decoder', 'cosine')
    temperature = arch_value(arch, 'temperature')
    return jnp.where(is_cosine, l2_normalise(reps) / jnp.sqrt(temperature),
                     reps)


def build_model(num_users: int, num_items: int,
                archs: Sequence[space.Architecture]) -> GNNRecommender:
  """A model whose superset shape covers every architecture in `archs`."""
  return GNNRecommender(num_users=num_users, num_items=num_items,
                        shape=ModelShape.covering(archs))


def count_parameters(arch: space.Architecture, num_users: int,
                     num_items: int) -> int:
  """Parameters the architecture itself uses (not the superset's)."""
  width = arch.width
  total = (num_users + num_items) * width
  per_type = {'lightgcn': 0, 'gcn': width * width + width,
              'sage': 2 * width * width + width,
              'gin': 2 * width * width + 2 * width + 1,
              'ngcf': 2 * width * width + 2 * width,
              'gat': width * width + 3 * width}
  total += sum(per_type[a] for a in arch.agg)
  if arch.readout == 'weighted' and arch.layers > 0:
    total += arch.layers + 1
  return int(total)


def layer0_squared_norms(params, arch: jax.Array) -> jax.Array:
  """`[N]` squared L2 norms of every node's layer-0 embedding, within the
  architecture's width (for the L2 penalty)."""
  table = params['params']['embedding']
  return jnp.sum((table * width_mask(arch, table.shape[-1])) ** 2, -1)

