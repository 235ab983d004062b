"""Adversarial architecture search in the manner of GA-NAS.

What is GA-NAS (Rezaei et al., "Generative Adversarial Neural Architecture
Search", IJCAI 2021):
  * the truth set is the best architectures evaluated so far, refreshed
    after every round of true evaluations;
  * a discriminator learns to tell the truth set from the generator's
    samples, and the generator learns to fool it, trained by policy
    gradient with PPO's clipped ratio (`clip`), the discriminator's output
    being the reward;
  * the generator is also refit to the truth set each iteration (its
    log-likelihood of the truth set is maximised beside the adversarial
    reward, `refit_weight`), so it starts each round near the best known
    architectures.

What is this project's own:
  * the generator is an autoregressive GRU over a declared space's
    decisions (GA-NAS generates cell graphs with a GNN) and samples only
    canonical architectures;
  * a pairwise, relativistic discriminator (`pairwise`): it learns which
    of a (truth, other) pair is the truth set's, which is all that ranking
    needs (binary cross-entropy is the ablation);
  * the evaluated architectures outside the truth set are negatives for
    the discriminator beside the generator's samples (`archive_negatives`),
    so it learns from every evaluation, not only the best;
  * proposals: the generator samples `ranking_factor` times more than
    asked and the discriminator's ranking picks the best unseen ones
    (`rank_with_discriminator`);
  * R1 gradient penalty and one-sided label smoothing against a
    discriminator that overfits a small truth set, and an entropy bonus
    against mode collapse;
  * coverage probes (off by default): each proposal is, with
    probability `coverage`, a probe of the choice evaluated least often
    for its share (`neglected_choices`: under half the share a uniform
    draw gives it): the truth set's one-decision neighbour taking that
    choice that the discriminator ranks best. A generator refit to the
    truth set and a discriminator that never saw a choice rarely propose
    it, so a choice the uniform first round happened to miss would
    otherwise stay untried with the best architectures known.

The first round, with nothing evaluated, is uniform; every later round
comes from the trained generator and discriminator (no warm-up unless
`warmup` asks for one, which the constructor reports).
"""

from __future__ import annotations

import math
from typing import Any

from absl import logging
import flax
import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from gnas_jax.search import networks
from gnas_jax.search.strategies import base
from gnas_jax.search.strategies import evolution


# A choice is neglected below this share of the evaluations a uniform draw
# would give it.
_NEGLECTED_SHARE = 0.5


def neglected_choices(space, tokens: np.ndarray,
                      rng: np.random.Generator | None = None
                      ) -> list[tuple[int, int]]:
  """`(position, token)` choices that canonical `tokens` (`[N, K]`, the
  evaluated architectures) took under half as often as a uniform draw
  would, least often first: of the N_p rows where position p is active, a
  choice among the A_p allowed there is expected N_p / A_p times. Ties
  are in position order, or in random order with `rng`."""
  tokens = np.asarray(tokens, np.int32)
  active = space.active(tokens)
  shares = []
  for position in range(space.num_positions):
    allowed = np.flatnonzero(space.mask[position])
    deciding = tokens[active[:, position], position]
    if len(allowed) < 2 or not len(deciding):
      continue
    counts = np.bincount(deciding, minlength=space.vocab)[allowed]
    shares.extend((count * len(allowed) / len(deciding), position, choice)
                  for count, choice in zip(counts, allowed))
  ties = (rng.permutation(len(shares)) if rng is not None
          else np.arange(len(shares)))
  return [(position, int(choice))
          for (share, position, choice), _ in sorted(
              zip(shares, ties), key=lambda item: (item[0][0], item[1]))
          if share < _NEGLECTED_SHARE]


@flax.struct.dataclass
class AdversarialState:
  """The archive, generator and discriminator, and the training key."""
  archive: base.Archive
  generator: Any
  generator_opt: Any
  discriminator: Any
  discriminator_opt: Any
  key: jax.Array


