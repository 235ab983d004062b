"""The pure pieces of training one recommender.

A mini-batch (`Batch`) from `BatchSampler`, the state (`TrainState`, in the
manner of `flax.training.train_state`), the optimizer (`create_optimizer`),
the loss, and one unjitted update (`apply_update`) that `train_step` jits
for one model and `gnas_jax.population` maps over candidates. The loop
around them (early stopping, evaluation, checkpoints, summaries) is
`gnas_jax.driver`'s.

The protocol is LightGCN's: every step propagates over the full training
graph, scores a mini-batch of (user, positive, negatives) triples, and
minimises BPR (or sampled softmax) plus L2 on the batch's layer-0
embeddings, with Adam. Sampled softmax draws its negatives per positive
('softmax', 'softmax-N') or once per mini-batch for all of its positives
('shared-softmax-N'): scoring those is one `[B, D] x [D, N]` product
instead of a gather of `[B, N, D]` rows, so it affords far more
negatives.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gnas_jax import graph as graph_lib
from gnas_jax import metrics as metrics_lib
from gnas_jax import models
from gnas_jax import space


def create_optimizer(config: ml_collections.ConfigDict | None = None
                     ) -> optax.GradientTransformation:
  """Adam with `config.optimizer`'s betas and epsilon (Adam's defaults
  without it).

  The learning rate lives in the optimizer state (`inject_hyperparams`), so
  that it can differ per architecture, and per candidate of a population,
  inside one program; `create_train_state` sets it from the architecture.
  Equal settings give the same object, so programs compiled for one are
  reused for the other.
  """
  options = config.get('optimizer') if config is not None else None
  options = options or {}
  return _adam(float(options.get('b1', 0.9)), float(options.get('b2', 0.999)),
               float(options.get('eps', 1e-8)))


@functools.cache
def _adam(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
  return optax.inject_hyperparams(optax.adam)(learning_rate=1e-3, b1=b1,
                                              b2=b2, eps=eps)


@flax.struct.dataclass
class Batch:
  """A mini-batch of training triples shared by every model trained on it.

  Attributes:
    users: `[B]` int32 user ids.
    positives: `[B]` int32 item ids the users interacted with in training.
    negatives: `[B, K]` int32 item ids they did not; a loss scores the
      first of them, as many as it takes (`loss_negatives`).
    protocol_negatives: how many of them the 'softmax' loss (the training
      protocol's count) scores; None: all K. Static, not a pytree leaf.
    shared_negatives: `[S]` int32 item ids drawn uniformly for the whole
      batch; a 'shared-softmax-N' loss scores the first N against every
      positive. None where no loss scores them.
  """
  users: jax.Array
  positives: jax.Array
  negatives: jax.Array
  protocol_negatives: int | None = flax.struct.field(pytree_node=False,
                                                     default=None)
  shared_negatives: jax.Array | None = None

# The prefix of the losses whose negatives a mini-batch shares.
_SHARED = 'shared-softmax-'


def loss_negatives(loss: str, protocol_negatives: int) -> int:
  """How many sampled negatives per positive the loss `loss` scores: one
  for 'bpr', N for 'softmax-N', `protocol_negatives`
  (`config.num_negatives`) for 'softmax' and none for 'shared-softmax-N'
  (`loss_shared_negatives`)."""
  if loss == 'bpr':
    return 1
  if loss.startswith(_SHARED):
    return 0
  _, _, count = loss.partition('-')
  return int(count) if count else protocol_negatives


def loss_shared_negatives(loss: str) -> int:
  """How many negatives shared by its mini-batch the loss `loss` scores: N
  for 'shared-softmax-N', none for the others."""
  return int(loss[len(_SHARED):]) if loss.startswith(_SHARED) else 0


def negatives_to_draw(choices: Mapping[str, Sequence[Any]],
                      protocol_negatives: int) -> int:
  """The negatives per positive a batch shared by every architecture of
  `choices` (a `space.subspace` dict) must hold: the most any of their
  losses scores, and at least `protocol_negatives`."""
  return max([protocol_negatives] + [
      loss_negatives(loss, protocol_negatives) for loss in choices['loss']])


def shared_negatives_to_draw(choices: Mapping[str, Sequence[Any]]) -> int:
  """The negatives per mini-batch a batch shared by every architecture of
  `choices` must hold: the most any of their losses scores."""
  return max(loss_shared_negatives(loss) for loss in choices['loss'])


SAMPLINGS = ('pairs', 'users')


class BatchSampler:
  """Draws an epoch's training triples: (user, positive, negatives).

  `sampling` says how the (user, positive) pairs are drawn:

  * 'pairs': every training pair once per epoch, in a shuffled order;
  * 'users': LightGCN's sampler: a user drawn uniformly from those with
    training pairs, then one of their training items, as many times as
    there are pairs (so light users weigh as much as heavy ones).

  Negatives are uniform over the items a user has *not* interacted with in
  training (rejection sampling against the sorted training pairs). The
  negatives shared by a mini-batch are uniform over all items, drawn after
  the rest (the loss masks a user's own positive among them; another of
  their training items stays a negative, as in a full softmax). Epoch `e`
  draws from `np.random.default_rng((seed, e))`, so a resumed run samples
  exactly what an uninterrupted one would.
  """

  def __init__(self, train: np.ndarray, num_items: int, batch_size: int,
               num_negatives: int, seed: int, sampling: str = 'pairs',
               protocol_negatives: int | None = None,
               shared_negatives: int = 0):
    """
    Args:
      train: `[N, 2]` training (user, item) pairs.
      num_items: I.
      batch_size: B.
      num_negatives: K, the negatives drawn per positive.
      seed: the seed of every epoch's draw.
      sampling: how the pairs are drawn (`SAMPLINGS`).
      protocol_negatives: `Batch.protocol_negatives` (at most K).
      shared_negatives: S, the negatives drawn per mini-batch (0: none).
    """
    if sampling not in SAMPLINGS:
      raise ValueError(f'config.sampling={sampling!r} is not allowed: it '
                       f'must be one of {", ".join(SAMPLINGS)}.')
    self.train = np.asarray(train, np.int64)
    self.num_items = num_items
    self.batch_size = batch_size
    self.num_negatives = num_negatives
    if protocol_negatives is not None and protocol_negatives > num_negatives:
      raise ValueError(
          f'A batch of {num_negatives} negatives per positive cannot hold '
          f'the protocol\'s {protocol_negatives}.')
    self.protocol_negatives = protocol_negatives
    self.shared_negatives = shared_negatives
    self.seed = seed
    self.sampling = sampling
    self._keys = np.sort(self.train[:, 0] * num_items + self.train[:, 1])
    degrees = np.bincount(self.train[:, 0])
    if degrees.size and degrees.max() >= num_items:
      user = int(np.argmax(degrees))
      raise ValueError(
          f'User {user} interacted with all {num_items} items in training; '
          'no negative item can be sampled for it.')
    # Each user's training items, contiguous: `_items[_starts[u]:][:deg]`.
    self._by_user = self.train[np.argsort(self.train[:, 0], kind='stable')]
    self._users = np.flatnonzero(degrees)
    self._degrees = degrees
    self._starts = np.concatenate([[0], np.cumsum(degrees)[:-1]])

  @property
  def steps_per_epoch(self) -> int:
    return max(1, math.ceil(len(self.train) / self.batch_size))

  def _is_training_pair(self, users, items):
    keys = users * self.num_items + items
    where = np.searchsorted(self._keys, keys)
    where = np.minimum(where, self._keys.size - 1)
    return self._keys[where] == keys

  def epoch(self, epoch: int) -> Batch:
    """All batches of an epoch as numpy arrays with a leading step axis."""
    rng = np.random.default_rng((self.seed, epoch))
    steps, size = self.steps_per_epoch, self.batch_size
    if self.sampling == 'pairs':
      order = rng.permutation(len(self.train))
      # Fill the last batch with extra random pairs: every step has one
      # shape.
      extra = rng.integers(0, len(self.train), steps * size - order.size)
      pairs = self.train[np.concatenate([order, extra])]
    else:
      users = self._users[rng.integers(0, self._users.size, steps * size)]
      offsets = (rng.random(users.size) * self._degrees[users]).astype(
          np.int64)
      pairs = self._by_user[self._starts[users] + offsets]
    users = np.repeat(pairs[:, 0:1], self.num_negatives, axis=1)
    negatives = rng.integers(0, self.num_items, users.shape)
    redraw = self._is_training_pair(users, negatives)
    while redraw.any():
      negatives[redraw] = rng.integers(0, self.num_items, redraw.sum())
      redraw[redraw] = self._is_training_pair(users[redraw],
                                              negatives[redraw])
    shared = None
    if self.shared_negatives:
      shared = rng.integers(0, self.num_items,
                            (steps, self.shared_negatives)).astype(np.int32)
    return Batch(
        users=pairs[:, 0].reshape(steps, size).astype(np.int32),
        positives=pairs[:, 1].reshape(steps, size).astype(np.int32),
        negatives=negatives.reshape(steps, size, -1).astype(np.int32),
        protocol_negatives=self.protocol_negatives,
        shared_negatives=shared)


@flax.struct.dataclass
class TrainState:
  """Everything that changes while a model trains.

  Attributes:
    step: scalar int32 count of applied updates.
    params: the model's parameters.
    opt_state: `tx`'s state (with the learning rate as a hyperparameter).
    arch: `[space.NUM_DECISIONS]` int32 encoded architecture.
    tx: the optimizer (`create_optimizer`); static, not a pytree leaf.
  """
  step: jax.Array
  params: Any
  opt_state: Any
  arch: jax.Array
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  def apply_gradients(self, grads) -> TrainState:
    """The state after one optimizer update with `grads`."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    return self.replace(step=self.step + 1,
                        params=optax.apply_updates(self.params, updates),
                        opt_state=opt_state)


