"""A cheap synthetic objective over the real search space.

For comparing strategies without training GNNs: a fixed, seeded scoring
function of an architecture's canonical one-hot features `x` with
interactions between decisions,

    f(x) = w . x + sum_j a_j (u_j . x)(v_j . x),

so that no decision is best regardless of the others. The distribution of
f under uniform sampling gives the "top 1%" threshold.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from gnas_jax import search as search_lib
from gnas_jax import space
from gnas_jax.search import strategies as strategies_lib


class SurrogateObjective:
  """A hidden scoring function of architectures (higher is better)."""

  def __init__(self, seed: int = 0, interactions: int = 8,
               interaction_scale: float = 0.5):
    rng = np.random.default_rng(seed)
    size = space.SEARCH_SPACE.num_positions * space.SEARCH_SPACE.vocab
    self.linear = rng.normal(size=size)
    self.left = rng.normal(size=(interactions, size)) / np.sqrt(8)
    self.right = rng.normal(size=(interactions, size)) / np.sqrt(8)
    self.scale = interaction_scale * rng.normal(size=interactions)

  def score_tokens(self, tokens: np.ndarray) -> np.ndarray:
    """`[N]` scores of `[N, K]` tokens of `space.SEARCH_SPACE` (or of a
    restriction of it; canonicalised here)."""
    declared = space.SEARCH_SPACE
    x = declared.features(declared.canonical(tokens)).astype(np.float64)
    return x @ self.linear + ((x @ self.left.T) * (x @ self.right.T)
                              ) @ self.scale

  def __call__(self, archs: Sequence[space.Architecture]) -> np.ndarray:
    return self.score_tokens(space.to_tokens(archs))

  def threshold(self, quantile: float = 0.99, samples: int = 100_000,
                seed: int = 0,
                choices: Mapping[str, Sequence[Any]] | None = None
                ) -> float:
    """The score that a share `1 - quantile` of uniform samples of the
    (sub)space `choices` reach."""
    rng = np.random.default_rng(seed)
    tokens = space.search_space(choices).uniform(rng, samples)
    return float(np.quantile(self.score_tokens(tokens), quantile))


class _Reached(Exception):
  """Stops a search at its first evaluation over the threshold."""

  def __init__(self, evaluations: int):
    super().__init__(evaluations)
    self.evaluations = evaluations


def evaluations_to_reach(strategy: strategies_lib.Strategy,
                         objective: SurrogateObjective, threshold: float,
                         seed: int, batch_size: int = 16,
                         max_evaluations: int = 1000) -> int:
  """Evaluations (in ask order) until one scores >= `threshold`; returns
  `max_evaluations + 1` if none does within the budget (or the space)."""
  evaluated = 0

  def evaluate(tokens: np.ndarray, round_index: int) -> np.ndarray:
    del round_index
    nonlocal evaluated
    scores = objective.score_tokens(tokens)
    hits = np.flatnonzero(scores >= threshold)
    if hits.size:
      raise _Reached(evaluated + int(hits[0]) + 1)
    evaluated += len(tokens)
    return scores

  try:
    search_lib.fold(strategy, evaluate, max_evaluations, batch_size, seed)
  except _Reached as reached:
    return reached.evaluations
  return max_evaluations + 1
