"""Tests for full-ranking metrics: hand-computed values and a brute force."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from gnas_jax import metrics


def test_hand_computed_single_user():
  # Item 0 is a training item; items 2 and 4 are held out. After excluding
  # item 0 the ranking is 1, 2, 3, 4: hits at ranks 2 and 4.
  item_reps = jnp.asarray([[0.9], [0.8], [0.7], [0.6], [0.5]])
  user_reps = jnp.ones((1, 1))
  task = metrics.build_ranking_task(
      1, 5, [np.array([[0, 0]])], np.array([[0, 2], [0, 4]]), batch_size=4)
  popularity = jnp.asarray([50.0, 10.0, 20.0, 30.0, 40.0])
  got = metrics.evaluate_ranking(user_reps, item_reps, task, popularity,
                                 ks=(2, 4))
  d2, d3, d5 = (1 / math.log2(r) for r in (2, 3, 5))
  expected = {
      'recall@2': 0.5, 'precision@2': 0.5, 'hit@2': 1.0, 'mrr@2': 0.5,
      'ndcg@2': d3 / (d2 + d3),
      'recall@4': 1.0, 'precision@4': 0.5, 'hit@4': 1.0, 'mrr@4': 0.5,
      'ndcg@4': (d3 + d5) / (d2 + d3),
      'coverage@2': 2 / 5, 'coverage@4': 4 / 5,
      'mean_popularity@2': 15.0, 'mean_popularity@4': 25.0,
  }
  assert got.keys() == expected.keys()
  for name, value in expected.items():
    assert got[name] == pytest.approx(value, abs=1e-6), name


def test_no_hit_gives_zero_and_ideal_dcg_uses_min_of_targets_and_k():
  item_reps = jnp.asarray([[3.0], [2.0], [1.0]])
  task = metrics.build_ranking_task(1, 3, [], np.array([[0, 2]]), 2)
  got = metrics.evaluate_ranking(jnp.ones((1, 1)), item_reps, task,
                                 jnp.zeros(3), ks=(1, 3))
  assert got['ndcg@1'] == 0 and got['mrr@1'] == 0 and got['recall@1'] == 0
  assert got['ndcg@3'] == pytest.approx(1 / math.log2(4))
  assert got['mrr@3'] == pytest.approx(1 / 3)


def test_missed_items_count_as_relevant_and_never_hit():
  item_reps = jnp.asarray([[3.0], [2.0], [1.0]])
  # User 0: item 0 (ranked first) and one item outside the catalogue; user
  # 1: only an item outside it.
  task = metrics.build_ranking_task(2, 3, [], np.array([[0, 0]]), 2,
                                    missed=np.array([1, 1]))
  assert task.num_users == 2
  got = metrics.evaluate_ranking(jnp.ones((2, 1)), item_reps, task,
                                 jnp.zeros(3), ks=(1, 3))
  # User 0: recall@1 1/2, NDCG@3 1 / (1 + 1/log2(3)); user 1: zero.
  assert got['recall@1'] == pytest.approx(0.5 / 2)
  assert got['ndcg@3'] == pytest.approx(1 / (1 + 1 / math.log2(3)) / 2)
  assert got['hit@3'] == pytest.approx(0.5)


def test_ties_go_to_the_lower_item_id():
  task = metrics.build_ranking_task(1, 4, [], np.array([[0, 1]]), 1)
  got = metrics.evaluate_ranking(jnp.ones((1, 1)), jnp.ones((4, 1)), task,
                                 jnp.zeros(4), ks=(1, 2))
  assert got['hit@1'] == 0 and got['hit@2'] == 1


def brute_force(scores, train, targets, ks):
  """Per-user metrics by sorting every user's full score row in numpy."""
  scores = scores.astype(np.float64).copy()
  scores[train[:, 0], train[:, 1]] = -np.inf
  results = {f'{m}@{k}': [] for m in metrics.RANKING_METRICS for k in ks}
  for user in np.unique(targets[:, 0]):
    relevant = set(targets[targets[:, 0] == user, 1].tolist())
    order = np.argsort(-scores[user], kind='stable')
    for k in ks:
      hits = np.array([item in relevant for item in order[:k]], float)
      discounts = 1 / np.log2(np.arange(2, k + 2))
      ideal = discounts[:min(len(relevant), k)].sum()
      results[f'recall@{k}'].append(hits.sum() / len(relevant))
      results[f'precision@{k}'].append(hits.sum() / k)
      results[f'hit@{k}'].append(float(hits.any()))
      results[f'ndcg@{k}'].append((hits * discounts).sum() / ideal)
      results[f'mrr@{k}'].append(1 / (hits.argmax() + 1) if hits.any()
                                 else 0.0)
  return {name: float(np.mean(v)) for name, v in results.items()}


@pytest.mark.parametrize('batch_size', [7, 64])
def test_agrees_with_brute_force_on_random_scores(batch_size):
  rng = np.random.default_rng(0)
  num_users, num_items, dim = 90, 120, 8
  pairs = np.unique(np.stack([rng.integers(0, num_users, 3000),
                              rng.integers(0, num_items, 3000)], 1), axis=0)
  rng.shuffle(pairs)
  train, valid, test = pairs[:1500], pairs[1500:1900], pairs[1900:]
  user_reps = rng.normal(size=(num_users, dim)).astype(np.float32)
  item_reps = rng.normal(size=(num_items, dim)).astype(np.float32)
  task = metrics.build_ranking_task(num_users, num_items, [train, valid],
                                    test, batch_size)
  ks = (5, 10, 20)
  got = metrics.evaluate_ranking(user_reps, item_reps, task,
                                 np.zeros(num_items), ks)
  scores = user_reps.astype(np.float64) @ item_reps.T.astype(np.float64)
  expected = brute_force(scores, np.concatenate([train, valid]), test, ks)
  for name, value in expected.items():
    assert got[name] == pytest.approx(value, abs=1e-6), name
  assert task.num_users == len(np.unique(test[:, 0]))


def test_users_without_targets_are_not_evaluated():
  task = metrics.build_ranking_task(5, 4, [], np.array([[3, 1], [3, 2]]), 2)
  assert task.num_users == 1
  np.testing.assert_array_equal(np.asarray(task.users)[0], [3, 0])


def test_cutoffs_are_checked():
  task = metrics.build_ranking_task(1, 3, [], np.array([[0, 1]]), 1)
  with pytest.raises(ValueError, match=r'Cut-offs must lie in \[1, 3\]'):
    metrics.evaluate_ranking(jnp.ones((1, 1)), jnp.ones((3, 1)), task,
                             jnp.zeros(3), ks=(5,))
