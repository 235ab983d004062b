"""The search loop: rounds of ask, population training, validation, tell.

    run_search(config, workdir)

Each round asks the strategy for `population_size` new architectures,
trains them together as one population (`gnas_jax.population`) for
`config.fidelity.epochs` epochs with per-candidate early stopping, scores
each by its best validation NDCG@20 (the fitness), writes them to the
trial store and tells the strategy. With successive halving and
`config.fidelity.refill`, the round tells the strategy the candidates that
stop as they stop and trains its new proposals in their slots
(`evaluation.PopulationEvaluator`). Rounds continue until `config.budget`
evaluations (rounded up to whole rounds without refills; 0 sets no
limit), `config.max_wall_seconds` or the end of the space. Then the
`config.final.top_k` best distinct architectures and the reference preset
are retrained at full fidelity (the training protocol of `config`) with
each of `config.final.seeds`, and the architecture with the best mean
validation NDCG@20 is tested.

The rounds are `gnas_jax.search.fold` over the strategy's token
arrays; architectures are decoded only to train them, and written as
strings only to the trial store.

Nothing is lost when a run stops: after every round the trial store holds
its candidates and orbax holds the strategy's state; a restarted run
(`config.resume`) discards the unfinished round's rows, restores the state
and continues from the next round. Round r asks with the key that
`search.round_keys` gives it and trains with `training_key(seed, r)`, so the
resumed search makes the decisions an uninterrupted one makes. Final
retraining runs are themselves resumable `train_and_evaluate` workdirs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from typing import Any

from absl import logging
import flax
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from gnas_jax import data as data_lib
from gnas_jax import driver
from gnas_jax import search as search_lib
from gnas_jax import space
from gnas_jax import workdir as workdir_lib
from gnas_jax.search import evaluation
from gnas_jax.search import store as store_lib
from gnas_jax.search import strategies as strategies_lib


def build_strategy(config: ml_collections.ConfigDict
                   ) -> strategies_lib.Strategy:
  """`config.strategy` over `config.space`, with its options
  `config.strategies[name]` (an unknown option is an error naming it)."""
  choices = space.subspace_from_string(config.space)
  options = config.strategies.get(config.strategy) or {}
  return strategies_lib.make_strategy(
      config.strategy, space.search_space(choices), **dict(options))


def training_key(seed: int, round_index: int) -> jax.Array:
  """The key that trains round `round_index`'s population: a stream apart
  from the strategy's (`search.round_keys`), which never draws with it."""
  stream = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
  return jax.random.fold_in(stream, round_index)


# Strategy options added after searches were recorded, with the value
# that leaves proposals as they were before.
_LATER_STRATEGY_OPTIONS = {'adversarial': {'coverage': 0.0}}


