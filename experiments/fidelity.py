"""Measuring what low fidelity is worth: the fidelity study's curves and
correlations, successive-halving schedules replayed on them, a study
re-scored by extrapolating its curves, and the equal-wall-time comparison
of a fixed-fidelity search with a multi-fidelity one
(`experiments.fidelity_study`, `experiments.fidelity_extrapolation` and
`experiments.compare_fidelity` are their command lines).
"""

from __future__ import annotations

import json
import math
import os

from absl import logging
import jax
import numpy as np
from scipy import stats

from experiments import paper
from gnas_jax import driver
from gnas_jax import population as population_lib
from gnas_jax import records
from gnas_jax import space
from gnas_jax.search import evaluation
from gnas_jax.search import loop
from gnas_jax.search import strategies as strategies_lib

# --- The fidelity study -----------------------------------------------------


# What a low-fidelity curve depends on; a record measured otherwise is
# refused.
LOW_FIDELITY_KEYS = ('dataset', 'data', 'seed', 'population_size',
                     'fidelity.batch_size', 'num_negatives', 'sampling',
                     'optimizer', 'ks')


def low_fidelity_protocol(config) -> dict:
  """The entries `LOW_FIDELITY_KEYS` of `config`, as JSON gives them back
  (tuples become lists), to compare with a record's."""
  values = {}
  for key in LOW_FIDELITY_KEYS:
    value = config
    for part in key.split('.'):
      value = value[part]
    values[key] = value.to_dict() if hasattr(value, 'to_dict') else value
  return json.loads(json.dumps(values))


def recorded_curves(path: str, expected: dict) -> dict[str, list]:
  """Curve by architecture in the record `path`.

  Raises:
    ValueError: naming file, line and settings, for a curve measured under
      another protocol than `expected`.
  """
  found = records.find(path, key=lambda row: row.get('arch'),
                       expected=lambda _: expected,
                       subject='{} was measured'.format)
  return {arch: row['curve'] for arch, row in found.items()}


def low_fidelity_curves(config, data: driver.TrainingData, archs,
                        epochs: int, path: str) -> np.ndarray:
  """`[N, epochs]` validation NDCG@20 after each epoch, trained in
  populations of `config.population_size` as the search trains them, each
  population's new rows appended to the record `path` when it finishes
  (rows already there are not trained again; rows of another protocol are
  refused). Every candidate trains all `epochs`, whatever the config's
  patience, rungs and refills."""
  done = record_low_fidelity(config, data, archs, epochs, path)
  return np.array([done[a.to_string()][:epochs] for a in archs])


def record_low_fidelity(config, data: driver.TrainingData, archs,
                        epochs: int, path: str,
                        shard: tuple[int, int] = (0, 1)
                        ) -> dict[str, list[float]]:
  """Trains what `low_fidelity_curves` trains, of the populations
  `index, index + count, ...` (counted from 0) of `shard = (index,
  count)` only, so that processes may share the populations out; every
  population is seeded by its position, so a curve is the same whichever
  process trains it. Returns the record's curves by architecture string
  (those of other shards too, where they are recorded)."""
  expected = low_fidelity_protocol(config)
  done = recorded_curves(path, expected)
  config = config.copy_and_resolve_references()  # The caller's is kept.
  with config.unlocked():
    config.fidelity.epochs = epochs
    config.fidelity.eval_every = 1
    config.fidelity.patience = epochs
    config.fidelity.rungs = ()
    config.fidelity.refill = 0
  measured = lambda a: len(done.get(a.to_string(), ())) >= epochs
  evaluator = None
  size = config.population_size
  key = jax.random.PRNGKey(config.seed)
  index, count = shard
  for start in range(index * size, len(archs), count * size):
    chunk = archs[start:start + size]
    # Another process sharing the record may have trained it meanwhile.
    for arch, curve in recorded_curves(path, expected).items():
      done.setdefault(arch, curve)
    if all(measured(a) for a in chunk):
      continue
    logging.info('Low fidelity: architectures %d-%d of %d.', start + 1,
                 start + len(chunk), len(archs))
    # Built (and compiled) only when something is left to train.
    evaluator = evaluator or evaluation.PopulationEvaluator(
        config, data, space.subspace_from_string(config.space))
    result = evaluator(chunk, jax.random.fold_in(key, start))
    # A curve recorded already (perhaps longer) is kept as it is.
    new = [(a.to_string(), c.tolist())
           for a, c in zip(chunk, result['curve']) if not measured(a)]
    done.update(new)
    records.append(path, [{'arch': a, 'curve': c, 'protocol': expected}
                          for a, c in new])
  return done


