"""A declared categorical search space: decisions, conditions, equivalences.

One declaration states everything a search needs to know about a space;
canonical form, the distinct count, token masks, encodings, sampling and
the model's shape all read it:

    space = SearchSpace(
        {'layers': (1, 2), 'op_0': ('gcn', 'gat'), 'op_1': ('gcn', 'gat'),
         'decoder': ('dot', 'cosine'), 'temperature': (0.1, 0.5)},
        conditions={'op_1': {'layers': (2,)},              # active if 2 layers
                    'temperature': {'decoder': ('cosine',)}},
        defaults={'temperature': 0.1})

A configuration is a dict `decision -> choice`. Inside a search it is a
token array: `[..., K]` int32 indices, one position per decision in
declaration order, into that decision's choices (`vocab` is the longest
choice list). A restricted space (`restrict`) keeps the same choices and
layout and narrows `mask`, so its tokens mean the same as the full
space's.

Rules, each stated once here:

* **Conditions.** A decision is active when any of its clauses holds; a
  clause (`{decision: choices}`) holds when each named decision takes one
  of the listed choices. Decisions without a condition are always active.
  An inactive decision canonicalises to its default (the first choice
  unless `defaults` says otherwise). The conditions may not form a cycle;
  the decisions are processed in `order`, a topological order in which
  every decision comes after those its condition and equivalences read.
* **Equivalences.** `Equivalence(decision, merge, when)`: while clause
  `when` holds, the choices in `merge` canonicalise to their targets (two
  choices that train the same model).
* **Symmetries** that no per-decision rule can state (isomorphic graphs,
  say) come as `canonicalize`, a function from a configuration to its
  canonical configuration, or None where the configuration is invalid. It
  is tabulated over every raw configuration when the space is built, so it
  suits spaces of up to a few million raw configurations.

Two configurations with equal canonical tokens are the same architecture:
strategies never propose one twice, and `count` counts each once.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import numpy as np

Clause = Mapping[str, Sequence[Any]]
Configuration = dict[str, Any]

# Tabulating `canonicalize` enumerates every raw configuration.
MAX_TABULATED = 5_000_000
# Counting enumerates the decisions that conditions and equivalences read.
MAX_CONTROLLING = 2_000_000


@dataclasses.dataclass(frozen=True)
class Equivalence:
  """While `when` holds, `decision`'s choices in `merge` become their
  targets (`merge`: choice -> the choice it trains identically to)."""
  decision: str
  merge: Mapping[Any, Any]
  when: Clause = dataclasses.field(default_factory=dict)


def _clauses(condition: Clause | Sequence[Clause] | None
             ) -> tuple[Clause, ...]:
  if condition is None:
    return ()
  if isinstance(condition, Mapping):
    return (condition,)
  return tuple(condition)


class SearchSpace:
  """Named categorical decisions with conditions and equivalences.

  Attributes:
    names: the decisions, in token order.
    choices: decision -> every choice it has (the token vocabulary).
    allowed: decision -> the choices this (possibly restricted) space
      allows, in the order of `choices`.
    defaults: decision -> the choice it takes while inactive.
    num_positions: K, the length of a token array.
    vocab: V, the size of the widest decision.
    mask: `[K, V]` bool, the choices allowed at each position.
    order: `[K]` the positions in an order where each comes after every
      position its condition and equivalences read (for canonicalisation
      and for autoregressive sampling).
  """

  def __init__(self, decisions: Mapping[str, Sequence[Any]], *,
               conditions: Mapping[str, Clause | Sequence[Clause]] | None = None,
               defaults: Mapping[str, Any] | None = None,
               equivalences: Iterable[Equivalence] = (),
               canonicalize: Callable[[Configuration],
                                      Configuration | None] | None = None,
               allowed: Mapping[str, Sequence[Any]] | None = None):
    if not decisions:
      raise ValueError('A search space needs at least one decision.')
    self.names = tuple(decisions)
    self.choices = {name: tuple(values) for name, values in decisions.items()}
    for name, values in self.choices.items():
      if not values:
        raise ValueError(f'Decision {name!r} has no choices.')
      if len(set(map(repr, values))) != len(values):
        raise ValueError(f'Decision {name!r} lists a choice twice: {values}.')
    self._position = {name: i for i, name in enumerate(self.names)}
    self.num_positions = len(self.names)
    self.vocab = max(len(v) for v in self.choices.values())
    self.conditions = {name: _clauses(c)
                       for name, c in (conditions or {}).items()}
    self.defaults = {name: values[0] for name, values in self.choices.items()}
    self.defaults.update(defaults or {})
    self.equivalences = tuple(equivalences)
    self._canonicalize = canonicalize
    for name in self.conditions:
      self._check_name(name, 'conditions')
    for name, value in self.defaults.items():
      self._check_name(name, 'defaults')
      self.choice_index(name, value)
    for clause in self._all_clauses():
      for name, values in clause.items():
        self._check_name(name, 'a condition or equivalence')
        for value in values:
          self.choice_index(name, value)
    for equivalence in self.equivalences:
      self._check_name(equivalence.decision, 'equivalences')
      for source, target in equivalence.merge.items():
        self.choice_index(equivalence.decision, source)
        self.choice_index(equivalence.decision, target)
    self.allowed = {name: self.choices[name] for name in self.names}
    if allowed:
      for name, values in allowed.items():
        self._check_name(name, 'a restriction')
        values = list(values)
        for value in values:
          self.choice_index(name, value)
        if not values:
          raise ValueError(f'A restriction leaves decision {name!r} with no '
                           'choices.')
        self.allowed[name] = tuple(c for c in self.choices[name]
                                   if any(_same(c, v) for v in values))
    self.mask = np.zeros((self.num_positions, self.vocab), bool)
    for position, name in enumerate(self.names):
      for value in self.allowed[name]:
        self.mask[position, self.choice_index(name, value)] = True
    self.order = self._topological_order()
    self._build_rules()
    self._table = self._tabulate() if canonicalize else None

  # -- Declaration helpers ---------------------------------------------------

  def _check_name(self, name: str, where: str) -> None:
    if name not in self._position:
      raise ValueError(f'Unknown decision {name!r} in {where}; the space has '
                       f'{", ".join(self.names)}.')

  def _all_clauses(self):
    for clauses in self.conditions.values():
      yield from clauses
    for equivalence in self.equivalences:
      yield equivalence.when

  def reads(self, name: str) -> set[str]:
    """The decisions that decision `name`'s condition and equivalences
    read."""
    read = {n for clause in self.conditions.get(name, ()) for n in clause}
    for equivalence in self.equivalences:
      if equivalence.decision == name:
        read |= set(equivalence.when)
    return read

  def _topological_order(self) -> np.ndarray:
    remaining = list(self.names)
    placed, order = set(), []
    while remaining:
      ready = [n for n in remaining if self.reads(n) <= placed]
      if not ready:
        raise ValueError('The conditions and equivalences of decisions '
                         f'{", ".join(remaining)} read each other in a cycle.')
      order.append(ready[0])
      placed.add(ready[0])
      remaining.remove(ready[0])
    return np.array([self._position[n] for n in order], np.int32)

  def restrict(self, **allowed: Sequence[Any]) -> SearchSpace:
    """The same space with some decisions limited to the given choices."""
    merged = {name: self.allowed[name] for name in self.names}
    merged.update(allowed)
    return SearchSpace(self.choices, conditions=self.conditions,
                       defaults=self.defaults,
                       equivalences=self.equivalences,
                       canonicalize=self._canonicalize, allowed=merged)

  # -- Configurations and tokens --------------------------------------------

  def index(self, name: str) -> int:
    """The position of decision `name` in a token array."""
    self._check_name(name, 'this space')
    return self._position[name]

  def choice_index(self, name: str, value: Any) -> int:
    """The token of `value` among decision `name`'s choices."""
    for i, choice in enumerate(self.choices[name]):
      if _same(choice, value):
        return i
    raise ValueError(f'Invalid choice {value!r} for decision {name!r}; '
                     f'choose from {self.choices[name]}.')

  def encode(self, config: Mapping[str, Any]) -> np.ndarray:
    """The canonical `[K]` tokens of a configuration.

    A decision left out takes its default, which is an error if it is
    active. Raises ValueError naming an unknown decision, a choice outside
    the space, or an invalid configuration.
    """
    unknown = [name for name in config if name not in self._position]
    if unknown:
      raise ValueError(f'Unknown decision {unknown[0]!r} in configuration; '
                       f'the space has {", ".join(self.names)}.')
    tokens = np.zeros(self.num_positions, np.int32)
    for position, name in enumerate(self.names):
      value = config.get(name, self.defaults[name])
      tokens[position] = self.choice_index(name, value)
    canonical = self.canonical(tokens)
    active = self.active(canonical)
    inside = self._in_reach(canonical)
    for position, name in enumerate(self.names):
      if not active[position]:
        continue
      if name not in config:
        raise ValueError(f'Configuration leaves out decision {name!r}, which '
                         'is active there.')
      if not inside[position]:
        raise ValueError(
            f'Choice {config[name]!r} of decision {name!r} is outside this '
            f'search space, which allows {self.allowed[name]}.')
    if not self.valid(canonical):
      raise ValueError(f'Configuration {dict(config)} is not a valid '
                       'architecture of this search space.')
    return canonical

  def decode(self, tokens: np.ndarray) -> Configuration:
    """A `[K]` token array as a configuration (every decision named)."""
    tokens = np.asarray(tokens)
    if tokens.shape != (self.num_positions,):
      raise ValueError(f'A token array of this space has shape '
                       f'({self.num_positions},); got {tokens.shape}.')
    return {name: self.choices[name][int(tokens[i])]
            for i, name in enumerate(self.names)}

  def _clause_table(self, clause: Clause | None) -> np.ndarray:
    """`[K, V]` bool: the choices each position may hold for `clause` to
    hold (all of them where it names no decision); None: a clause that
    never holds."""
    table = np.full((self.num_positions, self.vocab), clause is not None)
    for name, values in (clause or {}).items():
      table[self._position[name]] = False
      table[self._position[name],
            [self.choice_index(name, v) for v in values]] = True
    return table

  def _build_rules(self) -> None:
    """The conditions and equivalences as arrays indexed by position, so
    that one program, stepping through the positions with the position as
    data (a `lax.scan`), applies every decision's rules:

    * `_condition` `[K, C, K, V]`: the clauses of each position's condition
      (a position without one has a single clause that always holds; the
      padding clauses never hold);
    * `_merge_when` `[K, E, K, V]` and `_merge` `[K, E, V]`: each
      position's equivalences, in declaration order, as the clause under
      which they hold and the token each choice merges to (padding: the
      identity);
    * `_default` `[K]`: the token of an inactive position.
    """
    conditions = [self.conditions.get(name) or ({},) for name in self.names]
    merges = [[e for e in self.equivalences if e.decision == name]
              for name in self.names]
    width = max(map(len, conditions))
    depth = max(1, max(map(len, merges)))
    self._condition = np.stack([
        np.stack([self._clause_table(clause) for clause in clauses] +
                 [self._clause_table(None)] * (width - len(clauses)))
        for clauses in conditions])
    self._merge_when = np.zeros((self.num_positions, depth,
                                 self.num_positions, self.vocab), bool)
    self._merge = np.tile(np.arange(self.vocab, dtype=np.int32),
                          (self.num_positions, depth, 1))
    for position, (name, equivalences) in enumerate(zip(self.names, merges)):
      for slot, equivalence in enumerate(equivalences):
        self._merge_when[position, slot] = self._clause_table(
            equivalence.when)
        for source, target in equivalence.merge.items():
          self._merge[position, slot, self.choice_index(name, source)] = (
              self.choice_index(name, target))
    self._default = np.array([self.choice_index(n, self.defaults[n])
                              for n in self.names], np.int32)

  def _holds(self, clauses, tokens, xp):
    """`[..., C]` bool: which of `clauses` (`[C, K, V]`) `tokens`
    (`[..., K]`) satisfy."""
    if xp is np:
      # Only the positions some clause names: over many rows (a space's
      # enumeration) the others would cost most of the work.
      clauses = np.asarray(clauses)
      never = ~clauses.any((1, 2))  # Padding clauses name every position.
      named = np.flatnonzero(~clauses[~never].all(-1).all(0))
      holds = np.all(clauses[:, named, tokens[..., named]], -1)  # [C, ...]
      holds[never] = False
      return np.moveaxis(holds, 0, -1)
    member = clauses[:, xp.arange(self.num_positions), tokens]  # [C, ..., K]
    return xp.moveaxis(xp.all(member, -1), 0, -1)

  def _is_active(self, position, tokens, xp):
    return xp.any(self._holds(xp.asarray(self._condition)[position], tokens,
                              xp), -1)

  def canonical_at(self, position, token, tokens, xp=np):
    """The canonical token at `position` (an int, or an int32 scalar in
    compiled code) given the canonical tokens of the positions before it
    in `order` (`tokens` `[..., K]`; the others are ignored): `token`
    merged by any equivalence in force, or the default where the decision
    is inactive."""
    holds = self._holds(xp.asarray(self._merge_when)[position], tokens, xp)
    merge = xp.asarray(self._merge)[position]
    for slot in range(merge.shape[0]):
      token = xp.where(holds[..., slot], merge[slot][token], token)
    return xp.where(self._is_active(position, tokens, xp), token,
                    xp.asarray(self._default)[position])

  def reachable(self, position, tokens, xp=np):
    """`[..., V]` bool: the choices canonical tokens may hold at `position`
    given the earlier positions of `tokens`: the allowed choices, each
    replaced by its target where an equivalence in force merges it. (A
    restriction need not allow that target: a space that allows the 'sum'
    readout but not 'mean' still holds the cosine architecture they share.)
    A sampler that draws from these draws canonical tokens only."""
    reach = xp.broadcast_to(xp.asarray(self.mask)[position],
                            tokens.shape[:-1] + (self.vocab,))
    holds = self._holds(xp.asarray(self._merge_when)[position], tokens, xp)
    merge = xp.asarray(self._merge)[position]
    choices = xp.arange(self.vocab)
    for slot in range(merge.shape[0]):
      # moves[s, t]: choice s becomes t under this equivalence.
      moves = merge[slot][:, None] == choices[None, :]
      merged = xp.any(reach[..., :, None] & moves, axis=-2)
      reach = xp.where(holds[..., slot, None], merged, reach)
    return reach

  def _in_reach(self, tokens) -> np.ndarray:
    """`[..., K]` bool: each position of canonical `tokens` holds a choice
    `reachable` there (numpy)."""
    return np.stack([
        np.take_along_axis(self.reachable(p, tokens), tokens[..., p, None],
                           -1)[..., 0]
        for p in range(self.num_positions)], -1)

  def canonical(self, tokens, xp=np):
    """`[..., K]` canonical tokens (numpy, or jnp in compiled code with
    `xp=jnp`). Idempotent; equal outputs mean the same architecture."""
    tokens = xp.asarray(tokens).astype(xp.int32)
    if xp is np:
      tokens = tokens.copy()
      for position in self.order.tolist():
        tokens[..., position] = self.canonical_at(
            position, tokens[..., position], tokens)
    else:
      # Compiled: a scan holds one position's rules, not K of them.
      def settle(tokens, position):
        column = self.canonical_at(position, xp.take(tokens, position, -1),
                                   tokens, xp)
        return tokens.at[..., position].set(column), None
      tokens, _ = jax.lax.scan(settle, tokens, xp.asarray(self.order))
    if self._table is not None:
      tokens = xp.asarray(self._table[0])[self._flat_index(tokens, xp)]
    return tokens.astype(xp.int32)

  def active_at(self, position, tokens, xp=np):
    """`[...]` bool: whether `tokens` decide `position` (its condition
    holds; it reads only positions before it in `order`)."""
    return self._is_active(position, tokens, xp)

  def active(self, tokens, xp=np):
    """`[..., K]` bool: the positions canonical `tokens` really decide."""
    columns = [self._is_active(p, tokens, xp)
               for p in range(self.num_positions)]
    return xp.stack(columns, axis=-1)

  def valid(self, tokens, xp=np):
    """`[...]` bool: canonical `tokens` name an architecture of the full
    space (False only where `canonicalize` rejects it)."""
    if self._table is None:
      return xp.ones(xp.asarray(tokens).shape[:-1], bool)
    return xp.asarray(self._table[1])[self._flat_index(tokens, xp)]

  def contains(self, tokens) -> np.ndarray:
    """`[...]` bool: canonical `tokens` are valid and every active
    position holds a choice `reachable` there (numpy)."""
    tokens = np.asarray(tokens)
    return self.valid(tokens) & np.all(
        self._in_reach(tokens) | ~self.active(tokens), -1)

  def features(self, tokens, xp=np):
    """`[..., K * V]` float32 one-hot of the active positions."""
    one_hot = xp.eye(self.vocab, dtype=xp.float32)[tokens]
    one_hot = one_hot * self.active(tokens, xp)[..., None]
    return one_hot.reshape(*tokens.shape[:-1],
                           self.num_positions * self.vocab)

  @staticmethod
  def keys(tokens: np.ndarray) -> list[bytes]:
    """Hashable identities of canonical token rows."""
    return [row.tobytes() for row in np.ascontiguousarray(tokens, np.int32)]

  # -- Sampling -------------------------------------------------------------

  def fill(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Canonical `tokens` with every active position that holds a choice
    not `reachable` there redrawn uniformly from the allowed ones (in
    `order`, so that a position a change made active gets an allowed
    choice)."""
    tokens = np.array(tokens, np.int32)
    for position in self.order.tolist():
      column = self.canonical_at(position, tokens[..., position], tokens)
      reach = self.reachable(position, tokens)
      bad = ~np.take_along_axis(reach, column[..., None], -1)[..., 0] & (
          self._is_active(position, tokens, np))
      if bad.any():
        options = np.flatnonzero(self.mask[position])
        column = np.where(bad, rng.choice(options, size=column.shape),
                          column)
        column = self.canonical_at(position, column, tokens)
      tokens[..., position] = column
    return self.canonical(tokens)

  def uniform(self, rng: np.random.Generator, num: int) -> np.ndarray:
    """`[num, K]` canonical tokens inside the space, each decision drawn
    uniformly from its allowed choices (so uniform over decisions, not
    over distinct architectures)."""
    counts = self.mask.sum(-1)
    allowed_first = np.argsort(~self.mask, axis=-1, kind='stable')
    # A position with one allowed choice takes it without a draw: a
    # decision added to a space and held at one choice leaves the draws of
    # the others as they were.
    free = counts > 1
    rows, found = [], 0
    for _ in range(1000):
      picks = np.zeros((max(num, 1), self.num_positions), np.int32)
      draws = rng.random((max(num, 1), int(free.sum())))
      picks[:, free] = (draws * counts[free]).astype(np.int32)
      tokens = allowed_first[np.arange(self.num_positions), picks]
      tokens = self.canonical(tokens)
      tokens = tokens[self.contains(tokens)]
      rows.append(tokens)
      found += len(tokens)
      if found >= num:
        return np.concatenate(rows)[:num].astype(np.int32)
    raise ValueError('Uniform sampling found no valid architecture of this '
                     'search space in 1000 tries.')

  def neighbours(self, tokens: np.ndarray, rng: np.random.Generator
                 ) -> np.ndarray:
    """`[M, K]` the distinct canonical architectures inside the space
    that differ from canonical `tokens` (`[K]`) in one active decision
    (positions that change makes active get random allowed choices)."""
    return self.mutations(tokens, rng)[0]

  def mutations(self, tokens: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """`neighbours(tokens, rng)` and `[M]` the decision each changed.

    The changed decision is not always the first position that differs:
    canonicalisation may also rewrite an earlier one (a cosine decoder
    turns a 'sum' readout into 'mean'). A neighbour reached by changing
    either of two decisions counts for the first.
    """
    tokens = np.asarray(tokens, np.int32)
    active = self.active(tokens)
    rows, positions = [], []
    for position in range(self.num_positions):
      if not active[position]:
        continue
      for choice in np.flatnonzero(self.mask[position]):
        if choice != tokens[position]:
          row = tokens.copy()
          row[position] = choice
          rows.append(row)
          positions.append(position)
    if not rows:
      return (tokens[None, :0].reshape(0, self.num_positions),
              np.zeros(0, np.int64))
    rows, positions = self.fill(np.stack(rows), rng), np.array(positions)
    keep = self.contains(rows) & np.any(rows != tokens, -1)
    rows, positions = rows[keep], positions[keep]
    _, first = np.unique(rows, axis=0, return_index=True)
    first = np.sort(first)
    return rows[first], positions[first]

  # -- Counting -------------------------------------------------------------

  def raw_size(self, names: Sequence[str] | None = None) -> int:
    """The number of raw configurations (of decisions `names`, default
    all) before canonicalisation."""
    return math.prod(len(self.allowed[n]) for n in (self.names if names is None else names))

  def enumerate(self, limit: int = MAX_TABULATED) -> np.ndarray:
    """`[N, K]` every distinct canonical architecture, sorted.

    Each combination of the controlling decisions (`count`) is expanded by
    the distinct choices of every other decision active in it, so the
    choices of inactive decisions cost nothing; a space with
    `canonicalize` is enumerated by brute force over its allowed choices.

    Raises:
      ValueError: more than `limit` rows to enumerate.
    """
    if self._table is not None:
      if self.raw_size() > limit:
        raise ValueError(f'The space has {self.raw_size():,} raw '
                         f'configurations, more than {limit:,} to '
                         'enumerate; count() counts it without enumerating.')
      grids = [[self.choice_index(n, v) for v in self.allowed[n]]
               for n in self.names]
      raw = np.array(list(itertools.product(*grids)), np.int32)
      tokens = _unique_rows(self.canonical(raw))
      return tokens[self.contains(tokens)]
    rows, others = self._skeleton()
    size = self._count(rows, others)
    if size > limit:
      raise ValueError(f'The space has {size:,} architectures, more than '
                       f'{limit:,} to enumerate.')
    expanded = []
    for index, row in enumerate(rows):
      grids = [[token] for token in row]
      for position, images, active in others:
        if active[index]:
          grids[position] = sorted(set(images[index].tolist()))
      expanded.append(np.array(list(itertools.product(*grids)), np.int32))
    tokens = np.concatenate(expanded) if expanded else np.zeros(
        (0, self.num_positions), np.int32)
    tokens = _unique_rows(self.canonical(tokens))
    return tokens[self.contains(tokens)]

  def count(self) -> int:
    """The number of distinct canonical architectures.

    Enumerates only the decisions that conditions and equivalences read
    (the controlling ones); each other active decision multiplies the
    count by the number of its allowed choices that stay distinct under
    the equivalences in force. A space with `canonicalize` is enumerated.
    """
    if self._table is not None:
      return len(self.enumerate())
    return self._count(*self._skeleton())

  @staticmethod
  def _count(rows, others) -> int:
    total = np.ones(len(rows), dtype=object)
    for _, images, active in others:
      distinct = np.array([len(set(r)) for r in images.tolist()])
      total = total * np.where(active, distinct, 1).astype(object)
    return int(total.sum())

  def _skeleton(self):
    """`(rows, others)`: `rows` `[R, K]` the distinct canonical
    combinations of the controlling decisions (the others at their
    defaults), and for each other decision `(position, [R, C] canonical
    images of its C allowed choices in each row, [R] whether it is active
    there)`."""
    controlling = sorted({n for clause in self._all_clauses()
                          for n in clause}, key=self._position.get)
    if self.raw_size(controlling) > MAX_CONTROLLING:
      raise ValueError('Too many combinations of the decisions that '
                       'conditions read to count this space.')
    base = np.array([self.choice_index(n, self.defaults[n])
                     for n in self.names], np.int32)
    positions = [self._position[n] for n in controlling]
    grids = [[self.choice_index(n, v) for v in self.allowed[n]]
             for n in controlling]
    raw = np.tile(base, (self.raw_size(controlling), 1))
    if controlling:
      raw[:, positions] = np.array(list(itertools.product(*grids)))
    rows = self.canonical(raw)
    # Controlling decisions must themselves be inactive or reachable.
    ok = np.all(self._in_reach(rows)[:, positions] |
                ~self.active(rows)[:, positions], -1)
    rows = np.unique(rows[ok], axis=0)
    active = self.active(rows)
    others = []
    for position, name in enumerate(self.names):
      if name in controlling:
        continue
      options = [self.choice_index(name, v) for v in self.allowed[name]]
      images = np.stack([self.canonical_at(
          position, np.full(len(rows), o), rows) for o in options], -1)
      others.append((position, images, active[:, position]))
    return rows, others

  # -- Canonicalisation by table ------------------------------------------------

  def _flat_index(self, tokens, xp):
    radix = np.array([len(self.choices[n]) for n in self.names], np.int64)
    strides = np.concatenate([np.cumprod(radix[::-1])[::-1][1:], [1]])
    return xp.sum(tokens.astype(xp.int32) * xp.asarray(strides, xp.int32),
                  axis=-1)

  def _tabulate(self) -> tuple[np.ndarray, np.ndarray]:
    """`(canonical [R, K], valid [R])` for every raw configuration."""
    sizes = [len(self.choices[n]) for n in self.names]
    if math.prod(sizes) > MAX_TABULATED:
      raise ValueError(f'canonicalize is tabulated over every raw '
                       f'configuration; this space has {math.prod(sizes):,}, '
                       f'more than {MAX_TABULATED:,}.')
    raw = np.array(list(itertools.product(*map(range, sizes))), np.int32)
    table = np.zeros_like(raw)
    valid = np.zeros(len(raw), bool)
    cache = {}
    for i, row in enumerate(raw):
      config = self.decode(row)
      canonical = self._canonicalize(config)
      if canonical is None:
        table[i] = row
        continue
      key = tuple(canonical[n] for n in self.names)
      if key not in cache:
        cache[key] = np.array([self.choice_index(n, canonical[n])
                               for n in self.names], np.int32)
      table[i] = cache[key]
      valid[i] = True
    return table, valid


def _same(a: Any, b: Any) -> bool:
  """Choice equality that tells True from 1 and 1.0 from '1'."""
  return type(a) is type(b) and a == b or (
      isinstance(a, (int, float)) and isinstance(b, (int, float)) and
      not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def _unique_rows(rows: np.ndarray) -> np.ndarray:
  """The distinct rows of `rows` `[N, K]`, in lexicographic order. Sorting
  each row's bytes as one value is several times faster than
  `np.unique(axis=0)` over the many rows of an enumeration."""
  rows = np.ascontiguousarray(rows)
  as_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize *
                                 rows.shape[1])))[:, 0]
  _, first = np.unique(as_bytes, return_index=True)
  distinct = rows[first]
  return distinct[np.lexsort(distinct.T[::-1])]
