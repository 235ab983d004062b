"""What a search's evaluations are: low-fidelity population training, and
the full-fidelity retraining of its finalists.

`PopulationEvaluator` trains a round's candidates together
(`gnas_jax.population.GroupedPopulation`) through the driver's loop
(`gnas_jax.driver.fit`). Each stops early on its own, and at each rung of
`config.fidelity.rungs` all but the best 1/eta stop (successive halving);
with `config.fidelity.refill`, new proposals take the slots they free.
Each is scored by its best validation NDCG@20 (`FITNESS`). `retrain`
trains an architecture at full fidelity with several seeds and summarises
each metric over them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np

from gnas_jax import driver
from gnas_jax import models
from gnas_jax import population as population_lib
from gnas_jax import space
from gnas_jax import train

FITNESS = 'ndcg@20'

# `(stopped positions [k], results so far, free slots n) -> up to n new
# architectures`: how a round asks for candidates to fill freed slots.
Refill = Callable[[np.ndarray, dict[str, Any], int],
                  Sequence[space.Architecture]]


def search_shape(choices) -> models.ModelShape:
  """The model shape of a (sub)space: its choices plus the defaults that
  inactive decisions canonicalise to (a cosine-free architecture's
  temperature, the readout of a depth-0 one, ...), so the model covers
  every canonical architecture of the space. (The space's one equivalence
  merges into a default too: a cosine 'sum' readout is 'mean'.)"""
  return models.ModelShape(tuple(
      (d.name, tuple(c for c in d.choices if c in choices[d.name] or (
          d.name in space.SEARCH_SPACE.conditions and
          c == space.SEARCH_SPACE.defaults[d.name])))
      for d in space.DECISIONS))


def survivors(scores: np.ndarray, candidates: np.ndarray,
              eta: int) -> np.ndarray:
  """Successive halving at a rung: the best `ceil(n / eta)` of the `n`
  `candidates` (`[P]` bool) by `[P]` `scores`, earlier positions first
  among equals.

  Returns:
    `[P]` bool: the candidates that go on.
  """
  positions = np.flatnonzero(candidates)
  keep = math.ceil(positions.size / eta)
  order = positions[np.argsort(-scores[positions], kind='stable')]
  kept = np.zeros(scores.shape, bool)
  kept[order[:keep]] = True
  return kept


class _Round:
  """A round's `GroupedPopulation` as `driver.fit` trains it, evaluated on
  the validation task."""

  def __init__(self, population: population_lib.GroupedPopulation,
               data: driver.TrainingData):
    self.population, self.data = population, data

  @property
  def active(self) -> np.ndarray:
    return self.population.active

  def step(self, batch: train.Batch) -> None:
    self.population.step(batch)

  def evaluate(self) -> list[dict[str, float]]:
    return self.population.evaluate(self.data.valid_task,
                                    self.data.popularity, ks=(20,))

  def keep(self, keep: np.ndarray) -> None:
    self.population.keep(keep)


class PopulationEvaluator:
  """Trains a round's candidates together and scores them on validation."""

  def __init__(self, config: ml_collections.ConfigDict,
               data: driver.TrainingData, choices):
    """
    Args:
      config: the search's (experiments/configs/search.py's options).
      data: the search's data, with a validation split.
      choices: the space searched (`space.subspace_from_string`).

    Raises:
      ValueError: the data has no validation split.
    """
    if data.valid_task is None:
      raise ValueError(
          'The search scores candidates on a validation split; dataset '
          f'{data.dataset.name!r} has none (set '
          'config.data.given_valid_ratio > 0 or a random split).')
    self.config = config
    self.fidelity = config.fidelity
    self.data = data
    self.shape = search_shape(choices)
    self.mode = config.population_mode or population_lib.default_mode()
    self.optimizer = train.create_optimizer(config)
    dataset = data.dataset
    self.sampler = train.BatchSampler(
        dataset.train, dataset.num_items, self.fidelity.batch_size,
        train.negatives_to_draw(choices, config.num_negatives), config.seed,
        config.get('sampling', 'pairs'),
        protocol_negatives=config.num_negatives,
        shared_negatives=train.shared_negatives_to_draw(choices))

  def __call__(self, archs: Sequence[space.Architecture], key: jax.Array,
               refill: Refill | None = None) -> dict[str, Any]:
    """Trains `archs` at low fidelity.

    Each candidate trains at most `fidelity.epochs` epochs of its own,
    evaluated every `fidelity.eval_every` of them, at the rungs of
    `fidelity.rungs` and at its last, and stops early on its own. At a
    rung it goes on only if its best score so far is among the best
    `ceil(n / eta)` of the `n` candidates of the round that reached that
    rung still training (successive halving, asynchronously: those
    reaching it later are compared with all who reached it before).

    A candidate that stops on its own (out of patience, or diverged, which
    scores it zero) is judged with its final score at each rung it had not
    passed, as if it had reached it, and its score counts at the first
    rung that would have halted it (or at `fidelity.epochs`): counted at
    its allotted epochs, a weak candidate that stopped after 3 epochs would
    rank above every stronger one a rung halted (`strategies.base.Archive`
    ranks by fidelity first).

    With `refill`, a candidate's stop frees its slot for a new proposal:
    after each evaluation that stops some, `refill(positions, results, n)`
    is told the stopped candidates' `[k]` positions and the results so far
    (this method's, for every candidate yet) and returns up to `n` new
    architectures (`n`: the free slots, at most `fidelity.refill` new ones
    in a round). They start training at once, in the slots of stopped
    candidates of their program shape (`GroupedPopulation.add`); the round
    ends when no candidate trains.

    Returns:
      For every candidate, the first `len(archs)` then those refilled in
      the order they started: 'archs'; `[N]` arrays of the best validation
      'ndcg' and 'recall' at 20, 'failed', 'epochs' trained and the
      'fidelity' its score counts at (the rung that halted it, or
      `fidelity.epochs`); the
      `[N, fidelity.epochs]` 'curve' of validation NDCG@20 after each of a
      candidate's epochs (NaN where it was not evaluated: between
      evaluations, and after it stopped or failed); and 'programs', the
      groups of like architectures the round trained (each one compiled
      program).
    """
    uncovered = [a for a in archs if not self.shape.covers(a)]
    if uncovered:
      raise ValueError(f'Architecture {uncovered[0]} is outside the search '
                       f'space {self.config.space!r}.')
    fidelity = self.fidelity
    size = len(archs)
    init_key, train_key = jax.random.split(key)
    dataset = self.data.dataset
    # With several devices, each group is split over all of them.
    population = population_lib.GroupedPopulation(
        dataset.num_users, dataset.num_items, self.shape, self.data.graph,
        archs, jax.random.split(init_key, size),
        jax.random.split(train_key, size), self.mode,
        optimizer=self.optimizer)
    stopping = driver.EarlyStopping.start(size, fidelity.patience)
    rungs = tuple(fidelity.get('rungs') or ())
    refills_left = int(fidelity.get('refill') or 0) if refill else 0
    round_epochs = fidelity.epochs * (1 + refills_left)
    archs = list(archs)
    records = _Records.empty(size, fidelity.epochs)
    # Each rung's arrivals: position -> best score when it reached the rung.
    reached = {rung: {} for rung in rungs}

    def due(epoch):
      age = epoch - records.start
      return (age >= 1) & ((age % fidelity.eval_every == 0)
                           | np.isin(age, rungs) | (age == fidelity.epochs))

    def on_epoch(epoch, step_metrics, seconds, trained):
      del epoch, step_metrics, seconds
      records.epochs += trained

    def results():
      failed = population.failed
      best = stopping.best_score
      # A candidate that diverged scores zero, whatever it reached before.
      return {'archs': archs,
              'ndcg': np.where(failed | ~np.isfinite(best), 0.0, best),
              'recall': np.where(failed, 0.0, records.recall),
              'failed': failed, 'epochs': records.epochs.copy(),
              'fidelity': records.fidelity.copy(), 'curve': records.curve,
              'programs': len(population.groups)}

    def settle():
      """Fixes the fidelity of candidates that stopped since the last call
      (before a refill is told of them)."""
      running = population.active & ~stopping.stopped
      for position in np.flatnonzero(~running & ~records.settled):
        records.settled[position] = True
        trained = records.epochs[position]
        if trained >= records.fidelity[position]:
          continue  # Halted at a rung, or trained its allotted epochs.
        score = (-np.inf if population.failed[position]
                 else float(stopping.best_score[position]))
        for rung in rungs:
          if rung < trained:
            continue  # Passed: it trained beyond.
          reached[rung][int(position)] = score
          if not promoted(reached[rung], len(archs),
                          fidelity.eta)[position]:
            records.fidelity[position] = rung
            break

    def on_evaluation(epoch, metrics, improved):
      nonlocal refills_left
      evaluated = population.active & due(epoch)
      age = epoch - records.start
      for position in np.flatnonzero(evaluated):
        records.curve[position, age[position] - 1] = metrics[position][
            FITNESS]
      for position in np.flatnonzero(improved):
        records.recall[position] = metrics[position]['recall@20']
      going_on = evaluated & ~stopping.stopped
      for rung in rungs:
        arriving = going_on & (age == rung)
        if arriving.any():
          reached[rung].update({int(p): float(stopping.best_score[p])
                                for p in np.flatnonzero(arriving)})
          halted = arriving & ~promoted(reached[rung], len(archs),
                                        fidelity.eta)
          stopping.halt(halted)
          records.fidelity[halted] = rung
      stopping.halt(going_on & (age >= fidelity.epochs))
      settle()
      if not refills_left:
        return
      running = population.active & ~stopping.stopped
      stopped = np.flatnonzero(~running & ~records.told)
      free = size - int(running.sum())
      if not (stopped.size and free):
        return
      # Now rather than after this evaluation, so that the new candidates
      # find the slots of those that stopped in it.
      population.keep(running)
      records.told[stopped] = True
      new = list(refill(stopped, results(), min(free, refills_left)))
      if not new:  # The space or the budget is exhausted.
        refills_left = 0
        return
      outside = [a for a in new if not self.shape.covers(a)]
      if outside:
        raise ValueError(f'Refill {outside[0]} is outside the search space '
                         f'{self.config.space!r}.')
      refills_left -= len(new)
      first = len(archs)
      positions = np.arange(first, first + len(new))
      keys = jax.vmap(lambda p: jax.random.fold_in(key, p))(positions)
      init_keys, train_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
      population.add(new, init_keys, train_keys)
      archs.extend(new)
      stopping.extend(len(new))
      records.extend(len(new), epoch)

    driver.fit(_Round(population, self.data), self.sampler, stopping,
               epochs=round_epochs, eval_every=fidelity.eval_every,
               metric=FITNESS, due=due, on_epoch=on_epoch,
               on_evaluation=on_evaluation,
               # A round of a large graph takes long; its epochs show below
               # the search's bar of rounds.
               progress=self.config.progress, keep_bar=False)
    settle()  # Those that diverged after the last evaluation.
    return results()


