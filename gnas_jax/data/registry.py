"""Registered public datasets: where they come from and where they are found.

A registered name is looked up, in order, in `<data_dir>/<name>/` (from
`--config.data_dir`, when set), `$GNAS_DATA_DIR/<name>/`, and the cache
`$GNAS_CACHE_DIR/<name>/` (default `~/.cache/gnas_jax/<name>/`); a folder
counts when it holds every file the entry expects. Otherwise the files are
downloaded into the cache (zip archives are extracted).

Files are checked against their recorded sha256, whether downloaded or
found locally, so that a damaged, truncated or stale copy is caught before
it is trained on; a LightGCN-format file also passes when its sorted form
(each line's items in ascending order) has a recorded digest, since copies
that re-sort the items of a line hold the same split. Digests of files
checked in this process are kept in memory by path, size and modification
time, so a file is hashed once. `--config.data.verify_checksums=False`, or
the environment variable GNAS_VERIFY_CHECKSUMS=0, turns the checks off for
copies edited on purpose.
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
# Set to one of these, it turns the checksum checks off.
_CHECKSUMS_VARIABLE = 'GNAS_VERIFY_CHECKSUMS'
_OFF = ('0', 'false', 'no', 'off')
_TURN_OFF = ('turn the check off with --config.data.verify_checksums=False '
             f'(or {_CHECKSUMS_VARIABLE}=0).')
_SORTED = "with each line's items in ascending order"


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
    sha256: (file, digest) pairs: the sha256 of each file as the loader
      reads it (extracted from its archive, if any). A file listed twice
      has two accepted versions.
    sorted_sha256: (file, digest) pairs for LightGCN-format files: the
      sha256 of the file's sorted form (each line `user item item ...` with
      its items in ascending order, one space apart, ending in a newline),
      which copies that re-sort the items of a line share.
    archive_sha256: (url, digest) pairs: the sha256 of a downloaded archive,
      checked before it is extracted; recorded where the extracted files'
      digests are not known.
    note: provenance and licence.
  """
  name: str
  format: str
  files: tuple[str, ...]
  urls: tuple[str, ...]
  sha256: tuple[tuple[str, str], ...] = ()
  sorted_sha256: tuple[tuple[str, str], ...] = ()
  archive_sha256: tuple[tuple[str, str], ...] = ()
  note: str = ''


def _lightgcn(name: str, origin: str, **digests) -> DatasetInfo:
  return DatasetInfo(
      name=name, format='lightgcn', files=('train.txt', 'test.txt'),
      urls=tuple(_LIGHTGCN_URL.format(name, f)
                 for f in ('train.txt', 'test.txt')),
      note=_LIGHTGCN_NOTE.format(origin), **digests)


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
    # The archive's digest as tensorflow/datasets records it
    # (tensorflow_datasets/url_checksums/movielens.txt, with its size,
    # 5917549 bytes); no copy of ml-1m was at hand to record ratings.dat's.
    'ml-1m': DatasetInfo(
        name='ml-1m', format='ml-1m', files=('ratings.dat',),
        urls=('https://files.grouplens.org/datasets/movielens/ml-1m.zip',),
        archive_sha256=((
            'https://files.grouplens.org/datasets/movielens/ml-1m.zip',
            'a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20'
        ),),
        note=('MovieLens 1M, GroupLens Research, University of Minnesota '
              '(https://grouplens.org/datasets/movielens/1m/). Research use; '
              'redistribution is not allowed, so each user downloads it.')),
    # test.txt as published (its md5, c04e2c4b..., is the one RecZoo gives
    # for the same file); train.txt in sorted form only, from a copy whose
    # lines were re-sorted (the published file's own digest is not known).
    'gowalla': _lightgcn(
        'gowalla',
        'Gowalla check-ins, SNAP (https://snap.stanford.edu/data/'
        'loc-gowalla.html)',
        sha256=(('test.txt', '099a2a73924e4b754dc6efd730d764f492321b53c38eb'
                 '93298850c83acf57be3'),),
        sorted_sha256=(
            ('train.txt', '0f086326b28a56c2e6dcb81d86ee72d4ccb7eed3a8d26788'
             '392356d8f51111cc'),
            ('test.txt', '95a7e4ee029370c4ccac0d6a0c8cc0615b574ac89642081c'
             'df946090e0dd5bda'))),
    # No digests yet (no copy was at hand to compute them): files are used
    # unverified, with a warning.
    'yelp2018': _lightgcn('yelp2018', 'the Yelp 2018 challenge dataset'),
    'amazon-book': _lightgcn(
        'amazon-book', 'Amazon reviews (McAuley et al.), Books category'),
}

