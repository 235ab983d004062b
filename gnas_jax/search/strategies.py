"""Search strategies behind one ask/tell interface.

    strategy = make_strategy('adversarial', choices)
    state = strategy.init(key)
    archs = strategy.ask(state, key, n)         # n new canonical architectures
    state = strategy.tell(state, archs, fitness)

`ask` does not change the state and `tell` returns a new one, so a search
is a fold over rounds, and a state saved after a round (each is a pytree of
arrays, `flax.serialization.to_state_dict`) resumes it exactly. Every
state keeps the archive of evaluated architectures, so no strategy proposes
an architecture (in canonical form) twice while unseen ones remain.

Strategies: 'random', 'evolution' (regularized evolution, Real et al.
2019), 'reinforce' (a GraphNAS-style controller, Gao et al. 2020),
'adversarial' (GA-NAS-style, Rezaei et al. 2021) and 'tpe' (Optuna's
tree-structured Parzen estimator, with the `tpe` extra).
"""

from __future__ import annotations

from typing import Any, Sequence

from absl import logging
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gnas_jax import space
from gnas_jax.search import networks
from gnas_jax.search import tokens as tokens_lib


@flax.struct.dataclass
class Archive:
  """Every evaluated architecture, in evaluation order.

  Attributes:
    tokens: `[N, K]` int32 canonical token arrays.
    fitness: `[N]` float32 validation scores (higher is better).
  """
  tokens: np.ndarray
  fitness: np.ndarray

  @classmethod
  def empty(cls) -> Archive:
    return cls(np.zeros((0, tokens_lib.NUM_POSITIONS), np.int32),
               np.zeros((0,), np.float32))

  @property
  def size(self) -> int:
    return int(self.fitness.shape[0])

  def add(self, tokens: np.ndarray, fitness: np.ndarray) -> Archive:
    return Archive(
        np.concatenate([self.tokens, np.asarray(tokens, np.int32)]),
        np.concatenate([self.fitness, np.asarray(fitness, np.float32)]))

  def best(self, k: int) -> np.ndarray:
    """`[min(k, N), K]` tokens of the k fittest (earlier first on ties)."""
    order = np.argsort(-self.fitness, kind='stable')[:k]
    return self.tokens[order]


def _rng(key: jax.Array) -> np.random.Generator:
  return np.random.default_rng(np.asarray(jax.random.key_data(key)))


def _fitness_array(fitness) -> np.ndarray:
  fitness = np.asarray(fitness, np.float32)
  # A failed candidate scores below every real one, not NaN.
  return np.where(np.isfinite(fitness), fitness, 0.0)


class Strategy:
  """Base class: keeps the archive and fills proposals with unseen ones."""
  name = ''

  def __init__(self, choices: dict[str, tuple[Any, ...]] | None = None):
    self.choices = choices or space.subspace()
    self.mask = tokens_lib.choice_mask(self.choices)

  def init(self, key: jax.Array):
    del key
    return Archive.empty()

  @staticmethod
  def archive(state) -> Archive:
    return state if isinstance(state, Archive) else state.archive

  def ask(self, state, key: jax.Array, num: int) -> list[space.Architecture]:
    """`num` distinct canonical architectures not yet evaluated."""
    return tokens_lib.to_architectures(self._ask(state, key, num))

  def _ask(self, state, key, num) -> np.ndarray:
    return self._unseen(self.archive(state), None, _rng(key),
                        num)

  def tell(self, state, archs: Sequence[space.Architecture], fitness):
    """The state after evaluating `archs` (`fitness`: `[len(archs)]`)."""
    return self._tell(state, tokens_lib.from_architectures(archs),
                      _fitness_array(fitness))

  def _tell(self, state, tokens, fitness):
    return self.archive(state).add(tokens, fitness)

  def score(self, state, archs) -> np.ndarray | None:
    """The strategy's own estimate of each architecture's quality, if any."""
    del state, archs
    return None

  def diagnostics(self, state, key: jax.Array) -> dict[str, float]:
    """Scalars worth logging per round."""
    del state, key
    return {}

  def _unseen(self, archive: Archive, candidates: np.ndarray | None,
              rng: np.random.Generator, num: int) -> np.ndarray:
    """The first `num` unseen distinct rows of canonical `candidates`
    (if any), topped up with uniform samples."""
    seen = set(tokens_lib.keys(archive.tokens))
    chosen = []
    pools = [] if candidates is None else [candidates]
    for attempt in range(100):
      for pool in pools:
        for row, key in zip(pool, tokens_lib.keys(pool)):
          if key not in seen:
            seen.add(key)
            chosen.append(row)
            if len(chosen) == num:
              return np.stack(chosen)
      pools = [tokens_lib.uniform(rng, 4 * num, self.mask)]
    # A space smaller than the budget: repeat architectures.
    logging.warning('Found %d of %d unseen architectures; the space is '
                    'nearly exhausted, so some repeat.', len(chosen), num)
    extra = tokens_lib.uniform(rng, num - len(chosen), self.mask)
    chosen = np.stack(chosen) if chosen else extra[:0]
    return np.concatenate([chosen, extra])


