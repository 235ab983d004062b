"""Per-user train / validation / test splits.

Every split holds out, for a user with n interactions,

  n_test  = min(round(n * test_ratio), n - 1)
  n_valid = min(round(n * valid_ratio), n - 1 - n_test)

interactions (round half up), and keeps the other n - n_valid - n_test >= 1
in train. Test is served before validation, and a user with a single
interaction keeps it in train. With ratios (0.8, 0.1, 0.1):

  n         1  2  3  4  5  10  14  15
  train     1  2  3  4  3   8  12  11
  valid     0  0  0  0  1   1   1   2
  test      0  0  0  0  1   1   1   2

The splits differ only in which interactions are held out:

  random:        a uniformly random subset of each user's interactions.
  temporal:      each user's latest interactions go to test, the ones before
                 to validation (ties in time keep file order: the later line
                 counts as later).
  leave_one_out: temporal with n_test = min(1, n - 1) and
                 n_valid = min(1, n - 1 - n_test): a user needs 3
                 interactions for a validation and a test item, 2 for a test
                 item only.
  given:         test comes from a file (LightGCN's test.txt); validation is
                 a random share of each user's training pairs, by the rule
                 above with ratios (1 - valid_ratio, valid_ratio, 0).
"""

from __future__ import annotations

from typing import Sequence

from absl import logging
import numpy as np

SPLITS = ('random', 'temporal', 'leave_one_out', 'given')
TRAIN, VALID, TEST = 0, 1, 2

# Guards round-half-up against products like 5 * 0.1 = 0.49999...
_ROUND_SLACK = 1e-9


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
  """Returns (train, valid, test) ratios if they are valid, else raises."""
  ratios = tuple(float(r) for r in ratios)
  if (len(ratios) != 3 or any(r < 0 for r in ratios) or
      abs(sum(ratios) - 1.0) > 1e-6):
    raise ValueError(f'split_ratios={ratios} must be three non-negative '
                     '(train, valid, test) shares that sum to 1.')
  return ratios


