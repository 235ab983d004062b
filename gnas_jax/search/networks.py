"""The search's networks: an architecture generator and a discriminator.

`ArchitectureGenerator` is an autoregressive policy over the decisions of
the search space: a GRU reads the choices made so far and emits the logits
of the next decision. Autoregression (rather than independent choices
conditioned on noise) lets it express the dependencies that matter in this
space, such as which aggregation suits which depth or decoder, and gives
exact log-probabilities and entropies for policy-gradient updates. Its
output heads start at zero, so an untrained generator samples uniformly.
The same network is the REINFORCE controller of the GraphNAS baseline.

`Discriminator` is an MLP over the one-hot features of canonical tokens
(`tokens.features`); its logit says how much an architecture resembles the
truth set.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gnas_jax.search import tokens as tokens_lib

NUM_POSITIONS = tokens_lib.NUM_POSITIONS
VOCAB = tokens_lib.VOCAB


class ArchitectureGenerator(nn.Module):
  """An autoregressive distribution over token arrays."""
  hidden: int = 64

  def setup(self):
    # Token id VOCAB is the start symbol.
    self.token_embed = nn.Embed(VOCAB + 1, self.hidden)
    self.position_embed = nn.Embed(NUM_POSITIONS, self.hidden)
    self.cell = nn.GRUCell(self.hidden)
    self.heads = self.param('heads', nn.initializers.zeros,
                            (NUM_POSITIONS, self.hidden, VOCAB))
    self.head_bias = self.param('head_bias', nn.initializers.zeros,
                                (NUM_POSITIONS, VOCAB))

  def __call__(self, carry, previous, position):
    """One decision: `([B, H], [B] previous tokens, position) -> (carry,
    [B, VOCAB] logits)`."""
    inputs = self.token_embed(previous) + self.position_embed(position)
    carry, hidden = self.cell(carry, inputs)
    return carry, hidden @ self.heads[position] + self.head_bias[position]


def init_generator(model: ArchitectureGenerator, key: jax.Array):
  carry = jnp.zeros((1, model.hidden))
  return model.init(key, carry, jnp.zeros((1,), jnp.int32), jnp.asarray(0))


def _masked_log_softmax(logits, allowed):
  return jax.nn.log_softmax(jnp.where(allowed, logits, -1e9))


def _rollout(model, params, mask, num, key=None, given=None):
  """Samples (`key`) or scores (`given` `[N, K]`) token arrays.

  Sampling imposes what canonical form would (`tokens.forced`): positions
  beyond the sampled depth read 0, and defaults fill the choices that the
  depth or the decoder make irrelevant, so the generator reads the same
  inputs whether it samples an architecture or scores its canonical form.

  Returns:
    tokens `[N, K]`, and log-probabilities and entropies `[N]`, summed over
    the positions the canonical architecture really chose
    (`tokens.decided`).
  """
  mask = jnp.asarray(mask)

  def body(state, position):
    carry, tokens = state
    previous = jnp.where(position > 0, tokens[:, position - 1], VOCAB)
    carry, logits = model.apply(params, carry, previous, position)
    log_probs = _masked_log_softmax(logits, mask[position])
    if given is None:
      token = jax.random.categorical(jax.random.fold_in(key, position),
                                     log_probs)
      is_forced, forced_token = tokens_lib.forced(position, tokens, jnp)
      token = jnp.where(is_forced, forced_token, token)
    else:
      token = given[:, position]
    tokens = tokens.at[:, position].set(token.astype(jnp.int32))
    chosen = jnp.take_along_axis(log_probs, token[:, None], axis=1)[:, 0]
    entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)
    return (carry, tokens), (chosen, entropy)

  start = (jnp.zeros((num, model.hidden)),
           jnp.zeros((num, NUM_POSITIONS), jnp.int32))
  (_, tokens), (chosen, entropy) = jax.lax.scan(
      body, start, jnp.arange(NUM_POSITIONS))
  decided = tokens_lib.decided(tokens_lib.canonical(tokens, jnp), jnp)
  # Undecided positions may hold a default outside the mask (-1e9).
  chosen = jnp.where(decided, chosen.T, 0.0)
  return tokens, jnp.sum(chosen, -1), jnp.sum(entropy.T * decided, -1)


@functools.partial(jax.jit, static_argnames=('model', 'num'))
def generate(model: ArchitectureGenerator, params, mask: jax.Array,
             key: jax.Array, num: int):
  """`num` sampled token arrays (not canonicalised), with their
  log-probabilities and entropies."""
  return _rollout(model, params, mask, num, key=key)


def policy_gradient_loss(model, params, mask, tokens, advantages,
                         entropy_weight):
  """REINFORCE with an entropy bonus: `-E[A log p] - beta H`."""
  _, log_probs, entropy = _rollout(model, params, mask, tokens.shape[0],
                                   given=tokens)
  return (-jnp.mean(advantages * log_probs) -
          entropy_weight * jnp.mean(entropy))


@functools.partial(jax.jit, static_argnames=('model', 'optimizer'))
def policy_update(model: ArchitectureGenerator, optimizer, params, opt_state,
                  mask, tokens, advantages, entropy_weight):
  """One optimizer step of `policy_gradient_loss`."""
  loss, grads = jax.value_and_grad(policy_gradient_loss, argnums=1)(
      model, params, mask, tokens, advantages, entropy_weight)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


class Discriminator(nn.Module):
  """`[B, K * VOCAB]` features -> `[B]` logits (truth set vs generated)."""
  hidden: int = 64

  @nn.compact
  def __call__(self, features):
    x = nn.relu(nn.Dense(self.hidden)(features))
    x = nn.relu(nn.Dense(self.hidden)(x))
    return nn.Dense(1)(x)[..., 0]


def discriminator_loss(model, params, real, fake, label_smoothing,
                       r1_weight):
  """Binary cross-entropy (real targets `1 - label_smoothing`) plus the R1
  penalty `r1_weight / 2 * E_real |grad_x D(x)|^2` (Mescheder et al. 2018).

  Returns:
    The loss and the share of real and fake examples it classifies right.
  """
  real_logits = model.apply(params, real)
  fake_logits = model.apply(params, fake)
  loss = (jnp.mean(optax.sigmoid_binary_cross_entropy(
      real_logits, 1.0 - label_smoothing)) +
          jnp.mean(optax.sigmoid_binary_cross_entropy(
              fake_logits, jnp.zeros_like(fake_logits))))
  input_grads = jax.grad(lambda x: jnp.sum(model.apply(params, x)))(real)
  loss += 0.5 * r1_weight * jnp.mean(jnp.sum(input_grads ** 2, axis=-1))
  accuracy = 0.5 * (jnp.mean(real_logits > 0) + jnp.mean(fake_logits < 0))
  return loss, accuracy


@functools.partial(jax.jit, static_argnames=('model', 'optimizer'))
def discriminator_update(model: Discriminator, optimizer, params, opt_state,
                         real, fake, label_smoothing, r1_weight):
  """One optimizer step of `discriminator_loss`: `(params, opt_state,
  loss, accuracy)`."""
  (loss, accuracy), grads = jax.value_and_grad(
      discriminator_loss, argnums=1, has_aux=True)(
          model, params, real, fake, label_smoothing, r1_weight)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss, accuracy


@functools.partial(jax.jit, static_argnames=('model',))
def discriminate(model: Discriminator, params, features):
  return model.apply(params, features)


@functools.partial(jax.jit, static_argnames=(
    'generator', 'generator_optimizer', 'discriminator',
    'discriminator_optimizer', 'discriminator_steps', 'generator_steps',
    'batch_size'))
def adversarial_round(generator: ArchitectureGenerator, generator_optimizer,
                      discriminator: Discriminator, discriminator_optimizer,
                      generator_params, generator_opt, discriminator_params,
                      discriminator_opt, mask, truth, key,
                      discriminator_steps: int, generator_steps: int,
                      batch_size: int, label_smoothing, r1_weight,
                      entropy_weight):
  """One round of adversarial training, compiled as one program.

  First `discriminator_steps` updates of the discriminator on batches of
  the truth set (`truth`: `[T, K * VOCAB]` features, drawn with
  replacement) against fresh generator samples; then `generator_steps`
  policy-gradient updates of the generator, each sample rewarded by the
  discriminator's logit of its canonical form, standardised in the batch.

  Returns:
    The four updated parameter and optimizer states, and the last
    discriminator step's loss and accuracy.
  """
  def fake_features(params, key):
    sampled, _, _ = _rollout(generator, params, mask, batch_size, key=key)
    canonical = tokens_lib.canonical(sampled, jnp)
    return sampled, tokens_lib.features(canonical, jnp)

  def discriminator_step(carry, key):
    params, opt_state, _, _ = carry
    sample_key, real_key = jax.random.split(key)
    _, fake = fake_features(generator_params, sample_key)
    real = truth[jax.random.randint(real_key, (batch_size,), 0,
                                    truth.shape[0])]
    (loss, accuracy), grads = jax.value_and_grad(
        discriminator_loss, argnums=1, has_aux=True)(
            discriminator, params, real, fake, label_smoothing, r1_weight)
    updates, opt_state = discriminator_optimizer.update(grads, opt_state,
                                                        params)
    return (optax.apply_updates(params, updates), opt_state, loss,
            accuracy), None

  def generator_step(carry, key):
    params, opt_state = carry
    sampled, fake = fake_features(params, key)
    reward = discriminator.apply(discriminator_params, fake)
    advantages = (reward - reward.mean()) / (reward.std() + 1e-8)
    grads = jax.grad(policy_gradient_loss, argnums=1)(
        generator, params, mask, sampled, advantages, entropy_weight)
    updates, opt_state = generator_optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  discriminator_key, generator_key = jax.random.split(key)
  zero = jnp.zeros((), jnp.float32)
  (discriminator_params, discriminator_opt, loss, accuracy), _ = (
      jax.lax.scan(discriminator_step,
                   (discriminator_params, discriminator_opt, zero, zero),
                   jax.random.split(discriminator_key, discriminator_steps)))
  (generator_params, generator_opt), _ = jax.lax.scan(
      generator_step, (generator_params, generator_opt),
      jax.random.split(generator_key, generator_steps))
  return (generator_params, generator_opt, discriminator_params,
          discriminator_opt, loss, accuracy)