class RandomSearch(Strategy):
  """Uniform over decisions, never repeating an architecture."""
  name = 'random'


class RegularizedEvolution(Strategy):
  """Aging evolution (Real et al. 2019).

  The population is the `population` most recent evaluations (the oldest
  dies); each child mutates one decision of the best of `sample_size`
  members drawn at random. Before the population fills, children are
  uniform samples.
  """
  name = 'evolution'

  def __init__(self, choices=None, population: int = 32,
               sample_size: int = 8):
    super().__init__(choices)
    if not 1 <= sample_size <= population:
      raise ValueError(f'Evolution needs 1 <= sample_size <= population; got '
                       f'sample_size={sample_size}, population={population}.')
    self.population = population
    self.sample_size = sample_size

  def _mutate(self, parent: np.ndarray, rng: np.random.Generator
              ) -> np.ndarray:
    """`parent` with one decision changed so that the canonical form
    changes (a change that canonicalisation erases is no mutation)."""
    relevant = np.flatnonzero(tokens_lib.decided(parent) &
                              (self.mask.sum(-1) > 1))
    if not relevant.size:
      return tokens_lib.uniform(rng, 1, self.mask)[0]
    for _ in range(100):
      child = parent.copy()
      position = rng.choice(relevant)
      options = np.flatnonzero(self.mask[position])
      child[position] = rng.choice(options[options != parent[position]])
      if position == space.index('layers'):
        # New layers get random choices; dropped ones are ignored.
        fresh = tokens_lib.uniform(rng, 1, self.mask, canonicalise=False)[0]
        new = tokens_lib.LAYER_OF_POSITION >= tokens_lib.depth(parent)
        child = np.where(new & (tokens_lib.LAYER_OF_POSITION >= 0), fresh,
                         child)
      child = tokens_lib.canonical(child)
      if not np.array_equal(child, parent):
        return child
    return tokens_lib.uniform(rng, 1, self.mask)[0]

  def _ask(self, state, key, num):
    archive, rng = state, _rng(key)
    if archive.size < self.population:
      return self._unseen(archive, None, rng, num)
    members = archive.tokens[-self.population:]
    fitness = archive.fitness[-self.population:]
    children = []
    for _ in range(4 * num):
      picks = rng.choice(self.population, self.sample_size, replace=False)
      parent = members[picks[np.argmax(fitness[picks])]]
      children.append(self._mutate(parent, rng))
    return self._unseen(archive, np.stack(children), rng, num)


@flax.struct.dataclass
class PolicyState:
  """A generator policy and what trains it."""
  archive: Archive
  params: Any
  opt_state: Any
  baseline: np.ndarray
  stats: dict[str, np.ndarray]