def holdout_sizes(counts: np.ndarray, valid_ratio: float, test_ratio: float
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Numbers of validation and test interactions per user (module rule).

  Args:
    counts: [num_users] interactions per user.
    valid_ratio: share of validation interactions.
    test_ratio: share of test interactions.

  Returns:
    n_valid, n_test: [num_users] int64.
  """
  counts = np.asarray(counts, np.int64)
  spare = np.maximum(counts - 1, 0)
  n_test = np.minimum(np.floor(counts * test_ratio + 0.5 + _ROUND_SLACK),
                      spare).astype(np.int64)
  n_valid = np.minimum(np.floor(counts * valid_ratio + 0.5 + _ROUND_SLACK),
                       spare - n_test).astype(np.int64)
  return n_valid, n_test


def _assign(users: np.ndarray, order: np.ndarray, n_valid: np.ndarray,
            n_test: np.ndarray) -> np.ndarray:
  """Sends each user's last n_test (in `order`) to test, n_valid before them
  to validation, the rest to train.

  Args:
    users: [n] user ids.
    order: [n] permutation sorting interactions by user, then earliest first.
    n_valid: [num_users] validation sizes.
    n_test: [num_users] test sizes.

  Returns:
    [n] int8 assignment of TRAIN, VALID or TEST.
  """
  sorted_users = users[order]
  counts = np.bincount(users, minlength=len(n_test))
  first = np.cumsum(counts) - counts
  rank = np.arange(len(users)) - first[sorted_users]
  from_end = counts[sorted_users] - rank
  n_test, n_valid = n_test[sorted_users], n_valid[sorted_users]
  part = np.where(from_end <= n_test, TEST,
                  np.where(from_end <= n_test + n_valid, VALID, TRAIN))
  assignment = np.empty(len(users), np.int8)
  assignment[order] = part
  return assignment


def _counts(users: np.ndarray) -> np.ndarray:
  return np.bincount(users, minlength=int(users.max(initial=-1)) + 1)


def split_random_ratio(pairs: np.ndarray, ratios: Sequence[float],
                       rng: np.random.Generator) -> np.ndarray:
  """Holds out a random share of each user's interactions.

  The result depends on the set of pairs and the generator only, not on the
  order of `pairs`.

  Args:
    pairs: [n, 2] int (user, item) ids, no duplicates.
    ratios: (train, valid, test) shares summing to 1.
    rng: the generator (seeded from config.data.split_seed).

  Returns:
    [n] int8 assignment of TRAIN, VALID or TEST.
  """
  _, valid_ratio, test_ratio = check_ratios(ratios)
  users = pairs[:, 0]
  n_valid, n_test = holdout_sizes(_counts(users), valid_ratio, test_ratio)
  n = len(pairs)
  key = np.empty(n, np.int64)
  key[np.argsort(pair_keys(pairs))] = rng.permutation(n)
  # Distinct keys, so a plain argsort orders by user, then random rank.
  order = np.argsort(users.astype(np.int64) * n + key)
  return _assign(users, order, n_valid, n_test)


def split_temporal_ratio(pairs: np.ndarray, timestamps: np.ndarray,
                         ratios: Sequence[float]) -> np.ndarray:
  """Holds out each user's latest interactions by the given shares.

  Args:
    pairs: [n, 2] int (user, item) ids, in file order.
    timestamps: [n] times; ties keep file order.
    ratios: (train, valid, test) shares summing to 1.

  Returns:
    [n] int8 assignment of TRAIN, VALID or TEST.
  """
  _, valid_ratio, test_ratio = check_ratios(ratios)
  users = pairs[:, 0]
  n_valid, n_test = holdout_sizes(_counts(users), valid_ratio, test_ratio)
  order = np.lexsort((np.arange(len(users)), timestamps, users))
  return _assign(users, order, n_valid, n_test)


def split_leave_one_out(pairs: np.ndarray, timestamps: np.ndarray
                       ) -> np.ndarray:
  """Holds out each user's last interaction for test, the one before for
  validation (users with 2 interactions get a test item only, users with 1
  keep it in train).

  Args:
    pairs: [n, 2] int (user, item) ids, in file order.
    timestamps: [n] times; ties keep file order.

  Returns:
    [n] int8 assignment of TRAIN, VALID or TEST.
  """
  users = pairs[:, 0]
  spare = np.maximum(_counts(users) - 1, 0)
  n_test = np.minimum(1, spare)
  n_valid = np.minimum(1, spare - n_test)
  order = np.lexsort((np.arange(len(users)), timestamps, users))
  return _assign(users, order, n_valid, n_test)


def pair_keys(pairs: np.ndarray) -> np.ndarray:
  """Returns [n] int64 keys that order (user, item) pairs like tuples."""
  return (pairs[:, 0].astype(np.int64) << 32) | pairs[:, 1].astype(np.int64)


def sort_pairs(pairs: np.ndarray) -> np.ndarray:
  """Returns [n, 2] int32 pairs sorted by (user, item)."""
  pairs = np.asarray(pairs, np.int32).reshape(-1, 2)
  return pairs[np.argsort(pair_keys(pairs))]


def partition(pairs: np.ndarray, assignment: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Splits pairs by an assignment into sorted (train, valid, test)."""
  return tuple(sort_pairs(pairs[assignment == part])
               for part in (TRAIN, VALID, TEST))


def split_given(train: np.ndarray, test: np.ndarray, valid_ratio: float,
                rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Keeps a given test split and carves validation out of training.

  Test pairs that also appear in training are dropped (with a warning): they
  would be excluded from the ranking at evaluation.

  Args:
    train: [n_train, 2] int (user, item) training pairs, no duplicates.
    test: [n_test, 2] int test pairs, no duplicates.
    valid_ratio: share of each user's training pairs held out for
      validation (see the module rule).
    rng: the generator (seeded from config.data.split_seed).

  Returns:
    (train, valid, test), each [m, 2] int32 sorted by (user, item).
  """
  if not 0 <= valid_ratio < 1:
    raise ValueError(f'given_valid_ratio={valid_ratio} must be in [0, 1).')
  train_keys = np.sort(pair_keys(train))
  test_keys = pair_keys(test)
  position = np.searchsorted(train_keys, test_keys)
  seen = (position < len(train_keys)) & (
      train_keys[np.minimum(position, len(train_keys) - 1)] == test_keys)
  if seen.any():
    logging.warning('Dropping %d of %d test pairs that are also training '
                    'pairs.', seen.sum(), len(test))
  assignment = split_random_ratio(train, (1 - valid_ratio, valid_ratio, 0.0),
                                  rng)
  train, valid, _ = partition(train, assignment)
  return train, valid, sort_pairs(test[~seen])
