"""Tests for gnas_jax.data on awkward input: layouts that must be inferred,
damaged files, and checksums of registered datasets."""

import gzip
import hashlib
import logging
import os
import pathlib
import zipfile

import numpy as np
import pytest

from gnas_jax import data
from gnas_jax.data import registry

from conftest import DATA_DIR, make_config, needs_data, write

OPT_OUT = ('turn the check off with --config.data.verify_checksums=False (or '
           'GNAS_VERIFY_CHECKSUMS=0).')


def read_error(path, *args, **kwargs):
  """Returns the message of the ValueError that reading `path` raises."""
  with pytest.raises(ValueError) as error:
    data.read_interactions(path, *args, **kwargs)
  return str(error.value)


# --------------------------------------------------------------------------
# Delimited files: columns and header inferred, options as overrides.


@pytest.mark.parametrize('text', ['1,10\n2,20\n', '1\t10\n2\t20\n',
                                  '1 10\n2   20\n', 'user;item\n1;10\n2;20\n'])
def test_two_columns_are_user_and_item(tmp_path, text):
  got = data.read_interactions(write(tmp_path, 'pairs.txt', text))
  np.testing.assert_array_equal(got.users, [1, 2])
  np.testing.assert_array_equal(got.items, [10, 20])
  assert got.ratings is None and got.timestamps is None


def test_header_names_the_columns_in_any_order(tmp_path):
  movielens = write(tmp_path, 'ratings.csv', 'userId,movieId,rating,timestamp'
                    '\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n')
  got = data.read_interactions(movielens)
  np.testing.assert_array_equal(got.users, [1, 1])
  np.testing.assert_array_equal(got.items, [31, 1029])
  np.testing.assert_array_equal(got.ratings, [2.5, 3.0])
  np.testing.assert_array_equal(got.timestamps, [1260759144, 1260759179])
  # Names, not positions; unknown names are skipped.
  shuffled = write(tmp_path, 'x.tsv', 'Time\tItem ID\tnote\tuser_id:token\n'
                   '100\tb\tok\t7\n200\ta\tno\t8\n')
  got = data.read_interactions(shuffled)
  np.testing.assert_array_equal(got.users, [7, 8])
  np.testing.assert_array_equal(got.items, ['b', 'a'])
  np.testing.assert_array_equal(got.timestamps, [100, 200])
  assert got.ratings is None


def test_text_above_numbers_is_a_header(tmp_path):
  # Unknown names, but text where the lines below have numbers.
  got = data.read_interactions(write(tmp_path, 'x.csv', 'who,what,stars\n'
                                     'alice,7,4\nbob,8,5\n'))
  np.testing.assert_array_equal(got.users, ['alice', 'bob'])
  np.testing.assert_array_equal(got.ratings, [4, 5])
  # String ids above integer ones: the first line is not data either.
  got = data.read_interactions(write(tmp_path, 'y.csv', 'a,b\n1,2\n3,4\n'))
  np.testing.assert_array_equal(got.users, [1, 3])
  # A first line that is data like the rest stays data.
  got = data.read_interactions(write(tmp_path, 'z.csv', 'u1,10,4\nu2,7,2\n'))
  np.testing.assert_array_equal(got.users, ['u1', 'u2'])


@pytest.mark.parametrize('third, ratings, timestamps', [
    (['4', '0.5', '-3'], [4, 0.5, -3], None),
    (['881250949', '1260759144000', '100000000'], None,
     [881250949, 1260759144000, 1e8]),
])
def test_third_column_told_apart_by_its_values(tmp_path, third, ratings,
                                               timestamps):
  lines = [f'{u}\t{u + 10}\t{v}' for u, v in enumerate(third)]
  got = data.read_interactions(write(tmp_path, 'x.tsv', '\n'.join(lines)))
  assert (got.ratings is None) == (ratings is None)
  assert (got.timestamps is None) == (timestamps is None)
  np.testing.assert_array_equal(
      got.ratings if ratings else got.timestamps, ratings or timestamps)


def test_utf8_byte_order_mark_is_not_part_of_the_first_id(tmp_path):
  path = write(tmp_path, 'excel.csv', b'\xef\xbb\xbfuser,item\r\n196,242\r\n'
               b'186,302\r\n')
  got = data.read_interactions(path)
  np.testing.assert_array_equal(got.users, [196, 186])
  assert got.users.dtype == np.int64