class _GeneratorStrategy(Strategy):
  """Shared by the strategies that sample from `ArchitectureGenerator`."""

  def __init__(self, choices, hidden: int, learning_rate: float,
               entropy_weight: float, oversample: int):
    super().__init__(choices)
    self.generator = networks.ArchitectureGenerator(hidden)
    self.optimizer = optax.adam(learning_rate)
    self.entropy_weight = entropy_weight
    self.oversample = oversample

  def _init_policy(self, key):
    params = networks.init_generator(self.generator, key)
    return params, self.optimizer.init(params)

  def _sample(self, params, key, num) -> tuple[np.ndarray, np.ndarray]:
    """Sampled tokens `[num, K]` (raw) and their entropies `[num]`."""
    sampled, _, entropy = networks.generate(self.generator, params,
                                            self.mask, key, num)
    return np.asarray(sampled), np.asarray(entropy)

  def _policy_step(self, params, opt_state, tokens, advantages):
    return networks.policy_update(
        self.generator, self.optimizer, params, opt_state, self.mask,
        jnp.asarray(tokens), jnp.asarray(advantages, jnp.float32),
        self.entropy_weight)

  def diagnostics(self, state, key):
    if not isinstance(state, PolicyState) and not hasattr(state, 'generator'):
      return {}
    params = (state.params if isinstance(state, PolicyState)
              else state.generator)
    _, entropy = self._sample(params, key, 256)
    stats = {name: float(v) for name, v in state.stats.items()}
    return {'generator_entropy': float(entropy.mean()), **stats}


class ReinforceController(_GeneratorStrategy):
  """A GraphNAS-style controller: the autoregressive policy trained by
  REINFORCE on validation scores, with a moving-average baseline and an
  entropy bonus. Advantages are divided by the archive's spread of scores,
  so the step size does not depend on the metric's scale."""
  name = 'reinforce'

  def __init__(self, choices=None, hidden: int = 64,
               learning_rate: float = 3.5e-3, entropy_weight: float = 1e-2,
               baseline_decay: float = 0.9, steps_per_round: int = 4,
               oversample: int = 4):
    super().__init__(choices, hidden, learning_rate, entropy_weight,
                     oversample)
    if steps_per_round < 1:
      raise ValueError(f'REINFORCE needs steps_per_round >= 1; got '
                       f'{steps_per_round}.')
    self.baseline_decay = baseline_decay
    self.steps_per_round = steps_per_round

  def init(self, key):
    params, opt_state = self._init_policy(key)
    return PolicyState(Archive.empty(), params, opt_state,
                       np.float32(np.nan), {})

  def _ask(self, state, key, num):
    sampled, _ = self._sample(state.params, key, self.oversample * num)
    return self._unseen(state.archive, tokens_lib.canonical(sampled),
                        _rng(key), num)

  def _tell(self, state, tokens, fitness):
    archive = state.archive.add(tokens, fitness)
    baseline = (np.mean(fitness) if np.isnan(state.baseline) else
                state.baseline)
    spread = np.std(archive.fitness) + 1e-8
    advantages = (fitness - baseline) / spread
    params, opt_state = state.params, state.opt_state
    for _ in range(self.steps_per_round):
      params, opt_state, loss = self._policy_step(params, opt_state, tokens,
                                                  advantages)
    decay = self.baseline_decay
    baseline = np.float32(decay * baseline + (1 - decay) * np.mean(fitness))
    return PolicyState(archive, params, opt_state, baseline,
                       {'policy_loss': np.float32(loss)})


@flax.struct.dataclass
class AdversarialState:
  """Generator and discriminator with their optimizer states."""
  archive: Archive
  generator: Any
  generator_opt: Any
  discriminator: Any
  discriminator_opt: Any
  key: jax.Array
  stats: dict[str, np.ndarray]


