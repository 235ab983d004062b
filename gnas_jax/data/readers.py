"""Readers for interaction files: MovieLens, LightGCN, delimited and RecBole.

Each reader parses the whole file with numpy operations on its bytes (field
boundaries, digit checks and integer parsing are vectorised), so no Python
object is made per interaction. A malformed line raises
`ValueError('<file>:<line>: <what is wrong>')` with a 1-based line number.
Blank lines are skipped everywhere.
"""

from __future__ import annotations

import os
import pathlib
from typing import Sequence

import numpy as np

from gnas_jax.data import dataset

Interactions = dataset.Interactions

FORMATS = ('ml-100k', 'ml-1m', 'lightgcn', 'delimited', 'recbole')
COLUMNS = ('user', 'item', 'rating', 'timestamp')
DEFAULT_COLUMNS = 'user,item,rating,timestamp'

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
                      delimiter: str = '', header: bool = False,
                      columns: str | Sequence[str] = DEFAULT_COLUMNS
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
      skip.
    columns: delimited format only: the file's columns in order (see
      `parse_columns`).

  Returns:
    The interactions, in file order.
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
  names = parse_columns(columns)
  text = _Text.read(path)
  delimiter = _DELIMITER_ALIASES.get(delimiter, delimiter)
  if not delimiter:
    delimiter = _infer_delimiter(text, header, len(names))
  return _read_table(text.with_delimiter(delimiter), names, header=header)


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

  @classmethod
  def read(cls, path: str | os.PathLike[str], delimiter: str = '') -> _Text:
    data = pathlib.Path(path).read_bytes()
    try:
      data.decode('utf-8')
    except UnicodeDecodeError as e:
      line = data.count(b'\n', 0, e.start) + 1
      raise ValueError(f'{path}:{line}: not UTF-8 text ({e.reason}).') from None
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

  def first_data_line(self, header: bool) -> tuple[int, str]:
    """Returns (0-based index, text) of the first data line, reading only up
    to it."""
    index, position, skip = 0, 0, header
    while position < len(self.data):
      end = self.data.find(b'\n', position)
      end = len(self.data) if end < 0 else end
      line = self.data[position:end]
      if line.strip():
        if not skip:
          return index, line.decode('utf-8')
        skip = False
      index, position = index + 1, end + 1
    raise self.no_data()

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
    return ValueError(f'{self.path}:{index + 1}: {message}')


def _infer_delimiter(text: _Text, header: bool, num_fields: int) -> str:
  """Picks the delimiter that splits the first data line into num_fields."""
  index, line = text.first_data_line(header)
  present = [d for d in DELIMITERS
             if (len(line.split()) > 1 if d == ' ' else d in line)]
  for d in present:
    if len(line.split() if d == ' ' else line.split(d)) == num_fields:
      return d
  if present:
    return present[0]
  raise text.error(
      index, f'cannot infer the delimiter of {line!r} (tried '
      f"{', '.join(_DELIMITER_NAMES[d] for d in DELIMITERS)}); set the "
      'delimiter option (data.delimiter).')


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
    raise text.error(lines[bad[0]], f'expected {k} {name}-separated fields, '
                     f'got {counts[bad[0]]}.')
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
    matrix, lengths = _field_bytes(text.buf, starts[:, j], stops[:, j])
    if column in ('user', 'item'):
      parsed[column] = _id_column(text, matrix, lengths, lines, column)
    else:
      parsed[column] = _number_column(text, matrix, lengths, lines, column)
  return Interactions(users=parsed['user'], items=parsed['item'],
                      ratings=parsed.get('rating'),
                      timestamps=parsed.get('timestamp'), source=text.path)


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
  matrix, lengths = _field_bytes(text.buf, starts, stops)
  values, digits, _ = _parse_digits(matrix, lengths)
  bad = np.flatnonzero(~digits)
  if bad.size:
    token = text.data[starts[bad[0]]:stops[bad[0]]].decode('utf-8')
    raise text.error(text.line_of(starts[bad[0]]),
                     f'expected non-negative integer ids, got {token!r}.')
  line, _ = text.lines_of(starts)
  first = np.ones(len(line), bool)
  first[1:] = line[1:] != line[:-1]
  # Each token's user is the first token of its line.
  owner = np.maximum.accumulate(np.where(first, np.arange(len(line)), 0))
  return Interactions(users=values[owner][~first], items=values[~first],
                      source=str(path))
