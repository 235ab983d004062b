"""Readers for interaction files: MovieLens, LightGCN, delimited and RecBole.

Each reader parses the whole file with numpy operations on its bytes (field
boundaries, digit checks and integer parsing are vectorised), so no Python
object is made per interaction. A malformed line raises
`ValueError('<file>:<line>: <what is wrong>')` with a 1-based line number;
a file that is not text at all (compressed, binary, another encoding) raises
`ValueError('<file>: <what it is>')`. Blank lines are skipped everywhere, and
a UTF-8 byte-order mark is ignored.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
from typing import Sequence

import numpy as np

from gnas_jax.data import dataset

Interactions = dataset.Interactions

FORMATS = ('ml-100k', 'ml-1m', 'lightgcn', 'delimited', 'recbole')
COLUMNS = ('user', 'item', 'rating', 'timestamp')

# Candidates tried, in this order, when a delimited file's delimiter is ''.
DELIMITERS = ('\t', ',', '::', ';', ' ')
_DELIMITER_NAMES = {'\t': 'tab', ',': 'comma', '::': "'::'", ';': 'semicolon',
                    ' ': 'whitespace'}
# Spellings that survive a command line, where a literal tab is awkward.
_DELIMITER_ALIASES = {'\\t': '\t', 'tab': '\t', 'comma': ',',
                      'semicolon': ';', 'space': ' ', 'whitespace': ' '}

# RecBole atomic-file field names (its USER_ID_FIELD, ITEM_ID_FIELD,
# RATING_FIELD and TIME_FIELD defaults) and the columns they fill.
RECBOLE_FIELDS = {'user_id': 'user', 'item_id': 'item', 'rating': 'rating',
                  'timestamp': 'timestamp'}

_WHITESPACE = np.zeros(256, bool)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True
_DIGIT = np.zeros(256, bool)
_DIGIT[ord('0'):ord('9') + 1] = True
# Longest digit string parsed as int64 without overflow.
_MAX_DIGITS = 18
# Bytes that stand in for a multi-byte delimiter so that fields can be found
# by comparing single bytes; one absent from the file is used.
_SPARE_BYTES = (0x1f, 0x1e, 0x1d, 0x1c, 0x00)
# Fields are gathered into [lines, longest field] byte matrices, so one
# damaged line with a huge field would cost memory for every line; no id or
# number is this long.
_MAX_FIELD_BYTES = 1024

# Leading bytes of files that are not text, so that a compressed file or a
# spreadsheet is named for what it is rather than as bad UTF-8. They are
# looked at only once a file fails as text, so an id that happens to start
# like one is never mistaken for it.
_SIGNATURES = ((b'\x1f\x8b', 'a gzip-compressed file'),
               (b'PK\x03\x04', 'a zip archive (or an .xlsx spreadsheet)'),
               (b'BZh', 'a bzip2-compressed file'),
               (b'\xfd7zXZ\x00', 'an xz-compressed file'),
               (b'(\xb5/\xfd', 'a zstd-compressed file'),
               (b"7z\xbc\xaf'\x1c", 'a 7-zip archive'),
               (b'\xd0\xcf\x11\xe0', 'an .xls spreadsheet'),
               (b'PAR1', 'a Parquet file'),
               (b'\x93NUMPY', 'a numpy .npy file'))
_UTF8_BOM = b'\xef\xbb\xbf'
# Byte-order marks of UTF-32 before UTF-16, since the UTF-32 LE mark starts
# with the UTF-16 LE one.
_OTHER_BOMS = ((b'\xff\xfe\x00\x00', 'UTF-32'),
               (b'\x00\x00\xfe\xff', 'UTF-32'), (b'\xff\xfe', 'UTF-16'),
               (b'\xfe\xff', 'UTF-16'))

# Header names that identify a column, compared lower-cased without '_',
# '-', '.', spaces, quotes or a RecBole ':type' suffix ('userId',
# 'user_id:token' and 'User ID' are all 'userid').
_HEADER_NAMES = {
    'user': ('user', 'users', 'userid', 'uid', 'customer', 'customerid',
             'reviewer', 'reviewerid', 'visitor', 'visitorid'),
    'item': ('item', 'items', 'itemid', 'iid', 'movie', 'movieid', 'product',
             'productid', 'asin', 'business', 'businessid', 'book', 'bookid',
             'isbn', 'song', 'songid', 'track', 'trackid', 'artist',
             'artistid', 'poi', 'location', 'locationid', 'venue', 'venueid'),
    'rating': ('rating', 'ratings', 'score', 'stars', 'rate', 'preference'),
    'timestamp': ('timestamp', 'time', 'ts', 'unixtime', 'unixreviewtime',
                  'epoch'),
}
_COLUMN_OF_NAME = {name: column for column, names in _HEADER_NAMES.items()
                   for name in names}
# A third column without a header is told apart by its values: ratings lie
# in [-10, 10] (the 1-5, 0.5-5, 1-10 and -10..10 scales of public
# datasets); timestamps are Unix times, at least 1e8 (March 1973) in
# seconds and larger in milliseconds.
_RATING_RANGE = (-10.0, 10.0)
_MIN_TIMESTAMP = 1e8
# Stands for that third column until its values are seen.
_RATING_OR_TIME = '?'


def check_format(fmt: str) -> str:
  """Returns `fmt` if it is 'auto' or one of FORMATS, else raises."""
  if fmt != 'auto' and fmt not in FORMATS:
    raise ValueError(f"Unknown dataset format {fmt!r}; choose 'auto' or one "
                     f"of {', '.join(FORMATS)}.")
  return fmt


def infer_format(path: str | os.PathLike[str]) -> str:
  """Infers a file's (or folder's) format from its name.

  `u.data` is ml-100k, `ratings.dat` is ml-1m, `train.txt` (or a folder
  holding train.txt and test.txt) is lightgcn, `*.inter` is recbole, any
  other file is delimited. A folder is looked into for those names.

  Args:
    path: a file or folder.

  Returns:
    One of FORMATS.
  """
  path = pathlib.Path(path)
  if path.is_dir():
    if (path / 'train.txt').is_file() and (path / 'test.txt').is_file():
      return 'lightgcn'
    if (path / 'u.data').is_file():
      return 'ml-100k'
    if (path / 'ratings.dat').is_file():
      return 'ml-1m'
    if len(list(path.glob('*.inter'))) == 1:
      return 'recbole'
    found = sorted(p.name for p in path.iterdir())[:10]
    raise ValueError(
        f'Cannot infer the format of folder {path}: expected train.txt and '
        f'test.txt, u.data, ratings.dat or one *.inter file; found {found}. '
        f'Name a file instead, or set the format to one of '
        f"{', '.join(FORMATS)}.")
  if path.name == 'u.data':
    return 'ml-100k'
  if path.name == 'ratings.dat':
    return 'ml-1m'
  if path.name == 'train.txt':
    return 'lightgcn'
  if path.suffix == '.inter':
    return 'recbole'
  return 'delimited'


def parse_columns(columns: str | Sequence[str]) -> tuple[str, ...]:
  """Parses a column spec such as 'user,item,-,timestamp'.

  Args:
    columns: comma-separated names, in file order, among COLUMNS, with '-'
      for a column to skip; user and item are required.

  Returns:
    The names as a tuple.
  """
  names = (tuple(c.strip() for c in columns.split(','))
           if isinstance(columns, str) else tuple(columns))
  for name in names:
    if name not in COLUMNS and name != '-':
      raise ValueError(
          f'Unknown column {name!r} in columns={columns!r}; name each column '
          f"of the file in order with {', '.join(COLUMNS)}, or - to skip "
          'one.')
  for name in COLUMNS:
    if names.count(name) > 1:
      raise ValueError(f'Column {name!r} appears twice in columns='
                       f'{columns!r}.')
  for name in ('user', 'item'):
    if name not in names:
      raise ValueError(f'columns={columns!r} has no {name!r} column.')
  return names


def read_interactions(path: str | os.PathLike[str], fmt: str = 'auto', *,
                      delimiter: str = '', header: bool | None = None,
                      columns: str | Sequence[str] | None = None
                     ) -> Interactions:
  """Reads one interactions file.

  Args:
    path: the file, or a folder holding the format's usual file (u.data,
      ratings.dat, a single *.inter).
    fmt: 'auto' (see `infer_format`) or one of FORMATS. The lightgcn format
      reads one file (train.txt or test.txt); `read_lightgcn_split` reads
      both.
    delimiter: delimited format only: the field delimiter; '' infers it from
      the first data line, trying DELIMITERS in order. ' ' splits on runs of
      whitespace. 'tab' (or a backslash and t), 'comma', 'semicolon' and
      'space' name the usual ones.
    header: delimited format only: whether the first line is a header to
      skip; None infers it. The first line is a header when its fields name
      the columns (e.g. 'userId,movieId,rating'), or when it has text where
      the next line has numbers (e.g. a user field that is not an integer
      above integer user ids); a first line that holds no number, above a
      line that holds none at the same fields either, cannot be told apart
      and raises.
    columns: delimited format only: the file's columns in order (see
      `parse_columns`); None or '' infers them: from the header's names when
      they name the user and item columns, else from the number of fields
      (2: user,item; 3: user,item and a rating or a timestamp, told apart by
      their values; 4: user,item,rating,timestamp), raising where that does
      not decide.

  Returns:
    The interactions, in file order.

  Raises:
    ValueError: naming the file (and the line, where there is one) when the
      file is malformed, damaged or not text, or when its layout cannot be
      inferred (the message names the option to set).
  """
  fmt = check_format(fmt)
  path = pathlib.Path(path)
  if fmt == 'auto':
    fmt = infer_format(path)
  path = _data_file(path, fmt)
  if fmt == 'ml-100k':
    return _read_table(_Text.read(path, '\t'), COLUMNS, header=False)
  if fmt == 'ml-1m':
    return _read_table(_Text.read(path, '::'), COLUMNS, header=False)
  if fmt == 'lightgcn':
    return _read_lightgcn_file(path)
  if fmt == 'recbole':
    return _read_recbole(path)
  return _read_delimited(path, delimiter, header, columns)


def read_lightgcn_split(path: str | os.PathLike[str]
                       ) -> tuple[Interactions, Interactions]:
  """Reads the train.txt and test.txt of a LightGCN-format dataset.

  Each line is `user item item ...` with 0-based integer ids; a user line may
  list no items.

  Args:
    path: the folder, or its train.txt.

  Returns:
    (train, test) interactions, without ratings or timestamps.
  """
  path = pathlib.Path(path)
  folder = path if path.is_dir() else path.parent
  files = [folder / 'train.txt', folder / 'test.txt']
  for file in files:
    if not file.is_file():
      raise FileNotFoundError(f'LightGCN-format dataset {folder} has no '
                              f'{file.name}.')
  return _read_lightgcn_file(files[0]), _read_lightgcn_file(files[1])


def _data_file(path: pathlib.Path, fmt: str) -> pathlib.Path:
  """Returns the file to read for `fmt` when `path` is a folder."""
  if not path.exists():
    raise FileNotFoundError(f'No such file or folder: {path}')
  if not path.is_dir():
    return path
  if fmt in ('ml-100k', 'ml-1m'):
    file = path / ('u.data' if fmt == 'ml-100k' else 'ratings.dat')
    if not file.is_file():
      raise FileNotFoundError(f'Folder {path} has no {file.name} ({fmt} '
                              'format).')
    return file
  if fmt == 'recbole':
    inter = sorted(path.glob('*.inter'))
    if len(inter) != 1:
      raise ValueError(f'Folder {path} holds {len(inter)} *.inter files; name '
                       'the one to read.')
    return inter[0]
  if fmt == 'lightgcn':
    raise ValueError(f'{path} is a folder; the lightgcn reader takes one file '
                     '(use read_lightgcn_split for train.txt and test.txt).')
  raise ValueError(f'{path} is a folder; name the {fmt} file to read.')


class _Text:
  """A file's bytes and line boundaries, with the field delimiter (if any).

  Line-level arrays (blank lines, per-line counts) are computed on first use
  so that a file read only to peek at its first line costs one read.
  """

  def __init__(self, path: str, data: bytes, delimiter: str = ''):
    self.path = path
    self.raw = data
    self.delimiter = delimiter
    # Multi-byte delimiters become one spare byte so fields can be found by
    # single-byte comparisons; bytes.replace splits like str.split.
    self.sep_byte = None
    if delimiter and delimiter != ' ':
      encoded = delimiter.encode('utf-8')
      if len(encoded) == 1:
        self.sep_byte = encoded[0]
      else:
        self.sep_byte = next(
            (b for b in _SPARE_BYTES if bytes([b]) not in data), None)
        if self.sep_byte is None:
          raise ValueError(f'{path}: cannot split on {delimiter!r} (the file '
                           'holds every byte reserved for that).')
        data = data.replace(encoded, bytes([self.sep_byte]))
    self.data = data
    self._lines = None
    # 0-based line index -> a note added to errors on that line.
    self.notes = {}

  @classmethod
  def read(cls, path: str | os.PathLike[str], delimiter: str = '') -> _Text:
    """Reads a file as UTF-8 text.

    Raises:
      ValueError: naming the file, and what it is, when it is not UTF-8
        text: compressed, binary (it holds a NUL byte), or in another
        encoding.
    """
    data = pathlib.Path(path).read_bytes()
    # Spreadsheet exports often start with a byte-order mark, which would
    # otherwise become part of the first user id.
    skipped = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    data = data[skipped:]
    try:
      data.decode('utf-8')
    except UnicodeDecodeError as e:
      raise _not_text(path, data, e.start, e.reason, skipped) from None
    # NUL is valid UTF-8 but never in text: a damaged file (e.g. zeros
    # left by a crash) or a binary one.
    nul = data.find(b'\0')
    if nul >= 0:
      raise _not_text(path, data, nul, None, skipped)
    if b'\r' in data:
      data = data.replace(b'\r\n', b'\n')
    return cls(str(path), data, delimiter)

  def with_delimiter(self, delimiter: str) -> _Text:
    return _Text(self.path, self.raw, delimiter)

  def _index_lines(self):
    if self._lines is None:
      buf = np.frombuffer(self.data, np.uint8)
      newlines = np.flatnonzero(buf == ord('\n'))
      starts = np.concatenate([[0], newlines + 1])
      stops = np.concatenate([newlines, [len(buf)]])
      # A final newline ends the last line rather than opening an empty one.
      if not len(buf) or buf[-1] == ord('\n'):
        starts, stops = starts[:-1], stops[:-1]
      # A line's segment [start, next start) ends with its newline, so it
      # has a non-space byte exactly when the line has.
      blank = (~np.logical_or.reduceat(~_WHITESPACE[buf], starts)
               if len(starts) else np.zeros(0, bool))
      self._lines = buf, newlines, starts, stops, blank
    return self._lines

  @property
  def buf(self) -> np.ndarray:
    return self._index_lines()[0]

  @property
  def starts(self) -> np.ndarray:
    return self._index_lines()[2]

  @property
  def stops(self) -> np.ndarray:
    return self._index_lines()[3]

  @property
  def num_lines(self) -> int:
    return len(self.starts)

  def line_of(self, position: int) -> int:
    """Returns the 0-based line index of a byte position."""
    return int(np.searchsorted(self._index_lines()[1], position))

  def lines_of(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Assigns sorted byte positions to lines.

    Args:
      positions: [p] ascending byte positions.

    Returns:
      line: [p] 0-based line index of each position.
      counts: [num_lines] positions per line.
    """
    first = np.searchsorted(positions, self.starts)
    counts = np.diff(np.append(first, len(positions)))
    return np.repeat(np.arange(self.num_lines), counts), counts

  def line_text(self, index: int) -> str:
    text = self.data[self.starts[index]:self.stops[index]]
    if self.sep_byte is not None and self.delimiter != chr(self.sep_byte):
      text = text.replace(bytes([self.sep_byte]), self.delimiter.encode())
    return text.decode('utf-8')

  def head(self, count: int) -> list[tuple[int, str]]:
    """Returns (0-based index, text) of the first `count` non-blank lines,
    or of all of them when there are fewer, reading only up to them."""
    found, index, position = [], 0, 0
    while position < len(self.data) and len(found) < count:
      end = self.data.find(b'\n', position)
      end = len(self.data) if end < 0 else end
      line = self.data[position:end]
      if line.strip():
        found.append((index, line.decode('utf-8')))
      index, position = index + 1, end + 1
    return found

  def first_data_line(self, header: bool) -> tuple[int, str]:
    """Returns (0-based index, text) of the first data line, reading only up
    to it."""
    lines = self.head(2 if header else 1)
    if len(lines) < (2 if header else 1):
      raise self.no_data()
    return lines[-1]

  def data_lines(self, header: bool) -> np.ndarray:
    """Returns the 0-based indices of the non-blank lines after the header."""
    lines = np.flatnonzero(~self._index_lines()[4])
    if header:
      lines = lines[1:]
    if not len(lines):
      raise self.no_data()
    return lines

  def no_data(self) -> ValueError:
    return ValueError(f'{self.path}: no interactions (the file has no data '
                      'lines).')

  def error(self, index: int, message: str) -> ValueError:
    if index in self.notes:
      message = f"{message.removesuffix('.')} ({self.notes[index]})."
    return ValueError(f'{self.path}:{index + 1}: {message}')


