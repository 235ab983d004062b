"""Optuna's tree-structured Parzen estimator (Bergstra et al. 2011)."""

from __future__ import annotations

import numpy as np

from gnas_jax.search.strategies import base


class TPESearch(base.Strategy):
  """TPE through Optuna's ask/tell API (`pip install 'gnas-jax[tpe]'`).

  Keeps no state of its own: each `ask` rebuilds a study from the archive,
  seeded by the key, so it is pure and resumes like the others. Only the
  decisions active in an architecture are its trial's parameters, and a
  proposal suggests the decisions in the space's `order`, skipping those
  the earlier ones make inactive.
  """
  name = 'tpe'

  def __init__(self, space, startup_trials: int = 10):
    super().__init__(space)
    try:
      import optuna  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(
          "Strategy 'tpe' needs Optuna: pip install 'gnas-jax[tpe]' (or "
          'pip install optuna).') from e
    self.optuna = optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    self.startup_trials = startup_trials
    self.distributions = [
        optuna.distributions.CategoricalDistribution(
            np.flatnonzero(space.mask[p]).tolist())
        for p in range(space.num_positions)]

  def _allowed_form(self, row: np.ndarray) -> np.ndarray:
    """Canonical `row` (`[K]`) with each active choice that the space does
    not allow (an equivalence's target, as a cosine 'mean' readout where
    only 'sum' is allowed) replaced by an allowed choice that merges into
    it: the distributions know the allowed choices only."""
    space = self.space
    row = row.copy()
    outside = ~space.mask[np.arange(space.num_positions), row]
    for position in np.flatnonzero(outside & space.active(row)):
      for choice in np.flatnonzero(space.mask[position]):
        if space.canonical_at(position, np.int32(choice), row) == row[position]:
          row[position] = choice
          break
    return row

  def propose(self, state, key, rng, num):
    optuna, space = self.optuna, self.space
    study = optuna.create_study(
        direction='maximize', sampler=optuna.samplers.TPESampler(
            seed=int(rng.integers(2 ** 31)),
            n_startup_trials=self.startup_trials, constant_liar=True))
    archive = state.archive
    active = space.active(archive.tokens)
    tokens = [self._allowed_form(row) for row in archive.tokens]
    study.add_trials([optuna.trial.create_trial(
        params={space.names[p]: int(row[p]) for p in np.flatnonzero(on)},
        distributions={space.names[p]: self.distributions[p]
                       for p in np.flatnonzero(on)},
        value=float(value))
                      for row, on, value in zip(tokens, active,
                                                archive.comparable())])
    proposals = []
    for _ in range(num):
      trial = study.ask()
      row = np.zeros(space.num_positions, np.int32)
      for position in space.order.tolist():
        if space.active(row)[position]:
          row[position] = trial.suggest_categorical(
              space.names[position], self.distributions[position].choices)
        row[position] = space.canonical_at(position, row[position], row)
      proposals.append(row)
    return space.canonical(np.stack(proposals))
