"""Records: JSON-lines files of finished work that a long program resumes
from.

    records.append(path, [{'arch': ..., 'protocol': {...}, 'valid': ...}])
    done = records.find(path, key=lambda row: row['arch'],
                        expected={'lightgcn': protocol}.get,
                        subject='{} was trained'.format)

A study, a table or a comparison appends one row per finished unit (a
training, a curve, a search) as soon as it finishes. A row holds results
only, never checkpoints, so a record may be committed, and the program
continues from it in another session or on another machine. A row carries
the protocol it was measured under; `find` hands back only rows whose
protocol is the one asked for, and refuses, naming file and line, a row of
the same unit measured otherwise, as its figure would not be comparable.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Hashable, Iterable, TypeVar

from absl import logging

Key = TypeVar('Key', bound=Hashable)


def append(path: str, rows: Iterable[dict[str, Any]]) -> None:
  """Adds `rows` to the record `path` (created with its folder) in one
  write, so that an interrupted program leaves at most a partial last line
  (which `read` mends, here first if the record ends in one)."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  if os.path.exists(path) and os.path.getsize(path):
    with open(path, 'rb') as f:
      f.seek(-1, os.SEEK_END)
      if f.read(1) != b'\n':
        read(path)
  text = ''.join(json.dumps(row) + '\n' for row in rows)
  with open(path, 'a') as f:
    f.write(text)


def read(path: str) -> list[tuple[int, dict[str, Any]]]:
  """`(line number, row)` for each row of the record `path`; none where it
  does not exist.

  A program killed while appending leaves a last line without its newline.
  If that line does not parse it is cut from the file, with a warning (its
  unit is done again); if it does, its newline is added. Either way a later
  `append` starts on a line of its own.

  Raises:
    ValueError: any other line that is not a JSON object, naming file and
      line.
  """
  if not os.path.exists(path):
    return []
  with open(path) as f:
    text = f.read()
  whole, tail = text[:text.rfind('\n') + 1], text[text.rfind('\n') + 1:]
  if tail:
    if _parse(tail) is None:
      logging.warning('%s: dropped an unfinished last line (%d characters) '
                      'of an interrupted write.', path, len(tail))
      with open(path, 'w') as f:
        f.write(whole)
    else:
      whole += tail + '\n'
      with open(path, 'a') as f:
        f.write('\n')
  rows = []
  for number, line in enumerate(whole.splitlines(), 1):
    row = _parse(line)
    if row is None:
      raise ValueError(f'{path}:{number} is not a JSON object; mend or remove '
                       'that line.')
    rows.append((number, row))
  return rows


def _parse(line: str) -> dict[str, Any] | None:
  try:
    row = json.loads(line)
  except ValueError:
    return None
  return row if isinstance(row, dict) else None


def find(path: str | None, key: Callable[[dict[str, Any]], Key],
         expected: Callable[[Key], dict[str, Any] | None],
         subject: Callable[[Key], str]) -> dict[Key, dict[str, Any]]:
  """The rows of the record `path` (none for None) that a program asks for,
  by `key(row)`, each without its 'protocol'.

  Args:
    path: the record.
    key: the unit a row holds (an architecture, an (architecture, seed)).
    expected: the protocol a unit is asked for under, or None for a unit not
      asked for (its rows are skipped).
    subject: how an error names a unit's past work ('X (seed 0) was
      trained').

  Raises:
    ValueError: a row of a unit asked for holds another protocol, naming
      file, line and each setting that differs.
  """
  found = {}
  for number, row in read(path) if path else []:
    unit = key(row)
    protocol = expected(unit)
    if protocol is None:
      continue
    changed = changed_settings(row.get('protocol', {}), protocol)
    if changed:
      raise ValueError(
          f'{path}:{number}: {subject(unit)} with other settings: '
          f'{describe_changes(changed)}. Give another record or remove '
          'that line.')
    found[unit] = {k: v for k, v in row.items() if k != 'protocol'}
  return found


class _Absent:
  """The value of a setting one side of a comparison does not hold (a
  record from before the setting existed, say)."""

  def __repr__(self) -> str:
    return 'absent'


ABSENT = _Absent()


def changed_settings(old: dict[str, Any], new: dict[str, Any]
                     ) -> list[tuple[str, Any, Any]]:
  """`(dotted key, old value, new value)` for each setting that differs
  between two nested settings dicts, sorted by key; `ABSENT` stands for a
  missing one. A missing setting equals one of None, so that settings
  added with None as their default leave older records valid."""
  old, new = _flatten(old), _flatten(new)
  return [(k, old.get(k, ABSENT), new.get(k, ABSENT))
          for k in sorted(old.keys() | new.keys())
          if old.get(k) != new.get(k)]


def describe_changes(changed: list[tuple[str, Any, Any]]) -> str:
  """`changed_settings` as words: 'epochs was 9, now 10; lr was absent,
  now 0.01'."""
  return '; '.join(f'{k} was {old!r}, now {new!r}' for k, old, new in changed)


def _flatten(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  """`{'data': {'split': s}}` as `{'data.split': s}`."""
  flat = {}
  for name, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{name}.'))
    else:
      flat[f'{prefix}{name}'] = value
  return flat
