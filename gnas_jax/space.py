"""The GNN-for-collaborative-filtering search space.

An architecture is a fixed-length vector of categorical choices (DESIGN.md,
decision 1): the model reads it as an int array, so one compiled program
serves every architecture and a population is a `[P, NUM_DECISIONS]` array.

Decisions (choices in the order their indices encode them):

  width         embedding width, masked inside the widest in a population
  layers        propagation layers; 0 is matrix factorisation
  norm          D^-a A D^-b: sym (1/2, 1/2), left/mean (1, 0), right (0, 1),
                none (0, 0); or renorm, Kipf & Welling's renormalised
                self-loops D'^-1/2 (A + I) D'^-1/2 with D' = D + I (searched
                only where a search space names it)
  readout       how layer outputs 0..L combine: last, mean, sum, concat, or
                learned softmax weights
  edge_dropout  share of interactions dropped from the graph per step
  decoder       dot product, or cosine similarity divided by `temperature`
  temperature   cosine decoder temperature
  loss          BPR (one negative), or sampled softmax over the training
                protocol's `config.num_negatives` negatives per positive
                (softmax), over N of them (softmax-N), or over N drawn
                once for each mini-batch (shared-softmax-N); the last two
                searched only where a search space names them
  lr, l2        Adam learning rate; L2 weight on the batch's layer-0
                embeddings
  agg[l]        layer l's aggregation: lightgcn (A h), gcn (W A h + b),
                sage (W1 A h + W2 h + b), gin (MLP((1 + eps) h + A h)),
                ngcf (W1 (h + A h) + W2 (h * A h) + b, output L2-normalised
                for the readout), gat (attention over neighbours; ignores
                `norm`)
  act[l]        layer l's activation
  residual[l]   whether layer l adds its input (a self-loop)
  message_dropout  share of each layer's output entries dropped per step
                (NGCF's message dropout; searched only where a search
                space names it)

The string form, which users type in `--config.arch`, is comma-separated
`name=value` pairs, per-layer values joined by '/', e.g.

  width=64,layers=2,agg=gcn/gcn,act=relu/relu,residual=0/0,norm=sym,...

A preset name may start the string, and later pairs override it
(`lightgcn,layers=2`); a per-layer decision given one value applies it to
every layer.

A decision that the default search holds at its default (`Decision.optional`)
is written only when set, so that strings from before it existed stay the
strings of the same models.

`SEARCH_SPACE` declares the space for the search
(`gnas_jax.search.SearchSpace`): one position per entry of the encoded
vector (per-layer decisions as `agg_0` ... `agg_3`), the conditions under
which each decision matters and the one equivalence of the space. Every
canonical rule derives from it: `Architecture.canonical`, counting,
enumeration and sampling, and a search's token arrays (`to_tokens`,
`from_tokens`) are its tokens.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, Sequence

import numpy as np

from gnas_jax.search import search_space as search_space_lib

MAX_LAYERS = 4


@dataclasses.dataclass(frozen=True)
class Decision:
  """One categorical decision of the search space."""
  name: str
  choices: tuple[Any, ...]
  per_layer: bool = False
  # The choices a search explores unless its space names others (None: all
  # of them); a choice outside them serves presets and opted-in searches
  # without changing what the default search, and its benchmarks, cover.
  searched: tuple[Any, ...] | None = None

  @property
  def default_choices(self) -> tuple[Any, ...]:
    return self.choices if self.searched is None else self.searched

  @property
  def optional(self) -> bool:
    """Whether the default search holds this decision at one choice (its
    default, which an architecture string leaves out)."""
    return len(self.default_choices) == 1


DECISIONS: tuple[Decision, ...] = (
    Decision('width', (16, 32, 64, 128)),
    Decision('layers', (0, 1, 2, 3, 4)),
    Decision('norm', ('sym', 'left', 'right', 'none', 'renorm'),
             searched=('sym', 'left', 'right', 'none')),
    Decision('readout', ('last', 'mean', 'sum', 'concat', 'weighted')),
    Decision('edge_dropout', (0.0, 0.1, 0.2, 0.3)),
    Decision('decoder', ('dot', 'cosine')),
    Decision('temperature', (0.05, 0.1, 0.2, 0.5)),
    # The number of negatives is part of the loss: candidates that score
    # different numbers train in different programs, none paying for
    # another's, and the encoded vector keeps its positions.
    Decision('loss', ('bpr', 'softmax', 'softmax-32', 'softmax-64',
                      'softmax-128', 'softmax-256', 'shared-softmax-1024',
                      'shared-softmax-4096'),
             searched=('bpr', 'softmax')),
    Decision('lr', (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)),
    Decision('l2', (0.0, 1e-5, 1e-4, 1e-3)),
    Decision('agg', ('lightgcn', 'gcn', 'sage', 'gin', 'ngcf', 'gat'),
             per_layer=True),
    Decision('act', ('identity', 'relu', 'leaky_relu', 'tanh', 'gelu',
                     'elu'), per_layer=True),
    Decision('residual', (False, True), per_layer=True),
    # Last, so that every earlier decision keeps its position in the
    # encoded vectors of searches recorded before it (and a training
    # checkpoint saved before it, whose vector ends earlier, resumes at
    # its default).
    Decision('message_dropout', (0.0, 0.1, 0.2, 0.3), searched=(0.0,)),
)
DECISION_BY_NAME = {d.name: d for d in DECISIONS}


def _positions() -> dict[str, slice]:
  positions, start = {}, 0
  for decision in DECISIONS:
    size = MAX_LAYERS if decision.per_layer else 1
    positions[decision.name] = slice(start, start + size)
    start += size
  return positions


# Where each decision lives in the encoded vector (per-layer decisions take
# MAX_LAYERS consecutive slots).
POSITIONS: dict[str, slice] = _positions()
NUM_DECISIONS: int = max(s.stop for s in POSITIONS.values())


def index(name: str) -> int:
  """Position of a global decision in the encoded vector."""
  return POSITIONS[name].start


def value_table(name: str) -> np.ndarray:
  """The choices of a numeric decision as a float32 array (for lookups)."""
  return np.asarray(DECISION_BY_NAME[name].choices, dtype=np.float32)


def choice_index(name: str, value: Any) -> int:
  """The index of `value` among decision `name`'s choices."""
  return DECISION_BY_NAME[name].choices.index(value)