class AdversarialSearch(_GeneratorStrategy):
  """GA-NAS-style adversarial search.

  The truth set is the `truth_size` best architectures evaluated so far.
  After each round, the discriminator learns to tell the truth set from
  the generator's samples (binary cross-entropy with one-sided label
  smoothing and an R1 gradient penalty on the truth set), and the generator
  learns to fool it by policy gradient: each sample's reward is the
  discriminator's logit, standardised within the batch, with an entropy
  bonus against mode collapse. Policy gradient, rather than a
  straight-through Gumbel-softmax estimate, because architectures are
  discrete and canonicalised before the discriminator sees them (a step no
  gradient passes through), and because it is unbiased; GA-NAS trains its
  generator the same way.

  To propose, the generator samples `ranking_factor` times more
  architectures than asked for; those already evaluated are dropped and
  the discriminator's ranking picks the rest (`rank_with_discriminator`).
  Until `warmup` architectures are evaluated, proposals are uniform.
  """
  name = 'adversarial'

  def __init__(self, choices=None, hidden: int = 64, truth_size: int = 4,
               warmup: int = 16, ranking_factor: int = 8,
               rank_with_discriminator: bool = True,
               discriminator_steps: int = 50, generator_steps: int = 20,
               batch_size: int = 64, generator_learning_rate: float = 3e-3,
               discriminator_learning_rate: float = 1e-3,
               label_smoothing: float = 0.1, r1_weight: float = 0.1,
               entropy_weight: float = 1e-2):
    super().__init__(choices, hidden, generator_learning_rate,
                     entropy_weight, ranking_factor)
    for name, value in (('truth_size', truth_size),
                        ('ranking_factor', ranking_factor),
                        ('batch_size', batch_size),
                        ('discriminator_steps', discriminator_steps),
                        ('generator_steps', generator_steps)):
      if value < 1:
        raise ValueError(f'The adversarial strategy needs {name} >= 1; got '
                         f'{value}.')
    self.discriminator = networks.Discriminator(hidden)
    self.discriminator_optimizer = optax.adam(discriminator_learning_rate)
    self.truth_size = truth_size
    self.warmup = warmup
    self.rank_with_discriminator = rank_with_discriminator
    self.discriminator_steps = discriminator_steps
    self.generator_steps = generator_steps
    self.batch_size = batch_size
    self.label_smoothing = label_smoothing
    self.r1_weight = r1_weight

  def init(self, key):
    generator_key, discriminator_key, train_key = jax.random.split(key, 3)
    generator, generator_opt = self._init_policy(generator_key)
    discriminator = self.discriminator.init(
        discriminator_key,
        jnp.zeros((1, tokens_lib.NUM_POSITIONS * tokens_lib.VOCAB)))
    return AdversarialState(
        Archive.empty(), generator, generator_opt, discriminator,
        self.discriminator_optimizer.init(discriminator), train_key, {})

  def _logits(self, params, canonical_tokens):
    return np.asarray(networks.discriminate(
        self.discriminator, params,
        jnp.asarray(tokens_lib.features(canonical_tokens))))

  def score(self, state, archs):
    if state.archive.size < self.warmup:
      return None
    return self._logits(state.discriminator,
                        tokens_lib.from_architectures(archs))

  def _ask(self, state, key, num):
    rng = _rng(key)
    if state.archive.size < self.warmup:
      return self._unseen(state.archive, None, rng, num)
    sampled, _ = self._sample(state.generator, key, self.oversample * num)
    candidates = tokens_lib.canonical(sampled)
    # Drop the evaluated ones first, so the ranking fills every slot.
    unseen = self._unseen(state.archive, candidates, rng,
                          min(len(candidates), self.oversample * num))
    if self.rank_with_discriminator:
      order = np.argsort(-self._logits(state.discriminator, unseen),
                         kind='stable')
      unseen = unseen[order]
    return unseen[:num]

  def _tell(self, state, tokens, fitness):
    archive = state.archive.add(tokens, fitness)
    if archive.size < self.warmup:
      return state.replace(archive=archive)
    # A fixed truth-set shape keeps one compiled round.
    truth = np.resize(archive.best(self.truth_size),
                      (self.truth_size, tokens_lib.NUM_POSITIONS))
    (generator, generator_opt, discriminator, discriminator_opt, loss,
     accuracy) = networks.adversarial_round(
         self.generator, self.optimizer, self.discriminator,
         self.discriminator_optimizer, state.generator, state.generator_opt,
         state.discriminator, state.discriminator_opt, jnp.asarray(self.mask),
         jnp.asarray(tokens_lib.features(truth)),
         jax.random.fold_in(state.key, archive.size),
         self.discriminator_steps,
         self.generator_steps, self.batch_size, self.label_smoothing,
         self.r1_weight, self.entropy_weight)
    return AdversarialState(
        archive, generator, generator_opt, discriminator, discriminator_opt,
        state.key, {'discriminator_accuracy': np.float32(accuracy),
         'discriminator_loss': np.float32(loss)})


