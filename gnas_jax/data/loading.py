"""Builds a split `Dataset` from a config."""

from __future__ import annotations

import pathlib
import time

from absl import logging
import ml_collections
import numpy as np

from gnas_jax.data import dataset
from gnas_jax.data import preprocessing
from gnas_jax.data import readers
from gnas_jax.data import registry
from gnas_jax.data import splits
from gnas_jax.data import synthetic

SYNTHETIC = 'synthetic'
# File names whose folder names the dataset better than the file does.
_GENERIC_FILES = ('u.data', 'ratings.dat', 'train.txt')


def locate(name: str, fmt: str = 'auto', data_dir: str = '', *,
           verify_checksums: bool = True
          ) -> tuple[str, pathlib.Path | None, str | None]:
  """Resolves config.dataset to a display name, a path and a format.

  Args:
    name: a registered name (see `registry.DATASETS`), 'synthetic', or the
      path of a file or folder.
    fmt: config.dataset_format: 'auto' or one of `readers.FORMATS`.
    data_dir: config.data_dir, searched first for registered names.
    verify_checksums: config.data.verify_checksums: whether the files of a
      registered dataset are checked against their recorded sha256 (see
      `registry.resolve`).

  Returns:
    (name, path, format); path and format are None for 'synthetic'.
  """
  readers.check_format(fmt)
  if name == SYNTHETIC:
    if fmt != 'auto':
      raise ValueError(f"dataset_format={fmt!r} does not apply to the "
                       f"{SYNTHETIC!r} dataset; leave it 'auto'.")
    return name, None, None
  if name in registry.DATASETS:
    info = registry.DATASETS[name]
    if fmt not in ('auto', info.format):
      raise ValueError(f'Dataset {name!r} is in the {info.format!r} format; '
                       f"dataset_format={fmt!r} conflicts (leave it 'auto').")
    return name, registry.resolve(info, data_dir,
                                  verify=verify_checksums), info.format
  path = pathlib.Path(name).expanduser()
  if not path.exists():
    raise ValueError(
        f'Unknown dataset {name!r}: not a registered name '
        f"({', '.join(registry.DATASETS)}), not {SYNTHETIC!r}, and no file or "
        'folder exists at that path (a path to an interactions file or '
        'folder is accepted).')
  if fmt == 'auto':
    fmt = readers.infer_format(path)
  shown = path.resolve()
  shown = (shown.parent.name if shown.name in _GENERIC_FILES
           else shown.name if shown.is_dir() else shown.stem)
  return shown, path, fmt


def load_dataset(config: ml_collections.ConfigDict) -> dataset.Dataset:
  """Reads, preprocesses and splits the dataset the config names.

  Uses config.dataset, config.dataset_format, config.data_dir and
  config.data (data.split_seed seeds the random splits and the users kept
  by data.user_fraction; data.header and data.columns, when None or '',
  are inferred from a delimited file; data.verify_checksums=False skips
  the sha256 check of registered datasets; see
  experiments/configs/train.py). With data.split='given' (LightGCN files)
  the rating threshold and k-core apply to train.txt; test pairs whose user
  or item is then absent from training follow data.unseen_test_ids ('drop'
  with a warning, 'error', or 'miss': kept as test items evaluation never
  ranks, `Dataset.test_missed`, so that a user subsample keeps every test
  pair of the users it keeps). With another split, a LightGCN dataset's
  train.txt and test.txt are pooled and split afresh.

  Args:
    config: the experiment configuration.

  Returns:
    The split dataset.
  """
  start = time.perf_counter()
  data = config.data
  split = data.split
  if split not in splits.SPLITS:
    raise ValueError(f'Unknown split data.split={split!r}; choose from '
                     f"{', '.join(splits.SPLITS)}.")
  unseen = data.get('unseen_test_ids', 'drop')
  if unseen not in preprocessing.UNSEEN_ID_RULES:
    raise ValueError(f'Unknown data.unseen_test_ids={unseen!r}; choose from '
                     f"{', '.join(preprocessing.UNSEEN_ID_RULES)}.")
  name, path, fmt = locate(
      config.dataset, config.dataset_format, config.data_dir,
      verify_checksums=data.verify_checksums)
  rng = np.random.default_rng(data.split_seed)
  preprocess_options = dict(rating_threshold=data.rating_threshold,
                            kcore=data.kcore)

  if fmt == 'lightgcn':
    train_raw, test_raw = readers.read_lightgcn_split(path)
    raw = None if split == 'given' else dataset.concatenate(
        [train_raw, test_raw], source=str(path))
  elif split == 'given':
    raise ValueError(
        f"data.split='given' needs a dataset with its own test split (the "
        f"lightgcn format: train.txt and test.txt); {name!r} is "
        f"{fmt or SYNTHETIC!r}. Choose one of "
        f"{', '.join(s for s in splits.SPLITS if s != 'given')}.")
  elif fmt is None:
    raw = synthetic.generate_synthetic(**data.synthetic.to_dict())
  else:
    raw = readers.read_interactions(
        path, fmt, delimiter=data.delimiter,
        header=data.header, columns=data.columns)

  # Its own stream, so the split of the kept users does not depend on it.
  user_rng = np.random.default_rng([data.split_seed, 1])
  fraction = data.get('user_fraction', 1.0)
  test_missed = None
  if raw is None:
    train_raw, test_raw = preprocessing.sample_users(
        [train_raw, test_raw], fraction, user_rng)
    indexed = preprocessing.preprocess(train_raw, **preprocess_options)
    test = preprocessing.index_pairs(
        test_raw, indexed.raw_user_ids, indexed.raw_item_ids,
        unseen=unseen,
        reference=f'the training pairs of {train_raw.source}')
    train, valid, test = splits.split_given(
        indexed.pairs, test, data.given_valid_ratio, rng)
    if unseen == 'miss':
      test_missed = preprocessing.count_unseen_items(
          test_raw, indexed.raw_user_ids, indexed.raw_item_ids)
  else:
    raw, = preprocessing.sample_users([raw], fraction, user_rng)
    indexed = preprocessing.preprocess(raw, **preprocess_options)
    if split == 'random':
      assignment = splits.split_random_ratio(indexed.pairs, data.split_ratios,
                                             rng)
    else:
      if indexed.timestamps is None:
        raise ValueError(f'data.split={split!r} needs timestamps, but '
                         f"{indexed.source} has none; use data.split='random'"
                         '.')
      if split == 'temporal':
        assignment = splits.split_temporal_ratio(
            indexed.pairs, indexed.timestamps, data.split_ratios)
      else:
        assignment = splits.split_leave_one_out(indexed.pairs,
                                                indexed.timestamps)
    train, valid, test = splits.partition(indexed.pairs, assignment)

  result = dataset.Dataset(
      name=name, num_users=indexed.num_users, num_items=indexed.num_items,
      train=train, valid=valid, test=test,
      raw_user_ids=indexed.raw_user_ids, raw_item_ids=indexed.raw_item_ids,
      test_missed=test_missed)
  logging.info('Loaded %s (%s split) in %.2f s: %d users, %d items, '
               '%d/%d/%d train/valid/test pairs.', name, split,
               time.perf_counter() - start, result.num_users,
               result.num_items, len(train), len(valid), len(test))
  return result
