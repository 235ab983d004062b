"""A population of architectures trained at once in one compiled program.

P candidates share one model (one `ModelShape`, usually `ModelShape.full()`
so that every round of a search reuses the compiled step), one graph and
every mini-batch; their parameters, optimizer states and architectures are
pytrees with a leading candidate axis, and the single-model update of
`train.apply_update` is `vmap`ped over that axis (DESIGN.md, "Decisions that
make the population fast").

Nothing reduces across candidates: each has its own learning rate (in its
optimizer state), its own keys, and its own fate. A candidate whose loss or
parameters become non-finite is frozen at its last finite state and marked
failed, and candidates that stop early (or pad the population to a multiple
of the device count) are inactive: their state no longer changes, whatever
the others do.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

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


@functools.partial(jax.jit, static_argnames=('model',))
def init_population(model: models.GNNRecommender,
                    graph: graph_lib.BipartiteGraph, archs: jax.Array,
                    keys: jax.Array) -> Population:
  """Independent initial states, one per row of `archs` and of `keys`.

  Args:
    model: the shared model; its shape must cover every architecture.
    graph: the training graph.
    archs: `[P, space.NUM_DECISIONS]` encoded architectures.
    keys: `[P]` initialisation keys (`jax.random.split(key, P)`).

  Returns:
    The population, every candidate active.
  """
  state = jax.vmap(train.init_state.__wrapped__,
                   in_axes=(None, None, 0, 0))(model, graph, archs, keys)
  size = archs.shape[0]
  return Population(state=state, active=jnp.ones(size, bool),
                    failed=jnp.zeros(size, bool))


def _finite_per_candidate(tree) -> jax.Array:
  """`[P]` bool: every value of the candidate's slice of `tree` is finite."""
  leaves = jax.tree.leaves(tree)
  checks = [jnp.all(jnp.isfinite(x), axis=tuple(range(1, x.ndim)))
            for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)]
  return functools.reduce(jnp.logical_and, checks)


@functools.partial(jax.jit, static_argnames=('model',),
                   donate_argnames=('population',))
def train_step(model: models.GNNRecommender, population: Population,
               graph: graph_lib.BipartiteGraph, batch: train.Batch,
               keys: jax.Array) -> tuple[Population, dict[str, jax.Array]]:
  """One step of every active candidate on the shared mini-batch.

  Args:
    model: the shared model.
    population: the candidates.
    graph: the training graph.
    batch: one mini-batch, shared by every candidate.
    keys: `[P]` per-candidate training keys (each folded with its step).

  Returns:
    The updated population and `{name: [P]}` step metrics.
  """
  updated, step_metrics = jax.vmap(
      train.apply_update, in_axes=(None, 0, None, None, 0))(
          model, population.state, graph, batch, keys)
  finite = (jnp.isfinite(step_metrics['loss']) &
            _finite_per_candidate(updated.params))
  keep = population.active & finite

  def select(new, old):
    return jnp.where(keep.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

  state = jax.tree.map(select, updated, population.state)
  return population.replace(
      state=state, active=keep,
      failed=population.failed | (population.active & ~finite)), step_metrics


@functools.partial(jax.jit, static_argnames=('model', 'ks'))
def _per_user_metrics(model, params, archs, graph, task, popularity, ks):
  def one(params, arch):
    user_reps, item_reps = train.representations.__wrapped__(
        model, params, graph, arch)
    return metrics_lib.per_user_metrics(user_reps, item_reps, task,
                                        popularity, ks)
  return jax.vmap(one)(params, archs)


def evaluate(model: models.GNNRecommender, population: Population,
             graph: graph_lib.BipartiteGraph, task: metrics_lib.RankingTask,
             popularity: jax.Array,
             ks: Sequence[int] = (10, 20)) -> list[dict[str, float]]:
  """Each candidate's full-ranking metrics (as `train.evaluate` gives).

  Memory grows with `P * task batch size * I` scores: build the task with a
  batch size that fits.
  """
  ks = metrics_lib.check_cutoffs(ks, task.num_items)
  per_user, coverage = _per_user_metrics(
      model, population.state.params, population.state.arch, graph, task,
      jnp.asarray(popularity, jnp.float32), ks)
  return [metrics_lib.summarise(
      jax.tree.map(lambda x, i=i: x[i], per_user), coverage[i], task, ks)
          for i in range(population.size)]
