"""The ask/tell fold that every search runs.

`run` is the public entry for outside objectives (configurations in,
scores out); `fold` is the same loop on token arrays, with the hooks the
live search uses to resume and to save each round.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np

from gnas_jax.search import strategies as strategies_lib

Objective = Callable[[list[dict[str, Any]]], Sequence[float]]


def check_budget(budget: int, batch_size: int) -> None:
  """Raises ValueError naming a budget or batch size below 1."""
  for name, value in (('budget', budget), ('batch_size', batch_size)):
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f'A search needs {name} >= 1 (a whole number); got '
                       f'{value!r}.')


def round_keys(seed: int) -> tuple[jax.Array, jax.Array]:
  """`(init_key, rounds_key)`: round r asks with `fold_in(rounds_key, r)`."""
  init_key, rounds_key = jax.random.split(jax.random.PRNGKey(seed))
  return init_key, rounds_key


def fold(strategy: strategies_lib.Strategy,
         evaluate: Callable[..., Any], budget: int,
         batch_size: int, seed: int, state: Any = None,
         rounds_done: int = 0,
         on_round: Callable[..., None] | None = None,
         refills: bool = False) -> Any:
  """Asks, evaluates and tells until `budget` distinct architectures are
  evaluated (the last round asks only for what is left) or the space is
  exhausted.

  Args:
    strategy: proposes and learns.
    evaluate: `(tokens [n, K], round_index) -> [n]` scores, or `([n]
      scores, [n] fidelity)` where they were measured at several
      fidelities (`Strategy.tell`); with `refills`, `(tokens, round_index,
      ask_more) -> (tokens [m, K], scores [m], fidelity [m], told [m]
      bool)` for every architecture the round evaluated, where
      `ask_more(tokens [k, K], scores [k], fidelity [k], num)` tells the
      strategy those finished mid-round (marked `told`) and returns up to
      `num` new proposals (fewer once the budget or the space runs out).
    budget, batch_size: evaluations in all, and per round.
    seed: seeds the strategy's initialisation and every round's ask; a
      round's later asks use `fold_in(round key, k)` for the k-th.
    state, rounds_done: a state saved after `rounds_done` rounds, to
      resume (None: start afresh).
    on_round: called after each round as `on_round(round_index, state,
      tokens, fitness, metrics)`.
    refills: whether rounds ask for more proposals as they go.

  Returns:
    The final state; its archive holds every evaluation in order.
  """
  check_budget(budget, batch_size)
  init_key, rounds_key = round_keys(seed)
  if state is None:
    state = strategy.init(init_key)
  round_index = rounds_done
  while state.archive.size < budget:
    num = min(batch_size, budget - state.archive.size)
    round_key = jax.random.fold_in(rounds_key, round_index)
    tokens = strategy.ask(state, round_key, num)
    if not len(tokens):
      break  # Every architecture of the space is evaluated.
    if not refills:
      fitness = evaluate(tokens, round_index)
      fidelity = None
      if isinstance(fitness, tuple):
        fitness, fidelity = fitness
      fitness = np.asarray(fitness, np.float32)
      state, metrics = strategy.tell(state, tokens, fitness, fidelity)
    else:
      # The round's proposals not yet told: never proposed twice.
      in_flight = {key: row for key, row in zip(
          strategy.space.keys(tokens), np.asarray(tokens, np.int32))}
      asks = 0

      def ask_more(finished, scores, fidelity, wanted, round_key=round_key):
        nonlocal state, asks
        state, _ = strategy.tell(state, finished,
                                 np.asarray(scores, np.float32), fidelity)
        for key in strategy.space.keys(finished):
          in_flight.pop(key, None)
        wanted = min(wanted, budget - state.archive.size - len(in_flight))
        if wanted < 1:
          return np.zeros((0, strategy.space.num_positions), np.int32)
        asks += 1
        new = strategy.ask(state, jax.random.fold_in(round_key, asks),
                           wanted, exclude=np.array(list(in_flight.values())))
        in_flight.update(zip(strategy.space.keys(new), new))
        return new

      tokens, fitness, fidelity, told = evaluate(tokens, round_index,
                                                 ask_more)
      fitness = np.asarray(fitness, np.float32)
      fidelity = np.asarray(fidelity, np.float32)
      metrics = {}
      if not told.all():
        state, metrics = strategy.tell(state, tokens[~told], fitness[~told],
                                       fidelity[~told])
    if on_round is not None:
      on_round(round_index, state, tokens, fitness, metrics)
    round_index += 1
  return state


def run(strategy: strategies_lib.Strategy, objective: Objective,
        budget: int, batch_size: int = 8, seed: int = 0
        ) -> list[tuple[dict[str, Any], float]]:
  """Searches `strategy.space` for configurations that `objective` scores
  high.

  Args:
    strategy: from `make_strategy(name, space)`.
    objective: a list of configurations (dict decision -> choice) -> a
      list of as many floats, higher is better.
    budget: how many distinct architectures to evaluate.
    batch_size: how many the strategy proposes per round.
    seed: the search's seed; the same seed gives the same trace.

  Returns:
    `(configuration, score)` pairs in evaluation order.
  """
  space = strategy.space
  trace = []

  def evaluate(tokens, round_index):
    del round_index
    configs = [space.decode(row) for row in tokens]
    scores = [float(score) for score in objective(configs)]
    if len(scores) != len(configs):
      raise ValueError(f'The objective returned {len(scores)} scores for '
                       f'{len(configs)} configurations.')
    trace.extend(zip(configs, scores))
    return np.asarray(scores, np.float64)

  fold(strategy, evaluate, budget, batch_size, seed)
  return trace
