"""A seeded synthetic interaction generator with planted structure.

Users and items belong to planted communities; item popularity follows a
Zipf law. Each user draws its items, without replacement, from the mixture

  q_u(i) = affinity * pop(i | community(u)) + (1 - affinity) * pop(i),

so co-interaction reveals the communities (a collaborative model beats a
popularity ranking), while popular items stay popular overall. Activity is
skewed too: a user's number of interactions is log-normal around the mean.
Timestamps are uniform over one year, so temporal splits apply.
"""

from __future__ import annotations

import numpy as np

from gnas_jax.data import dataset

# Spread of log activity; real datasets have a long tail of heavy users.
_ACTIVITY_SIGMA = 0.5
# Fewest interactions per user, so ratio splits hold out something for
# everyone with the default (0.8, 0.1, 0.1).
_MIN_INTERACTIONS = 5
_START_TIME = 1_600_000_000.0
_YEAR_SECONDS = 365 * 24 * 3600


def generate_synthetic(num_users: int = 1000, num_items: int = 1500,
                       num_communities: int = 8,
                       interactions_per_user: int = 40,
                       popularity_exponent: float = 1.0,
                       community_affinity: float = 0.8,
                       seed: int = 0) -> dataset.Interactions:
  """Generates implicit feedback with planted communities.

  Args:
    num_users: number of users; every user gets at least
      min(5, num_items) interactions.
    num_items: number of items. Items nobody draws are absent, so a dataset
      built from the result may have slightly fewer.
    num_communities: planted communities, shared by users and items (each
      gets an equal share, assigned at random).
    interactions_per_user: mean interactions per user.
    popularity_exponent: Zipf exponent a: the item of popularity rank r has
      weight r**-a (0 makes items equally popular).
    community_affinity: share of a user's draws from its own community.
    seed: seed of the generator (separate from the split seed, so one
      synthetic dataset can be split with several seeds).

  Returns:
    Interactions with int64 raw ids 0.., no ratings, float64 timestamps.
  """
  if num_users < 1 or num_items < 1:
    raise ValueError(f'num_users={num_users} and num_items={num_items} must '
                     'be positive.')
  if not 1 <= num_communities <= num_items:
    raise ValueError(f'num_communities={num_communities} must be in [1, '
                     f'num_items={num_items}].')
  if not 1 <= interactions_per_user <= num_items:
    raise ValueError(f'interactions_per_user={interactions_per_user} must be '
                     f'in [1, num_items={num_items}].')
  if not 0 <= community_affinity <= 1:
    raise ValueError(f'community_affinity={community_affinity} must be in '
                     '[0, 1].')
  if popularity_exponent < 0:
    raise ValueError(f'popularity_exponent={popularity_exponent} must be '
                     '>= 0.')
  rng = np.random.default_rng(seed)
  user_community = rng.permutation(np.arange(num_users) % num_communities)
  item_community = rng.permutation(np.arange(num_items) % num_communities)
  rank = rng.permutation(num_items) + 1
  popularity = rank.astype(np.float64) ** -popularity_exponent
  popularity /= popularity.sum()
  community_mass = np.bincount(item_community, weights=popularity,
                               minlength=num_communities)
  own = np.arange(num_communities)[:, None] == item_community[None, :]
  # [num_communities, num_items] draw probabilities of a community's users.
  mixture = (community_affinity * own *
             (popularity / community_mass[item_community]) +
             (1 - community_affinity) * popularity)
  with np.errstate(divide='ignore'):
    log_mixture = np.log(mixture)

  activity = rng.lognormal(-_ACTIVITY_SIGMA**2 / 2, _ACTIVITY_SIGMA, num_users)
  counts = np.rint(interactions_per_user * activity).astype(np.int64)
  reachable = (mixture > 0).sum(axis=1)[user_community]
  counts = np.clip(counts, min(_MIN_INTERACTIONS, num_items), reachable)

  # Gumbel top-k draws without replacement from each user's mixture.
  scores = log_mixture[user_community] + rng.gumbel(size=(num_users,
                                                          num_items))
  top = int(counts.max())
  best = np.argpartition(-scores, top - 1, axis=1)[:, :top]
  best = np.take_along_axis(
      best, np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1),
      axis=1)
  chosen = np.arange(top)[None, :] < counts[:, None]
  users = np.repeat(np.arange(num_users, dtype=np.int64), counts)
  items = best[chosen].astype(np.int64)
  timestamps = _START_TIME + rng.integers(0, _YEAR_SECONDS, len(users))
  return dataset.Interactions(users=users, items=items,
                              timestamps=timestamps.astype(np.float64),
                              source='synthetic')