def fingerprint(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """What a resumed search must share with the one it continues.

  Trainer options, and strategy options added later
  (`_LATER_STRATEGY_OPTIONS`), count only where they differ from their
  defaults (`driver.changed_trainer_options`), so that the fingerprints
  (and the tabular benchmarks keyed by them) of searches from before they
  were options stay valid.
  """
  options = dict(config.strategies.get(config.strategy, {}))
  for name, value in _LATER_STRATEGY_OPTIONS.get(config.strategy,
                                                 {}).items():
    if options.get(name) == value:
      del options[name]
  return json.loads(json.dumps({
      'strategy': config.strategy, 'space': config.space,
      'options': options,
      'population_size': config.population_size, 'seed': config.seed,
      'fidelity': _fidelity(config), 'dataset': config.dataset,
      'data': config.data.to_dict(), 'num_negatives': config.num_negatives,
      **driver.changed_trainer_options(config),
  }, default=str))


class _StateCheckpoints:
  """The strategy's state and the loop's progress, saved after each round.

  The last two rounds are kept: when the newest is damaged, the search
  resumes from the one before (`workdir.restore_newest_intact`) and runs
  the round after it again.
  """

  def __init__(self, directory: str):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))

  def latest_round(self) -> int | None:
    """The rounds done by the newest checkpoint, intact or not; None
    without one."""
    return self.manager.latest_step()

  def save(self, rounds_done: int, state, meta: dict[str, Any]) -> None:
    self.manager.save(rounds_done, args=ocp.args.Composite(
        state=ocp.args.StandardSave(flax.serialization.to_state_dict(state)),
        meta=ocp.args.JsonSave(meta)))
    self.manager.wait_until_finished()

  def restore(self) -> tuple[int, Any, dict[str, Any]] | None:
    """`(rounds done, state dict, meta)` of the newest intact round, or
    None without one.

    Raises:
      ValueError: no round's checkpoint is intact (naming the directory).
    """
    def read(step):
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(),
          meta=ocp.args.JsonRestore()))
      meta = restored.meta
      if not (isinstance(meta, dict) and meta.get('rounds_done') == step
              and {'wall_seconds', 'fingerprint'} <= meta.keys()):
        raise ValueError(f'its meta {meta!r} is not that of round {step}')
      return jax.tree.map(np.asarray, restored.state), meta

    found = workdir_lib.restore_newest_intact(self.manager, read)
    return None if found is None else (found[0], *found[1])

  def state(self, template, rounds_done: int, state_dict):
    """The restored `state_dict` as the strategy's state `template`.

    Raises:
      ValueError: it does not fit (naming the checkpoint).
    """
    archive = state_dict.get('archive')
    if isinstance(archive, dict) and 'fidelity' not in archive:
      # Written before scores carried their fidelity: all count alike.
      state_dict = dict(state_dict, archive=dict(
          archive, fidelity=np.zeros(len(archive['fitness']), np.float32)))
    try:
      state = flax.serialization.from_state_dict(template, state_dict)
      _check_shapes(template, state)
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(
          f'Checkpoint {workdir_lib.step_path(self.manager, rounds_done)} '
          'holds a strategy state that does not fit this one '
          f'({workdir_lib.describe(error)}); resume it with the version of '
          'gnas_jax that wrote it or choose a new workdir.') from error
    return state

  def close(self):
    self.manager.close()


def _check_shapes(template, state) -> None:
  """Raises ValueError where a leaf of `state` has another shape than the
  template's: `from_state_dict` takes arrays as they are, so a state saved
  with another encoding (say, one decision fewer) would otherwise fail
  rounds later, inside the strategy. An axis the template holds empty (the
  archive's evaluations) may have any length."""
  for (path, want), got in zip(
      jax.tree_util.tree_leaves_with_path(template),
      jax.tree.leaves(state)):
    want, got = np.shape(want), np.shape(got)
    if len(want) != len(got) or any(w not in (0, g)
                                    for w, g in zip(want, got)):
      raise ValueError(f'{jax.tree_util.keystr(path)} has shape {got}, '
                       f'where this version has {want}')


class _OutOfTime(Exception):
  """Raised after a round that exhausts `config.max_wall_seconds`."""


