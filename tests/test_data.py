"""Tests for gnas_jax.data: readers, preprocessing, splits, registry."""

import logging
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest

from gnas_jax import data
from gnas_jax import driver

from conftest import DATA_DIR, ROOT, make_config, needs_data, write


def counts_by_user(assignment, users, num_users):
  """Returns [num_users, 3] (train, valid, test) counts."""
  out = np.zeros((num_users, 3), np.int64)
  np.add.at(out, (users, assignment), 1)
  return out


def as_set(pairs):
  return set(map(tuple, np.asarray(pairs).tolist()))


# --------------------------------------------------------------------------
# Readers.


def test_read_ml100k(tmp_path):
  path = write(tmp_path, 'u.data', '196\t242\t3\t881250949\n'
               '186\t302\t3.5\t891717742\n\n22\t377\t1\t878887116\n')
  got = data.read_interactions(path)
  np.testing.assert_array_equal(got.users, [196, 186, 22])
  np.testing.assert_array_equal(got.items, [242, 302, 377])
  np.testing.assert_array_equal(got.ratings, [3, 3.5, 1])
  np.testing.assert_array_equal(got.timestamps,
                                [881250949, 891717742, 878887116])
  assert got.users.dtype == np.int64


def test_read_ml1m_crlf(tmp_path):
  path = write(tmp_path, 'ratings.dat',
               '1::1193::5::978300760\r\n1::661::3::978302109\r\n')
  got = data.read_interactions(path)
  np.testing.assert_array_equal(got.users, [1, 1])
  np.testing.assert_array_equal(got.items, [1193, 661])
  np.testing.assert_array_equal(got.ratings, [5, 3])
  np.testing.assert_array_equal(got.timestamps, [978300760, 978302109])


def test_read_lightgcn_split(tmp_path):
  write(tmp_path, 'train.txt', '0 0 1 2\n1 2\n2\n3 4 0 \n')
  write(tmp_path, 'test.txt', '0 3\n1 0 4\n')
  train, test = data.read_lightgcn_split(tmp_path)
  # User 2 lists no items, so it contributes no pair.
  assert list(zip(train.users.tolist(), train.items.tolist())) == [
      (0, 0), (0, 1), (0, 2), (1, 2), (3, 4), (3, 0)]
  assert list(zip(test.users.tolist(), test.items.tolist())) == [
      (0, 3), (1, 0), (1, 4)]
  assert train.ratings is None and train.timestamps is None
  # A path to train.txt names the same split.
  train2, _ = data.read_lightgcn_split(tmp_path / 'train.txt')
  np.testing.assert_array_equal(train2.items, train.items)


@pytest.mark.parametrize('delimiter', ['\t', ',', '::', ';', ' '])
def test_read_delimited_infers_delimiter(tmp_path, delimiter):
  sep = '  ' if delimiter == ' ' else delimiter  # runs of spaces are one
  lines = [sep.join(f) for f in (('u1', '10', '4'), ('u2', '7', '2.5'))]
  path = write(tmp_path, 'x.txt', '\n'.join(lines) + '\n')
  got = data.read_interactions(path, 'delimited', columns='user,item,rating')
  np.testing.assert_array_equal(got.users, ['u1', 'u2'])
  np.testing.assert_array_equal(got.items, [10, 7])
  np.testing.assert_array_equal(got.ratings, [4, 2.5])
  assert got.timestamps is None


def test_delimiter_names_from_the_command_line(tmp_path):
  path = write(tmp_path, 'x.tsv', 'a\tb\n')
  for name in ('tab', '\\t'):
    got = data.read_interactions(path, delimiter=name, columns='user,item')
    np.testing.assert_array_equal(got.items, ['b'])
  with pytest.raises(ValueError, match=r"x\.tsv:1: expected 2 comma-separated "
                     r'fields, got 1'):
    data.read_interactions(path, delimiter='comma', columns='user,item')


def test_read_delimited_header_skip_and_tokens(tmp_path):
  path = write(tmp_path, 'events.csv',
               'who,ignored,what,when\n'
               'alice, x ,café,100\n'
               'bob,y,007,50\n')
  got = data.read_interactions(path, header=True,
                               columns='user,-,item,timestamp')
  np.testing.assert_array_equal(got.users, ['alice', 'bob'])
  # '007' is not a plain integer, so every item id stays a string.
  np.testing.assert_array_equal(got.items, ['café', '007'])
  np.testing.assert_array_equal(got.timestamps, [100, 50])
  assert got.ratings is None