# (resolved path, size, mtime in ns, form) -> digest, so that each file is
# hashed once per process however often it is resolved.
_DIGESTS: dict[tuple[str, int, int, str], str | None] = {}
# (dataset, file) pairs already warned about as having no digest.
_UNVERIFIED_WARNED: set[tuple[str, str]] = set()


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


def checksums_enabled(verify: bool = True) -> bool:
  """Returns whether to check digests: `verify`, unless the environment
  variable GNAS_VERIFY_CHECKSUMS turns the checks off (0, false, no, off)."""
  setting = os.environ.get(_CHECKSUMS_VARIABLE, '').strip().lower()
  return verify and setting not in _OFF


def resolve(info: DatasetInfo | str, data_dir: str = '', *,
            download: bool = True, verify: bool = True) -> pathlib.Path:
  """Finds (or downloads) a registered dataset.

  Args:
    info: a registry entry or a registered name.
    data_dir: a folder holding `<name>/` searched first ('' skips it).
    download: whether to download into the cache when no folder holds the
      files.
    verify: whether to check the files (found or downloaded) against their
      recorded sha256 (see `verify_files`); GNAS_VERIFY_CHECKSUMS=0 also
      turns it off.

  Returns:
    The folder holding `info.files`.

  Raises:
    FileNotFoundError: when the files are nowhere and cannot be downloaded;
      the message names the URL, the folders searched and how to point at a
      local copy.
    ValueError: when a file fails its checksum, naming the file, the
      expected and the actual digest, and how to turn the check off.
  """
  if isinstance(info, str):
    info = get_info(info)
  verify = checksums_enabled(verify)
  folders = search_folders(info.name, data_dir)
  for folder in folders:
    if all((folder / f).is_file() for f in info.files):
      if verify:
        verify_files(info, folder, cached=folder == folders[-1])
      return folder
  cache = folders[-1]
  if not download:
    raise FileNotFoundError(_not_found(info, folders, None, None))
  for url in info.urls:
    try:
      download_file(url, cache, info, verify=verify)
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


def sorted_sha256_of(path: str | os.PathLike[str]) -> str | None:
  """Returns the sha256 of a LightGCN-format file's sorted form.

  The sorted form has, for each non-blank line `user item item ...` in file
  order, the user and then the items in ascending order, as decimal
  integers one space apart, ending in a newline.

  Returns:
    The hex digest, or None when a line holds something other than
    integers (the file has no sorted form).
  """
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for line in f:
      tokens = line.split()
      if not tokens:
        continue
      try:
        ids = [int(t) for t in tokens]
      except ValueError:
        return None
      ids[1:] = sorted(ids[1:])
      digest.update(' '.join(map(str, ids)).encode() + b'\n')
  return digest.hexdigest()


def _digest(path: pathlib.Path, form: str) -> str | None:
  """Returns sha256_of (form 'file') or sorted_sha256_of (form 'sorted'),
  computed once per path, size and modification time."""
  stat = path.stat()
  key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, form)
  if key not in _DIGESTS:
    _DIGESTS[key] = (sha256_of(path) if form == 'file' else
                     sorted_sha256_of(path))
  return _DIGESTS[key]


