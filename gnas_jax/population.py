"""A population of architectures trained at once in compiled programs.

A round's candidates are split into groups by the choices that shape a
program (`program_shape`: width, depth, loss, whether the readout
concatenates, whether any layer attends), and each group trains as one `Population`: its
candidates share one model of the group's shape, one graph and every
mini-batch; their parameters, optimizer states and architectures are
pytrees with a leading candidate axis, and the single-model update of
`train.apply_update` runs over that axis inside one compiled step (DESIGN.md,
"Decisions that make the population fast"). Group sizes are padded to powers
of two and programs are cached by shape, so a search compiles a bounded
number of programs (`GroupedPopulation`), and no candidate pays for a width,
a depth or an attention layer it does not have: a superset model of the
whole space makes every candidate compute at its widest width and carry
attention's edge operands through every layer's switch, which cost 2.5x the
architecture's own program per step on MovieLens-100K.

A population runs its candidates in one of two modes:

* ``'vmap'``: candidates are vectorised. Every remaining choice becomes a
  select, so each candidate computes every option its group's shape
  includes: the right trade where wide parallel hardware is otherwise idle
  and sparse products gain from stacked columns.
* ``'map'``: candidates run one after the other (`lax.map`) in the same
  program; each takes only its own branches, and inactive candidates are
  skipped. On CPUs, which have no idle parallelism to fill, this is the
  faster mode, and the default there.

Nothing reduces across candidates: each has its own learning rate (in its
optimizer state), its own keys, and its own fate. A candidate whose loss or
parameters become non-finite is frozen at its last finite state and marked
failed, and candidates that stop early (or pad a group) are inactive: their
state no longer changes, whatever the others do.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

from absl import logging
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gnas_jax import graph as graph_lib
from gnas_jax import metrics as metrics_lib
from gnas_jax import models
from gnas_jax import space
from gnas_jax import train


@flax.struct.dataclass
class Population:
  """P candidates' training states.

  Attributes:
    state: a `train.TrainState` whose every leaf (the step count and the
      architecture included) has a leading `[P]` axis.
    active: `[P]` bool, candidates that still train.
    failed: `[P]` bool, candidates that diverged (non-finite loss or
      parameters); they are frozen at their last finite state.
  """
  state: train.TrainState
  active: jax.Array
  failed: jax.Array

  @property
  def size(self) -> int:
    return self.active.shape[0]


def encode(archs: Sequence[space.Architecture]) -> jax.Array:
  """`[P, space.NUM_DECISIONS]` int32 encodings of the architectures."""
  return jnp.asarray(np.stack([a.encode() for a in archs]))


@functools.partial(jax.jit, static_argnames=('model', 'optimizer'))
def init_population(model: models.GNNRecommender,
                    optimizer: optax.GradientTransformation,
                    graph: graph_lib.BipartiteGraph, archs: jax.Array,
                    keys: jax.Array) -> Population:
  """Independent initial states, one per row of `archs` and of `keys`.

  Args:
    model: the shared model; its shape must cover every architecture.
    optimizer: `train.create_optimizer`'s.
    graph: the training graph.
    archs: `[P, space.NUM_DECISIONS]` encoded architectures.
    keys: `[P]` initialisation keys (`jax.random.split(key, P)`).

  Returns:
    The population, every candidate active.
  """
  state = jax.vmap(train.create_train_state,
                   in_axes=(None, None, None, 0, 0))(
                       _for_mode(model, 'vmap'), optimizer, graph, archs,
                       keys)
  size = archs.shape[0]
  return Population(state=state, active=jnp.ones(size, bool),
                    failed=jnp.zeros(size, bool))


def _all_finite(tree) -> jax.Array:
  """Scalar bool: every floating value of one candidate's `tree` is finite."""
  checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.floating)]
  return functools.reduce(jnp.logical_and, checks)


MODES = ('map', 'vmap')


def default_mode(platform: str | None = None) -> str:
  """'map' on CPUs, 'vmap' on accelerators (see the module docstring)."""
  platform = platform or jax.default_backend()
  return 'map' if platform == 'cpu' else 'vmap'