def test_read_recbole_finds_columns_by_name(tmp_path):
  path = write(tmp_path, 'toy.inter',
               'item_id:token\tuser_id:token\ttags:token_seq\t'
               'timestamp:float\trating:float\n'
               'i1\tu1\ta b\t10.5\t4\n'
               'i2\tu1\tc\t11\t5\n')
  got = data.read_interactions(path)
  np.testing.assert_array_equal(got.users, ['u1', 'u1'])
  np.testing.assert_array_equal(got.items, ['i1', 'i2'])
  np.testing.assert_array_equal(got.timestamps, [10.5, 11])
  np.testing.assert_array_equal(got.ratings, [4, 5])


@pytest.mark.parametrize('name, expected', [
    ('u.data', 'ml-100k'), ('ratings.dat', 'ml-1m'),
    ('train.txt', 'lightgcn'), ('ml.inter', 'recbole'),
    ('events.csv', 'delimited'), ('ratings.tsv', 'delimited')])
def test_infer_format(tmp_path, name, expected):
  assert data.infer_format(tmp_path / name) == expected


def test_infer_format_of_folders(tmp_path):
  write(tmp_path / 'lg', 'train.txt', '0 1\n')
  write(tmp_path / 'lg', 'test.txt', '0 2\n')
  write(tmp_path / 'ml', 'u.data', '1\t2\t3\t4\n')
  assert data.infer_format(tmp_path / 'lg') == 'lightgcn'
  assert data.infer_format(tmp_path / 'ml') == 'ml-100k'
  (tmp_path / 'empty').mkdir()
  with pytest.raises(ValueError, match='Cannot infer the format of folder'):
    data.infer_format(tmp_path / 'empty')


@pytest.mark.parametrize('name, fmt, text, message', [
    ('u.data', 'auto', '1\t2\t3\t4\n5\t6\t7\n',
     r'u\.data:2: expected 4 tab-separated fields, got 3'),
    ('u.data', 'auto', '1\t2\t3\t4\n\n1\t3\tgood\t5\n',
     r"u\.data:3: non-numeric rating 'good'"),
    ('ratings.dat', 'auto', '1::2::3::4\n1::2::3::t0\n',
     r"ratings\.dat:2: non-numeric timestamp 't0'"),
    ('ratings.dat', 'auto', '1::2::3\n', r"ratings\.dat:1: expected 4 "
     r"'::'-separated fields, got 3"),
    ('train.txt', 'auto', '0 1 2\n1 x3\n',
     r"train\.txt:2: expected non-negative integer ids, got 'x3'"),
    ('train.txt', 'auto', '0 1\n\n1 -2\n',
     r"train\.txt:3: expected non-negative integer ids, got '-2'"),
    ('a.inter', 'auto', 'user_id:token\trating:float\n1\t2\n',
     r"a\.inter:1: RecBole header has no 'item_id' field"),
    ('a.inter', 'auto', 'user_id:token\titem_id:token\trating\n',
     r"a\.inter:1: RecBole header field 'rating' has no ':type'"),
    ('a.inter', 'auto', 'user_id:token\titem_id:token\n1\t2\n3\n',
     r'a\.inter:3: expected 2 tab-separated fields, got 1'),
    ('x.csv', 'delimited', '1,2,3,4\n,2,3,4\n', r'x\.csv:2: empty user id'),
    ('x.csv', 'delimited', '1,2,inf,4\n', r"x\.csv:1: non-finite rating"),
    ('x.csv', 'delimited', '12\n', r'x\.csv:1: cannot infer the delimiter'),
    ('x.csv', 'delimited', '\n  \n', r'x\.csv: no interactions'),
    ('x.csv', 'delimited', b'1,2,3,4\n1,\xff,3,4\n', r'x\.csv:2: not UTF-8'),
])
def test_malformed_lines_name_file_and_line(tmp_path, name, fmt, text,
                                            message):
  path = write(tmp_path, name, text)
  with pytest.raises(ValueError, match=message):
    data.read_interactions(path, fmt)


def test_unknown_format_and_columns_list_choices(tmp_path):
  path = write(tmp_path, 'x.csv', '1,2\n')
  with pytest.raises(ValueError, match=r"Unknown dataset format 'csv'; "
                     r"choose 'auto' or one of ml-100k, ml-1m, lightgcn, "
                     r'delimited, recbole'):
    data.read_interactions(path, 'csv')
  with pytest.raises(ValueError, match=r"Unknown column 'score'.*user, item, "
                     r'rating, timestamp, or - to skip'):
    data.read_interactions(path, columns='user,item,score')
  with pytest.raises(ValueError, match=r"has no 'item' column"):
    data.parse_columns('user,-')