def _not_text(path, data: bytes, position: int, reason: str | None,
              skipped: int = 0) -> ValueError:
  """Returns the error for a file that is not UTF-8 text.

  Args:
    path: the file.
    data: its bytes, after `skipped` leading bytes.
    position: the offset in `data` of the first byte that is not text.
    reason: why that byte is not UTF-8; None for a NUL byte.
    skipped: bytes dropped from the start (a UTF-8 byte-order mark).
  """
  for signature, kind in _SIGNATURES:
    if data.startswith(signature):
      return ValueError(f'{path}: this is {kind}, not a text file; '
                        'decompress, extract or export the interactions to '
                        'a text file first.')
  for mark, encoding in _OTHER_BOMS:
    if data.startswith(mark):
      return ValueError(f'{path}: the text is in {encoding} (the file starts '
                        f'with a {encoding} byte-order mark); save it as '
                        'UTF-8.')
  line = data.count(b'\n', 0, position) + 1
  position += skipped
  if reason is None:
    return ValueError(f'{path}:{line}: binary data, not text (a NUL byte at '
                      f'byte {position}); the file is damaged or is not an '
                      'interactions file.')
  return ValueError(f'{path}:{line}: not UTF-8 text ({reason} at byte '
                    f'{position}); the file is damaged or binary, or in '
                    'another encoding (save it as UTF-8).')


