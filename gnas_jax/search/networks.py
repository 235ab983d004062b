"""The search's networks over any declared space: a generator and a
discriminator.

`ArchitectureGenerator` is an autoregressive policy over the decisions of
a `SearchSpace`, taken in the space's `order` (each decision after those
its condition reads): a GRU reads the choices made so far and emits the
logits of the next decision. Sampling imposes canonical form as it goes:
an inactive decision takes its default, and choices an equivalence merges
away are never drawn, so the generator scores exactly what it samples
(`log_prob` of a sample's canonical tokens equals its sampling
log-probability, save in spaces with a `canonicalize` table). Its output
heads start at zero, so an untrained generator is uniform over the
allowed choices. The same network is the REINFORCE controller.

`Discriminator` is an MLP over the one-hot features of canonical tokens
(`SearchSpace.features`); its logit says how much an architecture
resembles the truth set.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gnas_jax.search import search_space as space_lib


class ArchitectureGenerator(nn.Module):
  """An autoregressive distribution over `[K]` token arrays."""
  num_positions: int
  vocab: int
  hidden: int = 64

  def setup(self):
    # Token id `vocab` is the start symbol.
    self.token_embed = nn.Embed(self.vocab + 1, self.hidden)
    self.position_embed = nn.Embed(self.num_positions, self.hidden)
    self.cell = nn.GRUCell(self.hidden)
    self.heads = self.param('heads', nn.initializers.zeros,
                            (self.num_positions, self.hidden, self.vocab))
    self.head_bias = self.param('head_bias', nn.initializers.zeros,
                                (self.num_positions, self.vocab))

  def __call__(self, carry, previous, position):
    """One decision: `([B, H], [B] previous tokens, position) -> (carry,
    [B, V] logits)`."""
    inputs = self.token_embed(previous) + self.position_embed(position)
    carry, hidden = self.cell(carry, inputs)
    return carry, hidden @ self.heads[position] + self.head_bias[position]


def make_generator(space: space_lib.SearchSpace, hidden: int
                   ) -> ArchitectureGenerator:
  return ArchitectureGenerator(space.num_positions, space.vocab, hidden)


def init_generator(model: ArchitectureGenerator, key: jax.Array):
  carry = jnp.zeros((1, model.hidden))
  return model.init(key, carry, jnp.zeros((1,), jnp.int32), jnp.asarray(0))


def rollout(model, params, space: space_lib.SearchSpace, num: int,
            key=None, given=None):
  """Samples (`key`) or scores (`given` `[N, K]` canonical) token arrays.

  Returns:
    tokens `[N, K]` (canonical but for a `canonicalize` table), and
    log-probabilities and entropies `[N]` summed over the active
    positions.
  """
  def decide(state, position):
    carry, tokens, previous, log_prob, entropy = state
    carry, logits = model.apply(params, carry, previous, position)
    allowed = space.reachable(position, tokens, jnp)
    log_probs = jax.nn.log_softmax(jnp.where(allowed, logits, -1e9))
    if given is None:
      token = jax.random.categorical(jax.random.fold_in(key, position),
                                     log_probs)
    else:
      token = jnp.take(given, position, axis=1)
    token = space.canonical_at(position, token, tokens, jnp)
    tokens = tokens.at[:, position].set(token.astype(jnp.int32))
    # An inactive decision takes its default, which it did not choose
    # (and which a restricted space may not even allow).
    active = space.active_at(position, tokens, jnp)
    chosen = jnp.take_along_axis(log_probs, token[:, None], axis=1)[:, 0]
    log_prob += jnp.where(active, chosen, 0.0)
    entropy += jnp.where(
        active, -jnp.sum(jnp.exp(log_probs) * jnp.where(allowed, log_probs,
                                                        0.0), -1), 0.0)
    return (carry, tokens, token, log_prob, entropy), None

  # A scan over the positions, not a Python loop: the compiled program
  # holds one decision step however many decisions the space has (the
  # space's rules are arrays indexed by position).
  state = (jnp.zeros((num, model.hidden)),
           jnp.zeros((num, space.num_positions), jnp.int32),
           jnp.full((num,), space.vocab, jnp.int32),
           jnp.zeros((num,)), jnp.zeros((num,)))
  (_, tokens, _, log_prob, entropy), _ = jax.lax.scan(
      decide, state, jnp.asarray(space.order))
  return tokens, log_prob, entropy


@functools.partial(jax.jit, static_argnames=('model', 'space', 'num'))
def generate(model: ArchitectureGenerator, params,
             space: space_lib.SearchSpace, key: jax.Array, num: int):
  """`num` sampled token arrays, with their log-probabilities and
  entropies."""
  return rollout(model, params, space, num, key=key)


def policy_objective(log_prob, entropy, advantages, entropy_weight,
                     old_log_prob=None, clip: float = 0.0):
  """Policy gradient with an entropy bonus, from the `[B]` log-probabilities
  and entropies of samples under the policy being trained.

  With `clip > 0` and the sampling log-probabilities `old_log_prob`, the
  PPO clipped surrogate `-E[min(r A, clip(r, 1-eps, 1+eps) A)]` with
  `r = p / p_old` (Schulman et al. 2017); otherwise REINFORCE,
  `-E[A log p]`. Both subtract `entropy_weight * H`.
  """
  if clip > 0:
    ratio = jnp.exp(log_prob - old_log_prob)
    surrogate = jnp.minimum(ratio * advantages,
                            jnp.clip(ratio, 1 - clip, 1 + clip) * advantages)
  else:
    surrogate = advantages * log_prob
  return -jnp.mean(surrogate) - entropy_weight * jnp.mean(entropy)


def policy_loss(model, params, space, tokens, advantages, entropy_weight):
  """REINFORCE's `policy_objective` of `[B, K]` canonical `tokens`."""
  _, log_prob, entropy = rollout(model, params, space, tokens.shape[0],
                                 given=tokens)
  return policy_objective(log_prob, entropy, advantages, entropy_weight)