def test_explicit_options_override_inference(tmp_path):
  path = write(tmp_path, 'x.csv', 'user,item\n3,4\n')
  # header=False keeps the first line as an interaction.
  got = data.read_interactions(path, header=False, columns='user,item')
  np.testing.assert_array_equal(got.users, ['user', '3'])
  # Small values in an explicitly named timestamp column.
  path = write(tmp_path, 'y.csv', '1,2,3\n4,5,6\n')
  got = data.read_interactions(path, columns='user,item,timestamp')
  np.testing.assert_array_equal(got.timestamps, [3, 6])
  assert got.ratings is None
  got = data.read_interactions(path, header=True, columns='item,user,rating')
  np.testing.assert_array_equal(got.users, [5])
  np.testing.assert_array_equal(got.items, [4])
  np.testing.assert_array_equal(got.ratings, [6])


def test_load_dataset_infers_with_unset_options(tmp_path):
  lines = ['user_id,item_id'] + [f'u{u},i{i}' for u in range(4)
                                  for i in range(5)]
  path = write(tmp_path, 'clicks.csv', '\n'.join(lines) + '\n')
  config = make_config(dataset=str(path), **{'data.header': None,
                                             'data.columns': ''})
  dataset = data.load_dataset(config)
  assert dataset.name == 'clicks'
  assert (dataset.num_users, dataset.num_items) == (4, 5)
  assert dataset.statistics()['interactions'] == 20


def test_what_cannot_be_inferred_names_file_line_and_option(tmp_path):
  path = write(tmp_path, 'names.csv', '\n\nalice,book\nbob,pen\n')
  assert read_error(path) == (
      f"{path}:3: cannot tell whether the first line 'alice,book' is a "
      'header: it holds no number, nor does the next line at those fields, '
      'and its fields do not name the user and item columns; set '
      'data.header=True or data.header=False.')
  path = write(tmp_path, 'mixed.csv', 'u1,10\n2,7\nu3,5\n')
  assert read_error(path) == (
      f"{path}:1: cannot tell whether the first line 'u1,10' is a header: "
      'its user field is not an integer, but neither are all the user ids '
      'below it; set data.header=True or data.header=False.')
  path = write(tmp_path, 'counts.tsv', '1\t2\t4\n3\t4\t5\n5\t6\t400\n')
  assert read_error(path) == (
      f'{path}:3: cannot tell whether the third column holds ratings or '
      'timestamps: it has 400 here and values from 4 to 400 (ratings are '
      'taken to lie in [-10, 10], timestamps to be Unix times of at least '
      '100,000,000); set data.columns=user,item,rating or '
      'data.columns=user,item,timestamp.')
  path = write(tmp_path, 'wide.csv', '1,2,3,4,5\n')
  assert read_error(path) == (
      f"{path}:1: cannot infer which of the 5 comma-separated fields of "
      "'1,2,3,4,5' hold the user, item, rating and timestamp; set "
      'data.columns to name them in order, e.g. '
      'data.columns=user,item,rating,timestamp,- (- skips a field).')


def test_field_count_errors_say_how_the_columns_were_set(tmp_path):
  # The message the issue quotes, now with the option to set.
  path = write(tmp_path, 'pairs.csv', '1,2\n3,4\n')
  assert read_error(path, columns='user,item,rating,timestamp') == (
      f"{path}:1: expected 4 comma-separated fields, got 2 (data.columns="
      "'user,item,rating,timestamp' names 4; set data.columns to the file's "
      "columns in order, or to '' to infer them).")
  # A header read as data because data.header=False says there is none.
  path = write(tmp_path, 'ratings.csv', 'userId,movieId,rating,timestamp\n'
               '1,31,2.5,1260759144\n')
  config = make_config(dataset=str(path), **{
      'data.header': False, 'data.columns': 'user,item,rating,timestamp'})
  with pytest.raises(ValueError) as error:
    data.load_dataset(config)
  assert str(error.value) == (
      f"{path}:1: non-numeric rating 'rating' (the line looks like a header: "
      'set data.header=True, or leave it unset to infer it).')
  path = write(tmp_path, 'ragged.csv', '1,2,3\n1,2,4\n5,6\n')
  assert read_error(path) == (
      f'{path}:3: expected 3 comma-separated fields, got 2 (as on line 1; '
      'set data.columns to the columns in order).')
  path = write(tmp_path, 'named.csv', 'user,item,rating\n1,2,3\n4,5\n')
  assert read_error(path) == (
      f'{path}:3: expected 3 comma-separated fields, got 2 (as the header '
      'names; set data.columns to the columns in order).')


# --------------------------------------------------------------------------
# Damaged files: a ValueError naming the file and what is wrong.