def create_train_state(model: models.GNNRecommender,
                       optimizer: optax.GradientTransformation,
                       graph: graph_lib.BipartiteGraph, arch: jax.Array,
                       key: jax.Array) -> TrainState:
  """Initial parameters and optimizer state for an encoded architecture,
  with the architecture's learning rate. Unjitted: `init_state` jits it and
  the population maps it over candidates."""
  params = model.init(key, graph, arch)
  opt_state = optimizer.init(params)
  opt_state.hyperparams['learning_rate'] = models.arch_value(arch, 'lr')
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=opt_state, arch=arch, tx=optimizer)


init_state = jax.jit(create_train_state,
                     static_argnames=('model', 'optimizer'))


def recommendation_loss(params, arch: jax.Array, reps: jax.Array,
                        batch: Batch, num_users: int,
                        losses: Sequence[str] | None = None,
                        vectorised: bool = False
                        ) -> tuple[jax.Array, dict[str, Any]]:
  """The architecture's ranking loss plus L2 on layer-0 embeddings.

  BPR uses the first negative: `-log sigmoid(s(u, p) - s(u, n))`. Sampled
  softmax uses the first k: `-log softmax([s(u, p), s(u, n_1..k)])_0`, with
  k = N for 'softmax-N' and the batch's `protocol_negatives` (or all K) for
  'softmax'; 'shared-softmax-N' uses the first N of the batch's shared
  negatives for every positive, leaving out those that are the positive
  itself. The L2 term is `l2 / 2 * (|e_u|^2 + |e_p|^2 + |e_n|^2) / B`
  over the layer-0 embeddings of the batch (LightGCN's convention), with
  the negatives each positive's loss drew (all N shared ones for
  'shared-softmax-N').

  Args:
    params: model parameters.
    arch: encoded architecture.
    reps: `[N, D]` node representations from the model.
    batch: the triples.
    num_users: U (items are nodes `U + item`).
    losses: the losses that can occur (a model shape's); only the
      architecture's own is computed, unless `vectorised`. None: every
      loss whose negatives the batch holds.
    vectorised: select rather than branch (see `models.select`).

  Returns:
    (total loss, {'loss', 'ranking_loss', 'l2_loss'}).
  """
  users = reps[batch.users]
  positive_scores = jnp.sum(users * reps[num_users + batch.positives], -1)
  # A population shares one batch, drawn for the loss that scores the most
  # negatives; each loss gathers its first ones.
  drawn = batch.negatives.shape[-1]
  protocol = batch.protocol_negatives or drawn
  shared_drawn = (0 if batch.shared_negatives is None else
                  batch.shared_negatives.shape[-1])
  if losses is None:
    losses = [loss for loss in space.DECISION_BY_NAME['loss'].choices
              if loss_negatives(loss, protocol) <= drawn
              and loss_shared_negatives(loss) <= shared_drawn]

  # Squared norms of every node's layer-0 embedding, gathered per row: a
  # gather of scalars (and a scatter of scalars under autodiff) where
  # gathering the [B, K, D] rows themselves would double the cost of
  # sampled softmax's negatives.
  squared_norms = models.layer0_squared_norms(params, arch)

  def squared(rows):
    return squared_norms[rows]

  def shared_loss_terms(name):
    count = loss_shared_negatives(name)
    if count > shared_drawn:
      raise ValueError(f'Loss {name!r} scores {count} negatives per '
                       f'mini-batch; the batch holds {shared_drawn}.')
    negatives = batch.shared_negatives[:count]
    negative_scores = users @ reps[num_users + negatives].T
    # A positive's own item among the shared negatives is no negative.
    negative_scores = jnp.where(
        negatives[None, :] == batch.positives[:, None], -1e9,
        negative_scores)
    logits = jnp.concatenate([positive_scores[:, None], negative_scores], 1)
    per_example = -jax.nn.log_softmax(logits, axis=-1)[:, 0]
    negative_l2 = squared(num_users + negatives).sum()
    return per_example, jnp.broadcast_to(negative_l2, per_example.shape)

  def loss_terms(name):
    if name.startswith(_SHARED):
      return shared_loss_terms(name)
    # Each loss gathers only the negatives it scores (BPR one of the K).
    count = loss_negatives(name, protocol)
    if count > drawn:
      raise ValueError(f'Loss {name!r} scores {count} negatives per '
                       f'positive; the batch holds {drawn}.')
    negatives = batch.negatives[:, :count]
    negative_scores = jnp.einsum('bd,bkd->bk', users,
                                 reps[num_users + negatives])
    if name == 'bpr':
      per_example = -jax.nn.log_sigmoid(positive_scores -
                                        negative_scores[:, 0])
    else:
      logits = jnp.concatenate([positive_scores[:, None], negative_scores],
                               1)
      per_example = -jax.nn.log_softmax(logits, axis=-1)[:, 0]
    return per_example, squared(num_users + negatives).sum(-1)

  # Where several losses are computed and selected (`vectorised`), each is
  # rematerialised: otherwise sampled softmax's gathered negatives
  # ([B, K, D]) would be kept for every BPR model at each step. (A switch
  # rematerialises its branches itself; a single loss keeps its residuals,
  # which is cheaper than gathering them again.)
  if vectorised and len(losses) > 1:
    loss_terms = jax.checkpoint(loss_terms, static_argnums=0)
  per_example, negative_l2 = models.select(
      arch[space.index('loss')], tuple(losses),
      space.DECISION_BY_NAME['loss'].choices, loss_terms, vectorised)
  ranking = jnp.mean(per_example)
  l2 = models.arch_value(arch, 'l2') * 0.5 * jnp.mean(
      squared(batch.users) + squared(num_users + batch.positives) +
      negative_l2)
  total = ranking + l2
  return total, {'loss': total, 'ranking_loss': ranking, 'l2_loss': l2}