def test_unknown_dataset_lists_registered_names():
  config = make_config(dataset='no-such-data')
  with pytest.raises(ValueError, match=(
      r"Unknown dataset 'no-such-data': not a registered name \(ml-100k, "
      r"ml-1m, gowalla, yelp2018, amazon-book\).*path.*is accepted")):
    data.load_dataset(config)


def test_unknown_split_lists_splits():
  with pytest.raises(ValueError, match=r"data.split='by_day'; choose from "
                     r'random, temporal, leave_one_out, given'):
    data.load_dataset(make_config(**{'data.split': 'by_day'}))


# --------------------------------------------------------------------------
# Preprocessing.


def raw(users, items, ratings=None, timestamps=None):
  return data.Interactions(
      users=np.asarray(users), items=np.asarray(items),
      ratings=None if ratings is None else np.asarray(ratings, float),
      timestamps=None if timestamps is None else np.asarray(timestamps,
                                                            float),
      source='toy')


def test_threshold_and_dedup_keep_earliest_positive():
  got = data.preprocess(
      raw(users=[1, 1, 1, 2, 2], items=[5, 5, 6, 5, 5],
          ratings=[2, 4, 5, 5, 4], timestamps=[1, 30, 20, 9, 3]),
      rating_threshold=4)
  # (1, 5) rated 2 at t=1 is not a positive; its positive is at t=30.
  # (2, 5) twice: the earlier (t=3) is kept. File order is preserved.
  assert got.pairs.tolist() == [[0, 0], [0, 1], [1, 0]]
  np.testing.assert_array_equal(got.timestamps, [30, 20, 3])
  np.testing.assert_array_equal(got.raw_user_ids, ['1', '2'])
  np.testing.assert_array_equal(got.raw_item_ids, ['5', '6'])


def test_dedup_without_timestamps_keeps_first_line():
  keep = data.first_occurrences(np.array([0, 1, 0, 0]),
                                np.array([3, 3, 3, 4]))
  np.testing.assert_array_equal(keep, [0, 1, 3])


def test_kcore_iterates_until_stable():
  # k=2: item z has one user, so (c, z) goes; then c has one item, so (c, x)
  # goes; a and b with x and y remain, each with 2.
  users = ['a', 'a', 'b', 'b', 'c', 'c', 'd']
  items = ['x', 'y', 'x', 'y', 'x', 'z', 'y']
  got = data.preprocess(raw(users, items), kcore=2)
  np.testing.assert_array_equal(got.raw_user_ids, ['a', 'b'])
  np.testing.assert_array_equal(got.raw_item_ids, ['x', 'y'])
  assert sorted(got.pairs.tolist()) == [[0, 0], [0, 1], [1, 0], [1, 1]]
  # The mask alone, on codes.
  mask = data.kcore_mask(np.array([0, 0, 1, 1, 2, 2, 3]),
                         np.array([0, 1, 0, 1, 0, 2, 1]), 2)
  np.testing.assert_array_equal(mask, [1, 1, 1, 1, 0, 0, 0])


def test_empty_after_filter_names_the_filter():
  with pytest.raises(ValueError, match=r'after the rating threshold '
                     r'rating_threshold=6.*range from 1 to 5'):
    data.preprocess(raw([1, 2], [1, 1], ratings=[1, 5]), rating_threshold=6)
  with pytest.raises(ValueError, match=r'after k-core filtering with '
                     r'kcore=3'):
    data.preprocess(raw([1, 1, 2], [1, 2, 1]), kcore=3)
  with pytest.raises(ValueError, match=r'rating_threshold=4 needs ratings'):
    data.preprocess(raw([1], [1]), rating_threshold=4)


def test_remapping_orders_raw_ids_and_round_trips():
  ids = data.preprocess(raw(users=[10, 9, 100, 9], items=['b', 'a', 'B', 'c']))
  # Integer ids sort numerically, string ids lexicographically.
  np.testing.assert_array_equal(ids.raw_user_ids, ['9', '10', '100'])
  np.testing.assert_array_equal(ids.raw_item_ids, ['B', 'a', 'b', 'c'])
  dataset = data.Dataset(
      name='toy', num_users=ids.num_users, num_items=ids.num_items,
      train=data.sort_pairs(ids.pairs), valid=np.zeros((0, 2), np.int32),
      test=np.zeros((0, 2), np.int32), raw_user_ids=ids.raw_user_ids,
      raw_item_ids=ids.raw_item_ids)
  raw_users = ['10', '9', '100', '9']
  for raw_user, (user, item) in zip(raw_users, ids.pairs):
    assert dataset.user_index(raw_user) == user
    assert dataset.raw_user_ids[dataset.user_index(raw_user)] == raw_user
  assert dataset.user_index(100) == 2  # numeric ids may be given as int
  assert dataset.item_index('B') == 0
  with pytest.raises(ValueError, match=r"Unknown raw user id '11'"):
    dataset.user_index('11')
  with pytest.raises(ValueError, match=r"Unknown raw item id 'z'"):
    dataset.item_index('z')