@dataclasses.dataclass(frozen=True)
class Architecture:
  """A point of the search space in readable form.

  Per-layer decisions are tuples with one entry per layer (`layers` long).
  """
  width: int = 64
  layers: int = 3
  norm: str = 'sym'
  readout: str = 'mean'
  edge_dropout: float = 0.0
  decoder: str = 'dot'
  temperature: float = 0.1
  loss: str = 'bpr'
  lr: float = 1e-3
  l2: float = 1e-4
  agg: tuple[str, ...] = ('lightgcn',) * 3
  act: tuple[str, ...] = ('identity',) * 3
  residual: tuple[bool, ...] = (False,) * 3
  message_dropout: float = 0.0

  def __post_init__(self):
    for decision in DECISIONS:
      value = getattr(self, decision.name)
      values = value if decision.per_layer else (value,)
      if decision.per_layer and len(values) != self.layers:
        raise ValueError(
            f'Architecture decision {decision.name!r} has {len(values)} '
            f'values for {self.layers} layers.')
      for v in values:
        if v not in decision.choices:
          raise ValueError(
              f'Invalid value {v!r} for architecture decision '
              f'{decision.name!r}; choose from {decision.choices}.')

  def encode(self) -> np.ndarray:
    """The `[NUM_DECISIONS]` int32 vector of choice indices."""
    vector = np.zeros(NUM_DECISIONS, np.int32)
    for decision in DECISIONS:
      value = getattr(self, decision.name)
      if decision.per_layer:
        for layer, v in enumerate(value):
          vector[POSITIONS[decision.name].start + layer] = (
              decision.choices.index(v))
      else:
        vector[POSITIONS[decision.name]] = decision.choices.index(value)
    return vector

  def canonical(self) -> Architecture:
    """The same model with choices that cannot matter set to defaults
    (the rules of `SEARCH_SPACE`).

    Two architectures with equal canonical forms train identically.
    """
    return decode(SEARCH_SPACE.canonical(self.encode()))

  def to_string(self) -> str:
    """The string form; `from_string(a.to_string()) == a`. An optional
    decision at its default is left out."""
    defaults = {f.name: f.default for f in dataclasses.fields(self)}
    parts = []
    for decision in DECISIONS:
      value = getattr(self, decision.name)
      # Left out only at the value that `from_string` fills back in.
      if decision.optional and value == defaults[decision.name]:
        continue
      if decision.per_layer:
        text = '/'.join(_format_value(v) for v in value)
      else:
        text = _format_value(value)
      parts.append(f'{decision.name}={text}')
    return ','.join(parts)

  def __str__(self) -> str:
    return self.to_string()


