"""A tabular benchmark: every architecture of a subspace trained once.

Comparing search strategies over many seeds costs many searches. As in
NAS-Bench-101/201, the architectures of a small subspace are each trained
once, at the search's fidelity, and stored; a search then replays against
the table: "evaluating" an architecture reads its validation NDCG@20 and
the training time it took. Strategies see exactly what a live search
would show them, at the cost of one pass over the subspace.

    table = build_table(config, dataset, path)   # trains; resumable
    trace = replay(strategy, table, seed=0, batch_size=8, budget=96)

Wall time in a trace is the recorded training time of the architectures
evaluated (each one's share of its population's time) plus the
strategy's own time to propose and learn, measured during the replay.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np

from gnas_jax import data as data_lib
from gnas_jax import driver
from gnas_jax import records
from gnas_jax import search as search_lib
from gnas_jax import space
from gnas_jax.search import evaluation
from gnas_jax.search import strategies as strategies_lib


@dataclasses.dataclass(frozen=True)
class Table:
  """Validation NDCG@20 and training seconds of every architecture.

  Attributes:
    space: the subspace string the table covers.
    records: canonical architecture string -> its record ('valid_ndcg',
      'valid_recall', 'train_seconds', 'epochs', 'failed').
  """
  space: str
  records: dict[str, dict[str, Any]]

  def fitness(self, archs) -> np.ndarray:
    """`[N]` validation NDCG@20 of `archs` (canonical forms looked up)."""
    return np.array([self.record(a)['valid_ndcg'] for a in archs])

  def record(self, arch: space.Architecture) -> dict[str, Any]:
    key = arch.canonical().to_string()
    if key not in self.records:
      raise KeyError(f'Architecture {key} is not in the table of space '
                     f'{self.space!r}.')
    return self.records[key]

  def scores(self) -> np.ndarray:
    """Every architecture's validation NDCG@20."""
    return np.array([r['valid_ndcg'] for r in self.records.values()])


def build_table(config: ml_collections.ConfigDict,
                dataset: data_lib.Dataset, path: str) -> Table:
  """Trains every canonical architecture of `config.space` (resumable).

  Architectures are shuffled with `config.seed` and trained in populations
  of `config.population_size` at `config.fidelity`, exactly as a search
  evaluates them. Each population's rows are appended to the record `path`
  (`records`) when it finishes, so a restarted build trains only what is
  missing.
  """
  choices = space.subspace_from_string(config.space)
  archs = space.enumerate_canonical(choices)
  order = np.random.default_rng(config.seed).permutation(len(archs))
  archs = [archs[i] for i in order]
  rows = {row['arch']: row for _, row in records.read(path)}
  size = config.population_size
  chunks = [archs[i:i + size] for i in range(0, len(archs), size)]
  missing = [(i, chunk) for i, chunk in enumerate(chunks)
             if any(a.to_string() not in rows for a in chunk)]
  if missing:
    logging.info('Tabular benchmark: training %d of %d architectures of %r.',
                 sum(len(c) for _, c in missing), len(archs), config.space)
    evaluator = evaluation.PopulationEvaluator(
        config, driver.TrainingData.from_config(config, dataset), choices)
    key = jax.random.PRNGKey(config.seed)
    with driver.progress_bar(total=len(missing), desc='tabular benchmark',
                             disable=not config.progress) as bar:
      for index, chunk in missing:
        start = time.perf_counter()
        result = evaluator(chunk, jax.random.fold_in(key, index))
        seconds = (time.perf_counter() - start) / len(chunk)
        finished = []
        for slot, arch in enumerate(chunk):
          row = {'arch': arch.to_string(),
                 'valid_ndcg': float(result['ndcg'][slot]),
                 'valid_recall': float(result['recall'][slot]),
                 'train_seconds': seconds,
                 'epochs': int(result['epochs'][slot]),
                 'failed': bool(result['failed'][slot])}
          rows[row['arch']] = row
          finished.append(row)
        records.append(path, finished)
        bar.update()
  return Table(config.space, {a.to_string(): rows[a.to_string()]
                              for a in archs})


@dataclasses.dataclass(frozen=True)
class Trace:
  """One replayed search, in evaluation order.

  Attributes:
    archs: `[N]` architecture strings.
    fitness: `[N]` validation NDCG@20.
    rounds: `[N]` the round each was proposed in.
    seconds: `[N]` wall time when each round's evaluations were known:
      the recorded training of everything evaluated so far plus the
      strategy's own time.
  """
  archs: list[str]
  fitness: np.ndarray
  rounds: np.ndarray
  seconds: np.ndarray

  def best_so_far(self) -> np.ndarray:
    return np.maximum.accumulate(self.fitness)

  def evaluations_to_reach(self, threshold: float) -> float:
    """1-based count of evaluations until one reaches `threshold` (inf if
    none does)."""
    hits = np.flatnonzero(self.fitness >= threshold)
    return float(hits[0] + 1) if hits.size else float('inf')


def replay(strategy: strategies_lib.Strategy, table: Table, seed: int,
           batch_size: int, budget: int) -> Trace:
  """Runs `strategy` (over the table's space) against `table` for `budget`
  evaluations (fewer if the space runs out)."""
  archs, fitness, rounds, seconds = [], [], [], []
  # The strategy's own time is everything outside the table's look-ups:
  # its initialisation, each ask and each tell.
  clock = {'train': 0.0, 'strategy': 0.0, 'since': time.perf_counter()}

  def lap() -> None:
    now = time.perf_counter()
    clock['strategy'] += now - clock['since']
    clock['since'] = now

  def evaluate(tokens: np.ndarray, round_index: int) -> np.ndarray:
    lap()
    records = [table.record(a) for a in space.from_tokens(tokens)]
    clock['train'] += sum(r['train_seconds'] for r in records)
    archs.extend(r['arch'] for r in records)
    # As recorded: the strategy is told float32, but the thresholds a
    # trace is compared with come from the table.
    fitness.extend(r['valid_ndcg'] for r in records)
    rounds.extend([round_index] * len(records))
    clock['since'] = time.perf_counter()
    return np.array([r['valid_ndcg'] for r in records])

  def on_round(round_index, state, tokens, scores, metrics) -> None:
    del round_index, state, scores, metrics
    lap()
    seconds.extend([clock['train'] + clock['strategy']] * len(tokens))

  search_lib.fold(strategy, evaluate, budget, batch_size, seed,
               on_round=on_round)
  return Trace(archs, np.array(fitness), np.array(rounds),
               np.array(seconds))