def test_encode_ids_numeric_strings_sort_as_numbers():
  codes, vocab = data.encode_ids(np.array(['10', '9', '100', '9']))
  np.testing.assert_array_equal(vocab, ['9', '10', '100'])
  np.testing.assert_array_equal(codes, [1, 0, 2, 0])
  _, vocab = data.encode_ids(np.array(['10', '9', 'x']))
  np.testing.assert_array_equal(vocab, ['10', '9', 'x'])


def test_leading_zero_ids_stay_distinct(tmp_path):
  path = write(tmp_path, 'x.csv', '7,1\n007,1\n')
  ids = data.preprocess(data.read_interactions(path, columns='user,item'))
  np.testing.assert_array_equal(ids.raw_user_ids, ['007', '7'])


# --------------------------------------------------------------------------
# Splits.


@pytest.mark.parametrize('ratios, n, expected', [
    ((0.8, 0.1, 0.1), 1, (1, 0, 0)),
    ((0.8, 0.1, 0.1), 2, (2, 0, 0)),
    ((0.8, 0.1, 0.1), 4, (4, 0, 0)),
    ((0.8, 0.1, 0.1), 5, (3, 1, 1)),
    ((0.8, 0.1, 0.1), 10, (8, 1, 1)),
    ((0.8, 0.1, 0.1), 14, (12, 1, 1)),
    ((0.8, 0.1, 0.1), 15, (11, 2, 2)),
    ((0.5, 0.25, 0.25), 2, (1, 0, 1)),
    ((0.5, 0.25, 0.25), 3, (1, 1, 1)),
    ((0.5, 0.25, 0.25), 4, (2, 1, 1)),
    ((0.0, 0.5, 0.5), 3, (1, 0, 2)),
])
def test_holdout_sizes(ratios, n, expected):
  n_valid, n_test = data.holdout_sizes(np.array([n]), ratios[1], ratios[2])
  assert (n - n_valid[0] - n_test[0], n_valid[0], n_test[0]) == expected


def ratio_example():
  """Users 0..4 with 1, 2, 5, 10, 15 interactions (items 0..n-1)."""
  sizes = [1, 2, 5, 10, 15]
  users = np.repeat(np.arange(5), sizes)
  items = np.concatenate([np.arange(n) for n in sizes])
  return np.stack([users, items], 1).astype(np.int32)


def test_random_split_counts_and_partition():
  pairs = ratio_example()
  assignment = data.split_random_ratio(pairs, (0.8, 0.1, 0.1),
                                       np.random.default_rng(0))
  np.testing.assert_array_equal(
      counts_by_user(assignment, pairs[:, 0], 5),
      [[1, 0, 0], [2, 0, 0], [3, 1, 1], [8, 1, 1], [11, 2, 2]])
  train, valid, test = data.partition(pairs, assignment)
  assert not (as_set(train) & as_set(valid) or as_set(train) & as_set(test)
              or as_set(valid) & as_set(test))
  assert as_set(train) | as_set(valid) | as_set(test) == as_set(pairs)
  for split in (train, valid, test):
    np.testing.assert_array_equal(split, data.sort_pairs(split))


def test_random_split_seeded_and_order_free():
  rng = np.random.default_rng(7)
  pairs = np.unique(rng.integers(0, 40, (600, 2)), axis=0).astype(np.int32)
  split = lambda p, seed: data.split_random_ratio(
      p, (0.6, 0.2, 0.2), np.random.default_rng(seed))
  a, b, c = split(pairs, 0), split(pairs, 0), split(pairs, 1)
  np.testing.assert_array_equal(a, b)
  assert (a != c).any()
  # Shuffling the input rows does not change which pairs are held out.
  perm = rng.permutation(len(pairs))
  shuffled = split(pairs[perm], 0)
  for part in (data.TRAIN, data.VALID, data.TEST):
    assert as_set(pairs[perm][shuffled == part]) == as_set(pairs[a == part])