def _over_candidates(fn, mode: str, *args):
  """`fn` applied to each candidate's slice of `args` (leading axis P)."""
  if mode == 'vmap':
    return jax.vmap(fn)(*args)
  if mode == 'map':
    return jax.lax.map(lambda xs: fn(*xs), args)
  raise ValueError(f'Unknown population mode {mode!r}; choose from {MODES}.')


def _for_mode(model: models.GNNRecommender,
              mode: str) -> models.GNNRecommender:
  """The model as the mode runs it: selecting, not branching, under vmap."""
  return model.clone(vectorised=(mode == 'vmap'))


def _resolve(mode: str | None) -> str:
  """`mode`, or the platform's default (`default_mode`)."""
  return mode or default_mode()


def step_population(model: models.GNNRecommender, population: Population,
                    graph: graph_lib.BipartiteGraph, batch: train.Batch,
                    keys: jax.Array, mode: str | None = None
                    ) -> tuple[Population, dict[str, jax.Array]]:
  """One step of every active candidate on the shared mini-batch.

  Args:
    model: the shared model.
    population: the candidates.
    graph: the training graph.
    batch: one mini-batch, shared by every candidate.
    keys: `[P]` per-candidate training keys (each folded with its step).
    mode: 'map' or 'vmap' (see the module docstring); None picks the
      platform's default.

  Returns:
    The updated population and `{name: [P]}` step metrics (zeros for
    candidates that were inactive).
  """
  mode = _resolve(mode)
  model = _for_mode(model, mode)

  def update(state, key, active):
    """One candidate's step: `(state, metrics, finite)`."""
    def step(state):
      new_state, step_metrics = train.apply_update(model, state, graph,
                                                   batch, key)
      finite = (jnp.isfinite(step_metrics['loss']) &
                _all_finite(new_state.params))
      # A diverging candidate keeps its last finite state. Selecting here,
      # per candidate, avoids a second population-sized copy of the state.
      new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                               new_state, state)
      return new_state, step_metrics, finite

    def skip(state):
      _, zeros, _ = jax.tree.map(jnp.zeros_like, jax.eval_shape(step, state))
      return state, zeros, jnp.ones((), bool)

    if mode == 'vmap':
      # Vectorised, an inactive candidate is computed, then discarded.
      # Its metrics are zeroed as under 'map': a failed candidate's would
      # otherwise be its non-finite loss, every step after it failed.
      new_state, step_metrics, finite = step(state)
      new_state = jax.tree.map(lambda new, old: jnp.where(active, new, old),
                               new_state, state)
      step_metrics = jax.tree.map(lambda m: jnp.where(active, m, 0),
                                  step_metrics)
      return new_state, step_metrics, finite
    # One after the other, an inactive candidate costs nothing.
    return jax.lax.cond(active, step, skip, state)

  state, step_metrics, finite = _over_candidates(
      update, mode, population.state, keys, population.active)
  return population.replace(
      state=state, active=population.active & finite,
      failed=population.failed | (population.active & ~finite)), step_metrics


train_step = jax.jit(step_population, static_argnames=('model', 'mode'),
                     donate_argnames=('population',))
train_step.__doc__ = 'Jitted `step_population` on one device.'


CANDIDATE_AXIS = 'candidates'


def candidate_mesh(devices: Sequence[jax.Device] | None = None
                   ) -> jax.sharding.Mesh:
  """A one-axis mesh over `devices` (default: all) for the candidates."""
  devices = list(devices) if devices is not None else jax.devices()
  return jax.sharding.Mesh(np.array(devices), (CANDIDATE_AXIS,))


def pad_population(population: Population, keys: jax.Array,
                   multiple: int) -> tuple[Population, jax.Array]:
  """Pads P up to a multiple with inactive copies of the first candidate.

  Padding candidates never train and are never reported; they let P
  candidates shard evenly over `multiple` devices.
  """
  missing = -population.size % multiple
  if not missing:
    return population, keys

  def pad(x):
    return jnp.concatenate([x, jnp.repeat(x[:1], missing, axis=0)])

  padded = jax.tree.map(pad, population)
  active = padded.active.at[population.size:].set(False)
  return padded.replace(active=active), pad(keys)