def _infer_delimiter(text: _Text, header: bool | None,
                     num_fields: int | None) -> str:
  """Picks the delimiter that splits the first data line into num_fields.

  With header=None the second non-blank line is looked at, which is data
  whether or not the first is a header; with num_fields=None the first
  delimiter that gives 2 to 4 fields is taken.
  """
  if header is None:
    lines = text.head(2)
    if not lines:
      raise text.no_data()
    index, line = lines[-1]
  else:
    index, line = text.first_data_line(header)
  present = [d for d in DELIMITERS
             if (len(line.split()) > 1 if d == ' ' else d in line)]
  for d in present:
    n = len(_split_fields(line, d))
    if n == num_fields if num_fields else 2 <= n <= len(COLUMNS):
      return d
  if present:
    return present[0]
  raise text.error(
      index, f'cannot infer the delimiter of {line!r} (tried '
      f"{', '.join(_DELIMITER_NAMES[d] for d in DELIMITERS)}); set the "
      'delimiter option (data.delimiter).')


def _split_fields(line: str, delimiter: str) -> list[str]:
  """Splits a line as the table reader does (' ': runs of whitespace)."""
  if delimiter == ' ':
    return line.split()
  return [field.strip() for field in line.split(delimiter)]


def _is_number(field: str) -> bool:
  try:
    return math.isfinite(float(field))
  except ValueError:
    return False


