"""Registered public datasets: where they come from and where they are found.

A registered name is looked up, in order, in `<data_dir>/<name>/` (from
`--config.data_dir`, when set), `$GNAS_DATA_DIR/<name>/`, and the cache
`$GNAS_CACHE_DIR/<name>/` (default `~/.cache/gnas_jax/<name>/`); a folder
counts when it holds every file the entry expects. Otherwise the files are
downloaded into the cache (zip archives are extracted) and checked against
their sha256 where it is known. Files found locally are not checked: local
copies may legitimately differ (e.g. a LightGCN train.txt with items
re-sorted on each line).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import shutil
import tempfile
import urllib.parse
import urllib.request
import zipfile

from absl import logging

_LIGHTGCN_URL = ('https://raw.githubusercontent.com/kuandeng/LightGCN/master/'
                 'Data/{}/{}')
_LIGHTGCN_NOTE = (
    'Preprocessed by the NGCF/LightGCN authors (Wang et al., SIGIR 2019; He '
    'et al., SIGIR 2020): 10-core filtered, each user\'s items split 80/20 '
    'into train.txt and test.txt; ids are 0-based. Original data: {}; its '
    'terms of use apply.')
_DOWNLOAD_TIMEOUT_S = 60


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """A public dataset the loader can find or download by name.

  Attributes:
    name: the registered name (also the folder name under a data directory).
    format: the reader format, one of `readers.FORMATS`.
    files: the files the dataset folder must hold.
    urls: canonical download URLs; a `.zip` is extracted (the files above
      are taken from it by name), any other URL is saved under its own file
      name.
    sha256: digest of each file whose digest is known, checked on download.
    note: provenance and licence.
  """
  name: str
  format: str
  files: tuple[str, ...]
  urls: tuple[str, ...]
  sha256: tuple[tuple[str, str], ...] = ()
  note: str = ''


def _lightgcn(name: str, origin: str) -> DatasetInfo:
  return DatasetInfo(
      name=name, format='lightgcn', files=('train.txt', 'test.txt'),
      urls=tuple(_LIGHTGCN_URL.format(name, f)
                 for f in ('train.txt', 'test.txt')),
      note=_LIGHTGCN_NOTE.format(origin))


DATASETS: dict[str, DatasetInfo] = {
    'ml-100k': DatasetInfo(
        name='ml-100k', format='ml-100k', files=('u.data',),
        urls=('https://files.grouplens.org/datasets/movielens/ml-100k.zip',),
        sha256=(('u.data', '06416e597f82b7342361e41163890c81036900f418ad9131'
                 '5590814211dca490'),),
        note=('MovieLens 100K, GroupLens Research, University of Minnesota '
              '(https://grouplens.org/datasets/movielens/100k/). Research '
              'use; redistribution is not allowed, so each user downloads '
              'it.')),
    'ml-1m': DatasetInfo(
        name='ml-1m', format='ml-1m', files=('ratings.dat',),
        urls=('https://files.grouplens.org/datasets/movielens/ml-1m.zip',),
        note=('MovieLens 1M, GroupLens Research, University of Minnesota '
              '(https://grouplens.org/datasets/movielens/1m/). Research use; '
              'redistribution is not allowed, so each user downloads it.')),
    'gowalla': _lightgcn(
        'gowalla',
        'Gowalla check-ins, SNAP (https://snap.stanford.edu/data/'
        'loc-gowalla.html)'),
    'yelp2018': _lightgcn('yelp2018', 'the Yelp 2018 challenge dataset'),
    'amazon-book': _lightgcn(
        'amazon-book', 'Amazon reviews (McAuley et al.), Books category'),
}


def get_info(name: str) -> DatasetInfo:
  """Returns the registry entry of a dataset name, or raises listing names."""
  try:
    return DATASETS[name]
  except KeyError:
    raise ValueError(f'Unknown dataset {name!r}; registered: '
                     f"{', '.join(DATASETS)}.") from None


def cache_dir() -> pathlib.Path:
  """Returns $GNAS_CACHE_DIR, or ~/.cache/gnas_jax when it is unset."""
  return pathlib.Path(os.environ.get('GNAS_CACHE_DIR') or
                      pathlib.Path.home() / '.cache' / 'gnas_jax')


def search_folders(name: str, data_dir: str = '') -> list[pathlib.Path]:
  """Returns the folders searched for a registered dataset, in order."""
  folders = []
  if data_dir:
    folders.append(pathlib.Path(data_dir) / name)
  if os.environ.get('GNAS_DATA_DIR'):
    folders.append(pathlib.Path(os.environ['GNAS_DATA_DIR']) / name)
  folders.append(cache_dir() / name)
  return folders


def resolve(info: DatasetInfo | str, data_dir: str = '', *,
            download: bool = True) -> pathlib.Path:
  """Finds (or downloads) a registered dataset.

  Args:
    info: a registry entry or a registered name.
    data_dir: a folder holding `<name>/` searched first ('' skips it).
    download: whether to download into the cache when no folder holds the
      files.

  Returns:
    The folder holding `info.files`.

  Raises:
    FileNotFoundError: when the files are nowhere and cannot be downloaded;
      the message names the URL, the folders searched and how to point at a
      local copy.
    ValueError: when a downloaded file fails its checksum.
  """
  if isinstance(info, str):
    info = get_info(info)
  folders = search_folders(info.name, data_dir)
  for folder in folders:
    if all((folder / f).is_file() for f in info.files):
      return folder
  cache = folders[-1]
  if not download:
    raise FileNotFoundError(_not_found(info, folders, None, None))
  for url in info.urls:
    try:
      download_file(url, cache, info)
    except OSError as e:
      # Leave no empty cache folder behind a failed first download.
      if cache.is_dir() and not any(cache.iterdir()):
        cache.rmdir()
      raise FileNotFoundError(_not_found(info, folders, url, e)) from e
  missing = [f for f in info.files if not (cache / f).is_file()]
  if missing:
    raise FileNotFoundError(f'Downloading {info.name!r} from '
                            f"{', '.join(info.urls)} gave no {missing} in "
                            f'{cache}.')
  return cache


def _not_found(info: DatasetInfo, folders, url, error) -> str:
  files = ', '.join(info.files)
  searched = ', '.join(str(f) for f in folders)
  reason = (f'Could not download dataset {info.name!r} from {url} ({error}).'
            if url else f'Dataset {info.name!r} was not found locally and '
            'downloading is off.')
  return (f'{reason} Searched {searched}; none holds {files}. To use a local '
          f'copy, put {files} in <folder>/{info.name}/ and pass '
          '--config.data_dir=<folder> (or set GNAS_DATA_DIR=<folder>).')


def sha256_of(path: str | os.PathLike[str]) -> str:
  """Returns the hex sha256 digest of a file."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def download_file(url: str, folder: pathlib.Path, info: DatasetInfo) -> None:
  """Downloads one URL of `info` into `folder`, extracting zip archives.

  Files with a known digest are checked; a mismatching file is removed.

  Raises:
    OSError: (urllib's URLError included) when the download fails.
    ValueError: naming the file, the expected and the actual digest on a
      checksum mismatch.
  """
  folder.mkdir(parents=True, exist_ok=True)
  logging.info('Downloading %s into %s', url, folder)
  with tempfile.NamedTemporaryFile(dir=folder, suffix='.part',
                                   delete=False) as part:
    try:
      with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as r:
        shutil.copyfileobj(r, part)
    except BaseException:
      part.close()
      os.unlink(part.name)
      raise
  written = []
  try:
    if url.endswith('.zip'):
      with zipfile.ZipFile(part.name) as archive:
        members = {pathlib.PurePosixPath(m).name: m
                   for m in archive.namelist() if not m.endswith('/')}
        for file in info.files:
          if file in members:
            with archive.open(members[file]) as src, open(
                folder / file, 'wb') as dst:
              shutil.copyfileobj(src, dst)
            written.append(file)
    else:
      file = pathlib.PurePosixPath(urllib.parse.urlparse(url).path).name
      os.replace(part.name, folder / file)
      written.append(file)
  finally:
    if os.path.exists(part.name):
      os.unlink(part.name)
  expected = dict(info.sha256)
  for file in written:
    if file in expected:
      actual = sha256_of(folder / file)
      if actual != expected[file]:
        (folder / file).unlink()
        raise ValueError(
            f'Checksum mismatch for {file} downloaded from {url}: expected '
            f'sha256 {expected[file]}, got {actual}; the file was removed.')
