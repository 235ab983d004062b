"""The GNN-for-collaborative-filtering search space.

An architecture is a fixed-length vector of categorical choices (DESIGN.md,
decision 1): the model reads it as an int array, so one compiled program
serves every architecture and a population is a `[P, NUM_DECISIONS]` array.

Decisions (choices in the order their indices encode them):

  width         embedding width, masked inside the widest in a population
  layers        propagation layers; 0 is matrix factorisation
  norm          D^-a A D^-b: sym (1/2, 1/2), left/mean (1, 0), right (0, 1),
                none (0, 0)
  readout       how layer outputs 0..L combine: last, mean, sum, concat, or
                learned softmax weights
  edge_dropout  share of interactions dropped from the graph per step
  decoder       dot product, or cosine similarity divided by `temperature`
  temperature   cosine decoder temperature
  loss          BPR (one negative), or sampled softmax over the negatives
  lr, l2        Adam learning rate; L2 weight on the batch's layer-0
                embeddings
  agg[l]        layer l's aggregation: lightgcn (A h), gcn (W A h + b),
                sage (W1 A h + W2 h + b), gin (MLP((1 + eps) h + A h)),
                ngcf (W1 (h + A h) + W2 (h * A h) + b, output L2-normalised
                for the readout), gat (attention over neighbours; ignores
                `norm`)
  act[l]        layer l's activation
  residual[l]   whether layer l adds its input (a self-loop)

The string form, which users type in `--config.arch`, is comma-separated
`name=value` pairs, per-layer values joined by '/', e.g.

  width=64,layers=2,agg=gcn/gcn,act=relu/relu,residual=0/0,norm=sym,...

A preset name may start the string, and later pairs override it
(`lightgcn,layers=2`); a per-layer decision given one value applies it to
every layer.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Sequence

import numpy as np

MAX_LAYERS = 4


@dataclasses.dataclass(frozen=True)
class Decision:
  """One categorical decision of the search space."""
  name: str
  choices: tuple[Any, ...]
  per_layer: bool = False


DECISIONS: tuple[Decision, ...] = (
    Decision('width', (16, 32, 64, 128)),
    Decision('layers', (0, 1, 2, 3, 4)),
    Decision('norm', ('sym', 'left', 'right', 'none')),
    Decision('readout', ('last', 'mean', 'sum', 'concat', 'weighted')),
    Decision('edge_dropout', (0.0, 0.1, 0.2, 0.3)),
    Decision('decoder', ('dot', 'cosine')),
    Decision('temperature', (0.05, 0.1, 0.2, 0.5)),
    Decision('loss', ('bpr', 'softmax')),
    Decision('lr', (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)),
    Decision('l2', (0.0, 1e-5, 1e-4, 1e-3)),
    Decision('agg', ('lightgcn', 'gcn', 'sage', 'gin', 'ngcf', 'gat'),
             per_layer=True),
    Decision('act', ('identity', 'relu', 'leaky_relu', 'tanh', 'gelu',
                     'elu'), per_layer=True),
    Decision('residual', (False, True), per_layer=True),
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
    """The same model with choices that cannot matter set to defaults.

    Two architectures with equal canonical forms train identically.
    """
    first = {f.name: f.default for f in dataclasses.fields(Architecture)}
    changes = {}
    if self.decoder != 'cosine':
      changes['temperature'] = first['temperature']
    elif self.readout == 'sum':
      # The cosine decoder normalises the readout: a sum of the layer
      # outputs scores exactly like their mean.
      changes['readout'] = 'mean'
    if self.layers == 0:
      # Without propagation the model is matrix factorisation: every
      # readout returns the embeddings and there is no graph to drop from.
      changes.update(norm=first['norm'], readout=first['readout'],
                     edge_dropout=first['edge_dropout'])
    elif all(a == 'gat' for a in self.agg):
      changes['norm'] = first['norm']
    return dataclasses.replace(self, **changes)

  def to_string(self) -> str:
    """The string form; `from_string(a.to_string()) == a`."""
    parts = []
    for decision in DECISIONS:
      value = getattr(self, decision.name)
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
    # Wang et al. 2019: W1 (h + A h) + W2 (h * A h), LeakyReLU, layer outputs
    # (L2-normalised) concatenated.
    'ngcf': _uniform_layers(3, 'ngcf', 'leaky_relu', readout='concat'),
    # Kipf & Welling 2017: W A h + b with ReLU; last layer.
    'gcn': _uniform_layers(2, 'gcn', 'relu', readout='last'),
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
  """Choices per decision: the full space, with some decisions restricted.

  Example: `subspace(width=(32, 64), layers=(1, 2))`.
  """
  unknown = set(choices) - set(DECISION_BY_NAME)
  if unknown:
    raise ValueError(f'Unknown architecture decisions {sorted(unknown)}; '
                     f'choose from {", ".join(DECISION_BY_NAME)}.')
  result = {}
  for decision in DECISIONS:
    values = tuple(choices.get(decision.name, decision.choices))
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


def sample(rng: np.random.Generator, num: int,
           choices: dict[str, tuple[Any, ...]] | None = None
           ) -> list[Architecture]:
  """`num` architectures with every decision drawn uniformly and independently.

  The depth is uniform, then each layer's decisions; the result is the
  canonical form. (Uniform over decisions, so not uniform over distinct
  canonical architectures: shallow ones, which have fewer variants, are
  drawn more often than their share.)
  """
  choices = choices or subspace()
  archs = []
  for _ in range(num):
    fields = {}
    layers = choices['layers'][rng.integers(len(choices['layers']))]
    for decision in DECISIONS:
      options = choices[decision.name]
      if decision.name == 'layers':
        fields['layers'] = layers
      elif decision.per_layer:
        fields[decision.name] = tuple(
            options[i] for i in rng.integers(len(options), size=layers))
      else:
        fields[decision.name] = options[rng.integers(len(options))]
    archs.append(Architecture(**fields).canonical())
  return archs


def enumerate_canonical(choices: dict[str, tuple[Any, ...]] | None = None
                        ) -> list[Architecture]:
  """Every distinct canonical architecture of a (sub)space, sorted by string.

  By brute force over the product of choices, so for small subspaces only
  (`count_canonical` says how many there are).
  """
  choices = choices or subspace()
  found = set()
  for layers in choices['layers']:
    axes = []
    for decision in DECISIONS:
      if decision.name == 'layers':
        axes.append([layers])
      elif decision.per_layer:
        axes.append(list(itertools.product(choices[decision.name],
                                           repeat=layers)))
      else:
        axes.append(list(choices[decision.name]))
    for values in itertools.product(*axes):
      fields = {d.name: v for d, v in zip(DECISIONS, values)}
      found.add(Architecture(**fields).canonical())
  return sorted(found, key=Architecture.to_string)


def count_canonical(choices: dict[str, tuple[Any, ...]] | None = None) -> int:
  """The number of distinct canonical architectures of a (sub)space.

  Follows `Architecture.canonical`: the temperature counts only with the
  cosine decoder, where 'sum' and 'mean' readouts coincide; without layers
  the normalisation, readout and edge dropout do not count; with attention
  in every layer the normalisation does not count.
  """
  c = {name: len(values) for name, values in (choices or subspace()).items()}
  values = choices or subspace()
  shared = c['width'] * c['loss'] * c['lr'] * c['l2']
  decoders = 'dot' in values['decoder']
  cosine = 'cosine' in values['decoder']
  readouts = c['readout']
  # Cosine decoder and readout pairs, with sum and mean merged under cosine.
  cosine_readouts = readouts - ('sum' in values['readout'] and
                                'mean' in values['readout'])
  decoder_readout = (decoders * readouts +
                     cosine * c['temperature'] * cosine_readouts)
  decoder_only = decoders + cosine * c['temperature']
  per_layer = c['agg'] * c['act'] * c['residual']
  attention_only = ('gat' in values['agg']) * c['act'] * c['residual']
  total = 0
  for layers in values['layers']:
    if layers == 0:
      total += shared * decoder_only
      continue
    structures = ((per_layer ** layers - attention_only ** layers) * c['norm']
                  + attention_only ** layers)
    total += (shared * decoder_readout * c['edge_dropout'] * structures)
  return int(total)
