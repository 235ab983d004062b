"""What every strategy shares: the archive, the state and ask/tell.

    strategy = make_strategy('evolution', space)
    state = strategy.init(key)
    tokens = strategy.ask(state, key, n)          # [n, K] new canonical tokens
    state, metrics = strategy.tell(state, tokens, fitness)

`ask` is pure (same state and key, same proposals) and `tell` returns a
new state and a dict of scalars worth logging, so a search is a fold over
rounds (`gnas_jax.search.run`), and a state saved after a round (a pytree
of arrays, `flax.serialization.to_state_dict`) resumes it exactly. Every
state carries the archive of evaluated architectures, and no strategy
proposes an architecture (in canonical form) twice while unseen ones
remain.

A multi-fidelity search tells each score with the fidelity it was
measured at (`tell(..., fidelity=epochs)`, successive halving's rung). A
score counts below every score of a higher fidelity, as halving itself
decided: strategies read `Archive.ranking` and `Archive.comparable`, never
raw scores of mixed fidelities.
"""

from __future__ import annotations

from typing import Any

from absl import logging
import flax
import jax
import numpy as np

from gnas_jax.search import search_space as space_lib


@flax.struct.dataclass
class Archive:
  """Every evaluated architecture, in evaluation order.

  Attributes:
    tokens: `[N, K]` int32 canonical token arrays.
    fitness: `[N]` float32 scores (higher is better).
    fidelity: `[N]` float32 the fidelity each score counts at (the epochs
      a candidate was allotted, or the rung that halted it or would have,
      `evaluation.PopulationEvaluator`); all equal in a single-fidelity
      search, but `FAILED_FIDELITY` for a failed evaluation.
  """
  tokens: np.ndarray
  fitness: np.ndarray
  fidelity: np.ndarray

  @classmethod
  def empty(cls, num_positions: int) -> Archive:
    return cls(np.zeros((0, num_positions), np.int32),
               np.zeros((0,), np.float32), np.zeros((0,), np.float32))

  @property
  def size(self) -> int:
    return int(self.fitness.shape[0])

  def add(self, tokens: np.ndarray, fitness: np.ndarray,
          fidelity: np.ndarray | None = None) -> Archive:
    """With `fidelity` None, every new score counts at fidelity 0."""
    if fidelity is None:
      fidelity = np.zeros(len(fitness))
    return Archive(
        np.concatenate([self.tokens, np.asarray(tokens, np.int32)]),
        np.concatenate([self.fitness, np.asarray(fitness, np.float32)]),
        np.concatenate([self.fidelity, np.asarray(fidelity, np.float32)]))

  def ranking(self) -> np.ndarray:
    """`[N]` indices from the best down: higher fidelity first, then higher
    fitness, earlier first on ties."""
    return np.lexsort((-self.fitness, -self.fidelity))

  def comparable(self) -> np.ndarray:
    """`[N]` scores in archive order that sort as `ranking` does: the
    fitness itself at the highest fidelity, and lower fidelities shifted
    below every score of a higher one (the fitness itself when all
    fidelities are equal)."""
    levels = np.unique(self.fidelity)
    if len(levels) < 2:
      return self.fitness.copy()
    span = np.float32(self.fitness.max() - self.fitness.min() + 1.0)
    below = len(levels) - 1 - np.searchsorted(levels, self.fidelity)
    return self.fitness - below * span

  def best(self, k: int) -> np.ndarray:
    """`[min(k, N), K]` tokens of the k fittest."""
    return self.tokens[self.ranking()[:k]]


@flax.struct.dataclass
class State:
  """The state of a strategy that keeps nothing but the archive."""
  archive: Archive


def numpy_rng(key: jax.Array) -> np.random.Generator:
  """A numpy generator seeded by a JAX key (for host-side proposals)."""
  return np.random.default_rng(np.asarray(jax.random.key_data(key)))


# The fidelity a failed evaluation (a non-finite score: the candidate
# diverged) counts at: below every real one, so that it ranks below every
# real score whatever the fidelity the others were measured at.
FAILED_FIDELITY = -1.0


def fitness_array(fitness, others=()) -> np.ndarray:
  """`[N]` float32, a failed (non-finite) evaluation scoring below every
  real one, of `fitness` and of `others` (the archive's)."""
  fitness = np.asarray(fitness, np.float32)
  scores = np.concatenate([fitness, np.asarray(others, np.float32)])
  finite = scores[np.isfinite(scores)]
  floor = finite.min() - 1.0 if finite.size else 0.0
  return np.where(np.isfinite(fitness), fitness, np.minimum(floor, 0.0))


