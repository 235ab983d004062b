"""Search strategies over any declared space, behind one ask/tell
interface (see `base`), registered by name."""

from __future__ import annotations

import inspect
from typing import Any

from gnas_jax.search import search_space as space_lib
from gnas_jax.search.strategies.adversarial import AdversarialSearch
from gnas_jax.search.strategies.base import Archive
from gnas_jax.search.strategies.base import State
from gnas_jax.search.strategies.base import Strategy
from gnas_jax.search.strategies.evolution import RegularizedEvolution
from gnas_jax.search.strategies.local import LocalSearch
from gnas_jax.search.strategies.random import RandomSearch
from gnas_jax.search.strategies.reinforce import ReinforceController
from gnas_jax.search.strategies.tpe import TPESearch

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (RandomSearch, RegularizedEvolution,
                              ReinforceController, TPESearch, LocalSearch,
                              AdversarialSearch)}


def options(name: str) -> dict[str, Any]:
  """Strategy `name`'s options and their defaults."""
  _check_name(name)
  parameters = inspect.signature(STRATEGIES[name].__init__).parameters
  return {p.name: p.default for p in parameters.values()
          if p.name not in ('self', 'space')}


def _check_name(name: str) -> None:
  if name not in STRATEGIES:
    raise ValueError(f'Unknown search strategy {name!r}; choose from '
                     f'{", ".join(STRATEGIES)}.')


def revision_setting(name: str) -> dict[str, int]:
  """`{'strategy_revision': N}` for strategy `name` at a revision after
  its first (`Strategy.revision`), else empty: for the settings a record of
  a search is reused under, so that records from before revisions still
  match the strategies never revised."""
  _check_name(name)
  revision = STRATEGIES[name].revision
  return {'strategy_revision': revision} if revision > 1 else {}


def make_strategy(name: str, space: space_lib.SearchSpace,
                  **strategy_options) -> Strategy:
  """The strategy registered as `name` over `space`, with its options
  (plain values; an unknown option is an error naming it)."""
  _check_name(name)
  known = options(name)
  unknown = sorted(set(strategy_options) - set(known))
  if unknown:
    raise ValueError(f'Unknown option {unknown[0]!r} for search strategy '
                     f'{name!r}; it takes {", ".join(known) or "none"}.')
  return STRATEGIES[name](space, **strategy_options)