def test_compressed_and_binary_files_are_named_for_what_they_are(tmp_path):
  gz = write(tmp_path, 'ratings.csv', gzip.compress(b'1,2\n3,4\n'))
  assert read_error(gz) == (
      f'{gz}: this is a gzip-compressed file, not a text file; decompress, '
      'extract or export the interactions to a text file first.')
  archive = tmp_path / 'u.data'
  with zipfile.ZipFile(archive, 'w') as z:
    z.writestr('u.data', '1\t2\t3\t4\n')
  assert read_error(archive) == (
      f'{archive}: this is a zip archive (or an .xlsx spreadsheet), not a '
      'text file; decompress, extract or export the interactions to a text '
      'file first.')
  utf16 = write(tmp_path, 'x.csv', '1,2\n'.encode('utf-16'))
  assert read_error(utf16) == (
      f'{utf16}: the text is in UTF-16 (the file starts with a UTF-16 '
      'byte-order mark); save it as UTF-8.')


@pytest.mark.parametrize('name, fmt', [('x.csv', 'auto'), ('u.data', 'auto'),
                                       ('train.txt', 'auto'),
                                       ('x.inter', 'recbole')])
def test_damaged_bytes_name_file_line_and_byte(tmp_path, name, fmt):
  # Zeros where a crash cut the file, in every reader.
  path = write(tmp_path, name, b'1\t2\t3\t4\n' + b'\0' * 64)
  assert read_error(path, fmt) == (
      f'{path}:2: binary data, not text (a NUL byte at byte 8); the file is '
      'damaged or is not an interactions file.')
  path = write(tmp_path, name, b'1\t2\t3\t4\n5\t\x93\xff\t3\t4\n')
  assert read_error(path, fmt) == (
      f'{path}:2: not UTF-8 text (invalid start byte at byte 10); the file '
      'is damaged or binary, or in another encoding (save it as UTF-8).')


def test_random_bytes_raise_a_value_error_naming_the_file(tmp_path):
  noise = np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes()
  with pytest.raises(UnicodeDecodeError) as decoding:
    noise.decode('utf-8')
  bad = decoding.value
  for name in ('x.csv', 'u.data', 'ratings.dat', 'train.txt', 'x.inter'):
    path = write(tmp_path, name, noise)
    line = noise.count(b'\n', 0, bad.start) + 1
    assert read_error(path) == (
        f'{path}:{line}: not UTF-8 text ({bad.reason} at byte {bad.start}); '
        'the file is damaged or binary, or in another encoding (save it as '
        'UTF-8).')


def test_huge_field_and_truncated_line(tmp_path):
  path = write(tmp_path, 'x.csv', '1,2\n' * 3 + '3,' + 'x' * 5000 + '\n')
  assert read_error(path) == (
      f'{path}:4: an item field of 5000 bytes; no item is that long (over '
      '1024), so the line is damaged or the delimiter is wrong.')
  path = write(tmp_path, 'u.data', '1\t2\t3\t4\n5\t6\t')
  assert read_error(path) == (
      f'{path}:2: expected 4 tab-separated fields, got 3 (the file ends '
      'inside this line, so it may be truncated).')
  path = write(tmp_path, 'train.txt', '0 1 2\n1 ' + '7' * 5000 + '\n')
  assert read_error(path) == (
      f"{path}:2: expected non-negative integer ids, got "
      f"'{'7' * 40}'....")


def test_empty_lightgcn_file_has_no_interactions(tmp_path):
  write(tmp_path, 'train.txt', '0 1 2\n')
  test = write(tmp_path, 'test.txt', '')
  with pytest.raises(ValueError) as error:
    data.read_lightgcn_split(tmp_path)
  assert str(error.value) == (f'{test}: no interactions (the file has no '
                              'data lines).')


def test_download_that_is_not_a_zip_names_the_url(tmp_path, monkeypatch):
  monkeypatch.setenv('GNAS_CACHE_DIR', str(tmp_path / 'cache'))
  monkeypatch.delenv('GNAS_DATA_DIR', raising=False)
  page = write(tmp_path, 'toy.zip', '<html>Service unavailable</html>')
  info = data.DatasetInfo(name='toy', format='ml-100k', files=('u.data',),
                          urls=(page.as_uri(),))
  with pytest.raises(ValueError) as error:
    data.resolve(info)
  assert str(error.value) == (
      f'{page.as_uri()} did not give a zip archive (File is not a zip file); '
      'the download was removed. Try again later, or put the files (u.data) '
      'in a folder yourself (see --config.data_dir).')
  assert not list((tmp_path / 'cache' / 'toy').iterdir())


# --------------------------------------------------------------------------
# Checksums of registered datasets.


