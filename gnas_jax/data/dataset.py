"""Containers for interactions at each stage: raw, indexed and split."""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Interactions:
  """Raw interaction columns, one row per line (or per pair) of a file.

  Attributes:
    users: [n] raw user ids: int64 when every id of the file is a plain
      decimal integer (digits, no leading zero), else str.
    items: [n] raw item ids, same convention.
    ratings: [n] float64 ratings, or None when the source has none.
    timestamps: [n] float64 timestamps, or None when the source has none.
    source: where the rows came from (a file path, or a generator name), used
      in messages.
  """
  users: np.ndarray
  items: np.ndarray
  ratings: np.ndarray | None = None
  timestamps: np.ndarray | None = None
  source: str = ''

  def __post_init__(self):
    n = len(self.users)
    for field in ('items', 'ratings', 'timestamps'):
      column = getattr(self, field)
      if column is not None and column.shape != (n,):
        raise ValueError(
            f'Interactions.{field} has shape {column.shape}; expected ({n},) '
            'like users.')

  def __len__(self) -> int:
    return len(self.users)


def concatenate(parts: list[Interactions], source: str = '') -> Interactions:
  """Stacks interaction tables; a column missing from any part is dropped."""

  def ids(column):
    arrays = [getattr(p, column) for p in parts]
    # One str id anywhere means ids are tokens, so integers become str too.
    if any(a.dtype.kind == 'U' for a in arrays):
      arrays = [a.astype(str) for a in arrays]
    return np.concatenate(arrays)

  def optional(column):
    arrays = [getattr(p, column) for p in parts]
    return None if any(a is None for a in arrays) else np.concatenate(arrays)

  return Interactions(
      users=ids('users'), items=ids('items'), ratings=optional('ratings'),
      timestamps=optional('timestamps'),
      source=source or ' + '.join(p.source for p in parts))