def test_temporal_split_holds_out_latest_ties_by_file_order():
  items = np.arange(10)
  times = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 9])
  pairs = np.stack([np.r_[np.zeros(10, int), 1], np.r_[items, 0]], 1)
  assignment = data.split_temporal_ratio(pairs, np.r_[times, 0.],
                                         (0.8, 0.1, 0.1))
  # Items 2 and 9 share the latest time; item 9 is on the later line.
  assert pairs[assignment == data.TEST].tolist() == [[0, 9]]
  assert pairs[assignment == data.VALID].tolist() == [[0, 2]]
  assert assignment[-1] == data.TRAIN  # user 1's single interaction


def test_leave_one_out_small_users():
  pairs = np.array([[0, 10], [0, 11], [0, 12], [1, 10], [1, 11], [2, 10],
                    [3, 1], [3, 2], [3, 3], [3, 4]])
  times = np.array([3, 1, 2, 5, 4, 1, 1, 2, 3, 4])
  assignment = data.split_leave_one_out(pairs, times)
  np.testing.assert_array_equal(
      counts_by_user(assignment, pairs[:, 0], 4),
      [[1, 1, 1], [1, 0, 1], [1, 0, 0], [2, 1, 1]])
  assert pairs[assignment == data.TEST].tolist() == [[0, 10], [1, 10], [3, 4]]
  assert pairs[assignment == data.VALID].tolist() == [[0, 12], [3, 3]]


def test_split_given_carves_validation_and_drops_train_overlap(caplog):
  train = np.array([[0, 0], [0, 1], [0, 2], [0, 3], [1, 0]], np.int32)
  test = np.array([[0, 4], [1, 0], [1, 2]], np.int32)
  with caplog.at_level(logging.WARNING):
    t, v, s = data.split_given(train, test, 0.5, np.random.default_rng(0))
  assert 'Dropping 1 of 3 test pairs that are also training pairs' in (
      caplog.text)
  assert s.tolist() == [[0, 4], [1, 2]]
  # User 0: round(4 * 0.5) = 2 validation pairs; user 1 keeps its only pair.
  assert len(v) == 2 and set(v[:, 0]) == {0}
  assert as_set(t) | as_set(v) == as_set(train) and [1, 0] in t.tolist()
  t2, v2, _ = data.split_given(train, test, 0.5, np.random.default_rng(0))
  np.testing.assert_array_equal(v, v2)


def lightgcn_folder(tmp_path):
  write(tmp_path / 'lg', 'train.txt', '0 0 1\n1 1 2\n')
  # Item 7 and user 5 never occur in train.txt.
  write(tmp_path / 'lg', 'test.txt', '0 2 7\n1 0\n5 1\n')
  return str(tmp_path / 'lg')


def test_given_split_drops_unseen_test_ids_with_warning(tmp_path, caplog):
  config = make_config(dataset=lightgcn_folder(tmp_path),
                       **{'data.split': 'given',
                          'data.given_valid_ratio': 0.0})
  with caplog.at_level(logging.WARNING):
    dataset = data.load_dataset(config)
  assert 'dropping 1 of 4 pairs whose user is absent' in caplog.text
  assert 'dropping 1 of 4 pairs whose item is absent' in caplog.text
  assert '(e.g. 5)' in caplog.text and '(e.g. 7)' in caplog.text
  assert dataset.name == 'lg'
  assert (dataset.num_users, dataset.num_items) == (2, 3)
  assert dataset.test.tolist() == [[0, 2], [1, 0]]
  assert len(dataset.train) == 4 and len(dataset.valid) == 0


def test_given_split_counts_unseen_test_items_as_misses(tmp_path, caplog):
  config = make_config(dataset=lightgcn_folder(tmp_path),
                       **{'data.split': 'given',
                          'data.given_valid_ratio': 0.0,
                          'data.unseen_test_ids': 'miss'})
  with caplog.at_level(logging.WARNING):
    dataset = data.load_dataset(config)
  assert 'counting as misses 1 of 4 pairs whose item is absent' in caplog.text
  # An unseen user cannot be ranked at all: its pair is still dropped.
  assert 'dropping 1 of 4 pairs whose user is absent' in caplog.text
  assert dataset.test.tolist() == [[0, 2], [1, 0]]
  assert dataset.test_missed.tolist() == [1, 0]
  statistics = dataset.statistics()
  assert statistics['test'] == 2 and statistics['test_missed'] == 1
  task = driver.TrainingData.build(dataset).test_task
  np.testing.assert_array_equal(np.asarray(task.num_targets).ravel()[:2],
                                [2, 1])


