"""A durable record of every evaluated candidate (SQLite).

One row per candidate, written in one transaction when its round ends, so
a killed search keeps every completed round; the rows of a round that did
not finish are deleted when the search resumes (`discard_from`), and the
round runs again.

A store that does not read back whole is an error naming its file, never
an empty store: the search would run again rounds it already paid for, and
its best architecture would be chosen among part of its trials.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from typing import Any, Sequence

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
  round INTEGER NOT NULL,
  slot INTEGER NOT NULL,
  arch TEXT NOT NULL,
  valid_ndcg REAL NOT NULL,
  valid_recall REAL NOT NULL,
  failed INTEGER NOT NULL,
  epochs INTEGER NOT NULL,
  fidelity_epochs INTEGER NOT NULL,
  seed INTEGER NOT NULL,
  train_seconds REAL NOT NULL,
  strategy_score REAL,
  finished_at REAL NOT NULL,
  PRIMARY KEY (round, slot)
)
"""
COLUMNS = ('round', 'slot', 'arch', 'valid_ndcg', 'valid_recall', 'failed',
           'epochs', 'fidelity_epochs', 'seed', 'train_seconds',
           'strategy_score', 'finished_at')


class TrialStore:
  """The `trials` table of a search's workdir.

  Opening checks the file (`PRAGMA quick_check`); later SQLite errors are
  raised with the file's path in their message.
  """

  def __init__(self, path: str):
    """Opens (or creates) the store at `path`.

    Raises:
      ValueError: the file is not an intact SQLite database (naming it).
    """
    self.path = path
    try:
      self.connection = sqlite3.connect(path)
      problems = [row[0] for row in
                  self.connection.execute('PRAGMA quick_check')]
      if problems != ['ok']:
        raise sqlite3.DatabaseError(
            ' '.join(' '.join(problems).split())[:300])
      with self.connection:
        self.connection.execute(_SCHEMA)
    except sqlite3.Error as error:
      raise ValueError(
          f'Trial store {path} is unreadable ({error}); restore it from a '
          'backup or start a new workdir.') from error

  @contextlib.contextmanager
  def _named_errors(self):
    # SQLite's messages ("database disk image is malformed") do not say
    # which file.
    try:
      yield
    except sqlite3.Error as error:
      raise type(error)(f'Trial store {self.path}: {error}') from error

  def add_round(self, trials: Sequence[dict[str, Any]]) -> None:
    """Writes one round's candidates atomically (all or none)."""
    now = time.time()
    rows = [tuple(t.get(c, now if c == 'finished_at' else None)
                  for c in COLUMNS) for t in trials]
    with self._named_errors(), self.connection:
      self.connection.executemany(
          f'INSERT INTO trials ({", ".join(COLUMNS)}) VALUES '
          f'({", ".join("?" * len(COLUMNS))})', rows)

  def discard_from(self, round_index: int) -> int:
    """Deletes the rows of rounds >= `round_index`; returns how many."""
    with self._named_errors(), self.connection:
      cursor = self.connection.execute(
          'DELETE FROM trials WHERE round >= ?', (round_index,))
    return cursor.rowcount

  def count(self, before_round: int) -> int:
    """How many rows the rounds before `before_round` have."""
    with self._named_errors():
      return self.connection.execute(
          'SELECT COUNT(*) FROM trials WHERE round < ?',
          (before_round,)).fetchone()[0]

  def trials(self) -> list[dict[str, Any]]:
    """Every row, in evaluation order."""
    with self._named_errors():
      cursor = self.connection.execute(
          f'SELECT {", ".join(COLUMNS)} FROM trials ORDER BY round, slot')
      return [dict(zip(COLUMNS, row)) for row in cursor]

  def best(self, k: int) -> list[dict[str, Any]]:
    """The k best distinct architectures by validation NDCG, those
    measured at a higher fidelity first (successive halving ranked them
    above those it halted)."""
    with self._named_errors():
      cursor = self.connection.execute(
          'SELECT arch, MAX(valid_ndcg) AS score FROM trials WHERE failed = 0 '
          'GROUP BY arch ORDER BY MAX(fidelity_epochs) DESC, score DESC, '
          'MIN(round * 100000 + slot) LIMIT ?', (k,))
      return [{'arch': arch, 'valid_ndcg': score} for arch, score in cursor]

  def close(self) -> None:
    self.connection.close()
