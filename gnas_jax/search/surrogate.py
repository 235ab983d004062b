"""A cheap synthetic objective over the real search space.

For comparing strategies without training GNNs: a fixed, seeded scoring
function of an architecture's canonical one-hot features `x` with
interactions between decisions,

    f(x) = w . x + sum_j a_j (u_j . x)(v_j . x),

so that no decision is best regardless of the others. The distribution of
f under uniform sampling gives the "top 1%" threshold.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from gnas_jax import space
from gnas_jax.search import strategies as strategies_lib
from gnas_jax.search import tokens as tokens_lib


class SurrogateObjective:
  """A hidden scoring function of architectures (higher is better)."""

  def __init__(self, seed: int = 0, interactions: int = 8,
               interaction_scale: float = 0.5):
    rng = np.random.default_rng(seed)
    size = tokens_lib.NUM_POSITIONS * tokens_lib.VOCAB
    self.linear = rng.normal(size=size)
    self.left = rng.normal(size=(interactions, size)) / np.sqrt(8)
    self.right = rng.normal(size=(interactions, size)) / np.sqrt(8)
    self.scale = interaction_scale * rng.normal(size=interactions)

  def score_tokens(self, tokens: np.ndarray) -> np.ndarray:
    """`[N]` scores of `[N, K]` tokens (canonicalised here)."""
    x = tokens_lib.features(tokens_lib.canonical(tokens)).astype(np.float64)
    return x @ self.linear + ((x @ self.left.T) * (x @ self.right.T)
                              ) @ self.scale

  def __call__(self, archs: Sequence[space.Architecture]) -> np.ndarray:
    return self.score_tokens(tokens_lib.from_architectures(archs))

  def threshold(self, quantile: float = 0.99, samples: int = 100_000,
                seed: int = 0,
                choices: dict[str, tuple[Any, ...]] | None = None) -> float:
    """The score that a share `1 - quantile` of uniform samples reach."""
    rng = np.random.default_rng(seed)
    tokens = tokens_lib.uniform(rng, samples, tokens_lib.choice_mask(choices))
    return float(np.quantile(self.score_tokens(tokens), quantile))


def evaluations_to_reach(strategy: strategies_lib.Strategy,
                         objective: SurrogateObjective, threshold: float,
                         seed: int, batch_size: int = 16,
                         max_evaluations: int = 1000) -> int:
  """Evaluations (in ask order) until one scores >= `threshold`; returns
  `max_evaluations + 1` if none does within the budget."""
  import jax  # pylint: disable=g-import-not-at-top
  key = jax.random.PRNGKey(seed)
  init_key, rounds_key = jax.random.split(key)
  state = strategy.init(init_key)
  evaluations = 0
  for round_index in range(-(-max_evaluations // batch_size)):
    archs = strategy.ask(state, jax.random.fold_in(rounds_key, round_index),
                         batch_size)
    fitness = objective(archs)
    hits = np.flatnonzero(fitness >= threshold)
    if hits.size:
      return evaluations + int(hits[0]) + 1
    evaluations += len(archs)
    state = strategy.tell(state, archs, fitness)
  return max_evaluations + 1