@functools.partial(jax.jit, static_argnames=('model', 'space', 'optimizer'))
def policy_update(model: ArchitectureGenerator, space, optimizer, params,
                  opt_state, tokens, advantages, entropy_weight):
  """One REINFORCE step: `(params, opt_state, loss)`."""
  loss, grads = jax.value_and_grad(policy_loss, argnums=1)(
      model, params, space, tokens, advantages, entropy_weight)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


@functools.lru_cache(maxsize=None)
def adam(learning_rate: float) -> optax.GradientTransformation:
  """Adam at `learning_rate`, one object per rate: the compiled search
  steps take the optimizer as a static argument, so a new but equal
  strategy must hand them the same object or they compile again."""
  return optax.adam(learning_rate)


class Discriminator(nn.Module):
  """`[B, K * V]` features -> `[B]` logits (truth set vs the rest)."""
  hidden: int = 64

  @nn.compact
  def __call__(self, features):
    x = nn.relu(nn.Dense(self.hidden)(features))
    x = nn.relu(nn.Dense(self.hidden)(x))
    return nn.Dense(1)(x)[..., 0]


def discriminator_loss(model, params, real, fake, label_smoothing,
                       r1_weight, pairwise: bool):
  """The discriminator's loss on `[B, F]` real and fake features.

  Binary: cross-entropy with real targets `1 - label_smoothing`.
  Pairwise (relativistic, Jolicoeur-Martineau 2019): the cross-entropy of
  `D(real_i) - D(fake_i) > 0`, so D learns only which of two
  architectures is the truth set's, which is all its ranking uses.
  Both add the R1 penalty `r1_weight / 2 * E_real |grad_x D(x)|^2`
  (Mescheder et al. 2018).

  Returns:
    The loss and the share of real and fake examples it classifies right
    (pairwise: of pairs it orders right).
  """
  real_logits = model.apply(params, real)
  fake_logits = model.apply(params, fake)
  if pairwise:
    margin = real_logits - fake_logits
    loss = jnp.mean(optax.sigmoid_binary_cross_entropy(
        margin, jnp.full_like(margin, 1.0 - label_smoothing)))
    accuracy = jnp.mean(margin > 0)
  else:
    loss = (jnp.mean(optax.sigmoid_binary_cross_entropy(
        real_logits, 1.0 - label_smoothing)) +
            jnp.mean(optax.sigmoid_binary_cross_entropy(
                fake_logits, jnp.zeros_like(fake_logits))))
    accuracy = 0.5 * (jnp.mean(real_logits > 0) + jnp.mean(fake_logits < 0))
  input_grads = jax.grad(lambda x: jnp.sum(model.apply(params, x)))(real)
  loss += 0.5 * r1_weight * jnp.mean(jnp.sum(input_grads ** 2, axis=-1))
  return loss, accuracy


@functools.partial(jax.jit, static_argnames=('model',))
def discriminate(model: Discriminator, params, features):
  return model.apply(params, features)


@functools.partial(jax.jit, static_argnames=(
    'generator', 'space', 'generator_optimizer', 'discriminator',
    'discriminator_optimizer', 'generator_steps', 'batch_size',
    'pairwise', 'clip', 'ppo_epochs'))