class TPESearch(Strategy):
  """Optuna's TPE sampler through its ask/tell API (`pip install
  gnas-jax[tpe]`). Stateless between rounds: each `ask` rebuilds a study
  from the archive, seeded by the key, so it resumes like the others."""
  name = 'tpe'

  def __init__(self, choices=None, startup_trials: int = 16):
    super().__init__(choices)
    try:
      import optuna  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(
          "Strategy 'tpe' needs Optuna: pip install 'gnas-jax[tpe]' (or "
          'pip install optuna).') from e
    self.optuna = optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    self.startup_trials = startup_trials

  @staticmethod
  def _name(position: int) -> str:
    for decision in space.DECISIONS:
      where = space.POSITIONS[decision.name]
      if where.start <= position < where.stop:
        return (f'{decision.name}_{position - where.start}'
                if decision.per_layer else decision.name)
    raise ValueError(position)

  def _ask(self, state, key, num):
    optuna = self.optuna
    rng = _rng(key)
    study = optuna.create_study(
        direction='maximize', sampler=optuna.samplers.TPESampler(
            seed=int(rng.integers(2 ** 31)),
            n_startup_trials=self.startup_trials, constant_liar=True))
    distribution = [optuna.distributions.CategoricalDistribution(
        np.flatnonzero(self.mask[position]).tolist())
                    for position in range(tokens_lib.NUM_POSITIONS)]
    trials = []
    for row, value in zip(state.tokens, state.fitness):
      # Only the choices the canonical architecture really made.
      positions = np.flatnonzero(tokens_lib.decided(row))
      trials.append(optuna.trial.create_trial(
          params={self._name(p): int(row[p]) for p in positions},
          distributions={self._name(p): distribution[p] for p in positions},
          value=float(value)))
    study.add_trials(trials)
    proposals = []
    for _ in range(num):
      trial = study.ask()
      row = np.zeros(tokens_lib.NUM_POSITIONS, np.int32)
      for position in range(tokens_lib.NUM_POSITIONS):
        is_forced, token = tokens_lib.forced(position, row)
        row[position] = token if is_forced else trial.suggest_categorical(
            self._name(position), distribution[position].choices)
      proposals.append(row)
    return self._unseen(state, tokens_lib.canonical(np.stack(proposals)),
                        rng, num)


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (RandomSearch, RegularizedEvolution,
                              ReinforceController, AdversarialSearch,
                              TPESearch)}


def make_strategy(name: str, choices: dict[str, tuple[Any, ...]] | None = None,
                  **options) -> Strategy:
  """The strategy registered as `name`, with its options (see its class)."""
  if name not in STRATEGIES:
    raise ValueError(f'Unknown search strategy {name!r}; choose from '
                     f'{", ".join(STRATEGIES)}.')
  try:
    return STRATEGIES[name](choices, **options)
  except TypeError as e:
    raise ValueError(f'Bad options for search strategy {name!r}: {e}') from e


def default_options(name: str) -> dict[str, Any]:
  """The options of strategy `name` and their defaults (for configs)."""
  import inspect  # pylint: disable=g-import-not-at-top
  parameters = inspect.signature(STRATEGIES[name].__init__).parameters
  return {p.name: p.default for p in parameters.values()
          if p.name not in ('self', 'choices')}