def test_given_split_strict_unseen_ids(tmp_path):
  config = make_config(dataset=lightgcn_folder(tmp_path),
                       **{'data.split': 'given',
                          'data.unseen_test_ids': 'error'})
  with pytest.raises(ValueError, match=r'test\.txt names user 5, absent from '
                     r'the training pairs'):
    data.load_dataset(config)
  config.data.unseen_test_ids = 'skip'
  with pytest.raises(ValueError, match=r"Unknown data.unseen_test_ids='skip'; "
                     r'choose from drop, error, miss'):
    data.load_dataset(config)


def test_given_split_needs_lightgcn_and_temporal_needs_time(tmp_path):
  with pytest.raises(ValueError, match=r"data.split='given' needs a dataset "
                     r'with its own test split'):
    data.load_dataset(make_config(**{'data.split': 'given'}))
  config = make_config(dataset=lightgcn_folder(tmp_path),
                       **{'data.split': 'temporal'})
  with pytest.raises(ValueError, match=r"data.split='temporal' needs "
                     r'timestamps'):
    data.load_dataset(config)


def test_load_dataset_from_a_file_path(tmp_path):
  lines = [f'{u}\t{i}\t{1 + (u + i) % 5}\t{1000 * u + i}'
           for u in range(1, 7) for i in range(1, 11)]
  path = write(tmp_path, 'ml/u.data', '\n'.join(lines) + '\n')
  config = make_config(dataset=str(path), **{'data.split': 'leave_one_out',
                                             'data.rating_threshold': 3.0})
  dataset = data.load_dataset(config)
  stats = dataset.statistics()
  positives = sum(1 + (u + i) % 5 >= 3 for u in range(1, 7)
                  for i in range(1, 11))
  assert dataset.name == 'ml'
  assert stats['interactions'] == positives
  assert stats['test'] == stats['valid'] == stats['users_with_test'] == 6
  # Leave-one-out holds out each user's latest positive (highest item id).
  for user, item in dataset.test:
    raw_user = int(dataset.raw_user_ids[user])
    latest = max(i for i in range(1, 11) if 1 + (raw_user + i) % 5 >= 3)
    assert dataset.raw_item_ids[item] == str(latest)


def test_statistics_and_popularity():
  dataset = data.Dataset(
      name='toy', num_users=3, num_items=4,
      train=np.array([[0, 0], [0, 1], [1, 1], [2, 1]], np.int32),
      valid=np.array([[0, 2]], np.int32),
      test=np.array([[0, 3], [1, 0]], np.int32),
      raw_user_ids=np.array(['a', 'b', 'c']),
      raw_item_ids=np.array(['w', 'x', 'y', 'z']))
  assert dataset.statistics() == {
      'users': 3, 'items': 4, 'interactions': 7, 'density': 7 / 12,
      'train': 4, 'valid': 1, 'test': 2, 'users_with_valid': 1,
      'users_with_test': 2}
  np.testing.assert_array_equal(dataset.item_popularity(), [1, 3, 0, 0])
  with pytest.raises(ValueError, match='Dataset.test holds ids outside'):
    data.Dataset(name='bad', num_users=1, num_items=1,
                 train=np.zeros((0, 2), np.int32),
                 valid=np.zeros((0, 2), np.int32),
                 test=np.array([[0, 1]], np.int32),
                 raw_user_ids=np.array(['a']), raw_item_ids=np.array(['b']))


# --------------------------------------------------------------------------
# Synthetic data.


