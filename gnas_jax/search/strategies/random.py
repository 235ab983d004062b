"""Random search: uniform over decisions, never repeating an architecture.

The baseline every NAS benchmark reports first (Li & Talwalkar 2019).
"""

from gnas_jax.search.strategies import base


class RandomSearch(base.Strategy):
  """Each proposal is a uniform sample not evaluated before."""
  name = 'random'