def test_every_registered_download_is_checked():
  # Digests not yet recorded (no copy was at hand): used with a warning.
  unverified = {'yelp2018', 'amazon-book'}
  for name, info in data.DATASETS.items():
    recorded = {f for f, _ in info.sha256 + info.sorted_sha256}
    archives = {u for u, _ in info.archive_sha256}
    covered = set(info.files) <= recorded or set(info.urls) <= archives
    assert covered == (name not in unverified), name
    for _, digest in info.sha256 + info.sorted_sha256 + info.archive_sha256:
      assert len(digest) == 64 and int(digest, 16) >= 0
  # The digests of the shared copies (../shared/datasets/README.md).
  assert dict(data.DATASETS['ml-100k'].sha256) == {
      'u.data': '06416e597f82b7342361e41163890c81036900f418ad91315590814211'
                'dca490'}
  gowalla = data.DATASETS['gowalla']
  assert dict(gowalla.sha256)['test.txt'] == (
      '099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3')
  assert dict(gowalla.sorted_sha256)['train.txt'] == (
      '0f086326b28a56c2e6dcb81d86ee72d4ccb7eed3a8d26788392356d8f51111cc')


@pytest.fixture
def toy(tmp_path, monkeypatch):
  """A registered-style dataset 'toy' with one recorded file, in
  $GNAS_DATA_DIR/toy."""
  monkeypatch.setenv('GNAS_CACHE_DIR', str(tmp_path / 'cache'))
  monkeypatch.setenv('GNAS_DATA_DIR', str(tmp_path / 'env'))
  monkeypatch.delenv('GNAS_VERIFY_CHECKSUMS', raising=False)
  content = '1\t2\t5\t10\n'
  info = data.DatasetInfo(
      name='toy', format='ml-100k', files=('u.data',),
      urls=('https://example.org/toy.zip',),
      sha256=(('u.data', hashlib.sha256(content.encode()).hexdigest()),))
  monkeypatch.setitem(data.DATASETS, 'toy', info)
  write(tmp_path / 'env' / 'toy', 'u.data', content)
  return info


def test_local_copies_are_checked_with_an_opt_out(toy, tmp_path,
                                                  monkeypatch):
  folder = tmp_path / 'env' / 'toy'
  assert data.resolve('toy') == folder
  edited = write(folder, 'u.data', '1\t2\t4\t10\n')
  actual = hashlib.sha256(b'1\t2\t4\t10\n').hexdigest()
  expected = dict(toy.sha256)['u.data']
  config = make_config(dataset='toy', **{'data.split_ratios': (1., 0., 0.)})
  with pytest.raises(ValueError) as error:
    data.load_dataset(config)
  assert str(error.value) == (
      f'Checksum mismatch for {edited}: expected sha256 {expected}, got '
      f"{actual}. It is not the published u.data of dataset 'toy' (it is "
      'damaged, truncated or edited): replace it with the u.data of '
      'https://example.org/toy.zip; if you changed it on purpose, '
      f'{OPT_OUT}')
  config.data.verify_checksums = False
  assert data.load_dataset(config).statistics()['interactions'] == 1
  monkeypatch.setenv('GNAS_VERIFY_CHECKSUMS', '0')
  assert data.resolve('toy') == folder


def test_damaged_cache_copy_is_to_be_deleted(toy, tmp_path, monkeypatch):
  monkeypatch.delenv('GNAS_DATA_DIR')
  cached = write(tmp_path / 'cache' / 'toy', 'u.data', '1\t2\t5\t1')
  with pytest.raises(ValueError) as error:
    data.resolve('toy')
  assert str(error.value).startswith(f'Checksum mismatch for {cached}: ')
  assert str(error.value).endswith(
      'damaged, truncated or edited): delete it to download it again; if '
      f'you changed it on purpose, {OPT_OUT}')


def test_files_are_hashed_once_per_path_size_and_mtime(toy, tmp_path,
                                                       monkeypatch):
  hashed = []
  original = registry.sha256_of
  monkeypatch.setattr(registry, 'sha256_of',
                      lambda path: hashed.append(path) or original(path))
  for _ in range(3):
    data.resolve('toy')
  assert len(hashed) == 1
  path = tmp_path / 'env' / 'toy' / 'u.data'
  stat = path.stat()
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  data.resolve('toy')
  assert len(hashed) == 2