def _columns_from_names(fields: Sequence[str]) -> tuple[str, ...] | None:
  """Maps header names to columns ('-' for the others); None unless both a
  user and an item column are named."""
  columns = []
  for field in fields:
    key = field.strip().strip('"\'').partition(':')[0].lower()
    column = _COLUMN_OF_NAME.get(re.sub(r'[\s_.\-]', '', key), '-')
    columns.append('-' if column in columns else column)
  return tuple(columns) if {'user', 'item'} <= set(columns) else None


def _infer_header(text: _Text, lines: list[tuple[int, str]],
                  fields: list[list[str]], columns: tuple[str, ...] | None
                 ) -> tuple[bool, tuple[str, ...]]:
  """Decides whether the first non-blank line is a header.

  Args:
    text: the file.
    lines: its first (up to) two non-blank lines, (0-based index, text).
    fields: their fields.
    columns: the columns, when given.

  Returns:
    header: whether the first line is a header.
    ids: the id columns whose text on the first line, above integer ids on
      the next, was all that made it a header; the caller checks that the
      ids below are all integers, since otherwise nothing sets the first
      line apart.
  """
  first = fields[0]
  numbers = [_is_number(f) for f in first]
  if not any(numbers) and _columns_from_names(first):
    return True, ()
  if len(lines) < 2:
    return False, ()
  second = fields[1]
  if len(first) != len(second):
    # A line of another shape above the data is a header when it holds no
    # number; otherwise the field count check names it.
    return not any(numbers), ()
  roles = columns or ('user', 'item') + (_RATING_OR_TIME,) * (len(first) - 2)
  # Text above a number: the first line is not data of the same kind.
  evidence = [role for role, a, b, number in zip(roles, first, second, numbers)
              if not number and _is_number(b)]
  if evidence:
    ids = tuple(role for role in evidence if role in ('user', 'item'))
    return True, ids if len(ids) == len(evidence) else ()
  if any(numbers):
    return False, ()
  raise text.error(
      lines[0][0], f'cannot tell whether the first line {lines[0][1]!r} is a '
      'header: it holds no number, nor does the next line at those fields, '
      'and its fields do not name the user and item columns; set '
      'data.header=True or data.header=False.')