@dataclasses.dataclass
class _Records:
  """A round's bookkeeping per candidate, grown as refills start.

  Attributes:
    start: `[N]` the round's epoch each candidate began training after.
    epochs: `[N]` epochs each trained.
    fidelity: `[N]` the epochs each one's score counts at: the rung that
      halted it (or would have, for one that stopped on its own), or the
      fidelity's epochs.
    recall: `[N]` validation Recall@20 where its NDCG@20 was best.
    curve: `[N, fidelity epochs]` validation NDCG@20 after each of its
      epochs (NaN where not evaluated).
    told: `[N]` bool, candidates a refill has reported as stopped.
    settled: `[N]` bool, stopped candidates whose fidelity is final.
  """
  start: np.ndarray
  epochs: np.ndarray
  fidelity: np.ndarray
  recall: np.ndarray
  curve: np.ndarray
  told: np.ndarray
  settled: np.ndarray

  @classmethod
  def empty(cls, size: int, epochs: int) -> _Records:
    return cls(np.zeros(size, int), np.zeros(size, int),
               np.full(size, epochs), np.zeros(size),
               np.full((size, epochs), np.nan), np.zeros(size, bool),
               np.zeros(size, bool))

  def extend(self, size: int, epoch: int) -> None:
    """Adds `size` candidates that begin after the round's `epoch`."""
    self.start = np.concatenate([self.start, np.full(size, epoch)])
    self.epochs = np.concatenate([self.epochs, np.zeros(size, int)])
    self.fidelity = np.concatenate(
        [self.fidelity, np.full(size, self.curve.shape[1])])
    self.recall = np.concatenate([self.recall, np.zeros(size)])
    self.curve = np.concatenate(
        [self.curve, np.full((size, self.curve.shape[1]), np.nan)])
    self.told = np.concatenate([self.told, np.zeros(size, bool)])
    self.settled = np.concatenate([self.settled, np.zeros(size, bool)])


