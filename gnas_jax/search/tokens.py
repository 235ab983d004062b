"""Architectures as token arrays: what the search networks read and write.

A token array is `[..., space.NUM_DECISIONS]` int32 choice indices into the
full space's choices (`Architecture.encode`). A search may restrict the
space; `choice_mask` then marks the allowed choices per position. The
helpers take numpy arrays, or jnp arrays inside compiled code (`xp=jnp`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from gnas_jax import space

NUM_POSITIONS = space.NUM_DECISIONS
VOCAB = max(len(d.choices) for d in space.DECISIONS)


def _layer_of_position() -> np.ndarray:
  """`[K]`: the layer a per-layer position belongs to, -1 for the others."""
  layer = np.full(NUM_POSITIONS, -1, np.int32)
  for decision in space.DECISIONS:
    if decision.per_layer:
      where = space.POSITIONS[decision.name]
      layer[where] = np.arange(where.stop - where.start)
  return layer


LAYER_OF_POSITION = _layer_of_position()
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(space.Architecture)}


def _default_index(name: str) -> int:
  return space.choice_index(name, _DEFAULTS[name])


def choice_mask(choices: dict[str, tuple[Any, ...]] | None = None
                ) -> np.ndarray:
  """`[K, VOCAB]` bool: the choices a (sub)space allows at each position."""
  choices = choices or space.subspace()
  mask = np.zeros((NUM_POSITIONS, VOCAB), bool)
  for decision in space.DECISIONS:
    allowed = [decision.choices.index(c) for c in choices[decision.name]]
    where = space.POSITIONS[decision.name]
    for position in range(where.start, where.stop):
      mask[position, allowed] = True
  return mask


def depth(tokens, xp=np):
  """`[...]` propagation layers of each token array (numpy or `xp=jnp`)."""
  table = xp.asarray(space.value_table('layers'))
  return table[tokens[..., space.index('layers')]]


def relevance(tokens, xp=np):
  """`[..., K]` bool: positions that matter (per-layer ones within depth)."""
  layer = xp.asarray(LAYER_OF_POSITION)
  return (layer < 0) | (layer < depth(tokens, xp)[..., None])


def _collapses(tokens, xp):
  """`[...]` bool masks of the rules of `Architecture.canonical`."""
  def column(name):
    return tokens[..., space.index(name)]

  cosine = column('decoder') == space.choice_index('decoder', 'cosine')
  no_layers = depth(tokens, xp) == 0
  agg = tokens[..., space.POSITIONS['agg']]
  in_depth = relevance(tokens, xp)[..., space.POSITIONS['agg']]
  all_attention = ~no_layers & xp.all(
      ~in_depth | (agg == space.choice_index('agg', 'gat')), axis=-1)
  return cosine, no_layers, all_attention


def canonical(tokens, xp=np):
  """`Architecture.canonical` on token arrays, vectorised (numpy, or jnp
  inside compiled code with `xp=jnp`).

  Equals `decode(t).canonical().encode()` row by row (a test checks it);
  the search canonicalises thousands of samples per round, which the
  dataclass path would make slow.
  """
  tokens = xp.where(relevance(tokens, xp), tokens, 0)
  cosine, no_layers, all_attention = _collapses(tokens, xp)
  columns = [tokens[..., k] for k in range(NUM_POSITIONS)]
  readout = columns[space.index('readout')]
  # Under cosine, a sum of layer outputs scores like their mean.
  readout = xp.where(cosine & (readout == space.choice_index('readout',
                                                             'sum')),
                     space.choice_index('readout', 'mean'), readout)
  defaults_where = {'temperature': ~cosine, 'readout': no_layers,
                    'edge_dropout': no_layers,
                    'norm': no_layers | all_attention}
  columns[space.index('readout')] = readout
  for name, mask in defaults_where.items():
    columns[space.index(name)] = xp.where(mask, _default_index(name),
                                          columns[space.index(name)])
  return xp.stack(columns, axis=-1).astype(xp.int32)


def decided(tokens, xp=np):
  """`[..., K]` bool: positions whose value canonical `tokens` really chose.

  False for positions beyond the depth and for those `canonical` sets to a
  default: the temperature without the cosine decoder, the normalisation,
  readout and edge dropout without layers, the normalisation when every
  layer attends, and a mean readout under the cosine decoder (which a sum
  readout also becomes).
  """
  cosine, no_layers, all_attention = _collapses(tokens, xp)
  mean_readout = tokens[..., space.index('readout')] == space.choice_index(
      'readout', 'mean')
  undecided = {'temperature': ~cosine,
               'norm': no_layers | all_attention,
               'readout': no_layers | (cosine & mean_readout),
               'edge_dropout': no_layers}
  position = xp.arange(NUM_POSITIONS)
  result = relevance(tokens, xp)
  for name, mask in undecided.items():
    result = result & ~((position == space.index(name)) & mask[..., None])
  return result


def forced(position, tokens, xp=np):
  """While sampling position `position` left to right: `(is_forced,
  token)`, `[N]` each, for the values `canonical` would impose given the
  earlier positions of `tokens` (`[N, K]`; later ones are ignored).

  Positions beyond the depth take 0; normalisation, readout and edge
  dropout take their defaults without layers, and the temperature its
  default without the cosine decoder. (The depth and the decoder come
  before every position they govern.)
  """
  layer = xp.asarray(LAYER_OF_POSITION)[position]
  layers = depth(tokens, xp)
  dot = tokens[..., space.index('decoder')] != space.choice_index(
      'decoder', 'cosine')
  beyond = (layer >= 0) & (layer >= layers)
  token = xp.zeros(xp.shape(layers), xp.int32)
  is_forced = beyond
  for name in ('norm', 'readout', 'edge_dropout'):
    here = (position == space.index(name)) & (layers == 0)
    is_forced = is_forced | here
    token = xp.where(here, _default_index(name), token)
  here = (position == space.index('temperature')) & dot
  is_forced = is_forced | here
  token = xp.where(here, _default_index('temperature'), token)
  return is_forced, token.astype(xp.int32)


def features(tokens, xp=np):
  """`[..., K * VOCAB]` float32 one-hot of the relevant positions."""
  one_hot = xp.eye(VOCAB, dtype=xp.float32)[tokens]
  one_hot = one_hot * relevance(tokens, xp)[..., None]
  return one_hot.reshape(*tokens.shape[:-1], NUM_POSITIONS * VOCAB)


def uniform(rng: np.random.Generator, num: int, mask: np.ndarray,
            canonicalise: bool = True) -> np.ndarray:
  """`[num, K]` tokens, each allowed choice equally likely at every
  position (canonical unless `canonicalise=False`)."""
  counts = mask.sum(-1)
  picks = (rng.random((num, NUM_POSITIONS)) * counts).astype(np.int32)
  allowed = np.argsort(~mask, axis=-1, kind='stable')  # allowed first
  tokens = allowed[np.arange(NUM_POSITIONS), picks].astype(np.int32)
  return canonical(tokens) if canonicalise else tokens


def to_architectures(tokens: np.ndarray) -> list[space.Architecture]:
  return [space.decode(row) for row in tokens]


def from_architectures(archs: Sequence[space.Architecture]) -> np.ndarray:
  """`[N, K]` canonical tokens."""
  return canonical(np.stack([a.encode() for a in archs]))


def keys(tokens: np.ndarray) -> list[bytes]:
  """Hashable identities of canonical token rows."""
  return [row.tobytes() for row in np.ascontiguousarray(tokens, np.int32)]