def _format_value(value: Any) -> str:
  if isinstance(value, bool):
    return str(int(value))
  if isinstance(value, float):
    return repr(value) if value == 0 or value >= 0.01 else f'{value:g}'
  return str(value)


def decode(vector: Sequence[int] | np.ndarray) -> Architecture:
  """Inverse of `Architecture.encode` (unused layer slots are ignored)."""
  vector = np.asarray(vector)
  if vector.shape != (NUM_DECISIONS,):
    raise ValueError(f'An encoded architecture has shape ({NUM_DECISIONS},);'
                     f' got {vector.shape}.')
  values = {}
  layers = DECISION_BY_NAME['layers'].choices[int(vector[index('layers')])]
  for decision in DECISIONS:
    where = POSITIONS[decision.name]
    if decision.per_layer:
      values[decision.name] = tuple(
          decision.choices[int(i)] for i in vector[where][:layers])
    else:
      values[decision.name] = decision.choices[int(vector[where.start])]
  return Architecture(**values)


def _parse_value(decision: Decision, text: str) -> Any:
  for choice in decision.choices:
    if text == _format_value(choice) or text == str(choice):
      return choice
    if isinstance(choice, (int, float)) and not isinstance(choice, bool):
      try:
        if float(text) == choice:
          return choice
      except ValueError:
        pass
  if decision.choices == (False, True) and text.lower() in ('false', 'true'):
    return text.lower() == 'true'
  raise ValueError(
      f'Invalid value {text!r} for architecture decision {decision.name!r}; '
      f'choose from {", ".join(_format_value(c) for c in decision.choices)}.')


def from_string(text: str) -> Architecture:
  """Parses an architecture string or preset name (with overrides)."""
  parts = [p.strip() for p in text.split(',') if p.strip()]
  if not parts:
    raise ValueError('Empty architecture string.')
  base = Architecture()
  if '=' not in parts[0]:
    base = preset(parts[0])
    parts = parts[1:]
  fields = dataclasses.asdict(base)
  per_layer_given = {}
  for part in parts:
    name, sep, text_value = part.partition('=')
    name = name.strip()
    if not sep:
      raise ValueError(
          f'Expected name=value in architecture string, got {part!r} '
          f'(a preset name may only come first).')
    if name not in DECISION_BY_NAME:
      raise ValueError(
          f'Unknown architecture decision {name!r}; choose from '
          f'{", ".join(DECISION_BY_NAME)}.')
    decision = DECISION_BY_NAME[name]
    if decision.per_layer:
      per_layer_given[name] = tuple(
          _parse_value(decision, v.strip())
          for v in text_value.split('/') if text_value.strip())
    else:
      fields[name] = _parse_value(decision, text_value.strip())
  layers = fields['layers']
  for decision in DECISIONS:
    if not decision.per_layer:
      continue
    values = per_layer_given.get(decision.name)
    if values is None:
      # Keep the base's per-layer choices, extended with its last one.
      values = tuple(fields[decision.name]) or (decision.choices[0],)
      values = (values + values[-1:] * MAX_LAYERS)[:layers]
    elif len(values) == 1 and layers > 0:
      values = values * layers
    elif len(values) != layers:
      raise ValueError(
          f'Architecture decision {decision.name!r} has {len(values)} values'
          f' ({"/".join(map(_format_value, values))}) for layers={layers}; '
          f'give one value or {layers}.')
    fields[decision.name] = tuple(values)
  return Architecture(**fields)


def _uniform_layers(layers: int, agg: str, act: str, residual: bool = False,
                    **fields) -> Architecture:
  return Architecture(layers=layers, agg=(agg,) * layers, act=(act,) * layers,
                      residual=(residual,) * layers, **fields)