@dataclasses.dataclass(frozen=True, eq=False)
class IndexedInteractions:
  """Preprocessed interactions with contiguous internal ids.

  Internal ids follow the order of the sorted raw ids (numeric order when the
  raw ids are integers), so internal id `u` is raw id `raw_user_ids[u]`.

  Attributes:
    pairs: [n, 2] int32 (user, item) internal ids, in file order, no
      duplicates.
    timestamps: [n] float64, or None when the source has none.
    raw_user_ids: [num_users] str raw id of each internal user.
    raw_item_ids: [num_items] str raw id of each internal item.
    source: where the interactions came from, used in messages.
  """
  pairs: np.ndarray
  timestamps: np.ndarray | None
  raw_user_ids: np.ndarray
  raw_item_ids: np.ndarray
  source: str = ''

  @property
  def num_users(self) -> int:
    return len(self.raw_user_ids)

  @property
  def num_items(self) -> int:
    return len(self.raw_item_ids)

  def __len__(self) -> int:
    return len(self.pairs)


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A split implicit-feedback dataset with contiguous internal ids.

  Attributes:
    name: the dataset's name (registered name, 'synthetic', or file name).
    num_users: number of users; internal user ids are 0..num_users-1.
    num_items: number of items; internal item ids are 0..num_items-1.
    train: [n_train, 2] int32 (user, item) internal ids, sorted by (user,
      item), no duplicates.
    valid: [n_valid, 2] int32, same.
    test: [n_test, 2] int32, same. The three splits are disjoint.
    raw_user_ids: [num_users] str raw id of each internal user, as read from
      the file.
    raw_item_ids: [num_items] str raw id of each internal item.
    test_missed: [num_users] int32 test pairs per user whose item is absent
      from the catalogue (data.unseen_test_ids='miss'): evaluation counts
      them as relevant items never ranked; None when there are none.
  """
  name: str
  num_users: int
  num_items: int
  train: np.ndarray
  valid: np.ndarray
  test: np.ndarray
  raw_user_ids: np.ndarray
  raw_item_ids: np.ndarray
  test_missed: np.ndarray | None = None

  def __post_init__(self):
    if self.raw_user_ids.shape != (self.num_users,):
      raise ValueError(f'raw_user_ids has shape {self.raw_user_ids.shape}; '
                       f'expected ({self.num_users},).')
    if self.raw_item_ids.shape != (self.num_items,):
      raise ValueError(f'raw_item_ids has shape {self.raw_item_ids.shape}; '
                       f'expected ({self.num_items},).')
    if self.test_missed is not None and (
        self.test_missed.shape != (self.num_users,)
        or (self.test_missed < 0).any()):
      raise ValueError('test_missed must hold a count >= 0 per user.')
    for split in ('train', 'valid', 'test'):
      pairs = getattr(self, split)
      if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.dtype != np.int32:
        raise ValueError(f'Dataset.{split} must be an [n, 2] int32 array; got '
                         f'shape {pairs.shape} and dtype {pairs.dtype}.')
      if len(pairs) and ((pairs.min(axis=0) < 0).any() or
                         pairs[:, 0].max() >= self.num_users or
                         pairs[:, 1].max() >= self.num_items):
        raise ValueError(f'Dataset.{split} holds ids outside [0, num_users) x '
                         '[0, num_items).')

  def statistics(self) -> dict[str, Any]:
    """Returns counts of users, items, interactions and of each split.

    Returns:
      A dict with 'users', 'items', 'interactions' (all splits together),
      'density' (interactions / (users * items)), 'train', 'valid', 'test'
      (pair counts), 'users_with_valid' / 'users_with_test' (users with
      at least one validation / test item), and with `test_missed`,
      'test_missed' (test pairs evaluated as misses, counted in neither
      'test' nor 'interactions').
    """
    interactions = len(self.train) + len(self.valid) + len(self.test)
    missed = {} if self.test_missed is None else {
        'test_missed': int(self.test_missed.sum()),
        'users_with_test': len(np.union1d(
            self.test[:, 0], np.flatnonzero(self.test_missed)))}
    cells = self.num_users * self.num_items
    return {
        'users': self.num_users,
        'items': self.num_items,
        'interactions': interactions,
        'density': interactions / cells if cells else 0.0,
        'train': len(self.train),
        'valid': len(self.valid),
        'test': len(self.test),
        'users_with_valid': len(np.unique(self.valid[:, 0])),
        'users_with_test': len(np.unique(self.test[:, 0])),
        **missed,
    }

  def item_popularity(self) -> np.ndarray:
    """Returns [num_items] int64 counts of training interactions per item."""
    return np.bincount(self.train[:, 1], minlength=self.num_items)

  def user_index(self, raw_id: str | int) -> int:
    """Returns the internal id of a raw user id (str, or int for numeric ids).

    Raises:
      ValueError: naming the id when the dataset has no such user.
    """
    return _lookup(self._user_lookup, raw_id, 'user', self.name)

  def item_index(self, raw_id: str | int) -> int:
    """Returns the internal id of a raw item id (str, or int for numeric ids).

    Raises:
      ValueError: naming the id when the dataset has no such item.
    """
    return _lookup(self._item_lookup, raw_id, 'item', self.name)

  # cached_property writes to the instance __dict__, which a frozen dataclass
  # allows; the dicts are built on first use only.
  @functools.cached_property
  def _user_lookup(self) -> dict[str, int]:
    return {raw: i for i, raw in enumerate(self.raw_user_ids.tolist())}

  @functools.cached_property
  def _item_lookup(self) -> dict[str, int]:
    return {raw: i for i, raw in enumerate(self.raw_item_ids.tolist())}


def _lookup(table: dict[str, int], raw_id, kind: str, name: str) -> int:
  try:
    return table[str(raw_id)]
  except KeyError:
    raise ValueError(
        f'Unknown raw {kind} id {raw_id!r} in dataset {name!r} (it has '
        f'{len(table)} {kind}s; ids dropped by filtering are unknown).'
    ) from None


def write_recbole_split(dataset: Dataset, folder, name: str) -> None:
  """Writes the split as RecBole benchmark atomic files.

  Creates `folder/name.{train,valid,test}.inter`, each with the header
  `user_id:token<TAB>item_id:token` and one internal-id pair per row, so
  that RecBole (with `benchmark_filename`) trains and tests on exactly this
  split.
  """
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  for split in ('train', 'valid', 'test'):
    pairs = getattr(dataset, split)
    with open(folder / f'{name}.{split}.inter', 'w', encoding='utf-8') as f:
      f.write('user_id:token\titem_id:token\n')
      np.savetxt(f, pairs, fmt='%d', delimiter='\t')