# The search's counts with their least allowed values (see
# `driver.check_config`): a population below one would search nothing and
# report no best architecture, and a zero fidelity fails inside
# population training. A budget of 0 is no limit on evaluations, for a
# search that its wall time ends (`check_config`).
SEARCH_MINIMA = (('budget', 0), ('population_size', 1),
                 ('fidelity.epochs', 1), ('fidelity.eval_every', 1),
                 ('fidelity.patience', 1), ('fidelity.batch_size', 1),
                 ('final.top_k', 0))


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks the ranges of a search config's options before any work: the
  training protocol's (`driver.check_config`, for the final retraining)
  and the search's own.

  Raises:
    ValueError: an option is out of its range; the message names it as
      `config.<path>=<value>` with the values it takes.
  """
  driver.check_config(config, driver.TRAIN_MINIMA + SEARCH_MINIMA)
  wall = config.get('max_wall_seconds')
  if wall is not None and not (isinstance(wall, (int, float))
                               and not isinstance(wall, bool) and wall >= 0):
    raise ValueError(f'config.max_wall_seconds={wall!r} is not allowed: it '
                     'must be a number >= 0 (0: no limit).')
  if config.get('budget') == 0 and not wall:
    raise ValueError(
        'config.budget=0 (no limit on evaluations) needs a wall time to end '
        'the search: set config.max_wall_seconds to a number of seconds > 0, '
        'or config.budget to a number of evaluations >= 1.')
  fidelity = config.get('fidelity')
  if fidelity is not None:
    check_rungs(fidelity.get('rungs') or (), fidelity.get('eta', 3),
                fidelity.get('epochs'))
    check_refill(config)
  final = config.get('final')
  seeds = final.get('seeds') if final is not None else None
  fraction = final.get('user_fraction') if final is not None else None
  if fraction is not None and not (
      isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
      and 0 < fraction <= 1):
    raise ValueError(f'config.final.user_fraction={fraction!r} is not '
                     'allowed: it must be a share of the users in (0, 1], '
                     "or None for the search's own data.")
  # Another share of the users splits them anew unless the split is given:
  # the finalists would be tested on pairs the search trained or
  # validated on.
  if fraction is not None and config.data.split != 'given':
    raise ValueError(
        f'config.final.user_fraction={fraction!r} needs '
        "config.data.split='given': with "
        f'config.data.split={config.data.split!r} another share of the '
        "users is split anew, and the finalists' test would hold pairs the "
        'search trained or validated on.')
  # Every finalist is retrained once per seed and reported by its first.
  if seeds is not None and not (
      isinstance(seeds, (list, tuple)) and seeds
      and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
              for s in seeds)):
    raise ValueError(f'config.final.seeds={seeds!r} is not allowed: it must '
                     'be a non-empty list of integers >= 0.')


# The version of the rules that decide the fidelity a multi-fidelity score
# counts at (2: a candidate that stops on its own is judged at the rungs it
# had not passed, and a diverged one counts below every fidelity). In a
# multi-fidelity search's fingerprint, so that neither a search nor a record
# of one made under other rules goes on under these.
HALVING_RULES = 2


def _fidelity(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The fidelity for fingerprints: without a halving schedule or refills,
  as before there were."""
  fidelity = config.fidelity.to_dict()
  if fidelity.get('rungs'):
    fidelity['halving_rules'] = HALVING_RULES
  else:
    fidelity.pop('rungs', None)
    fidelity.pop('eta', None)
  if not fidelity.get('refill'):
    fidelity.pop('refill', None)
  return fidelity


def check_rungs(rungs, eta, epochs: int | None) -> None:
  """Checks a successive-halving schedule (`config.fidelity.rungs` and
  `eta`) against the fidelity's `epochs`.

  Raises:
    ValueError: naming the option and what it must be.
  """
  def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)

  if not (isinstance(rungs, (list, tuple)) and all(
      is_int(r) and r >= 1 for r in rungs)):
    raise ValueError(f'config.fidelity.rungs={rungs!r} is not allowed: it '
                     'must be a list of epochs >= 1.')
  if any(b <= a for a, b in zip(rungs, rungs[1:])):
    raise ValueError(f'config.fidelity.rungs={tuple(rungs)!r} is not '
                     'increasing: each rung must come after the one before.')
  if rungs and epochs is not None and rungs[-1] > epochs:
    raise ValueError(f'config.fidelity.rungs={tuple(rungs)!r} exceeds the '
                     f'epoch budget: its last rung is after '
                     f'config.fidelity.epochs={epochs}.')
  if not (is_int(eta) and eta >= 2):
    raise ValueError(f'config.fidelity.eta={eta!r} is not allowed: it must '
                     'be an integer >= 2 (the share of candidates a rung '
                     'keeps is 1/eta).')


def check_refill(config: ml_collections.ConfigDict) -> None:
  """Checks `config.fidelity.refill`: a count of new candidates per round,
  which needs a halving schedule to free slots and a space with
  architectures left after the first round.

  Raises:
    ValueError: naming the option and what it must be.
  """
  refill = config.fidelity.get('refill') or 0
  if not (isinstance(refill, int) and not isinstance(refill, bool)
          and refill >= 0):
    raise ValueError(f'config.fidelity.refill={refill!r} is not allowed: it '
                     'must be an integer >= 0 (0: no refills).')
  if not refill:
    return
  if not config.fidelity.get('rungs'):
    raise ValueError(
        f'config.fidelity.refill={refill} fills the slots that successive '
        'halving frees, and there is none: set config.fidelity.rungs too '
        '(for example (1, 3)).')
  count = space.count_canonical(space.subspace_from_string(config.space))
  if count <= config.population_size:
    raise ValueError(
        f'config.fidelity.refill={refill} has nothing to refill with: the '
        f'space {config.space!r} holds {count} architectures and the first '
        f'round takes population_size={config.population_size} of them; '
        'widen config.space or set config.fidelity.refill=0.')