def adversarial_round(generator: ArchitectureGenerator, space,
                      generator_optimizer, discriminator: Discriminator,
                      discriminator_optimizer, generator_params,
                      generator_opt, discriminator_params, discriminator_opt,
                      truth, truth_weights, real_batches, negative_batches,
                      use_negatives,
                      key, generator_steps: int, batch_size: int,
                      label_smoothing, r1_weight, entropy_weight,
                      refit_weight, pairwise: bool, clip: float,
                      ppo_epochs: int):
  """One round of adversarial training, compiled as one program.

  First one discriminator update per row of `real_batches`
  (`[S, B, F]` truth-set features): the fakes are fresh generator samples
  and, where `use_negatives`, the evaluated architectures outside the
  truth set (`negative_batches`, `[S, B, F]`), half and half. Then
  `generator_steps` updates of the generator: policy gradient on samples
  rewarded by the discriminator's logit (standardised in the batch;
  with `clip > 0`, PPO: `ppo_epochs` clipped updates per batch), plus
  `refit_weight` times the negative log-likelihood of the truth set
  (`truth`: `[T, K]` canonical tokens, weighted by `truth_weights`, `[T]`
  summing to 1, so that rows padding the set to a fixed `T` weigh 0).

  Returns:
    The four updated parameter and optimizer states, and the last
    discriminator step's loss and accuracy.
  """
  def sample(params, key, num=batch_size):
    tokens, log_prob, _ = rollout(generator, params, space, num, key=key)
    tokens = space.canonical(tokens, jnp)
    return tokens, log_prob, space.features(tokens, jnp)

  def discriminator_step(carry, inputs):
    params, opt_state, _, _ = carry
    real, negatives, fake = inputs
    half = jnp.arange(batch_size) < batch_size // 2
    fake = jnp.where(use_negatives & half[:, None], negatives, fake)
    (loss, accuracy), grads = jax.value_and_grad(
        discriminator_loss, argnums=1, has_aux=True)(
            discriminator, params, real, fake, label_smoothing, r1_weight,
            pairwise)
    updates, opt_state = discriminator_optimizer.update(grads, opt_state,
                                                        params)
    return (optax.apply_updates(params, updates), opt_state, loss,
            accuracy), None

  def generator_objective(params, tokens, old_log_prob, advantages):
    # One rollout scores the samples and the truth set together: the
    # compiled round holds one copy of the rollout, not two.
    _, log_prob, entropy = rollout(generator, params, space,
                                   batch_size + truth.shape[0],
                                   given=jnp.concatenate([tokens, truth]))
    loss = policy_objective(log_prob[:batch_size], entropy[:batch_size],
                            advantages, entropy_weight, old_log_prob, clip)
    return loss - refit_weight * jnp.sum(truth_weights *
                                         log_prob[batch_size:])

  def generator_step(carry, key):
    params, opt_state = carry
    tokens, log_prob, fake = sample(params, key)
    reward = discriminator.apply(discriminator_params, fake)
    advantages = (reward - reward.mean()) / (reward.std() + 1e-8)
    old_log_prob = jax.lax.stop_gradient(log_prob)

    def update(carry, _):
      params, opt_state = carry
      grads = jax.grad(generator_objective)(params, tokens, old_log_prob,
                                            advantages)
      updates, opt_state = generator_optimizer.update(grads, opt_state,
                                                      params)
      return (optax.apply_updates(params, updates), opt_state), None

    # PPO reuses each batch of samples for several updates, which the
    # clipped ratio keeps close to the policy that drew them; a scan, not
    # a loop, so that the program holds one update whatever their number.
    return jax.lax.scan(update, (params, opt_state), None,
                        length=ppo_epochs if clip > 0 else 1)

  discriminator_key, generator_key = jax.random.split(key)
  steps = real_batches.shape[0]
  # The generator does not change while the discriminator trains: one
  # rollout draws every step's fakes.
  _, _, fakes = sample(generator_params, discriminator_key,
                       steps * batch_size)
  fakes = fakes.reshape(steps, batch_size, -1)
  zero = jnp.zeros((), jnp.float32)
  (discriminator_params, discriminator_opt, loss, accuracy), _ = (
      jax.lax.scan(discriminator_step,
                   (discriminator_params, discriminator_opt, zero, zero),
                   (real_batches, negative_batches, fakes)))
  (generator_params, generator_opt), _ = jax.lax.scan(
      generator_step, (generator_params, generator_opt),
      jax.random.split(generator_key, generator_steps))
  return (generator_params, generator_opt, discriminator_params,
          discriminator_opt, loss, accuracy)
