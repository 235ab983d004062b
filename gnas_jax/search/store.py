"""A durable record of every evaluated candidate (SQLite).

One row per candidate, written in one transaction when its round ends, so
a killed search keeps every completed round; the rows of a round that did
not finish are deleted when the search resumes (`discard_from`), and the
round runs again.
"""

from __future__ import annotations

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
  """The `trials` table of a search's workdir."""

  def __init__(self, path: str):
    self.path = path
    self.connection = sqlite3.connect(path)
    with self.connection:
      self.connection.execute(_SCHEMA)

  def add_round(self, trials: Sequence[dict[str, Any]]) -> None:
    """Writes one round's candidates atomically (all or none)."""
    now = time.time()
    rows = [tuple(t.get(c, now if c == 'finished_at' else None)
                  for c in COLUMNS) for t in trials]
    with self.connection:
      self.connection.executemany(
          f'INSERT INTO trials ({", ".join(COLUMNS)}) VALUES '
          f'({", ".join("?" * len(COLUMNS))})', rows)

  def discard_from(self, round_index: int) -> int:
    """Deletes the rows of rounds >= `round_index`; returns how many."""
    with self.connection:
      cursor = self.connection.execute(
          'DELETE FROM trials WHERE round >= ?', (round_index,))
    return cursor.rowcount

  def trials(self) -> list[dict[str, Any]]:
    """Every row, in evaluation order."""
    cursor = self.connection.execute(
        f'SELECT {", ".join(COLUMNS)} FROM trials ORDER BY round, slot')
    return [dict(zip(COLUMNS, row)) for row in cursor]

  def best(self, k: int) -> list[dict[str, Any]]:
    """The k best distinct architectures by validation NDCG."""
    cursor = self.connection.execute(
        'SELECT arch, MAX(valid_ndcg) AS score FROM trials WHERE failed = 0 '
        'GROUP BY arch ORDER BY score DESC, MIN(round * 100000 + slot) '
        'LIMIT ?', (k,))
    return [{'arch': arch, 'valid_ndcg': score} for arch, score in cursor]

  def close(self) -> None:
    self.connection.close()