class Strategy:
  """Base class: holds the space and fills proposals with unseen ones.

  A subclass sets `name`, declares its options as keyword arguments of
  `__init__`, and overrides `init`, `propose` (candidates for `ask`, best
  first) and `learn` (what `tell` does beyond archiving). A change that
  makes the same seed propose otherwise raises `revision`: a search
  checkpointed under another revision is refused on resume.
  """
  name = ''
  revision = 1

  def __init__(self, space: space_lib.SearchSpace):
    if not isinstance(space, space_lib.SearchSpace):
      raise TypeError(f'Strategy {self.name!r} needs a SearchSpace; got '
                      f'{type(space).__name__}.')
    self.space = space

  def init(self, key: jax.Array) -> Any:
    del key
    return State(Archive.empty(self.space.num_positions))

  def ask(self, state, key: jax.Array, num: int,
          exclude: np.ndarray | None = None) -> np.ndarray:
    """`[n, K]` distinct canonical tokens not yet evaluated nor among
    `exclude` (`[M, K]`, those being evaluated): `n = num` unless the space
    has fewer left."""
    if num < 1:
      raise ValueError(f'ask needs num >= 1; got {num}.')
    rng = numpy_rng(key)
    return self.unseen(state.archive, self.propose(state, key, rng, num),
                       rng, num, exclude)

  def propose(self, state, key: jax.Array, rng: np.random.Generator,
              num: int) -> np.ndarray | None:
    """Candidate tokens `[M, K]` in order of preference (seen ones are
    dropped, and uniform samples fill what is missing); None for none."""
    del state, key, rng, num
    return None

  def tell(self, state, tokens: np.ndarray, fitness,
           fidelity=None) -> tuple[Any, dict[str, float]]:
    """`(state, metrics)` after evaluating `tokens` (`[N, K]`) with
    `fitness` (`[N]`, higher is better; NaN for a failed evaluation, which
    counts at `FAILED_FIDELITY`) measured at `fidelity` (`[N]` epochs, or
    None in a single-fidelity search)."""
    tokens = np.asarray(tokens, np.int32)
    failed = ~np.isfinite(np.asarray(fitness, np.float32))
    fitness = fitness_array(fitness, state.archive.fitness)
    if fidelity is not None or failed.any():
      fidelity = np.where(failed, FAILED_FIDELITY, np.asarray(
          0.0 if fidelity is None else fidelity, np.float32))
    if (tokens.shape != (len(fitness), self.space.num_positions)
        or (fidelity is not None and fidelity.shape != fitness.shape)):
      raise ValueError(
          f'tell needs [N, {self.space.num_positions}] tokens, [N] fitness '
          f'and [N] fidelity; got {tokens.shape}, {fitness.shape} and '
          f'{None if fidelity is None else fidelity.shape}.')
    archive = state.archive.add(tokens, fitness, fidelity)
    return self.learn(state, archive, tokens,
                      archive.comparable()[archive.size - len(tokens):])

  def learn(self, state, archive: Archive, tokens: np.ndarray,
            fitness: np.ndarray) -> tuple[Any, dict[str, float]]:
    """What `tell` does beyond archiving: `fitness` is the `[N]` told
    scores as `archive.comparable()` has them."""
    del tokens, fitness
    return state.replace(archive=archive), {}

  def unseen(self, archive: Archive, candidates: np.ndarray | None,
             rng: np.random.Generator, num: int,
             exclude: np.ndarray | None = None) -> np.ndarray:
    """The first `num` distinct rows of canonical `candidates` inside the
    space that are neither in the archive nor in `exclude`, topped up with
    uniform samples."""
    seen = set(self.space.keys(archive.tokens))
    if exclude is not None and len(exclude):
      seen.update(self.space.keys(np.asarray(exclude, np.int32)))
    chosen = []
    pools = []
    if candidates is not None and len(candidates):
      candidates = np.asarray(candidates, np.int32)
      pools = [candidates[self.space.contains(candidates)]]
    for _ in range(50):
      for pool in pools:
        for row, key in zip(pool, self.space.keys(pool)):
          if key not in seen:
            seen.add(key)
            chosen.append(row)
            if len(chosen) == num:
              return np.stack(chosen)
      pools = [self.space.uniform(rng, 4 * num)]
    # Uniform sampling keeps missing: the space may be nearly exhausted.
    rest = [row for row in self.space.enumerate()
            if row.tobytes() not in seen] if self._enumerable() else []
    chosen.extend(rest[:num - len(chosen)])
    if len(chosen) < num:
      logging.warning('The search space has %d unseen architectures left; '
                      'asked for %d.', len(chosen), num)
    if not chosen:
      return np.zeros((0, self.space.num_positions), np.int32)
    return np.stack(chosen)

  def _enumerable(self) -> bool:
    try:
      return self.space.count() <= space_lib.MAX_TABULATED
    except ValueError:  # Too many combinations even to count.
      return False