def _looks_like_header(text: _Text, lines: list[tuple[int, str]],
                       fields: list[list[str]],
                       columns: tuple[str, ...] | None) -> bool:
  """Whether `_infer_header` would call the first line a header."""
  try:
    return _infer_header(text, lines, fields, columns)[0]
  except ValueError:
    return False


def _infer_columns(text: _Text, lines: list[tuple[int, str]],
                   fields: list[list[str]], header: bool, delimiter: str
                  ) -> tuple[str, ...]:
  """Names the columns from the header, else from the number of fields."""
  if header:
    named = _columns_from_names(fields[0])
    if named:
      return named
    if len(lines) < 2:
      raise text.no_data()
  (index, line), k = lines[header], len(fields[header])
  if k == 2:
    return ('user', 'item')
  if k == 3:
    return ('user', 'item', _RATING_OR_TIME)
  if k == len(COLUMNS):
    return COLUMNS
  name = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
  if k < 2:
    raise text.error(index, f'a line of one {name}-separated field ({line!r}) '
                     'names no user and item; check data.delimiter.')
  example = ','.join(COLUMNS + ('-',) * (k - len(COLUMNS)))
  raise text.error(index, f'cannot infer which of the {k} {name}-separated '
                   f'fields of {line!r} hold the user, item, rating and '
                   'timestamp; set data.columns to name them in order, e.g. '
                   f'data.columns={example} (- skips a field).')