def promoted(reached: dict[int, float], size: int, eta: int) -> np.ndarray:
  """Asynchronous successive halving at a rung: `[size]` bool, the
  candidates among the best `ceil(n / eta)` of the `n` that `reached` it
  (position -> best score when each reached it), earlier positions first
  among equals."""
  scores = np.full(size, -np.inf)
  candidates = np.zeros(size, bool)
  for position, score in reached.items():
    scores[position] = score if np.isfinite(score) else -np.inf
    candidates[position] = True
  return survivors(scores, candidates, eta)


def retraining_directory(workdir: str, arch: space.Architecture) -> str:
  """`workdir/final/<architecture hash>`: where `arch`'s full-fidelity runs
  live, found again whatever rank the architecture has."""
  label = hashlib.sha1(arch.to_string().encode()).hexdigest()[:12]
  return os.path.join(workdir, 'final', label)


def retrain(config: ml_collections.ConfigDict, workdir: str,
            arch: space.Architecture, seeds: Sequence[int],
            data: driver.TrainingData) -> dict[str, Any]:
  """`arch` trained with the protocol of `config` once per seed, in
  `retraining_directory`; finished runs are read back
  (`driver.train_with_seeds`).

  Returns:
    'arch', 'run_dir' (the first seed's) and, for validation NDCG@20 and
    test Recall and NDCG@20, `driver.seed_statistics`.
  """
  runs = driver.train_with_seeds(config, retraining_directory(workdir, arch),
                                 arch, seeds, data)
  return {'arch': arch.to_string(), 'run_dir': runs[0]['workdir'],
          **{key.replace('/', '_'): driver.seed_statistics(runs, key)
             for key in ('valid/ndcg@20', 'test/recall@20',
                         'test/ndcg@20')}}