def halving_cost(size: int, rungs, eta: int, epochs: int) -> int:
  """Epochs that successive halving of `size` candidates trains: each
  rung keeps the best `ceil(n / eta)`, the survivors go on to `epochs`."""
  cost, alive, previous = 0, size, 0
  for rung in rungs:
    cost += alive * (rung - previous)
    alive, previous = math.ceil(alive / eta), rung
  return cost + alive * (epochs - previous)


SCORINGS = ('best', 'extrapolated')


def rung_scores(curves: np.ndarray, scoring: str = 'best',
                factor: float = 10.0) -> np.ndarray:
  """`[N, T]` the score each of `[N, T]` validation curves has after each
  epoch, as successive halving would rank by it.

  'best': the best validation NDCG@20 so far (what the search uses).
  'extrapolated': where the curve would be after `factor` times the epochs
  trained so far, by a least-squares line in log(epoch) through the last
  third of them (at least 3 epochs; before epoch 3, the best so far). A
  NaN in that window (a candidate that diverged) gives NaN.
  """
  if scoring not in SCORINGS:
    raise ValueError(f'scoring={scoring!r} is not allowed: it must be one '
                     f'of {", ".join(SCORINGS)}.')
  best = np.fmax.accumulate(curves, 1)
  if scoring == 'best':
    return best
  scores = best.copy()
  log_epochs = np.log(np.arange(1, curves.shape[1] + 1))
  for epoch in range(3, curves.shape[1] + 1):
    window = slice(epoch - max(3, epoch // 3), epoch)
    x = log_epochs[window]
    y = curves[:, window]
    centred = x - x.mean()
    slope = (y - y.mean(1, keepdims=True)) @ centred / (centred @ centred)
    scores[:, epoch - 1] = (y.mean(1) + slope *
                            (np.log(factor * epoch) - x.mean()))
  return scores


def replay_schedule(curves: np.ndarray, full_valid: np.ndarray, rungs,
                    eta: int, epochs: int, size: int, draws: int,
                    rng: np.random.Generator,
                    scores: np.ndarray | None = None) -> dict[str, float]:
  """A round of `size` of the study's architectures (drawn without
  replacement, `draws` times) searched with a schedule, replayed on their
  recorded curves: at each rung the best `ceil(n / eta)` by their
  `[N, T]` `scores` (`rung_scores`; by default the best validation NDCG@20
  so far) go on, and the round picks the best by them at `epochs` (no
  rungs: a fixed fidelity of `epochs`). The curves hold every epoch, so
  the replay sees each candidate as if it were evaluated after every epoch
  (a search evaluates every `fidelity.eval_every`), the same for every
  schedule.

  Returns:
    'pick': the mean full-protocol validation NDCG@20 of the pick;
    'top3': how often the pick is among the 3 best of all the study's
    architectures by the full protocol; 'cost': epochs trained per round.
  """
  if scores is None:
    scores = rung_scores(curves)
  scores = np.nan_to_num(scores, nan=-np.inf)
  top3 = set(np.argsort(-full_valid)[:3].tolist())
  picks = []
  for _ in range(draws):
    alive = rng.choice(len(curves), size, replace=False)
    for rung in rungs:
      order = np.argsort(-scores[alive, rung - 1], kind='stable')
      alive = alive[order[:math.ceil(len(alive) / eta)]]
    picks.append(alive[np.argmax(scores[alive, epochs - 1])])
  return {'pick': float(np.mean(full_valid[picks])),
          'top3': float(np.mean([p in top3 for p in picks])),
          'cost': halving_cost(size, rungs, eta, epochs)}


def schedule_rows(curves: np.ndarray, full_valid: np.ndarray,
                  fixed_epochs: int, round_size: int, last: int,
                  draws: int = 2000, seed: int = 0,
                  scores: np.ndarray | None = None) -> list[dict]:
  """The search's fixed fidelity (`round_size` candidates of
  `fixed_epochs`) and schedules of successive halving over the rungs,
  each at the same epochs per round: a schedule's round holds as many
  candidates as that compute pays for (at most the study's). Candidates
  are ranked by `scores` (`replay_schedule`)."""
  budget = round_size * fixed_epochs
  # The curves end at the last rung: a fixed fidelity beyond it cannot be
  # replayed.
  candidates = [((), 1, epochs) for epochs in sorted({fixed_epochs, last})
                if epochs <= last]
  for eta in (2, 3, 4):
    for first in (1, 2, 3):
      for rungs in ((first,), (first, 3 * first), (first, 3 * first,
                                                   9 * first)):
        if rungs[-1] < last:
          candidates.append((rungs, eta, last))
  rows = []
  for rungs, eta, epochs in candidates:
    size = max([n for n in range(1, len(curves) + 1)
                if halving_cost(n, rungs, eta, epochs) <= budget],
               default=0)
    if not size:
      continue
    replayed = replay_schedule(curves, full_valid, rungs, eta, epochs, size,
                               draws, np.random.default_rng(seed), scores)
    rows.append({'rungs': list(rungs), 'eta': eta, 'epochs': epochs,
                 'round_size': size, **replayed})
  return rows


def correlations(scores: np.ndarray, reference: np.ndarray
                 ) -> dict[str, float]:
  """Spearman and Kendall rank correlations of two `[N]` score vectors; a
  NaN (a candidate that diverged) counts as 0, as the search scores it."""
  scores, reference = (np.nan_to_num(np.asarray(v, float), nan=0.0)
                       for v in (scores, reference))
  return {'spearman': float(stats.spearmanr(scores, reference).statistic),
          'kendall': float(stats.kendalltau(scores, reference).statistic)}


def fixed_fidelity_scores(curves: np.ndarray, epochs: int, eval_every: int,
                          patience: int) -> np.ndarray:
  """`[N]` what a fixed-fidelity search scores each of `[N, >= epochs]`
  validation curves: the best of its evaluations (`driver.
  is_evaluation_epoch`) until its patience runs out (`driver.
  EarlyStopping`); 0 for one that turns NaN (diverged) on the way."""
  stopping = driver.EarlyStopping.start(len(curves), patience)
  failed = np.zeros(len(curves), bool)
  for epoch in range(1, epochs + 1):
    if not driver.is_evaluation_epoch(epoch, eval_every, epochs):
      continue
    evaluated = ~stopping.stopped & ~failed
    failed |= evaluated & np.isnan(curves[:, epoch - 1])
    stopping.update(curves[:, epoch - 1], epoch, evaluated & ~failed)
  return np.where(failed | ~np.isfinite(stopping.best_score), 0.0,
                  stopping.best_score)


# --- Re-scoring a study: can the start of a curve predict its end? -------


# The multi-fidelity search's schedule (`results/multi_fidelity.md`).
SEARCH_SCHEDULE = ([1, 3], 3)


def load_study_report(path: str) -> dict:
  """A report's curves `[N, T]`, full-protocol validation `[N]` and its
  fixed-fidelity round (`round_size`, `epochs`)."""
  with open(path) as f:
    report = json.load(f)
  fixed = report['schedules'][0]
  if fixed['rungs']:
    raise ValueError(f'{path}: its first schedule has rungs '
                     f'{fixed["rungs"]}; a fidelity-study report starts '
                     'with the fixed-fidelity round.')
  return {'name': os.path.splitext(os.path.basename(path))[0],
          'dataset': report['dataset'],
          'curves': np.array([a['curve'] for a in report['archs']], float),
          'full_valid': np.array([a['full_valid_ndcg@20']
                                  for a in report['archs']]),
          'round_size': fixed['round_size'], 'fixed_epochs': fixed['epochs']}


def rescore_study(report: dict, epochs, factor: float) -> dict:
  """Correlations at `epochs` and replayed picks under each scoring."""
  if not factor > 1:
    raise ValueError(f'--factor={factor:g} is not allowed: it must be above '
                     '1 (how many times the epochs so far to look ahead).')
  curves, full_valid = report['curves'], report['full_valid']
  last = curves.shape[1]
  if any(epoch > last for epoch in epochs):
    raise ValueError(f'--epochs={",".join(map(str, epochs))}: '
                     f'{report["name"]} has curves of {last} epochs only.')
  ranked, picks = [], []
  for scoring in SCORINGS:
    scores = rung_scores(curves, scoring, factor)
    for epoch in epochs:
      ranked.append({'scoring': scoring, 'epoch': epoch,
                     **correlations(scores[:, epoch - 1], full_valid)})
    rows = schedule_rows(curves, full_valid, report['fixed_epochs'],
                         report['round_size'], last, scores=scores)
    search = [r for r in rows if (r['rungs'], r['eta']) == SEARCH_SCHEDULE]
    halving = [r for r in rows if r['rungs']]
    chosen = {'fixed round': rows[0],
              "the search's schedule": search[0] if search else None,
              'best schedule': max(rows, key=lambda r: r['pick']),
              'mean over halving schedules': {
                  'count': len(halving),
                  'pick': float(np.mean([r['pick'] for r in halving])),
                  'top3': float(np.mean([r['top3'] for r in halving]))}}
    picks += [{'scoring': scoring, 'schedule': label, **row}
              for label, row in chosen.items() if row is not None]
  return {'name': report['name'], 'dataset': report['dataset'],
          'best_full_valid': float(full_valid.max()),
          'correlations': ranked, 'picks': picks}


# --- Fixed against multi-fidelity search at equal wall time ----------------


VARIANTS = ('fixed', 'multi-fidelity')


def variant_config(config, variant: str, seed: int, wall_seconds: int,
                   epochs: int, rungs, eta: int, refill: int):
  """`config` as `variant` searches with it."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.seed = seed
    config.max_wall_seconds = wall_seconds
    # No limit on evaluations: the wall time ends the search.
    config.budget = 0
    config.final.reference = ''
    config.progress = False
    # The fixed fidelity halves nothing, whatever the config says.
    config.fidelity.rungs = ()
    config.fidelity.refill = 0
    if variant == 'multi-fidelity':
      config.fidelity.epochs = epochs
      config.fidelity.rungs = tuple(rungs)
      config.fidelity.eta = eta
      config.fidelity.refill = refill
  try:
    loop.check_config(config)
  except ValueError as error:
    if variant != 'multi-fidelity':
      raise
    raise ValueError(
        f'{str(error).rstrip(".")}; the multi-fidelity search takes '
        'config.fidelity.epochs, rungs, eta and refill from --epochs, '
        '--rungs, --eta and --refill.') from None
  return config


def search_protocol(searched) -> dict:
  """What a compared search's row depends on: the search (`loop.fingerprint`:
  data, space, strategy, seed, fidelity...), its strategy's revision, its
  wall time, and the retraining of its finalists. JSON-normalised, to
  compare with a record."""
  return json.loads(json.dumps({
      **loop.fingerprint(searched),
      **strategies_lib.revision_setting(searched.strategy),
      'max_wall_seconds': searched.max_wall_seconds,
      'final': searched.final.to_dict(),
      **{key: searched[key] for key in ('epochs', 'patience', 'eval_every',
                                        'batch_size')}}, default=str))


def compare(config, workdir: str, seeds, wall_seconds: int, epochs: int,
            rungs, eta: int, refill: int, record: str | None = None,
            variants=VARIANTS) -> list[dict]:
  """One record per (variant, seed) of `variants` (some of `VARIANTS`): the
  search's facts and its best finalist under the full protocol.

  Each seed's searches run in the order of `variants`; one variant at a
  time lets the same variant's searches of several seeds run side by side
  (one process per seed and core, say), under the same load.

  With a `record` (a JSON-lines file of these rows, which may be
  committed), a search it holds under the same protocol runs nowhere, and
  every other is added to it when its finalists are retrained: the
  comparison goes on from the record alone, in another session or on
  another machine.
  """
  # Every config (and the record) is checked before the first search.
  if (not variants or not set(variants) <= set(VARIANTS)
      or len(set(variants)) < len(variants)):
    raise ValueError(f'--variants={",".join(variants)}: the variants are '
                     f'{", ".join(VARIANTS)} (one or both, each once).')
  if config.final.top_k < 1:
    raise ValueError(f'config.final.top_k={config.final.top_k}: the '
                     'comparison retrains the best finalists of each search, '
                     'so it needs at least 1.')
  searches = [(seed, variant, variant_config(
      config, variant, seed, wall_seconds, epochs, rungs, eta, refill))
              for seed in seeds for variant in variants]
  wanted = {(variant, seed): search_protocol(searched)
            for seed, variant, searched in searches}
  done = records.find(
      record, key=lambda row: (row.get('variant'), row.get('seed')),
      expected=wanted.get,
      subject=lambda unit: f'the {unit[0]} search of seed {unit[1]} was run')
  rows = []
  for seed, variant, searched in searches:
    if (variant, seed) in done:
      rows.append(done[variant, seed])
      continue
    # Each search compiles from scratch, as the first did: one that
    # found the others' programs compiled would get more wall time to search.
    population_lib.clear_compiled()
    summary = loop.run_search(
        searched, os.path.join(workdir, f'{variant}_seed{seed}'))
    best = max(summary['finalists'],
               key=lambda f: f['valid_ndcg@20']['mean'])
    row = json.loads(json.dumps({
        'variant': variant, 'seed': seed,
        'evaluations': summary['evaluations'],
        'rounds': summary['rounds'],
        'search_seconds': summary['wall_seconds'],
        'best_arch': best['arch'],
        'search_valid_ndcg@20': best['search_valid_ndcg@20'],
        'valid_ndcg@20': best['valid_ndcg@20']['mean'],
        'test_ndcg@20': best['test_ndcg@20']['mean'],
        'fidelity': searched.fidelity.to_dict(),
        # What the wall time bought depends on it.
        'machine': paper.machine()}))
    if record:
      records.append(record, [dict(row, protocol=search_protocol(searched))])
    rows.append(row)
  return rows


def table(rows: list[dict], config, wall_seconds: int) -> str:
  """Markdown: one row per search, and each variant's mean."""
  lines = [
      f'Searches of {wall_seconds} s each on {config.dataset} '
      f'(strategy {config.strategy}, population {config.population_size}); '
      f'the best {config.final.top_k} of each retrained under the full '
      f'protocol (at most {config.epochs} epochs at batch '
      f'{config.batch_size}, patience {config.patience}; mean over seeds '
      f'{", ".join(map(str, config.final.seeds))}). Written on a '
      f'{paper.machine()}; each search ran where its row says.', '',
      '| search | seed | fidelity | evaluations | rounds | search s | best '
      'full-protocol valid NDCG@20 | its test NDCG@20 | ran on | '
      'architecture |',
      '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |']
  for r in rows:
    fidelity = r['fidelity']
    schedule = (f'{fidelity["epochs"]} epochs' if r['variant'] == 'fixed'
                else f'{fidelity["epochs"]} epochs, rungs '
                f'{",".join(map(str, fidelity["rungs"]))}, eta '
                f'{fidelity["eta"]}, refill {fidelity["refill"]}')
    lines.append(
        f'| {r["variant"]} | {r["seed"]} | {schedule} | {r["evaluations"]} '
        f'| {r["rounds"]} | {r["search_seconds"]:.0f} | '
        f'{r["valid_ndcg@20"]:.4f} | {r["test_ndcg@20"]:.4f} | '
        f'{r.get("machine", "not recorded")} | `{r["best_arch"]}` |')
  for variant in VARIANTS:
    values = [r['valid_ndcg@20'] for r in rows if r['variant'] == variant]
    if not values:
      continue
    seeds = ('one search seed' if len(values) == 1
             else f'{len(values)} search seeds')
    lines.append(f'\n{variant}: best full-protocol validation NDCG@20 '
                 f'{np.mean(values):.4f} (mean over {seeds})')
  return '\n'.join(lines)
