"""Full-ranking evaluation: every item is ranked for every evaluated user.

For each user with at least one held-out (target) item, all items are scored,
the excluded ones (training items; for testing also validation items) get
score -inf, and the top K of the rest are compared with the targets:

  Recall@K    = hits@K / |targets|
  Precision@K = hits@K / K
  HitRate@K   = 1 if hits@K > 0
  NDCG@K      = DCG@K / IDCG@K, DCG@K = sum over ranks r <= K of
                rel_r / log2(r + 1), IDCG over min(|targets|, K) hits
  MRR@K       = 1 / (rank of the first hit), 0 if none within K

averaged over the evaluated users. Two catalogue measures complete them:
Coverage@K, the share of items recommended to at least one user, and
MeanPop@K, the mean training popularity (interaction count) of recommended
items. Ties are broken towards the lower item id (`lax.top_k`'s rule).

Users are ranked in fixed-size batches on the device, so memory is bounded
by `batch_size * num_items` scores whatever the number of users, and one
compiled program evaluates every batch.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

RANKING_METRICS = ('recall', 'ndcg', 'precision', 'hit', 'mrr')
CATALOGUE_METRICS = ('coverage', 'mean_popularity')


@flax.struct.dataclass
class RankingTask:
  """Users to rank with their excluded and target items, in batches.

  Pairs are `(row in batch, item)`; padding pairs use row `batch_size`, which
  scatters out of range and is dropped.

  Attributes:
    users: `[num_batches, batch_size]` int32 user ids (0 where padding).
    user_mask: `[num_batches, batch_size]` bool, False for padding.
    excluded: `[num_batches, max_excluded, 2]` int32 pairs never ranked.
    targets: `[num_batches, max_targets, 2]` int32 held-out pairs.
    num_targets: `[num_batches, batch_size]` int32 targets per user.
    num_items: I (static).
  """
  users: jax.Array
  user_mask: jax.Array
  excluded: jax.Array
  targets: jax.Array
  num_targets: jax.Array
  num_items: int = flax.struct.field(pytree_node=False)

  @property
  def num_users(self) -> int:
    return int(np.asarray(self.user_mask).sum())


def _batched_pairs(pairs: np.ndarray, slot_of_user: np.ndarray,
                   batch_size: int, num_batches: int) -> np.ndarray:
  """Groups `(user, item)` pairs by batch as `(row, item)`, padded."""
  slot = slot_of_user[pairs[:, 0]]
  keep = slot >= 0
  slot, items = slot[keep], pairs[keep, 1]
  batch, row = slot // batch_size, slot % batch_size
  counts = np.bincount(batch, minlength=num_batches)
  width = max(int(counts.max(initial=0)), 1)
  out = np.zeros((num_batches, width, 2), np.int32)
  out[:, :, 0] = batch_size  # Padding rows are dropped by the scatter.
  order = np.argsort(batch, kind='stable')
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  position = np.arange(order.size) - starts[batch[order]]
  out[batch[order], position, 0] = row[order]
  out[batch[order], position, 1] = items[order]
  return out


def build_ranking_task(num_users: int, num_items: int,
                       excluded: Sequence[np.ndarray], targets: np.ndarray,
                       batch_size: int = 1024,
                       missed: np.ndarray | None = None) -> RankingTask:
  """Builds the evaluation batches for a split.

  Args:
    num_users: U.
    num_items: I.
    excluded: arrays of `[n, 2]` (user, item) pairs never ranked (e.g. the
      training pairs, and for testing the validation pairs too).
    targets: `[n, 2]` (user, item) held-out pairs; users without any are not
      evaluated.
    batch_size: users scored at once (memory: `batch_size * I` floats).
    missed: `[U]` held-out items per user that cannot be ranked (absent from
      the catalogue, `Dataset.test_missed`): they count among the user's
      relevant items and are never hit. A user with only such items is
      evaluated, and scores zero.

  Returns:
    The task, on the default device.
  """
  targets = np.asarray(targets, np.int64).reshape(-1, 2)
  missed = (np.zeros(num_users, np.int64) if missed is None
            else np.asarray(missed, np.int64))
  users = np.union1d(targets[:, 0], np.flatnonzero(missed))
  num_batches = max(1, math.ceil(users.size / batch_size))
  slot_of_user = np.full(num_users, -1, np.int64)
  slot_of_user[users] = np.arange(users.size)
  padded_users = np.zeros(num_batches * batch_size, np.int32)
  padded_users[:users.size] = users
  mask = np.arange(num_batches * batch_size) < users.size
  counts = np.bincount(targets[:, 0], minlength=num_users) + missed
  excluded = np.concatenate(
      [np.asarray(e, np.int64).reshape(-1, 2) for e in excluded] or
      [np.zeros((0, 2), np.int64)])
  shape = (num_batches, batch_size)
  return RankingTask(
      users=jnp.asarray(padded_users.reshape(shape)),
      user_mask=jnp.asarray(mask.reshape(shape)),
      excluded=jnp.asarray(_batched_pairs(excluded, slot_of_user, batch_size,
                                          num_batches)),
      targets=jnp.asarray(_batched_pairs(targets, slot_of_user, batch_size,
                                         num_batches)),
      num_targets=jnp.asarray(
          np.where(mask, counts[padded_users], 0).reshape(shape), jnp.int32),
      num_items=num_items)


def topk_metrics(scores: jax.Array, relevant: jax.Array,
                 num_relevant: jax.Array,
                 ks: Sequence[int]) -> tuple[dict[str, jax.Array], jax.Array]:
  """Ranking metrics of each row's top items.

  Args:
    scores: `[B, I]` scores, -inf for excluded items.
    relevant: `[B, I]` bool, True for held-out items.
    num_relevant: `[B]` number of held-out items per row.
    ks: cut-offs.

  Returns:
    (metrics, top_items): `{f'{name}@{k}': [B]}` for each name of
    `RANKING_METRICS`, and the `[B, max(ks)]` int32 ranked item ids.
  """
  max_k = max(ks)
  top_scores, top_items = jax.lax.top_k(scores, max_k)
  # Excluded items (score -inf) only reach the top when a user has fewer
  # than K rankable items; they are never relevant.
  hits = jnp.take_along_axis(relevant, top_items, axis=1)
  hits = (hits & jnp.isfinite(top_scores)).astype(jnp.float32)
  ranks = jnp.arange(1, max_k + 1, dtype=jnp.float32)
  discounts = 1.0 / jnp.log2(ranks + 1.0)
  ideal = jnp.cumsum(discounts)
  num_relevant = num_relevant.astype(jnp.float32)
  safe_relevant = jnp.maximum(num_relevant, 1.0)
  first_hit = jnp.argmax(hits, axis=1)
  any_hit_cumulative = jnp.cumsum(hits, axis=1) > 0
  metrics = {}
  for k in ks:
    hits_k = hits[:, :k].sum(axis=1)
    dcg = (hits[:, :k] * discounts[:k]).sum(axis=1)
    ideal_count = jnp.clip(num_relevant, 1, k).astype(jnp.int32)
    metrics[f'recall@{k}'] = hits_k / safe_relevant
    metrics[f'precision@{k}'] = hits_k / k
    metrics[f'hit@{k}'] = (hits_k > 0).astype(jnp.float32)
    metrics[f'ndcg@{k}'] = dcg / ideal[ideal_count - 1]
    metrics[f'mrr@{k}'] = jnp.where(any_hit_cumulative[:, k - 1],
                                    1.0 / (first_hit + 1.0), 0.0)
  return metrics, top_items


def per_user_metrics(user_reps: jax.Array, item_reps: jax.Array,
                     task: RankingTask, popularity: jax.Array,
                     ks: tuple[int, ...]
                     ) -> tuple[dict[str, jax.Array], jax.Array]:
  """Every user's metrics, batch by batch on the device (pure; vmappable).

  Returns:
    (`{name: [num_batches, batch_size]}` per-user values, zero for padding;
    `[len(ks), ]` coverage at each cut-off).
  """
  num_items = item_reps.shape[0]

  def one_batch(carry, batch):
    recommended = carry
    users, mask, excluded, targets, num_targets = batch
    scores = user_reps[users] @ item_reps.T
    rows = excluded[:, 0]
    scores = scores.at[rows, excluded[:, 1]].set(-jnp.inf, mode='drop')
    relevant = jnp.zeros(scores.shape, bool).at[
        targets[:, 0], targets[:, 1]].set(True, mode='drop')
    metrics, top_items = topk_metrics(scores, relevant, num_targets, ks)
    for i, k in enumerate(ks):
      counted = mask[:, None] & (jnp.arange(top_items.shape[1]) < k)
      recommended = recommended.at[i, top_items].add(
          counted.astype(jnp.int32))
    top_popularity = popularity[top_items]
    for k in ks:
      metrics[f'mean_popularity@{k}'] = top_popularity[:, :k].mean(axis=1)
    return recommended, metrics

  recommended = jnp.zeros((len(ks), num_items), jnp.int32)
  recommended, per_user = jax.lax.scan(
      one_batch, recommended,
      (task.users, task.user_mask, task.excluded, task.targets,
       task.num_targets))
  coverage = (recommended > 0).mean(axis=1)
  return per_user, coverage


def evaluate_ranking(user_reps: jax.Array, item_reps: jax.Array,
                     task: RankingTask, popularity: jax.Array,
                     ks: Sequence[int] = (10, 20)) -> dict[str, float]:
  """Mean full-ranking metrics over the task's users.

  Args:
    user_reps: `[U, D]` user representations.
    item_reps: `[I, D]` item representations (score = dot product).
    task: the users to rank with their excluded and target items.
    popularity: `[I]` training interaction count of each item.
    ks: cut-offs.

  Returns:
    `{f'{name}@{k}': value}` for `RANKING_METRICS` and `CATALOGUE_METRICS`.
  """
  ks = check_cutoffs(ks, task.num_items)
  per_user, coverage = _per_user_metrics(
      user_reps, item_reps, task, jnp.asarray(popularity, jnp.float32), ks)
  return summarise(per_user, coverage, task, ks)


def check_cutoffs(ks, num_items: int) -> tuple[int, ...]:
  """The sorted distinct cut-offs, if each lies in [1, num_items]."""
  ks = tuple(sorted(set(int(k) for k in ks)))
  if ks[0] < 1 or ks[-1] > num_items:
    raise ValueError(f'Cut-offs must lie in [1, {num_items}] (the '
                     f'number of items); got {ks}.')
  return ks


def summarise(per_user: dict[str, jax.Array], coverage: jax.Array,
              task: RankingTask, ks: tuple[int, ...]) -> dict[str, float]:
  """Means over the task's users of `per_user_metrics`' output."""
  mask = np.asarray(task.user_mask)
  results = {name: float(np.asarray(values)[mask].mean())
             for name, values in per_user.items()}
  for i, k in enumerate(ks):
    results[f'coverage@{k}'] = float(coverage[i])
  return dict(sorted(results.items()))


_per_user_metrics = jax.jit(per_user_metrics, static_argnames=('ks',))