def sharded_train_step(model: models.GNNRecommender,
                       mesh: jax.sharding.Mesh, mode: str | None = None):
  """`train_step` with the candidate axis split over the mesh's devices.

  Each device steps its own candidates (`shard_map`); the graph and the
  mini-batch are replicated. The population's size must be a multiple of
  the device count (see `pad_population`). Multi-host: call
  `jax.distributed.initialize()` first and build the mesh over
  `jax.devices()`, which then spans every host.

  Returns:
    A jitted `(population, graph, batch, keys) -> (population, metrics)`.
  """
  spec = jax.sharding.PartitionSpec(CANDIDATE_AXIS)
  replicated = jax.sharding.PartitionSpec()

  mode = _resolve(mode)

  def local_step(population, graph, batch, keys):
    return step_population(model, population, graph, batch, keys, mode)

  # check_vma=False: the CSR product's custom VJP mixes replicated graph
  # arrays with per-device features, which the varying-axes type check of
  # shard_map does not follow through custom rules.
  sharded = jax.shard_map(
      local_step, mesh=mesh, in_specs=(spec, replicated, replicated, spec),
      out_specs=(spec, spec), check_vma=False)
  return jax.jit(sharded, donate_argnums=0)


@functools.partial(jax.jit, static_argnames=('model', 'ks', 'mode'))
def _per_user_metrics(model, params, archs, graph, task, popularity, ks,
                      mode):
  model = _for_mode(model, mode)

  def one(params, arch):
    user_reps, item_reps = train.user_item_representations(
        model, params, graph, arch)
    return metrics_lib.per_user_metrics(user_reps, item_reps, task,
                                        popularity, ks)
  return _over_candidates(one, mode, params, archs)


def evaluate(model: models.GNNRecommender, population: Population,
             graph: graph_lib.BipartiteGraph, task: metrics_lib.RankingTask,
             popularity: jax.Array, ks: Sequence[int] = (10, 20),
             mode: str | None = None) -> list[dict[str, float]]:
  """Each candidate's full-ranking metrics (as `train.evaluate` gives).

  Under 'vmap', memory grows with `P * task batch size * I` scores: build
  the task with a batch size that fits.
  """
  ks = metrics_lib.check_cutoffs(ks, task.num_items)
  mode = _resolve(mode)
  per_user, coverage = _per_user_metrics(
      model, population.state.params, population.state.arch, graph, task,
      jnp.asarray(popularity, jnp.float32), ks, mode)
  return [metrics_lib.summarise(
      jax.tree.map(lambda x, i=i: x[i], per_user), coverage[i], task, ks)
          for i in range(population.size)]


# Decisions a depth-0 architecture still reads; every other one is inactive
# there and canonical, so all depth-0 architectures of a width share a shape.
_DEPTH_FREE = ('width', 'decoder', 'temperature', 'loss', 'lr', 'l2')


def program_shape(arch: space.Architecture,
                  within: models.ModelShape) -> models.ModelShape:
  """The shape of the program that trains `arch` among others like it.

  It takes the architecture's own width, depth and loss, the concatenating
  readout or the others, and attention only when one of its layers attends;
  every other decision keeps the choices of `within` (the search's shape),
  so architectures that differ only in those share one program. These are
  the choices that cost a candidate most when a program carries them for
  it: the widest width, unused layers, a concatenation's wider output,
  attention's edge operands in every layer's branch, and the loss switch
  (each measured at 1.3x to 3x of the architecture's own program per step
  on MovieLens-100K, the switch at 1.5x to 2x for a BPR candidate).

  Raises:
    ValueError: `within` does not cover `arch`.
  """
  if not within.covers(arch):
    raise ValueError(f'Architecture {arch} is outside the model shape the '
                     'population was given.')
  arch = arch.canonical()
  choices = []
  for name, values in within.choices:
    if arch.layers == 0 and name not in _DEPTH_FREE:
      value = getattr(arch, name)
      values = value if isinstance(value, tuple) else (value,)
    elif name in ('width', 'layers', 'loss'):
      values = (getattr(arch, name),)
    elif name == 'readout':
      concat = arch.readout == 'concat'
      values = tuple(v for v in values if (v == 'concat') == concat)
    elif name == 'agg' and 'gat' not in arch.agg:
      values = tuple(v for v in values if v != 'gat')
    choices.append((name, values))
  return models.ModelShape(tuple(choices))