def test_lightgcn_files_also_pass_in_sorted_form(tmp_path, monkeypatch):
  monkeypatch.setenv('GNAS_DATA_DIR', str(tmp_path / 'env'))
  monkeypatch.setenv('GNAS_CACHE_DIR', str(tmp_path / 'cache'))
  monkeypatch.delenv('GNAS_VERIFY_CHECKSUMS', raising=False)
  sorted_train = '0 1 5 12\n1 0 3\n'
  info = data.DatasetInfo(
      name='lg', format='lightgcn', files=('train.txt', 'test.txt'),
      urls=('https://example.org/lg/train.txt',
            'https://example.org/lg/test.txt'),
      sha256=(('test.txt', hashlib.sha256(b'0 2\n1 4\n').hexdigest()),),
      sorted_sha256=(('train.txt',
                      hashlib.sha256(sorted_train.encode()).hexdigest()),))
  folder = tmp_path / 'env' / 'lg'
  write(folder, 'test.txt', '0 2\n1 4\n')
  for train in (sorted_train, '0 12 5 1\n\n1  3 0 \r\n'):
    write(folder, 'train.txt', train)
    assert data.resolve(info) == folder
  write(folder, 'train.txt', '0 12 5 1\n1 3\n')
  with pytest.raises(ValueError) as error:
    data.resolve(info)
  assert (f'expected sha256 {dict(info.sorted_sha256)["train.txt"]} (with '
          "each line's items in ascending order), got") in str(error.value)
  assert ('replace it with the file published at '
          'https://example.org/lg/train.txt; if you changed it') in (
              str(error.value))


def toy_zip(folder, content):
  path = pathlib.Path(folder) / 'toy.zip'
  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr('toy/u.data', content)
  return path


def test_download_checks_the_archive(tmp_path, monkeypatch):
  monkeypatch.setenv('GNAS_CACHE_DIR', str(tmp_path / 'cache'))
  monkeypatch.delenv('GNAS_DATA_DIR', raising=False)
  monkeypatch.delenv('GNAS_VERIFY_CHECKSUMS', raising=False)
  url = toy_zip(tmp_path, '1\t2\t5\t10\n').as_uri()
  actual = registry.sha256_of(tmp_path / 'toy.zip')
  info = data.DatasetInfo(name='toy', format='ml-100k', files=('u.data',),
                          urls=(url,), archive_sha256=((url, '0' * 64),))
  with pytest.raises(ValueError) as error:
    data.resolve(info)
  assert str(error.value) == (
      f'Checksum mismatch for {url}: expected sha256 {"0" * 64}, got '
      f'{actual}; the download was removed. If the published archive '
      f'changed on purpose, {OPT_OUT}')
  assert not list((tmp_path / 'cache' / 'toy').iterdir())
  good = data.DatasetInfo(name='toy', format='ml-100k', files=('u.data',),
                          urls=(url,), archive_sha256=((url, actual),))
  assert (data.resolve(good) / 'u.data').read_text() == '1\t2\t5\t10\n'


def test_unrecorded_files_are_used_with_a_warning(tmp_path, monkeypatch,
                                                  caplog):
  monkeypatch.setenv('GNAS_DATA_DIR', str(tmp_path / 'env'))
  write(tmp_path / 'env' / 'yelp2018', 'train.txt', '0 1\n')
  write(tmp_path / 'env' / 'yelp2018', 'test.txt', '0 2\n')
  with caplog.at_level(logging.WARNING):
    assert data.resolve('yelp2018') == tmp_path / 'env' / 'yelp2018'
  assert "No sha256 is recorded for train.txt of dataset 'yelp2018'" in (
      caplog.text)


@needs_data
def test_shared_copies_pass_and_are_hashed_once(monkeypatch):
  if not all((pathlib.Path(DATA_DIR) / n).is_dir()
             for n in ('ml-100k', 'gowalla')):
    pytest.skip(f'{DATA_DIR} lacks ml-100k or gowalla.')
  monkeypatch.delenv('GNAS_VERIFY_CHECKSUMS', raising=False)
  hashed = []
  original = registry.sha256_of
  monkeypatch.setattr(registry, 'sha256_of',
                      lambda path: hashed.append(path) or original(path))
  for _ in range(3):
    for name in ('ml-100k', 'gowalla'):
      data.resolve(name, DATA_DIR, download=False)
  # Earlier tests of this process may have hashed them already.
  assert len(hashed) <= 3 and len(set(hashed)) == len(hashed)
  gowalla = pathlib.Path(DATA_DIR) / 'gowalla'
  # The shared train.txt is already in sorted form; test.txt is not.
  assert data.sorted_sha256_of(gowalla / 'train.txt') == data.sha256_of(
      gowalla / 'train.txt')
  assert data.sorted_sha256_of(gowalla / 'test.txt') == dict(
      data.DATASETS['gowalla'].sorted_sha256)['test.txt']