def search(config: ml_collections.ConfigDict, workdir: str,
           data: data_lib.Dataset | driver.TrainingData | None = None
           ) -> dict[str, Any]:
  """The search rounds (no final retraining); resumable.

  `data` is the dataset, or one prepared already; None loads
  `config.dataset`. The workdir is this process's while it runs
  (`gnas_jax.workdir.lock`).
  A resumed search continues from its newest intact checkpoint, and only
  with a trial store that holds every trial of the rounds checkpointed.

  Returns:
    Search facts: 'evaluations', 'rounds', 'wall_seconds', 'best_arch',
    'best_valid_ndcg@20'.

  Raises:
    ValueError: another process is using the workdir; it holds a search
      with other settings (or one already, without `config.resume`); its
      trial store is missing, damaged or lacks trials of checkpointed
      rounds; or no checkpoint of the search is intact.
  """
  check_config(config)
  choices = space.subspace_from_string(config.space)
  strategy = build_strategy(config)
  # Taken once the settings are checked, before anything is read. What the
  # search opens closes whether it ends or fails: orbax's background
  # threads would otherwise outlive it.
  with workdir_lib.lock(workdir), contextlib.ExitStack() as to_close:
    data = driver.TrainingData.from_config(config, data)
    os.makedirs(workdir, exist_ok=True)
    evaluator = evaluation.PopulationEvaluator(config, data, choices)
    size = config.population_size
    # Without a limit on evaluations the wall time or the end of the space
    # ends the search: the space's size is a budget only the latter reaches.
    budget = config.budget or space.count_canonical(choices)
    rounds = math.ceil(budget / size)
    init_key, _ = search_lib.round_keys(config.seed)
    state = strategy.init(init_key)
    checkpoints = to_close.enter_context(contextlib.closing(
        _StateCheckpoints(os.path.join(workdir, 'search_state'))))
    trials_path = os.path.join(workdir, 'trials.sqlite')
    checkpointed = checkpoints.latest_round()
    if checkpointed is not None:
      if not config.resume:
        raise ValueError(
            f'{workdir} holds a search already; resume it '
            '(config.resume=True) or choose a new workdir.')
      # A new store here would start the search again from its checkpoint,
      # without the trials of the rounds before it.
      if not os.path.exists(trials_path):
        lost = 'missing'
      elif not os.path.getsize(trials_path):
        lost = 'empty (0 bytes)'
      else:
        lost = None
      if lost:
        raise ValueError(
            f'Trial store {trials_path} is {lost} while '
            f'{checkpoints.directory} holds the search after round '
            f'{checkpointed}; restore the trial store from a backup or '
            'start a new workdir.')
    trials = to_close.enter_context(contextlib.closing(
        store_lib.TrialStore(trials_path)))
    meta = {'rounds_done': 0, 'wall_seconds': 0.0,
            'fingerprint': fingerprint(config),
            'strategy_revision': strategy.revision}
    restored = checkpoints.restore()
    if restored is not None:
      rounds_done, state_dict, meta = restored
      changed = sorted(k for k, v in fingerprint(config).items()
                       if meta['fingerprint'].get(k) != v)
      if changed:
        raise ValueError(
            f'{workdir} holds a search with other settings of '
            f'{", ".join(changed)}; resume it with the same ones (only the '
            'budget, wall time and final retraining may change) or choose a '
            'new workdir.')
      # Checkpoints from before strategies had revisions hold the first.
      saved = meta.get('strategy_revision', 1)
      if saved != strategy.revision:
        raise ValueError(
            f'{workdir} holds a search by revision {saved} of the '
            f'{strategy.name!r} strategy, which proposes otherwise than '
            f'this version\'s revision {strategy.revision}; resume it with '
            'the version that started it or choose a new workdir.')
      state = checkpoints.state(state, rounds_done, state_dict)
      kept = trials.count(before_round=rounds_done)
      # Rounds that refill evaluate more than the population; checkpoints
      # from before refilling hold no count.
      expected = meta.get('evaluations', rounds_done * size)
      if kept != expected:
        raise ValueError(
            f'Trial store {trials_path} holds {kept} trials of the '
            f'{rounds_done} rounds checkpointed in {checkpoints.directory}, '
            f'not {expected}; restore it from a backup or start a new '
            'workdir.')
      logging.info('Resumed after round %d from %s.', meta['rounds_done'],
                   workdir)
    discarded = trials.discard_from(meta['rounds_done'])
    if discarded:
      logging.info('Discarded %d trials of the unfinished round %d.',
                   discarded, meta['rounds_done'])
    writer = to_close.enter_context(contextlib.closing(
        driver.create_writer(os.path.join(workdir, 'tensorboard'))))
    history = [t['valid_ndcg'] for t in trials.trials()]
    started = time.perf_counter() - meta['wall_seconds']
    # What `evaluate` measured of the round that `on_round` records.
    measured = {}

    def out_of_time() -> bool:
      return bool(config.max_wall_seconds and time.perf_counter() - started
                  > config.max_wall_seconds)

    refills = bool(config.fidelity.get('refill'))

    def told_scores(result) -> np.ndarray:
      # A diverged candidate, recorded with score 0, is told as failed:
      # the strategy ranks it below every real score.
      return np.where(result['failed'], np.nan, result['ndcg'])

    def evaluate(tokens: np.ndarray, round_index: int, ask_more=None):
      start = time.perf_counter()
      told = []

      def refill(stopped, results, wanted):
        told.extend(stopped.tolist())
        new = ask_more(space.to_tokens([results['archs'][p]
                                        for p in stopped]),
                       told_scores(results)[stopped],
                       results['fidelity'][stopped], wanted)
        return space.from_tokens(new)

      result = evaluator(space.from_tokens(tokens),
                         training_key(config.seed, round_index),
                         refill if refills else None)
      archs = result['archs']
      measured.update(result, seconds=(time.perf_counter() - start)
                      / len(archs))
      if not refills:
        # Without rungs every score has one fidelity, told as none: so do
        # the scores of a checkpoint written before fidelities were told.
        if not config.fidelity.get('rungs'):
          return told_scores(result)
        return told_scores(result), result['fidelity']
      told_mask = np.zeros(len(archs), bool)
      told_mask[told] = True
      return (space.to_tokens(archs), told_scores(result),
              result['fidelity'], told_mask)

    def on_round(round_index: int, state, tokens, fitness, metrics) -> None:
      del tokens, fitness  # As `measured` holds them.
      nonlocal meta
      result = measured
      trials.add_round([{
          'round': round_index, 'slot': slot, 'arch': arch.to_string(),
          'valid_ndcg': float(result['ndcg'][slot]),
          'valid_recall': float(result['recall'][slot]),
          'failed': int(result['failed'][slot]),
          'epochs': int(result['epochs'][slot]),
          'fidelity_epochs': int(result['fidelity'][slot]),
          'seed': config.seed,
          'train_seconds': result['seconds'],
      } for slot, arch in enumerate(result['archs'])])
      history.extend(result['ndcg'].tolist())
      meta = dict(meta, rounds_done=round_index + 1,
                  evaluations=len(history),
                  wall_seconds=time.perf_counter() - started)
      checkpoints.save(round_index + 1, state, meta)

      logged = {'search/best_ndcg@20': max(history),
                'round/median_ndcg@20': float(np.median(result['ndcg'])),
                'round/best_ndcg@20': float(np.max(result['ndcg'])),
                'round/failed': int(result['failed'].sum())}
      logged.update({f'strategy/{k}': v for k, v in metrics.items()})
      writer.write_scalars(len(history), {
          name: value for name, value in logged.items()
          if np.isfinite(value)})
      writer.flush()
      bar.update()
      postfix = {'best': f'{max(history):.4f}', 'evals': len(history)}
      if config.max_wall_seconds:
        postfix['wall'] = (f'{meta["wall_seconds"]:.0f}'
                           f'/{config.max_wall_seconds} s')
      bar.set_postfix(postfix)
      logging.info('round %d: %s', round_index + 1, ', '.join(
          f'{k} {v:.4f}' for k, v in logged.items()))
      if out_of_time():
        raise _OutOfTime()

    # A wall-time budget usually ends the search first; its bar counts
    # rounds without a total and shows the seconds spent instead.
    with driver.progress_bar(desc=strategy.name,
                             initial=meta['rounds_done'],
                             total=None if config.max_wall_seconds else rounds,
                             unit='round',
                             disable=not config.progress) as bar:
      try:
        if out_of_time():
          raise _OutOfTime()
        # Whole rounds: a smaller last population would compile anew. A
        # refilling round evaluates more than its population, so there the
        # budget is the count of evaluations itself.
        search_lib.fold(strategy, evaluate,
                        budget if refills else rounds * size, size,
                        config.seed, state=state,
                        rounds_done=meta['rounds_done'], on_round=on_round,
                        refills=refills)
      except _OutOfTime:
        logging.info('Wall-time budget of %d s reached.',
                     config.max_wall_seconds)
    best = trials.best(1)
    facts = {'evaluations': len(trials.trials()),
             'rounds': meta['rounds_done'],
             'wall_seconds': meta['wall_seconds'],
             'best_arch': best[0]['arch'] if best else None,
             'best_valid_ndcg@20': best[0]['valid_ndcg'] if best else None}
    return facts