def test_synthetic_is_seeded_and_skewed():
  config = make_config()
  options = config.data.synthetic.to_dict()
  a = data.generate_synthetic(**options)
  b = data.generate_synthetic(**options)
  c = data.generate_synthetic(**{**options, 'seed': 1})
  np.testing.assert_array_equal(a.items, b.items)
  np.testing.assert_array_equal(a.timestamps, b.timestamps)
  assert len(a.items) != len(c.items) or (a.items != c.items).any()
  per_user = np.bincount(a.users)
  assert len(per_user) == options['num_users'] and per_user.min() >= 5
  assert abs(per_user.mean() - options['interactions_per_user']) < 3
  assert a.items.max() < options['num_items'] and a.ratings is None
  # Distinct items per user (drawn without replacement).
  assert len(np.unique(a.users * options['num_items'] + a.items)) == len(a)
  # Zipf popularity: the top 10% of items get a large share of interactions.
  counts = np.sort(np.bincount(a.items))[::-1]
  assert counts[:len(counts) // 10].sum() > 0.3 * counts.sum()


def test_synthetic_rewards_collaborative_models():
  dataset = data.load_dataset(make_config())
  train = np.zeros((dataset.num_users, dataset.num_items), np.float32)
  train[dataset.train[:, 0], dataset.train[:, 1]] = 1
  test = np.zeros_like(train, bool)
  test[dataset.test[:, 0], dataset.test[:, 1]] = True

  def recall_at_20(scores):
    scores = np.where(train > 0, -np.inf, scores)
    top = np.argpartition(-scores, 20, axis=1)[:, :20]
    hits = np.take_along_axis(test, top, axis=1).sum(1)
    has = test.sum(1) > 0
    return (hits[has] / test.sum(1)[has]).mean()

  popularity = np.broadcast_to(train.sum(0), train.shape)
  degree = np.sqrt(train.sum(0)) + 1e-9
  cosine = (train.T @ train) / degree[:, None] / degree[None, :]
  np.fill_diagonal(cosine, 0)
  assert recall_at_20(train @ cosine) > 1.5 * recall_at_20(popularity)


def test_split_seed_changes_only_the_split():
  a = data.load_dataset(make_config(**{'data.split_seed': 0}))
  b = data.load_dataset(make_config(**{'data.split_seed': 0, 'seed': 5}))
  c = data.load_dataset(make_config(**{'data.split_seed': 1}))
  np.testing.assert_array_equal(a.test, b.test)
  assert as_set(a.test) != as_set(c.test)
  union = lambda d: as_set(d.train) | as_set(d.valid) | as_set(d.test)
  assert union(a) == union(c)
  temporal = data.load_dataset(make_config(**{'data.split': 'temporal'}))
  assert temporal.statistics()['users_with_test'] == temporal.num_users


# --------------------------------------------------------------------------
# Registry, lookup and downloads (no network: file:// URLs or a patched
# urlopen).


def test_registry_entries():
  assert set(data.DATASETS) == {'ml-100k', 'ml-1m', 'gowalla', 'yelp2018',
                                'amazon-book'}
  for name, info in data.DATASETS.items():
    assert info.name == name and info.format in data.FORMATS
    assert info.urls and info.files and info.note
  assert data.DATASETS['gowalla'].urls[0] == (
      'https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/'
      'gowalla/train.txt')
  assert dict(data.DATASETS['ml-100k'].sha256)['u.data'].startswith('06416e')


@pytest.fixture
def folders(tmp_path, monkeypatch):
  monkeypatch.setenv('GNAS_CACHE_DIR', str(tmp_path / 'cache'))
  monkeypatch.setenv('GNAS_DATA_DIR', str(tmp_path / 'env'))
  return tmp_path


def test_lookup_order(folders):
  write(folders / 'env' / 'ml-100k', 'u.data', '1\t2\t3\t4\n')
  write(folders / 'cache' / 'ml-100k', 'u.data', '1\t2\t3\t4\n')
  # These stand-ins are not the published u.data, so the check is off.
  assert data.resolve('ml-100k', verify=False) == folders / 'env' / 'ml-100k'
  write(folders / 'flag' / 'ml-100k', 'u.data', '5\t6\t3\t4\n')
  assert data.resolve('ml-100k', str(folders / 'flag'), verify=False) == (
      folders / 'flag' / 'ml-100k')
  # With the check off, a local copy that differs from the published file
  # is used.
  config = make_config(dataset='ml-100k', data_dir=str(folders / 'flag'),
                       **{'data.split_ratios': (1.0, 0.0, 0.0),
                          'data.verify_checksums': False})
  assert data.load_dataset(config).raw_user_ids.tolist() == ['5']


def test_offline_download_explains_how_to_use_local_files(folders,
                                                          monkeypatch):
  def offline(url, timeout=None):
    raise urllib.error.URLError('network is unreachable')

  monkeypatch.setattr(urllib.request, 'urlopen', offline)
  config = make_config(dataset='ml-100k', data_dir=str(folders / 'flag'))
  with pytest.raises(FileNotFoundError) as error:
    data.load_dataset(config)
  message = str(error.value)
  assert ('from https://files.grouplens.org/datasets/movielens/ml-100k.zip '
          '(<urlopen error network is unreachable>)') in message
  for folder in ('flag', 'env', 'cache'):
    assert str(folders / folder / 'ml-100k') in message
  assert '--config.data_dir=<folder>' in message
  assert 'GNAS_DATA_DIR=<folder>' in message
  assert not (folders / 'cache' / 'ml-100k').exists()


def test_unreachable_url_fails_with_message(folders):
  info = data.DatasetInfo(name='toy', format='ml-100k', files=('u.data',),
                          urls=('file:///nonexistent/gnas/toy.zip',))
  with pytest.raises(FileNotFoundError, match=r"Could not download dataset "
                     r"'toy' from file:///nonexistent/gnas/toy\.zip"):
    data.resolve(info)


def toy_zip(folder, content):
  path = pathlib.Path(folder) / 'toy.zip'
  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr('toy/u.data', content)
    archive.writestr('toy/README', 'not needed')
  return path


def test_download_extracts_and_verifies(folders):
  content = '1\t2\t5\t10\n'
  digest = __import__('hashlib').sha256(content.encode()).hexdigest()
  info = data.DatasetInfo(name='toy', format='ml-100k', files=('u.data',),
                          urls=(toy_zip(folders, content).as_uri(),),
                          sha256=(('u.data', digest),))
  folder = data.resolve(info)
  assert folder == folders / 'cache' / 'toy'
  assert (folder / 'u.data').read_text() == content
  assert sorted(p.name for p in folder.iterdir()) == ['u.data']


def test_download_checksum_mismatch(folders):
  content = '1\t2\t5\t10\n'
  actual = __import__('hashlib').sha256(content.encode()).hexdigest()
  info = data.DatasetInfo(name='toy', format='ml-100k', files=('u.data',),
                          urls=(toy_zip(folders, content).as_uri(),),
                          sha256=(('u.data', '0' * 64),))
  with pytest.raises(ValueError, match=(
      f'Checksum mismatch for u.data downloaded from .*toy.zip: expected '
      f'sha256 {"0" * 64}, got {actual}')):
    data.resolve(info)
  assert not (folders / 'cache' / 'toy' / 'u.data').exists()


# --------------------------------------------------------------------------
# The statistics command.


def test_dataset_stats_command():
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.dataset_stats',
       '--config=experiments/configs/train.py',
       '--config.data.synthetic.num_users=60',
       '--config.data.synthetic.num_items=90',
       '--config.data.synthetic.interactions_per_user=10'],
      cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
  assert 'dataset                | synthetic' in result.stdout
  assert 'users                  |        60' in result.stdout
  assert 'users with test items  |        60' in result.stdout