def _check(info: DatasetInfo, path: pathlib.Path
          ) -> tuple[bool, str | None, str]:
  """Checks one file of `info` against its recorded digests.

  Returns:
    ok: whether the file matches (True when no digest is recorded).
    actual: the file's sha256 (None when none is recorded).
    expected: the accepted digests, in words.
  """
  exact = [d for f, d in info.sha256 if f == path.name]
  by_sorted = [d for f, d in info.sorted_sha256 if f == path.name]
  if not exact and not by_sorted:
    if (info.name, path.name) not in _UNVERIFIED_WARNED:
      _UNVERIFIED_WARNED.add((info.name, path.name))
      logging.warning('No sha256 is recorded for %s of dataset %r; %s is '
                      'used unverified.', path.name, info.name, path)
    return True, None, ''
  expected = ' or '.join(exact + [f'{d} ({_SORTED})' for d in by_sorted])
  actual = _digest(path, 'file')
  # A file already in sorted form has its sorted form's digest.
  if actual in exact or actual in by_sorted:
    return True, actual, expected
  if by_sorted and _digest(path, 'sorted') in by_sorted:
    return True, actual, expected
  return False, actual, expected


def verify_files(info: DatasetInfo, folder: str | os.PathLike[str], *,
                 cached: bool = False) -> None:
  """Checks the files of a dataset folder against their recorded sha256.

  Args:
    info: the registry entry.
    folder: the folder holding `info.files`.
    cached: whether the folder is the download cache (the message then
      suggests deleting the file to download it again).

  Raises:
    ValueError: naming the first file that does not match, the expected
      and the actual digest, where the published file is, and how to turn
      the check off.
  """
  for file in info.files:
    path = pathlib.Path(folder) / file
    ok, actual, expected = _check(info, path)
    if not ok:
      url = next((u for u in info.urls if u.endswith('/' + file)),
                 info.urls[0])
      fix = ('delete it to download it again' if cached else
             f'replace it with the {file} of {url}' if url.endswith('.zip')
             else f'replace it with the file published at {url}')
      raise ValueError(
          f'Checksum mismatch for {path}: expected sha256 {expected}, got '
          f'{actual}. It is not the published {file} of dataset '
          f'{info.name!r} (it is damaged, truncated or edited): {fix}; if '
          f'you changed it on purpose, {_TURN_OFF}')


def download_file(url: str, folder: pathlib.Path, info: DatasetInfo, *,
                  verify: bool = True) -> None:
  """Downloads one URL of `info` into `folder`, extracting zip archives.

  An archive with a recorded digest is checked before it is extracted, and
  files with a recorded digest after; a mismatching download is removed.

  Args:
    url: one of `info.urls`.
    folder: where the files go.
    info: the registry entry.
    verify: whether to check digests.

  Raises:
    OSError: (urllib's URLError included) when the download fails.
    ValueError: naming the file (or URL), the expected and the actual
      digest on a checksum mismatch, or the URL when a .zip download is not
      a zip archive.
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
    expected = dict(info.archive_sha256).get(url)
    if verify and expected:
      actual = sha256_of(part.name)
      if actual != expected:
        raise ValueError(
            f'Checksum mismatch for {url}: expected sha256 {expected}, got '
            f'{actual}; the download was removed. If the published archive '
            f'changed on purpose, {_TURN_OFF}')
    if url.endswith('.zip'):
      try:
        archive = zipfile.ZipFile(part.name)
      except zipfile.BadZipFile as e:
        raise ValueError(f'{url} did not give a zip archive ({e}); the '
                         'download was removed. Try again later, or put the '
                         f"files ({', '.join(info.files)}) in a folder "
                         'yourself (see --config.data_dir).') from None
      with archive:
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
  if not verify:
    return
  for file in written:
    ok, actual, expected = _check(info, folder / file)
    if not ok:
      (folder / file).unlink()
      raise ValueError(
          f'Checksum mismatch for {file} downloaded from {url}: expected '
          f'sha256 {expected}, got {actual}; the file was removed. If the '
          f'published file changed on purpose, {_TURN_OFF}')