def _rating_or_time(text: _Text, values: np.ndarray, lines: np.ndarray
                   ) -> str:
  """Tells whether an unnamed third column holds ratings or timestamps."""
  rating = (values >= _RATING_RANGE[0]) & (values <= _RATING_RANGE[1])
  time = values >= _MIN_TIMESTAMP
  if rating.all():
    return 'rating'
  if time.all():
    return 'timestamp'
  # The first line that breaks the pattern of the first line (or the first
  # line itself when it fits neither).
  bad = int(np.flatnonzero(~(rating if rating[0] else time))[0])
  raise text.error(
      lines[bad], 'cannot tell whether the third column holds ratings or '
      f'timestamps: it has {values[bad]:g} here and values from '
      f'{values.min():g} to {values.max():g} (ratings are taken to lie in '
      f'[{_RATING_RANGE[0]:g}, {_RATING_RANGE[1]:g}], timestamps to be Unix '
      f'times of at least {_MIN_TIMESTAMP:,.0f}); set '
      'data.columns=user,item,rating or data.columns=user,item,timestamp.')


def _read_delimited(path: pathlib.Path, delimiter: str, header: bool | None,
                    columns: str | Sequence[str] | None) -> Interactions:
  """Reads a delimited file, inferring what the options leave open."""
  text = _Text.read(path)
  delimiter = _DELIMITER_ALIASES.get(delimiter, delimiter)
  given = parse_columns(columns) if columns else None
  if not delimiter:
    delimiter = _infer_delimiter(text, header, given and len(given))
  lines = text.head(2)
  if not lines:
    raise text.no_data()
  fields = [_split_fields(line, delimiter) for _, line in lines]
  header_ids = ()
  if header is None:
    header, header_ids = _infer_header(text, lines, fields, given)
  table = text.with_delimiter(delimiter)
  if header is False and _looks_like_header(text, lines, fields, given):
    # An error on that line most likely comes from reading a header as data.
    table.notes[lines[0][0]] = ('the line looks like a header: set '
                                'data.header=True, or leave it unset to '
                                'infer it')
  if given:
    names = given
    hint = (f'data.columns={",".join(given)!r} names {len(given)}; set '
            "data.columns to the file's columns in order, or to '' to infer "
            'them')
  else:
    names = _infer_columns(text, lines, fields, bool(header), delimiter)
    hint = ('as the header names; set data.columns to the columns in order'
            if header and _columns_from_names(fields[0]) else
            f'as on line {lines[bool(header)][0] + 1}; set data.columns to the '
            'columns in order')
  parsed, data_lines = _table_columns(table, names, bool(header), hint)
  for column in header_ids:
    if parsed[column].dtype.kind == 'U':
      raise text.error(
          lines[0][0], f'cannot tell whether the first line {lines[0][1]!r} '
          f'is a header: its {column} field is not an integer, but neither '
          f'are all the {column} ids below it; set data.header=True or '
          'data.header=False.')
  if _RATING_OR_TIME in parsed:
    values = parsed.pop(_RATING_OR_TIME)
    parsed[_rating_or_time(text, values, data_lines)] = values
  return Interactions(users=parsed['user'], items=parsed['item'],
                      ratings=parsed.get('rating'),
                      timestamps=parsed.get('timestamp'), source=text.path)