# Named presets following their papers, within this space. All share the
# training protocol's defaults (width 64, Adam 1e-3, L2 1e-4, BPR); override
# any decision after the name.
PRESETS: dict[str, Architecture] = {
    # Rendle et al. 2009: embeddings and a dot product.
    'mf': _uniform_layers(0, 'lightgcn', 'identity'),
    # He et al. 2020: no transform or activation, symmetric normalisation,
    # mean of the layer outputs including layer 0.
    'lightgcn': _uniform_layers(3, 'lightgcn', 'identity'),
    # Wang et al. 2019: W1 (h + A h) + W2 (h * A h), LeakyReLU, message
    # dropout 0.1 on each layer's output, layer outputs (L2-normalised)
    # concatenated.
    'ngcf': _uniform_layers(3, 'ngcf', 'leaky_relu', readout='concat',
                            message_dropout=0.1),
    # Kipf & Welling 2017: W A h + b with ReLU over the renormalised
    # adjacency with self-loops; last layer.
    'gcn': _uniform_layers(2, 'gcn', 'relu', norm='renorm', readout='last'),
    # Hamilton et al. 2017: mean aggregation with a separate self weight.
    'graphsage': _uniform_layers(2, 'sage', 'relu', norm='left',
                                 readout='last'),
    # Xu et al. 2019: sum aggregation and an MLP; layer outputs concatenated.
    'gin': _uniform_layers(2, 'gin', 'relu', norm='none', readout='concat'),
    # Velickovic et al. 2018, on the bipartite graph: one attention head,
    # ELU, with a self-loop as a residual.
    'gat': _uniform_layers(2, 'gat', 'elu', residual=True, readout='last'),
}
PRESET_ALIASES = {'mf-bpr': 'mf', 'bpr-mf': 'mf', 'sage': 'graphsage'}


def preset(name: str) -> Architecture:
  """The named preset architecture."""
  key = PRESET_ALIASES.get(name.lower(), name.lower())
  if key not in PRESETS:
    raise ValueError(
        f'Unknown architecture preset {name!r}; choose from '
        f'{", ".join(sorted(PRESETS) + sorted(PRESET_ALIASES))}, or give an '
        'architecture string such as '
        f'{PRESETS["lightgcn"].to_string()!r}.')
  return PRESETS[key]


def subspace(**choices: Sequence[Any]) -> dict[str, tuple[Any, ...]]:
  """Choices per decision: the default search space (each decision's
  `default_choices`), with some decisions set to other choices.

  Example: `subspace(width=(32, 64), layers=(1, 2))`.
  """
  unknown = set(choices) - set(DECISION_BY_NAME)
  if unknown:
    raise ValueError(f'Unknown architecture decisions {sorted(unknown)}; '
                     f'choose from {", ".join(DECISION_BY_NAME)}.')
  result = {}
  for decision in DECISIONS:
    values = tuple(choices.get(decision.name, decision.default_choices))
    bad = [v for v in values if v not in decision.choices]
    if bad or not values:
      raise ValueError(
          f'Invalid choices {bad or "()"} for architecture decision '
          f'{decision.name!r}; choose from {decision.choices}.')
    result[decision.name] = tuple(c for c in decision.choices if c in values)
  return result


def subspace_from_string(text: str) -> dict[str, tuple[Any, ...]]:
  """`subspace` from `'width=32/64,layers=1/2/3'` ('' is the full space).

  Each comma-separated `name=choices` restricts one decision to the
  '/'-separated choices; per-layer decisions restrict every layer.
  """
  restrictions = {}
  for part in (p.strip() for p in text.split(',') if p.strip()):
    name, sep, values = part.partition('=')
    name = name.strip()
    if not sep:
      raise ValueError(f'Expected name=choice/choice/... in a search space '
                       f'string, got {part!r}.')
    if name not in DECISION_BY_NAME:
      raise ValueError(
          f'Unknown architecture decision {name!r} in search space string; '
          f'choose from {", ".join(DECISION_BY_NAME)}.')
    restrictions[name] = tuple(
        _parse_value(DECISION_BY_NAME[name], v.strip())
        for v in values.split('/') if v.strip())
  return subspace(**restrictions)