class AdversarialSearch(base.Strategy):
  """GA-NAS-style adversarial search (see the module docstring).

  The truth set is the `truth_fraction` best of the archive, at least 2
  and at most `truth_size` architectures.
  """
  name = 'adversarial'
  # 2: each truth architecture weighs the same in the refit, and the
  # decision a mutation changes is drawn uniformly. (Coverage probes, off
  # by default, leave the proposals without them as they were.)
  revision = 2

  def __init__(self, space, hidden: int = 64, truth_size: int = 10,
               truth_fraction: float = 0.25, warmup: int = 0,
               ranking_factor: int = 8, rank_with_discriminator: bool = True,
               discriminator_steps: int = 50, generator_steps: int = 20,
               batch_size: int = 64, generator_learning_rate: float = 3e-3,
               discriminator_learning_rate: float = 1e-3,
               label_smoothing: float = 0.1, r1_weight: float = 0.1,
               entropy_weight: float = 1e-2, pairwise: bool = True,
               archive_negatives: bool = True, refit_weight: float = 1.0,
               clip: float = 0.2, ppo_epochs: int = 4, mutations: int = 8,
               coverage: float = 0.0):
    super().__init__(space)
    for name, value in (('hidden', hidden), ('truth_size', truth_size),
                        ('ranking_factor', ranking_factor),
                        ('batch_size', batch_size),
                        ('discriminator_steps', discriminator_steps),
                        ('generator_steps', generator_steps),
                        ('ppo_epochs', ppo_epochs)):
      if value < 1:
        raise ValueError(f'The adversarial strategy needs {name} >= 1; got '
                         f'{value}.')
    if not 0 < truth_fraction <= 1:
      raise ValueError('The adversarial strategy needs 0 < truth_fraction '
                       f'<= 1; got {truth_fraction}.')
    if mutations < 0:
      raise ValueError('The adversarial strategy needs mutations >= 0; got '
                       f'{mutations}.')
    if not 0 <= coverage <= 1:
      raise ValueError('The adversarial strategy needs 0 <= coverage <= 1; '
                       f'got {coverage}.')
    if warmup < 0:
      raise ValueError(f'The adversarial strategy needs warmup >= 0; got '
                       f'{warmup}.')
    if warmup:
      logging.warning('Adversarial search: warmup=%d, so proposals are '
                      'uniform (as random search) until %d architectures '
                      'are evaluated.', warmup, warmup)
    self.generator = networks.make_generator(space, hidden)
    self.generator_optimizer = networks.adam(generator_learning_rate)
    self.discriminator = networks.Discriminator(hidden)
    self.discriminator_optimizer = networks.adam(discriminator_learning_rate)
    self.truth_size = truth_size
    self.truth_fraction = truth_fraction
    self.warmup = warmup
    self.ranking_factor = ranking_factor
    self.rank_with_discriminator = rank_with_discriminator
    self.discriminator_steps = discriminator_steps
    self.generator_steps = generator_steps
    self.batch_size = batch_size
    self.label_smoothing = label_smoothing
    self.r1_weight = r1_weight
    self.entropy_weight = entropy_weight
    self.pairwise = pairwise
    self.archive_negatives = archive_negatives
    self.refit_weight = refit_weight
    self.clip = clip
    self.ppo_epochs = ppo_epochs
    self.mutations = mutations
    self.coverage = coverage

  def init(self, key):
    generator_key, discriminator_key, train_key = jax.random.split(key, 3)
    generator = networks.init_generator(self.generator, generator_key)
    discriminator = self.discriminator.init(
        discriminator_key,
        jnp.zeros((1, self.space.num_positions * self.space.vocab)))
    return AdversarialState(
        base.Archive.empty(self.space.num_positions), generator,
        self.generator_optimizer.init(generator), discriminator,
        self.discriminator_optimizer.init(discriminator), train_key)

  def _truth_count(self, evaluated: int) -> int:
    return min(self.truth_size, evaluated, max(
        2, math.ceil(self.truth_fraction * evaluated)))

  def _trained(self, archive) -> bool:
    return archive.size >= max(self.warmup, 1)

  def _logits(self, params, tokens) -> np.ndarray:
    """`[N]` discriminator logits of canonical `tokens` `[N, K]`."""
    # Rows padded to a power of two: few shapes, few compiled programs.
    rows = 1 << max(len(tokens) - 1, 0).bit_length()
    padded = np.resize(tokens, (rows, tokens.shape[1]))
    return np.asarray(networks.discriminate(
        self.discriminator, params,
        jnp.asarray(self.space.features(padded))))[:len(tokens)]

  def _padded_truth(self, truth):
    """`truth` `[T, K]` padded to `[truth_size, K]`, and `[truth_size]`
    weights: `1 / T` for each architecture, 0 for the padding."""
    # A fixed truth-set shape keeps one compiled round; the padding repeats
    # real rows (valid tokens) that weigh nothing.
    weights = np.zeros(self.truth_size, np.float32)
    weights[:len(truth)] = 1 / len(truth)
    return (jnp.asarray(np.resize(truth, (self.truth_size, truth.shape[1]))),
            jnp.asarray(weights))

  def propose(self, state, key, rng, num):
    if not self._trained(state.archive):
      return None
    sampled, _, _ = networks.generate(self.generator, state.generator,
                                      self.space, key,
                                      self.ranking_factor * num)
    candidates = self.space.canonical(np.asarray(sampled))
    truth = state.archive.best(self._truth_count(state.archive.size))
    known = ([self.space.mutations(parent, rng) for parent in truth]
             if self.mutations or self.coverage else [])
    if self.mutations:
      # One-decision neighbours of the truth set join the generator's
      # samples, for the discriminator to rank.
      parents = rng.integers(len(truth), size=self.mutations * num)
      candidates = np.concatenate([candidates] + [
          evolution.mutate(self.space, truth[p], rng, known[p])[None]
          for p in parents])
    candidates = candidates[self.space.contains(candidates)]
    seen = set(self.space.keys(state.archive.tokens))
    fresh = [k not in seen for k in self.space.keys(candidates)]
    candidates = candidates[fresh]
    _, first = np.unique(candidates, axis=0, return_index=True)
    candidates = candidates[np.sort(first)]
    if self.rank_with_discriminator and len(candidates):
      order = np.argsort(-self._logits(state.discriminator, candidates),
                         kind='stable')
      candidates = candidates[order]
    if not self.coverage:
      return candidates
    probes = self._probes(state, rng, rng.binomial(num, self.coverage),
                          np.concatenate([rows for rows, _ in known]))
    return np.concatenate([probes, candidates])

  def _probes(self, state, rng: np.random.Generator, num: int,
              neighbours: np.ndarray) -> np.ndarray:
    """`[<= num, K]` unseen `neighbours` of the truth set, one for each of
    the first `num` `neglected_choices` that one of them takes: the one
    the discriminator ranks best (the first without its ranking)."""
    if not num or not len(neighbours):
      return neighbours[:0]
    seen = set(self.space.keys(state.archive.tokens))
    neighbours = neighbours[[k not in seen
                             for k in self.space.keys(neighbours)]]
    if self.rank_with_discriminator and len(neighbours):
      # Ranked once, best first: each probe is the first that takes its
      # choice.
      neighbours = neighbours[np.argsort(
          -self._logits(state.discriminator, neighbours), kind='stable')]
    active = self.space.active(neighbours)
    probes = []
    for position, choice in neglected_choices(
        self.space, state.archive.tokens, rng):
      taking = np.flatnonzero(active[:, position]
                              & (neighbours[:, position] == choice))
      if not len(taking):
        continue  # No unseen neighbour of the truth set takes it.
      probes.append(neighbours[taking[0]])
      if len(probes) == num:
        break
    return np.stack(probes) if probes else neighbours[:0]

  def learn(self, state, archive, tokens, fitness):
    metrics = {}
    if self._trained(state.archive) and len(set(fitness.tolist())) > 1:
      # How well the discriminator ranked this round before learning it.
      metrics['discriminator_tau'] = float(scipy.stats.kendalltau(
          self._logits(state.discriminator, tokens), fitness).statistic)
    if not self._trained(archive):
      return state.replace(archive=archive), metrics
    ranking = archive.ranking()
    truth_count = self._truth_count(archive.size)
    truth = archive.tokens[ranking[:truth_count]]
    rest = archive.tokens[ranking[truth_count:]]
    rng = np.random.default_rng(np.asarray(
        jax.random.key_data(jax.random.fold_in(state.key, archive.size))))
    shape = (self.discriminator_steps, self.batch_size)
    features = self.space.features
    real = features(truth[rng.integers(len(truth), size=shape)])
    use_negatives = self.archive_negatives and len(rest) > 0
    negatives = features((rest if len(rest) else truth)[
        rng.integers(max(len(rest), 1), size=shape)])
    (generator, generator_opt, discriminator, discriminator_opt, loss,
     accuracy) = networks.adversarial_round(
         self.generator, self.space, self.generator_optimizer,
         self.discriminator, self.discriminator_optimizer, state.generator,
         state.generator_opt, state.discriminator, state.discriminator_opt,
         *self._padded_truth(truth),
         jnp.asarray(real), jnp.asarray(negatives),
         jnp.asarray(use_negatives),
         jax.random.fold_in(state.key, archive.size), self.generator_steps,
         self.batch_size, self.label_smoothing, self.r1_weight,
         self.entropy_weight, self.refit_weight, self.pairwise, self.clip,
         self.ppo_epochs)
    metrics.update(discriminator_loss=float(loss),
                   discriminator_accuracy=float(accuracy))
    return AdversarialState(archive, generator, generator_opt, discriminator,
                            discriminator_opt, state.key), metrics