def _tokens(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Returns [start, stop) byte offsets of the runs of non-whitespace."""
  inside = np.concatenate([[False], ~_WHITESPACE[buf], [False]]).view(np.int8)
  change = np.diff(inside)
  return np.flatnonzero(change == 1), np.flatnonzero(change == -1)


def _trim(buf: np.ndarray, starts: np.ndarray, stops: np.ndarray):
  """Moves field boundaries inwards past whitespace (one pass per space)."""
  last = max(len(buf) - 1, 0)
  move = (starts < stops) & _WHITESPACE[buf[np.minimum(starts, last)]]
  if move.any():
    starts = starts.copy()
    while move.any():
      starts[move] += 1
      move = (starts < stops) & _WHITESPACE[buf[np.minimum(starts, last)]]
  move = (stops > starts) & _WHITESPACE[buf[stops - 1]]
  if move.any():
    stops = stops.copy()
    while move.any():
      stops[move] -= 1
      move = (stops > starts) & _WHITESPACE[buf[stops - 1]]
  return starts, stops


def _field_bytes(buf: np.ndarray, starts: np.ndarray, stops: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
  """Gathers fields into a zero-padded [n, width] uint8 matrix and lengths."""
  lengths = stops - starts
  width = max(int(lengths.max(initial=0)), 1)
  if not len(buf):
    return np.zeros((len(starts), width), np.uint8), lengths
  offsets = np.arange(width)
  index = np.minimum(starts[:, None] + offsets, len(buf) - 1)
  matrix = np.where(offsets < lengths[:, None], buf[index], 0)
  return np.ascontiguousarray(matrix, dtype=np.uint8), lengths


def _parse_digits(matrix: np.ndarray, lengths: np.ndarray):
  """Parses fields of digits.

  Args:
    matrix: [n, width] uint8 zero-padded fields.
    lengths: [n] field lengths.

  Returns:
    values: [n] int64, meaningful where `digits` holds.
    digits: [n] bool, field is 1.._MAX_DIGITS decimal digits.
    canonical: [n] bool, `digits` and no leading zero (so str(value) gives
      the field back).
  """
  width = matrix.shape[1]
  padding = np.arange(width) >= lengths[:, None]
  digits = ((_DIGIT[matrix] | padding).all(axis=1) & (lengths > 0) &
            (lengths <= _MAX_DIGITS))
  canonical = digits & ((matrix[:, 0] != ord('0')) | (lengths == 1))
  values = np.zeros(len(matrix), np.int64)
  for j in range(min(width, _MAX_DIGITS)):
    values = np.where(j < lengths, values * 10 + matrix[:, j] - ord('0'),
                      values)
  return values, digits, canonical


def _as_strings(matrix: np.ndarray) -> np.ndarray:
  """Returns the fields of a zero-padded byte matrix as a [n] str array."""
  raw = matrix.view(f'S{matrix.shape[1]}').reshape(len(matrix))
  if (matrix < 128).all():
    return raw.astype(f'U{matrix.shape[1]}')
  return np.strings.decode(raw, 'utf-8')


def _id_column(text: _Text, matrix, lengths, lines, what: str) -> np.ndarray:
  empty = np.flatnonzero(lengths == 0)
  if empty.size:
    raise text.error(lines[empty[0]], f'empty {what} id.')
  values, _, canonical = _parse_digits(matrix, lengths)
  if canonical.all():
    return values
  return _as_strings(matrix)


def _number_column(text: _Text, matrix, lengths, lines, what: str
                  ) -> np.ndarray:
  empty = np.flatnonzero(lengths == 0)
  if empty.size:
    raise text.error(lines[empty[0]], f'empty {what}.')
  values, digits, _ = _parse_digits(matrix, lengths)
  if digits.all():
    return values.astype(np.float64)
  raw = matrix.view(f'S{matrix.shape[1]}').reshape(len(matrix))
  try:
    numbers = raw.astype(np.float64)
  except ValueError:
    # Slow path, taken only to name the first bad line.
    for i, field in enumerate(raw):
      try:
        float(field)
      except ValueError:
        raise text.error(lines[i], f'non-numeric {what} '
                         f"{field.decode('utf-8', 'replace')!r}.") from None
    raise ValueError(f'{text.path}: a {what} could not be read.') from None
  bad = np.flatnonzero(~np.isfinite(numbers))
  if bad.size:
    raise text.error(lines[bad[0]], f'non-finite {what} '
                     f"{raw[bad[0]].decode('utf-8', 'replace')!r}.")
  return numbers


def _read_table(text: _Text, columns: Sequence[str], header: bool
               ) -> Interactions:
  """Reads a file with one interaction per line and fixed columns."""
  parsed, _ = _table_columns(text, columns, header)
  return Interactions(users=parsed['user'], items=parsed['item'],
                      ratings=parsed.get('rating'),
                      timestamps=parsed.get('timestamp'), source=text.path)


def _table_columns(text: _Text, columns: Sequence[str], header: bool,
                   hint: str = '') -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Splits the data lines into fields and parses the named columns.

  Args:
    text: the file, with its delimiter.
    columns: the name of each field, '-' to skip it.
    header: whether the first non-blank line is a header.
    hint: added to a field-count error: how the columns were set.

  Returns:
    parsed: column name -> [n] values.
    lines: [n] 0-based line index of each row.
  """
  lines = text.data_lines(header)
  k = len(columns)
  name = _DELIMITER_NAMES.get(text.delimiter, repr(text.delimiter))
  if text.delimiter == ' ':
    starts, stops = _tokens(text.buf)
    owner, counts = text.lines_of(starts)
  else:
    seps = np.flatnonzero(text.buf == text.sep_byte)
    owner, counts = text.lines_of(seps)
    counts = counts + 1
  counts = counts[lines]
  bad = np.flatnonzero(counts != k)
  if bad.size:
    line = lines[bad[0]]
    notes = [hint] if hint else []
    if line == text.num_lines - 1 and not text.data.endswith(b'\n'):
      notes.append('the file ends inside this line, so it may be truncated')
    notes = f" ({'; '.join(notes)})" if notes else ''
    raise text.error(line, f'expected {k} {name}-separated fields, got '
                     f'{counts[bad[0]]}{notes}.')
  is_data = np.zeros(text.num_lines, bool)
  is_data[lines] = True
  if text.delimiter == ' ':
    keep = is_data[owner]
    starts = starts[keep].reshape(len(lines), k)
    stops = stops[keep].reshape(len(lines), k)
  else:
    seps = seps[is_data[owner]].reshape(len(lines), k - 1)
    starts = np.column_stack([text.starts[lines], seps + 1])
    stops = np.column_stack([seps, text.stops[lines]])
    starts, stops = _trim(text.buf, starts, stops)
  parsed = {}
  for j, column in enumerate(columns):
    if column == '-':
      continue
    what = 'rating or timestamp' if column == _RATING_OR_TIME else column
    long = np.flatnonzero(stops[:, j] - starts[:, j] > _MAX_FIELD_BYTES)
    if long.size:
      raise text.error(
          lines[long[0]], f"{'an' if what[0] in 'aeiou' else 'a'} {what} "
          'field of '
          f'{stops[long[0], j] - starts[long[0], j]} bytes; no {what} is '
          f'that long (over {_MAX_FIELD_BYTES}), so the line is damaged or '
          'the delimiter is wrong.')
    matrix, lengths = _field_bytes(text.buf, starts[:, j], stops[:, j])
    if column in ('user', 'item'):
      parsed[column] = _id_column(text, matrix, lengths, lines, column)
    else:
      parsed[column] = _number_column(text, matrix, lengths, lines, what)
  return parsed, lines


def _read_recbole(path: pathlib.Path) -> Interactions:
  """Reads a RecBole atomic .inter file, finding columns by header name."""
  text = _Text.read(path, '\t')
  index, line = text.first_data_line(header=False)
  names = []
  for field in line.split('\t'):
    name, colon, _ = field.strip().partition(':')
    if not colon:
      raise text.error(index, f'RecBole header field {field!r} has no '
                       "':type' suffix (expected e.g. 'user_id:token').")
    names.append(name)
  columns = [RECBOLE_FIELDS.get(name, '-') for name in names]
  for needed in ('user_id', 'item_id'):
    if needed not in names:
      raise text.error(index, f'RecBole header has no {needed!r} field; '
                       f'found {names}.')
  return _read_table(text, columns, header=True)


def _read_lightgcn_file(path: pathlib.Path) -> Interactions:
  """Reads `user item item ...` lines into (user, item) pairs."""
  text = _Text.read(path)
  starts, stops = _tokens(text.buf)
  if not len(starts):
    raise text.no_data()
  # Longer tokens are not ids; catching them first keeps one damaged line
  # from widening the byte matrix of every token.
  long = np.flatnonzero(stops - starts > _MAX_DIGITS)
  if long.size:
    bad = long[0]
  else:
    matrix, lengths = _field_bytes(text.buf, starts, stops)
    values, digits, _ = _parse_digits(matrix, lengths)
    bad = np.flatnonzero(~digits)
    bad = bad[0] if bad.size else None
  if bad is not None:
    token = text.data[starts[bad]:stops[bad]].decode('utf-8')
    shown = repr(token) if len(token) <= 40 else f'{token[:40]!r}...'
    raise text.error(text.line_of(starts[bad]),
                     f'expected non-negative integer ids, got {shown}.')
  line, _ = text.lines_of(starts)
  first = np.ones(len(line), bool)
  first[1:] = line[1:] != line[:-1]
  # Each token's user is the first token of its line.
  owner = np.maximum.accumulate(np.where(first, np.arange(len(line)), 0))
  return Interactions(users=values[owner][~first], items=values[~first],
                      source=str(path))
