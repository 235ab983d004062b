"""What a search's evaluations are: low-fidelity population training, and
the full-fidelity retraining of its finalists.

`PopulationEvaluator` trains a round's candidates together
(`gnas_jax.population.GroupedPopulation`) through the driver's loop
(`gnas_jax.driver.fit`). Each stops early on its own, and at each rung of
`config.fidelity.rungs` all but the best 1/eta stop (successive halving).
Each is scored by its best validation NDCG@20 (`FITNESS`). `retrain`
trains an architecture at full fidelity with several seeds and summarises
each metric over them.
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from gnas_jax import driver
from gnas_jax import models
from gnas_jax import population as population_lib
from gnas_jax import space
from gnas_jax import train

FITNESS = 'ndcg@20'


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
        config.num_negatives, config.seed, config.get('sampling', 'pairs'))

  def __call__(self, archs: Sequence[space.Architecture],
               key: jax.Array) -> dict[str, np.ndarray]:
    """Trains `archs` at low fidelity.

    Returns:
      `[P]` arrays: best validation 'ndcg' and 'recall' at 20, 'failed',
      and 'epochs' trained; and the `[P, fidelity.epochs]` 'curve' of
      validation NDCG@20 after each epoch (NaN where it was not evaluated:
      between evaluations, and after a candidate stopped or failed).
    """
    uncovered = [a for a in archs if not self.shape.covers(a)]
    if uncovered:
      raise ValueError(f'Architecture {uncovered[0]} is outside the search '
                       f'space {self.config.space!r}.')
    size = len(archs)
    init_key, train_key = jax.random.split(key)
    dataset = self.data.dataset
    # With several devices, each group is split over all of them.
    population = population_lib.GroupedPopulation(
        dataset.num_users, dataset.num_items, self.shape, self.data.graph,
        archs, jax.random.split(init_key, size),
        jax.random.split(train_key, size), self.mode,
        optimizer=self.optimizer)
    stopping = driver.EarlyStopping.start(size, self.fidelity.patience)
    rungs = tuple(self.fidelity.get('rungs') or ())
    recall = np.zeros(size)
    epochs = np.zeros(size, int)
    curve = np.full((size, self.fidelity.epochs), np.nan)

    def on_epoch(epoch, step_metrics, seconds, trained):
      del epoch, step_metrics, seconds
      epochs[:] += trained

    def on_evaluation(epoch, results, improved):
      evaluated = population.active
      curve[evaluated, epoch - 1] = [results[p][FITNESS]
                                     for p in np.flatnonzero(evaluated)]
      for position in np.flatnonzero(improved):
        recall[position] = results[position]['recall@20']
      if epoch in rungs:
        going_on = evaluated & ~stopping.stopped
        stopping.halt(going_on & ~survivors(
            stopping.best_score, going_on, self.fidelity.eta))

    driver.fit(_Round(population, self.data), self.sampler, stopping,
               epochs=self.fidelity.epochs,
               eval_every=self.fidelity.eval_every, metric=FITNESS,
               also_evaluate=rungs,
               on_epoch=on_epoch, on_evaluation=on_evaluation)
    failed = population.failed
    best = stopping.best_score
    # A candidate that diverged scores zero, whatever it reached before.
    return {'ndcg': np.where(failed | ~np.isfinite(best), 0.0, best),
            'recall': np.where(failed, 0.0, recall), 'failed': failed,
            'epochs': epochs, 'curve': curve}


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