def _final_protocol(config: ml_collections.ConfigDict,
                    data: driver.TrainingData
                    ) -> tuple[ml_collections.ConfigDict, driver.TrainingData]:
  """The config and data the finalists are retrained on: the search's, or
  with `config.final.user_fraction` another share of the users."""
  fraction = config.final.get('user_fraction')
  if fraction is None or fraction == config.data.user_fraction:
    return config, data
  final_config = config.copy_and_resolve_references()
  with final_config.unlocked():
    final_config.data.user_fraction = fraction
  logging.info('Retraining the finalists on %g of the users.', fraction)
  return final_config, driver.TrainingData.from_config(final_config)


def run_search(config: ml_collections.ConfigDict,
               workdir: str) -> dict[str, Any]:
  """Search, retrain the best, test; writes `workdir/search_summary.json`.

  The finalists and the reference are retrained with every seed of
  `config.final.seeds`; each metric is summarised as
  `{'mean', 'std', 'seeds', 'values'}` (`driver.seed_statistics`). The
  finalist with the best mean validation NDCG@20 is the search's result:
  the test split decides nothing.
  """
  # Before the data load, which can take minutes.
  check_config(config)
  data = driver.TrainingData.from_config(config)
  start = time.perf_counter()
  facts = search(config, workdir, data)
  trials = store_lib.TrialStore(os.path.join(workdir, 'trials.sqlite'))
  finalists = trials.best(config.final.top_k)
  trials.close()
  seeds = list(config.final.seeds)
  final_config, final_data = _final_protocol(config, data)
  candidates = [
      dict(evaluation.retrain(final_config, workdir,
                              space.from_string(finalist['arch']), seeds,
                              final_data),
           rank=rank, **{'search_valid_ndcg@20': finalist['valid_ndcg']})
      for rank, finalist in enumerate(finalists)]
  summary = dict(facts, strategy=config.strategy, dataset=data.dataset.name,
                 seed=config.seed, population_size=config.population_size,
                 fidelity_epochs=config.fidelity.epochs, final_seeds=seeds,
                 final_users=final_data.dataset.num_users,
                 search_users=data.dataset.num_users, finalists=candidates)
  if candidates:
    chosen = max(candidates, key=lambda c: c['valid_ndcg@20']['mean'])
    summary.update({'best_arch': chosen['arch'],
                    'test_recall@20': chosen['test_recall@20'],
                    'test_ndcg@20': chosen['test_ndcg@20']})
    if config.final.reference:
      summary['reference'] = dict(
          evaluation.retrain(final_config, workdir,
                             space.from_string(config.final.reference),
                             seeds, final_data),
          name=config.final.reference)
  summary['total_wall_seconds'] = time.perf_counter() - start
  with open(os.path.join(workdir, 'search_summary.json'), 'w') as f:
    json.dump(summary, f, indent=2)
  return summary