def _declare() -> search_space_lib.SearchSpace:
  """The search space as the search sees it (see `SEARCH_SPACE`)."""
  depths = DECISION_BY_NAME['layers'].choices

  def has_layer(layer: int) -> dict[str, tuple[int, ...]]:
    """The clause 'layer `layer` exists'."""
    return {'layers': tuple(d for d in depths if d > layer)}

  decisions, conditions = {}, {}
  for decision in DECISIONS:
    if not decision.per_layer:
      decisions[decision.name] = decision.choices
      continue
    for layer in range(MAX_LAYERS):
      decisions[f'{decision.name}_{layer}'] = decision.choices
      conditions[f'{decision.name}_{layer}'] = has_layer(layer)
  # Without layers the model is matrix factorisation: every readout
  # returns the embeddings and there is no graph to drop edges from.
  conditions['readout'] = has_layer(0)
  conditions['edge_dropout'] = has_layer(0)
  conditions['message_dropout'] = has_layer(0)
  # Only the cosine decoder divides by a temperature.
  conditions['temperature'] = {'decoder': ('cosine',)}
  # Attention ignores the normalisation, which matters while some layer
  # aggregates otherwise.
  others = tuple(a for a in DECISION_BY_NAME['agg'].choices if a != 'gat')
  conditions['norm'] = [dict(has_layer(layer), **{f'agg_{layer}': others})
                        for layer in range(MAX_LAYERS)]
  # An inactive global decision takes the `Architecture` default; an
  # inactive layer takes choice 0, what `encode` writes beyond the depth.
  field_defaults = {f.name: f.default
                    for f in dataclasses.fields(Architecture)}
  defaults = {name: field_defaults[name] for name in conditions
              if name in field_defaults}
  # The cosine decoder normalises the readout: a sum of the layer outputs
  # scores exactly like their mean.
  equivalences = [search_space_lib.Equivalence(
      'readout', {'sum': 'mean'}, {'decoder': ('cosine',)})]
  return search_space_lib.SearchSpace(
      decisions, conditions=conditions, defaults=defaults,
      equivalences=equivalences)


# The declared space: its token arrays are `Architecture.encode` vectors
# (position `index(name)` and `POSITIONS` hold in both).
SEARCH_SPACE: search_space_lib.SearchSpace = _declare()


def search_space(choices: Mapping[str, Sequence[Any]] | None = None
                 ) -> search_space_lib.SearchSpace:
  """`SEARCH_SPACE` restricted to `choices` (a `subspace()` dict, or some
  of its entries; None or a missing entry: the decision's default choices);
  per-layer decisions are restricted in every layer.

  Equal restrictions give the same object, so that compiled programs that
  take the space as a static argument are reused.
  """
  choices = subspace(**(choices or {}))
  return _restricted(tuple((name, choices[name]) for name in choices))


@functools.lru_cache(maxsize=64)
def _restricted(choices: tuple[tuple[str, tuple[Any, ...]], ...]
                ) -> search_space_lib.SearchSpace:
  allowed = {}
  for name, values in choices:
    if DECISION_BY_NAME[name].per_layer:
      allowed.update({f'{name}_{layer}': values
                      for layer in range(MAX_LAYERS)})
    else:
      allowed[name] = values
  return SEARCH_SPACE.restrict(**allowed)


def to_tokens(archs: Sequence[Architecture]) -> np.ndarray:
  """`[N, NUM_DECISIONS]` canonical tokens of `archs` (`SEARCH_SPACE`)."""
  vectors = [a.encode() for a in archs]
  if not vectors:
    return np.zeros((0, NUM_DECISIONS), np.int32)
  return SEARCH_SPACE.canonical(np.stack(vectors))


def from_tokens(tokens: np.ndarray) -> list[Architecture]:
  """The architectures of `[N, NUM_DECISIONS]` token arrays."""
  return [decode(row) for row in np.asarray(tokens)]


def sample(rng: np.random.Generator, num: int,
           choices: Mapping[str, Sequence[Any]] | None = None
           ) -> list[Architecture]:
  """`num` canonical architectures, every decision drawn uniformly and
  independently from `choices` (`SearchSpace.uniform`).

  Uniform over decisions, so not uniform over distinct canonical
  architectures: shallow ones, which have fewer variants, are drawn more
  often than their share.
  """
  return from_tokens(search_space(choices).uniform(rng, num))


def enumerate_canonical(choices: Mapping[str, Sequence[Any]] | None = None
                        ) -> list[Architecture]:
  """Every distinct canonical architecture of a (sub)space, sorted by string.

  For subspaces of at most `search_space.MAX_TABULATED` architectures
  (`count_canonical` says how many there are); the choices of inactive
  decisions cost nothing.
  """
  archs = from_tokens(search_space(choices).enumerate())
  return sorted(archs, key=Architecture.to_string)


def count_canonical(choices: Mapping[str, Sequence[Any]] | None = None
                    ) -> int:
  """The number of distinct canonical architectures of a (sub)space."""
  return search_space(choices).count()
