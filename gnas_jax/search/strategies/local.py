"""Local search with random restarts (White et al. 2020, "Local search is
state of the art for NAS benchmarks").

Hill-climbing over the one-decision neighbours of the incumbent: the best
architecture evaluated since the last restart. Its unseen neighbours are
evaluated (in random order); when every neighbour of the incumbent has
been evaluated and none beat it, it is a local optimum and the search
restarts from uniform samples.
"""

from __future__ import annotations

import flax
import numpy as np

from gnas_jax.search.strategies import base


@flax.struct.dataclass
class LocalState:
  """The archive, and where the current climb started in it."""
  archive: base.Archive
  restart_at: np.ndarray  # int: archive index of the climb's first point


class LocalSearch(base.Strategy):
  """Hill-climbing over one-decision neighbours, restarting at optima."""
  name = 'local'

  def init(self, key):
    del key
    return LocalState(base.Archive.empty(self.space.num_positions),
                      np.int32(0))

  def _incumbent(self, archive, restart_at):
    climb = archive.comparable()[int(restart_at):]
    if not climb.size:
      return None
    return archive.tokens[int(restart_at) + int(np.argmax(climb))]

  def _unseen_neighbours(self, archive, incumbent, rng):
    seen = set(self.space.keys(archive.tokens))
    neighbours = self.space.neighbours(incumbent, rng)
    return neighbours[[k not in seen for k in self.space.keys(neighbours)]]

  def propose(self, state, key, rng, num):
    incumbent = self._incumbent(state.archive, state.restart_at)
    if incumbent is None:
      return None
    neighbours = self._unseen_neighbours(state.archive, incumbent, rng)
    return neighbours[rng.permutation(len(neighbours))]

  def learn(self, state, archive, tokens, fitness):
    incumbent = self._incumbent(archive, state.restart_at)
    # A local optimum: every neighbour evaluated, none better.
    exhausted = not len(self._unseen_neighbours(
        archive, incumbent, np.random.default_rng(0)))
    restart_at = np.int32(archive.size if exhausted else state.restart_at)
    return LocalState(archive, restart_at), {'restarted': float(exhausted)}
