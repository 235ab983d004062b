"""Regularized (aging) evolution (Real et al. 2019)."""

from __future__ import annotations

import numpy as np

from gnas_jax.search.strategies import base


def mutate(space, parent: np.ndarray, rng: np.random.Generator,
           mutations: tuple[np.ndarray, np.ndarray] | None = None
           ) -> np.ndarray:
  """`parent` (`[K]` canonical) with one active decision changed so that
  the canonical form changes; a decision that change makes active draws
  an allowed choice. A parent without neighbours gives a uniform sample.
  `mutations`: `space.mutations(parent, rng)`, if already known."""
  neighbours, changed = (space.mutations(parent, rng) if mutations is None
                         else mutations)
  if not len(neighbours):
    return space.uniform(rng, 1)[0]
  # Uniform over decisions first, then over that decision's new choices,
  # as Real et al. mutate.
  position = rng.choice(np.unique(changed))
  options = neighbours[changed == position]
  return options[rng.integers(len(options))]


class RegularizedEvolution(base.Strategy):
  """Aging evolution.

  The population is the `population` most recent evaluations (the oldest
  dies); each child mutates one decision of the best of `sample_size`
  members drawn at random. Until the population fills, children are
  uniform samples.
  """
  name = 'evolution'
  # 2: the decision a mutation changes is drawn uniformly.
  revision = 2

  def __init__(self, space, population: int = 32, sample_size: int = 8):
    super().__init__(space)
    if not 1 <= sample_size <= population:
      raise ValueError(f'Evolution needs 1 <= sample_size <= population; got '
                       f'sample_size={sample_size}, population={population}.')
    self.population = population
    self.sample_size = sample_size

  def propose(self, state, key, rng, num):
    archive = state.archive
    if archive.size < self.population:
      return None
    members = archive.tokens[-self.population:]
    fitness = archive.comparable()[-self.population:]
    children = []
    for _ in range(4 * num):
      picks = rng.choice(self.population, self.sample_size, replace=False)
      parent = members[picks[np.argmax(fitness[picks])]]
      children.append(mutate(self.space, parent, rng))
    return np.stack(children)
