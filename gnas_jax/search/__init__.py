"""Architecture search over declared spaces.

    from gnas_jax import search
    space = search.SearchSpace({'op0': ('a', 'b', 'c'), 'op1': ('a', 'b')})
    strategy = search.make_strategy('adversarial', space)
    trace = search.run(strategy, objective, budget=100, batch_size=8, seed=0)

Strategies (`STRATEGIES`): random, evolution, reinforce, tpe, local,
adversarial.
"""

from gnas_jax.search.run import fold
from gnas_jax.search.run import round_keys
from gnas_jax.search.run import run
from gnas_jax.search.search_space import Equivalence
from gnas_jax.search.search_space import SearchSpace
from gnas_jax.search.strategies import make_strategy
from gnas_jax.search.strategies import STRATEGIES
from gnas_jax.search.strategies import Strategy