def apply_update(model: models.GNNRecommender, state: TrainState,
                 graph: graph_lib.BipartiteGraph, batch: Batch,
                 key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
  """One Adam step on a mini-batch; `key` is folded with the step count.

  Pure and unjitted: `train_step` jits it for one model, and the population
  engine maps it over candidates.
  """
  key = jax.random.fold_in(key, state.step)

  def loss_fn(params):
    reps = model.apply(params, graph, state.arch, train=True,
                       rngs={'dropout': key})
    return recommendation_loss(params, state.arch, reps, batch,
                               model.num_users, model.shape.values('loss'),
                               model.vectorised)

  grads, step_metrics = jax.grad(loss_fn, has_aux=True)(state.params)
  return state.apply_gradients(grads), step_metrics


train_step = jax.jit(apply_update, static_argnames=('model',),
                     donate_argnames=('state',))


def user_item_representations(model: models.GNNRecommender, params,
                              graph: graph_lib.BipartiteGraph,
                              arch: jax.Array
                              ) -> tuple[jax.Array, jax.Array]:
  """`([U, D], [I, D])` user and item representations in evaluation mode.
  Unjitted: `representations` jits it and the population maps it."""
  reps = model.apply(params, graph, arch)
  return reps[:model.num_users], reps[model.num_users:]


representations = jax.jit(user_item_representations,
                          static_argnames=('model',))


def evaluate(model: models.GNNRecommender, state: TrainState,
             graph: graph_lib.BipartiteGraph, task: metrics_lib.RankingTask,
             popularity: jax.Array, ks=(10, 20)) -> dict[str, float]:
  """Full-ranking metrics of the state's model on a task."""
  user_reps, item_reps = representations(model, state.params, graph,
                                         state.arch)
  return metrics_lib.evaluate_ranking(user_reps, item_reps, task, popularity,
                                      ks)


def metric_names(ks: Sequence[int]) -> list[str]:
  """The names `evaluate` reports at cut-offs `ks` ('ndcg@20', ...)."""
  return [f'{name}@{k}'
          for name in metrics_lib.RANKING_METRICS +
          metrics_lib.CATALOGUE_METRICS for k in ks]
