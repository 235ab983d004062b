"""Turns raw interactions into implicit feedback with contiguous ids.

`preprocess` applies, in this order: the rating threshold, duplicate removal,
k-core filtering, and the remapping of raw ids to 0..n-1.
"""

from __future__ import annotations

from absl import logging
import numpy as np

from gnas_jax.data import dataset

UNSEEN_ID_RULES = ('drop', 'error', 'miss')

# How many unseen ids a warning or error quotes.
_EXAMPLES = 5


def encode_ids(raw_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Maps raw ids to contiguous codes in sorted raw-id order.

  Args:
    raw_ids: [n] int or str raw ids. Integer ids, and str ids that are all
      plain decimal integers, sort numerically; other str ids
      lexicographically.

  Returns:
    codes: [n] int32 in 0..m-1, with `vocab[codes] == str(raw_ids)`.
    vocab: [m] str, the distinct raw ids in sorted order.
  """
  if raw_ids.dtype.kind == 'U':
    try:
      numeric = raw_ids.astype(np.int64)
    except (ValueError, OverflowError):
      numeric = None
    # Only a lossless round trip ('7', not '007' or '+7') may sort as numbers.
    if numeric is not None and (numeric.astype(str) == raw_ids).all():
      raw_ids = numeric
  vocab, codes = unique_inverse(raw_ids)
  return codes.astype(np.int32), vocab.astype(str)


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Like np.unique(values, return_inverse=True), in linear time for
  integers of a bounded range (the usual case for ids).

  Args:
    values: [n] array.

  Returns:
    unique: [m] sorted distinct values.
    inverse: [n] int64 with unique[inverse] == values.
  """
  if values.dtype.kind in 'iu' and len(values):
    low, high = int(values.min()), int(values.max())
    if high - low <= 4 * len(values) + 1024:
      present = np.zeros(high - low + 1, bool)
      present[values - low] = True
      code = np.cumsum(present) - 1
      return ((np.flatnonzero(present) + low).astype(values.dtype),
              code[values - low])
  unique, inverse = np.unique(values, return_inverse=True)
  return unique, inverse.reshape(-1)


def argsort_stable(keys: np.ndarray) -> np.ndarray:
  """Stable argsort of non-negative integer keys.

  Sorting key * n + position has no ties, so the fast unstable sort gives
  the stable order.
  """
  n = len(keys)
  if n and int(keys.max()) < (2**62) // n and int(keys.min()) >= 0:
    return np.argsort(keys.astype(np.int64) * n + np.arange(n))
  return np.argsort(keys, kind='stable')


def lookup_ids(vocab: np.ndarray, raw_ids: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
  """Finds raw ids in a vocabulary.

  Args:
    vocab: [m] str raw ids (any order).
    raw_ids: [n] int or str raw ids to find.

  Returns:
    codes: [n] int32 position of each id in `vocab` (0 where not found).
    found: [n] bool.
  """
  if not len(vocab):
    return np.zeros(len(raw_ids), np.int32), np.zeros(len(raw_ids), bool)
  if raw_ids.dtype.kind in 'iu':
    # Integer ids against a vocabulary of integers: compare as numbers,
    # which is much faster than as strings.
    try:
      numeric = vocab.astype(np.int64)
    except ValueError:
      numeric = None
    if numeric is not None and (numeric.astype(str) == vocab).all():
      vocab = numeric
    else:
      raw_ids = raw_ids.astype(str)
  else:
    raw_ids = raw_ids.astype(str)
  sorter = np.argsort(vocab)
  position = np.minimum(np.searchsorted(vocab, raw_ids, sorter=sorter),
                        len(vocab) - 1)
  codes = sorter[position]
  found = vocab[codes] == raw_ids
  return np.where(found, codes, 0).astype(np.int32), found


def first_occurrences(users: np.ndarray, items: np.ndarray,
                      timestamps: np.ndarray | None = None) -> np.ndarray:
  """Returns the indices of the pairs to keep when removing duplicates.

  Args:
    users: [n] int user codes.
    items: [n] int item codes.
    timestamps: [n] or None. Of repeated (user, item) pairs the one with the
      earliest timestamp is kept; ties, or no timestamps, keep the first in
      file order.

  Returns:
    [m] int64 indices, ascending (so file order is kept).
  """
  key = users.astype(np.int64) * (int(items.max(initial=0)) + 1) + items
  if timestamps is None:
    order = argsort_stable(key)
  else:
    # Stable sorts by time, then by pair: the order is (pair, time, line).
    by_time = np.argsort(timestamps, kind='stable')
    order = by_time[argsort_stable(key[by_time])]
  sorted_key = key[order]
  start = np.ones(len(key), bool)
  start[1:] = sorted_key[1:] != sorted_key[:-1]
  return np.sort(order[start])


def kcore_mask(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
  """Returns the [n] bool mask of pairs in the k-core of the bipartite graph.

  Users and items with fewer than k interactions are removed, repeatedly,
  until every remaining user and item has at least k.

  Args:
    users: [n] int user codes (distinct (user, item) pairs).
    items: [n] int item codes.
    k: the minimum degree; k <= 1 keeps every pair.
  """
  keep = np.ones(len(users), bool)
  if k <= 1:
    return keep
  index = np.arange(len(users))
  while len(index):
    u, i = users[index], items[index]
    stay = ((np.bincount(u)[u] >= k) & (np.bincount(i)[i] >= k))
    if stay.all():
      break
    keep[index[~stay]] = False
    index = index[stay]
  return keep


def sample_users(parts: list[dataset.Interactions], fraction: float,
                 rng: np.random.Generator) -> list[dataset.Interactions]:
  """Keeps a random `fraction` of the users of `parts[0]`, in every part.

  For smaller versions of large datasets (a train and test file keep the
  same users). The users are drawn without replacement from the sorted
  distinct raw ids, so a seed gives the same users on any machine.
  """
  if not 0 < fraction <= 1:
    raise ValueError(f'data.user_fraction={fraction} must be in (0, 1].')
  if fraction == 1:
    return parts
  users = np.unique(parts[0].users)
  count = max(1, round(fraction * len(users)))
  chosen = np.sort(rng.choice(users, size=count, replace=False))

  def keep(part: dataset.Interactions) -> dataset.Interactions:
    rows = np.isin(part.users, chosen)
    optional = {name: None if getattr(part, name) is None
                else getattr(part, name)[rows]
                for name in ('ratings', 'timestamps')}
    return dataset.Interactions(users=part.users[rows],
                                items=part.items[rows], source=part.source,
                                **optional)

  return [keep(part) for part in parts]


def preprocess(interactions: dataset.Interactions, *,
               rating_threshold: float = 0.0,
               kcore: int = 0) -> dataset.IndexedInteractions:
  """Makes implicit feedback with contiguous ids from raw interactions.

  Steps, in order: keep interactions with rating >= rating_threshold (all
  when it is 0); remove duplicate (user, item) pairs, keeping the earliest
  timestamp (see `first_occurrences`); keep the k-core (see `kcore_mask`);
  remap the remaining raw ids to 0..n-1 in sorted raw-id order (numeric
  order for integer ids).

  Args:
    interactions: the raw interactions.
    rating_threshold: minimum rating of a positive; 0 keeps all.
    kcore: minimum number of interactions per user and item; 0 disables.

  Returns:
    The indexed interactions, in file order.

  Raises:
    ValueError: naming the filter and its value when it leaves nothing, or
      when a threshold is set but there are no ratings.
  """
  source = interactions.source or 'the interactions'
  if not len(interactions):
    raise ValueError(f'{source} holds no interactions.')
  if kcore < 0:
    raise ValueError(f'kcore={kcore} must be >= 0 (0 disables it).')
  users, items = interactions.users, interactions.items
  timestamps = interactions.timestamps
  if rating_threshold > 0:
    ratings = interactions.ratings
    if ratings is None:
      raise ValueError(f'rating_threshold={rating_threshold} needs ratings, '
                       f'but {source} has none; set it to 0.')
    keep = ratings >= rating_threshold
    if not keep.any():
      raise ValueError(
          f'No interactions of {source} are left after the rating threshold '
          f'rating_threshold={rating_threshold}: its ratings range from '
          f'{ratings.min():g} to {ratings.max():g}.')
    users, items = users[keep], items[keep]
    timestamps = None if timestamps is None else timestamps[keep]
  user_codes, user_vocab = encode_ids(users)
  item_codes, item_vocab = encode_ids(items)

  keep = first_occurrences(user_codes, item_codes, timestamps)
  if len(keep) < len(user_codes):
    logging.info('%s: removed %d duplicate (user, item) pairs.', source,
                 len(user_codes) - len(keep))
  if kcore > 1:
    in_core = kcore_mask(user_codes[keep], item_codes[keep], kcore)
    if not in_core.any():
      raise ValueError(
          f'No interactions of {source} are left after k-core filtering with '
          f'kcore={kcore}: no set of users and items has {kcore} '
          'interactions each.')
    logging.info('%s: %d-core filtering kept %d of %d pairs.', source, kcore,
                 in_core.sum(), len(keep))
    keep = keep[in_core]
  user_codes, item_codes = user_codes[keep], item_codes[keep]
  timestamps = None if timestamps is None else timestamps[keep]

  # Codes already follow the sorted raw ids, so compacting them keeps that
  # order.
  kept_users, user_codes = unique_inverse(user_codes)
  kept_items, item_codes = unique_inverse(item_codes)
  pairs = np.stack([user_codes, item_codes], axis=1).astype(np.int32)
  return dataset.IndexedInteractions(
      pairs=pairs, timestamps=timestamps,
      raw_user_ids=user_vocab[kept_users], raw_item_ids=item_vocab[kept_items],
      source=source)


def index_pairs(interactions: dataset.Interactions, raw_user_ids: np.ndarray,
                raw_item_ids: np.ndarray, *, unseen: str = 'drop',
                reference: str = 'training') -> np.ndarray:
  """Maps raw pairs onto an existing id space (e.g. a test file onto train).

  Pairs naming a user or item absent from the id space cannot be ranked:
  with unseen='drop' they are dropped and a warning gives their count and
  the first few such ids; with unseen='error' the first one raises; with
  unseen='miss' they are left out here too, and those of known users are
  counted by `count_unseen_items`, so that evaluation scores them as
  misses. Duplicate pairs are removed.

  Args:
    interactions: raw pairs (ratings and timestamps are ignored).
    raw_user_ids: [num_users] str raw id of each internal user.
    raw_item_ids: [num_items] str raw id of each internal item.
    unseen: one of UNSEEN_ID_RULES.
    reference: what the id space was built from, for messages.

  Returns:
    [m, 2] int32 internal (user, item) pairs, first occurrences in file
    order.
  """
  if unseen not in UNSEEN_ID_RULES:
    raise ValueError(f"Unknown unseen-id rule {unseen!r}; choose from "
                     f"{', '.join(UNSEEN_ID_RULES)}.")
  source = interactions.source or 'the pairs'
  users, user_found = lookup_ids(raw_user_ids, interactions.users)
  items, item_found = lookup_ids(raw_item_ids, interactions.items)
  for kind, raw, found in (('user', interactions.users, user_found),
                           ('item', interactions.items, item_found)):
    if found.all():
      continue
    missing = raw[~found]
    examples = list(dict.fromkeys(missing.tolist()))[:_EXAMPLES]
    if unseen == 'error':
      raise ValueError(
          f'{source} names {kind} {examples[0]!r}, absent from {reference} '
          f'({len(missing)} of {len(raw)} pairs name an unseen {kind}; '
          "unseen='drop' drops them).")
    fate = ('counting as misses' if unseen == 'miss' and kind == 'item'
            else 'dropping')
    logging.warning(
        '%s: %s %d of %d pairs whose %s is absent from %s (e.g. %s).',
        source, fate, len(missing), len(raw), kind, reference,
        ', '.join(map(str, examples)))
  keep = user_found & item_found
  users, items = users[keep], items[keep]
  pairs = np.stack([users, items], axis=1).astype(np.int32)
  return pairs[first_occurrences(users, items)]


def count_unseen_items(interactions: dataset.Interactions,
                       raw_user_ids: np.ndarray,
                       raw_item_ids: np.ndarray) -> np.ndarray:
  """`[num_users]` int32: per known user, the distinct pairs of
  `interactions` whose item is absent from `raw_item_ids` (held-out pairs
  that evaluation counts as misses, data.unseen_test_ids='miss')."""
  users, user_found = lookup_ids(raw_user_ids, interactions.users)
  _, item_found = lookup_ids(raw_item_ids, interactions.items)
  unseen = user_found & ~item_found
  distinct = np.unique(np.stack(
      [users[unseen].astype(str), interactions.items[unseen].astype(str)],
      axis=1), axis=0) if unseen.any() else np.zeros((0, 2), str)
  return np.bincount(distinct[:, 0].astype(np.int64),
                     minlength=len(raw_user_ids)).astype(np.int32)
