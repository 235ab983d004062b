"""A GraphNAS-style controller (Gao et al. 2020) trained by REINFORCE."""

from __future__ import annotations

from typing import Any

import flax
import jax.numpy as jnp
import numpy as np

from gnas_jax.search import networks
from gnas_jax.search.strategies import base


@flax.struct.dataclass
class PolicyState:
  """The archive, the policy's parameters and its reward baseline."""
  archive: base.Archive
  params: Any
  opt_state: Any
  baseline: np.ndarray  # float: moving average of scores (NaN at first)


class ReinforceController(base.Strategy):
  """The autoregressive policy trained by REINFORCE on scores, with a
  moving-average baseline and an entropy bonus. Advantages are divided by
  the archive's spread of scores, so the step size does not depend on the
  metric's scale."""
  name = 'reinforce'

  def __init__(self, space, hidden: int = 64, learning_rate: float = 3.5e-3,
               entropy_weight: float = 1e-2, baseline_decay: float = 0.9,
               steps_per_round: int = 4, oversample: int = 4):
    super().__init__(space)
    for name, value in (('steps_per_round', steps_per_round),
                        ('oversample', oversample), ('hidden', hidden)):
      if value < 1:
        raise ValueError(f'REINFORCE needs {name} >= 1; got {value}.')
    self.generator = networks.make_generator(space, hidden)
    self.optimizer = networks.adam(learning_rate)
    self.entropy_weight = entropy_weight
    self.baseline_decay = baseline_decay
    self.steps_per_round = steps_per_round
    self.oversample = oversample

  def init(self, key):
    params = networks.init_generator(self.generator, key)
    return PolicyState(base.Archive.empty(self.space.num_positions), params,
                       self.optimizer.init(params), np.float32(np.nan))

  def propose(self, state, key, rng, num):
    sampled, _, _ = networks.generate(self.generator, state.params,
                                      self.space, key, self.oversample * num)
    return self.space.canonical(np.asarray(sampled))

  def learn(self, state, archive, tokens, fitness):
    baseline = (np.mean(fitness) if np.isnan(state.baseline) else
                state.baseline)
    advantages = (fitness - baseline) / (np.std(archive.comparable()) + 1e-8)
    params, opt_state = state.params, state.opt_state
    for _ in range(self.steps_per_round):
      params, opt_state, loss = networks.policy_update(
          self.generator, self.space, self.optimizer, params, opt_state,
          jnp.asarray(tokens), jnp.asarray(advantages, jnp.float32),
          self.entropy_weight)
    decay = self.baseline_decay
    baseline = np.float32(decay * baseline + (1 - decay) * np.mean(fitness))
    return (PolicyState(archive, params, opt_state, baseline),
            {'policy_loss': float(loss)})