def padded_size(size: int, multiple: int = 1) -> int:
  """`size` rounded up to a power of two, then to a multiple of `multiple`.

  Groups are padded to these sizes so that the programs a search compiles
  are bounded by (program shapes) x (powers of two up to its population).
  """
  power = 1 << max(0, size - 1).bit_length()
  return -(-power // multiple) * multiple


@dataclasses.dataclass
class _Group:
  """Candidates that share one program."""
  model: models.GNNRecommender
  # [padded size] the position of each slot's candidate, -1 for an empty
  # slot (padding, never trained nor reported).
  slots: np.ndarray
  population: Population  # One candidate per slot, empty slots inactive.
  keys: jax.Array  # [padded size] training keys.
  # False once no candidate of the group trains (known on the host, so that
  # `step` skips the group without waiting for the device).
  live: bool = True

  def filled(self) -> tuple[np.ndarray, np.ndarray]:
    """`(slot indices, positions)` of the slots that hold a candidate."""
    (where,) = np.nonzero(self.slots >= 0)
    return where, self.slots[where]


# XLA keeps each compiled program's machine code mapped into the process
# for as long as the program is cached, and a multi-fidelity search meets
# hundreds of (shape, padded size) programs, each a few hundred maps: on
# ML-100K with refills a search reached the kernel's limit on memory maps
# (vm.max_map_count, 65530 by default) in its third round and aborted in
# LLVM ("Unable to allocate section memory"). Before a new program
# compiles, every cache is emptied once the process holds more than
# MAX_MAP_SHARE of its limit of maps (where the system says, as Linux
# does) or MAX_CACHED_PROGRAMS programs; live groups recompile on their
# next step. Both bounds stay far above what one round keeps live.
MAX_MAP_SHARE = 0.5
MAX_CACHED_PROGRAMS = 512
_cached_programs: set[tuple[models.GNNRecommender, int]] = set()


def memory_maps() -> tuple[int, int] | None:
  """`(memory maps the process holds, the system's limit)`, or None where
  the system does not say (outside Linux)."""
  try:
    with open('/proc/self/maps', 'rb') as maps:
      used = sum(1 for _ in maps)
    with open('/proc/sys/vm/max_map_count') as limit:
      return used, int(limit.read())
  except (OSError, ValueError):
    return None


def _compiling(model: models.GNNRecommender, size: int) -> None:
  """Notes that the programs of `model` at population `size` are about to
  be used, emptying JAX's caches first when they hold too much."""
  key = (model, size)
  if key in _cached_programs:
    return
  maps = memory_maps()
  if (len(_cached_programs) >= MAX_CACHED_PROGRAMS
      or (maps is not None and maps[0] > MAX_MAP_SHARE * maps[1])):
    logging.info('Emptying the caches of %d compiled population programs '
                 '(memory maps: %s).', len(_cached_programs),
                 'unknown' if maps is None else f'{maps[0]} of {maps[1]}')
    clear_compiled()
  _cached_programs.add(key)


def clear_compiled() -> None:
  """Empties every cache of compiled programs (JAX's and this module's):
  what runs next compiles afresh, as in a new process."""
  jax.clear_caches()
  _sharded_step.cache_clear()
  _cached_programs.clear()


@functools.lru_cache(maxsize=None)
def _sharded_step(model: models.GNNRecommender, mode: str, devices: int):
  """One sharded step per model, built once so its compilations are kept."""
  del devices  # Part of the cache key only: the mesh spans all devices.
  return sharded_train_step(model, candidate_mesh(), mode)


class GroupedPopulation:
  """A round's candidates, grouped by `program_shape` and trained together.

  Every group is a `Population` with its own compiled step; all see the same
  mini-batches. Steps are cached by (shape, padded size, mode), across rounds
  and searches of one process, until the caches hold too much (see
  `MAX_MAP_SHARE`). Candidates added later (`add`) take the
  slots of stopped ones in programs of their shape.

  Attributes:
    size: the candidates so far (P, then more as `add` adds them); each
      keeps its position in `0..size-1`.
    mode: 'map' or 'vmap'.
    groups: the groups, in order of their first member.
  """

  def __init__(self, num_users: int, num_items: int,
               within: models.ModelShape, graph: graph_lib.BipartiteGraph,
               archs: Sequence[space.Architecture], init_keys: jax.Array,
               train_keys: jax.Array, mode: str | None = None,
               grouped: bool = True,
               optimizer: optax.GradientTransformation | None = None):
    """Initialises every candidate.

    Args:
      num_users: U.
      num_items: I.
      within: a shape covering every architecture (the search's).
      graph: the training graph.
      archs: the P candidates.
      init_keys: `[P]` initialisation keys.
      train_keys: `[P]` training keys.
      mode: 'map' or 'vmap'; None picks the platform's default.
      grouped: False trains all candidates in one program of shape `within`
        (the superset), to measure what grouping saves.
      optimizer: `train.create_optimizer`'s; None takes its defaults.
    """
    self.num_users, self.num_items = num_users, num_items
    self.within, self.grouped = within, grouped
    self.optimizer = optimizer or train.create_optimizer()
    self.size = 0
    self.mode = _resolve(mode)
    self.graph = graph
    self.devices = jax.device_count()
    self.groups = []
    # Whether the candidates whose slots were taken by later ones failed.
    self._replaced_failed: dict[int, bool] = {}
    self._new_groups(list(archs), np.arange(len(archs)), init_keys,
                     train_keys)
    self.size = len(archs)

  def _shape(self, arch: space.Architecture) -> models.ModelShape:
    if self.grouped:
      return program_shape(arch, self.within)
    if not self.within.covers(arch):
      raise ValueError(f'Architecture {arch} is outside the model shape '
                       'the population was given.')
    return self.within

  def _new_groups(self, archs, positions, init_keys, train_keys) -> None:
    """Groups for `archs` at `positions`, one per program shape."""
    by_shape: dict[models.ModelShape, list[int]] = {}
    for index, arch in enumerate(archs):
      by_shape.setdefault(self._shape(arch), []).append(index)
    for shape, members in by_shape.items():
      model = models.GNNRecommender(self.num_users, self.num_items, shape)
      padded = padded_size(len(members), self.devices)
      _compiling(model, padded)
      # Padding repeats the first member; it never trains nor reports.
      rows = np.array(members + members[:1] * (padded - len(members)))
      population = init_population(
          model, self.optimizer, self.graph,
          encode([archs[r] for r in rows]), init_keys[rows])
      population = population.replace(
          active=population.active.at[len(members):].set(False))
      slots = np.full(padded, -1)
      slots[:len(members)] = np.asarray(positions)[members]
      self.groups.append(_Group(model, slots, population,
                                train_keys[rows]))

  def add(self, archs: Sequence[space.Architecture], init_keys: jax.Array,
          train_keys: jax.Array) -> np.ndarray:
    """Adds candidates that start training now.

    Each takes the slot of a stopped candidate (or an empty one) in a group
    of its program shape where there is one, so that it trains in a
    program compiled already; the others form new groups. A stopped
    candidate whose slot is taken keeps its `failed` flag.

    Args:
      archs: the n new candidates.
      init_keys: `[n]` initialisation keys.
      train_keys: `[n]` training keys.

    Returns:
      `[n]` their positions, `size..size+n-1`.
    """
    positions = np.arange(self.size, self.size + len(archs))
    self.size += len(archs)
    free: dict[models.ModelShape, list[tuple[_Group, int]]] = {}
    for group in self.groups:
      active = np.asarray(group.population.active)
      free.setdefault(group.model.shape, []).extend(
          (group, slot) for slot in np.flatnonzero(~active))
    leftover = []
    for index, (arch, position) in enumerate(zip(archs, positions)):
      places = free.get(self._shape(arch))
      if not places:
        leftover.append(index)
        continue
      group, slot = places.pop(0)
      if group.slots[slot] >= 0:
        self._replaced_failed[int(group.slots[slot])] = bool(
            group.population.failed[slot])
      fresh = init_population(group.model, self.optimizer, self.graph,
                              encode([arch]), init_keys[index][None])
      group.population = jax.tree.map(
          lambda full, one, at=slot: full.at[at].set(one[0]),
          group.population, fresh)
      group.keys = group.keys.at[slot].set(train_keys[index])
      group.slots[slot] = position
      group.live = True
    if leftover:
      self._new_groups([archs[i] for i in leftover], positions[leftover],
                       init_keys[np.array(leftover)],
                       train_keys[np.array(leftover)])
    return positions

  def _step_fn(self, model: models.GNNRecommender) -> Callable:
    if self.devices > 1:
      step = _sharded_step(model, self.mode, self.devices)
      return lambda population, graph, batch, keys: step(population, graph,
                                                         batch, keys)
    return functools.partial(train_step, model, mode=self.mode)

  def step(self, batch: train.Batch) -> None:
    """One step of every active candidate on the shared `batch`.

    A group none of whose candidates trains is skipped: its step would
    compute every one of them only to discard the result (successive
    halving stops whole groups).
    """
    for group in self.groups:
      if not group.live:
        continue
      _compiling(group.model, group.population.size)
      group.population, _ = self._step_fn(group.model)(
          group.population, self.graph, batch, group.keys)

  def _gather(self, field: str) -> np.ndarray:
    values = np.zeros(self.size, bool)
    if field == 'failed':
      for position, failed in self._replaced_failed.items():
        values[position] = failed
    for group in self.groups:
      flags = np.asarray(getattr(group.population, field))
      where, positions = group.filled()
      values[positions] = flags[where]
      if field == 'active':
        # Steps only stop candidates (divergence), so a group seen without
        # an active one stays so until `add` fills a slot.
        group.live = bool(flags.any())
    return values

  @property
  def active(self) -> np.ndarray:
    """`[P]` bool: candidates still training."""
    return self._gather('active')

  @property
  def failed(self) -> np.ndarray:
    """`[P]` bool: candidates that diverged."""
    return self._gather('failed')

  def keep(self, keep: np.ndarray) -> None:
    """Stops every candidate whose entry of the `[size]` bool `keep` is
    False."""
    keep = np.asarray(keep, bool)
    for group in self.groups:
      population = group.population
      mask = np.zeros(population.size, bool)
      where, positions = group.filled()
      mask[where] = keep[positions]
      group.population = population.replace(
          active=population.active & jnp.asarray(mask))
      group.live = group.live and bool(mask.any())

  def candidate(self, position: int) -> tuple[models.GNNRecommender,
                                               train.TrainState]:
    """The model and training state of candidate `position`."""
    for group in self.groups:
      (where,) = np.nonzero(group.slots == position)
      if where.size:
        return group.model, jax.tree.map(lambda x: x[where[0]],
                                         group.population.state)
    raise IndexError(f'No candidate {position} among the {self.size} '
                     '(or its slot was taken by a later one).')

  def evaluate(self, task: metrics_lib.RankingTask, popularity: jax.Array,
               ks: Sequence[int] = (10, 20)) -> list[dict[str, float]]:
    """Each candidate's full-ranking metrics, in the round's order; `{}`
    for the candidates of groups that no longer train and for those whose
    slot a later one took."""
    results: list[dict[str, float]] = [{}] * self.size
    for group in self.groups:
      if not group.live:
        continue
      _compiling(group.model, group.population.size)
      scores = evaluate(group.model, group.population, self.graph, task,
                        popularity, ks, self.mode)
      for slot, position in zip(*group.filled()):
        results[position] = scores[slot]
    return results
