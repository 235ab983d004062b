"""Architecture search: strategies (ask/tell), the trial store and the loop
that trains their proposals as populations."""

from gnas_jax.search.strategies import make_strategy
from gnas_jax.search.strategies import Strategy
from gnas_jax.search.strategies import STRATEGIES