# --------------------------------------------------------------------------
# Real data (GNAS_DATA_DIR).


def require(name):
  folder = pathlib.Path(DATA_DIR) / name
  if not folder.is_dir():
    pytest.skip(f'{folder} does not exist.')


@needs_data
def test_movielens_100k_counts():
  require('ml-100k')
  dataset = data.load_dataset(make_config(dataset='ml-100k'))
  stats = dataset.statistics()
  assert (stats['users'], stats['items'], stats['interactions']) == (
      943, 1682, 100000)
  assert stats['users_with_test'] == 943
  assert data.sha256_of(pathlib.Path(DATA_DIR) / 'ml-100k' / 'u.data') == (
      dict(data.DATASETS['ml-100k'].sha256)['u.data'])
  assert dataset.user_index(1) == 0 and dataset.raw_item_ids[-1] == '1682'


@needs_data
def test_gowalla_given_split_counts():
  require('gowalla')
  dataset = data.load_dataset(make_config(
      dataset='gowalla', **{'data.split': 'given',
                            'data.given_valid_ratio': 0.0}))
  assert (dataset.num_users, dataset.num_items) == (29858, 40981)
  assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == (
      810128, 0, 217242)
  carved = data.load_dataset(make_config(
      dataset='gowalla', **{'data.split': 'given'}))
  assert len(carved.train) + len(carved.valid) == 810128
  assert len(np.unique(carved.train[:, 0])) == 29858


def test_write_recbole_split_round_trips(tmp_path):
  dataset = data.load_dataset(make_config(
      **{'data.synthetic.num_users': 30, 'data.synthetic.num_items': 40}))
  data.write_recbole_split(dataset, tmp_path, 'syn')
  for split in ('train', 'valid', 'test'):
    path = tmp_path / f'syn.{split}.inter'
    lines = path.read_text().splitlines()
    assert lines[0] == 'user_id:token\titem_id:token'
    pairs = np.array([line.split('\t') for line in lines[1:]], np.int64)
    np.testing.assert_array_equal(pairs, getattr(dataset, split))
