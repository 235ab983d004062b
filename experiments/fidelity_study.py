r"""How well short training ranks architectures: the fidelity study.

  python -m experiments.fidelity_study --config.dataset=ml-100k \
      --config.data_dir=/path/to/datasets --workdir=/tmp/fidelity_ml100k

Draws `--num_archs` architectures of the search config's space
(`config.space`, seeded by `config.seed`, every decision uniform), and for
each measures

* its low-fidelity curve: validation NDCG@20 after every epoch up to the
  last rung, trained as a search trains its candidates (in populations, at
  the search config's fidelity batch size, no early stopping); and
* its full-protocol score: the best validation (and the test) NDCG@20
  under the config's training protocol (that of
  `experiments/configs/train.py` by default: early stopping on validation).

For every rung it reports the Spearman and Kendall rank correlations
between the rung's validation NDCG@20 and the full-protocol one, and the
same for the search's current fixed fidelity (the best of its
evaluations). It then replays schedules of successive halving on the
recorded curves (`schedule_rows`): at the compute of one fixed-fidelity
round, which pick does each schedule make, judged by the full protocol. Every training run is kept under `--workdir` and resumes, so
an interrupted study continues where it stopped. Writes
`<out>.md`, `<out>.json` and `<out>.png`.
"""

from __future__ import annotations

import json
import math
import os

from absl import app
from absl import flags
from absl import logging
import jax
import matplotlib
import numpy as np
from scipy import stats

from ml_collections import config_flags

from experiments import common
from gnas_jax import driver
from gnas_jax import space
from gnas_jax.search import evaluation

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/search.py',
    'Search configuration: the data, the space, the fidelity batch size, '
    'the population and the full training protocol.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where the runs are kept.')
_NUM_ARCHS = flags.DEFINE_integer('num_archs', 40, 'Architectures drawn.')
_RUNGS = flags.DEFINE_list('rungs', ['1', '3', '9', '27'],
                           'Epochs at which low fidelity is scored.')
_OUT = flags.DEFINE_string('out', 'results/fidelity',
                           'Output path without its extension.')
flags.mark_flags_as_required(['workdir'])


def low_fidelity_curves(config, data: driver.TrainingData, archs,
                        epochs: int, path: str) -> np.ndarray:
  """`[N, epochs]` validation NDCG@20 after each epoch, trained in
  populations of `config.population_size` as the search trains them, each
  population's rows appended to the JSON-lines `path` when it finishes
  (rows already there are not trained again)."""
  config = config.copy_and_resolve_references()  # The caller's is kept.
  done = {}
  if os.path.exists(path):
    with open(path) as f:
      done = {r['arch']: r['curve'] for r in map(json.loads, f)}
  with config.unlocked():
    config.fidelity.epochs = epochs
    config.fidelity.eval_every = 1
    config.fidelity.patience = epochs  # Every candidate reaches the end.
  evaluator = evaluation.PopulationEvaluator(
      config, data, space.subspace_from_string(config.space))
  size = config.population_size
  key = jax.random.PRNGKey(config.seed)
  for start in range(0, len(archs), size):
    chunk = archs[start:start + size]
    if all(a.to_string() in done for a in chunk):
      continue
    logging.info('Low fidelity: architectures %d-%d of %d.', start + 1,
                 start + len(chunk), len(archs))
    result = evaluator(chunk, jax.random.fold_in(key, start))
    with open(path, 'a') as f:
      for arch, curve in zip(chunk, result['curve']):
        done[arch.to_string()] = curve.tolist()
        f.write(json.dumps({'arch': arch.to_string(),
                            'curve': curve.tolist()}) + '\n')
  return np.array([done[a.to_string()] for a in archs])


def halving_cost(size: int, rungs, eta: int, epochs: int) -> int:
  """Epochs that successive halving of `size` candidates trains: each
  rung keeps the best `ceil(n / eta)`, the survivors go on to `epochs`."""
  cost, alive, previous = 0, size, 0
  for rung in rungs:
    cost += alive * (rung - previous)
    alive, previous = math.ceil(alive / eta), rung
  return cost + alive * (epochs - previous)


def replay_schedule(curves: np.ndarray, full_valid: np.ndarray, rungs,
                    eta: int, epochs: int, size: int, draws: int,
                    rng: np.random.Generator) -> dict[str, float]:
  """A round of `size` of the study's architectures (drawn without
  replacement, `draws` times) searched with a schedule, replayed on their
  recorded curves: at each rung the best `ceil(n / eta)` by best validation
  NDCG@20 so far go on, and the round picks the best at `epochs` (no
  rungs: a fixed fidelity of `epochs`).

  Returns:
    'pick': the mean full-protocol validation NDCG@20 of the pick;
    'top3': how often the pick is among the 3 best of all the study's
    architectures by the full protocol; 'cost': epochs trained per round.
  """
  best_so_far = np.fmax.accumulate(np.nan_to_num(curves, nan=-np.inf), 1)
  top3 = set(np.argsort(-full_valid)[:3].tolist())
  picks = []
  for _ in range(draws):
    alive = rng.choice(len(curves), size, replace=False)
    for rung in rungs:
      order = np.argsort(-best_so_far[alive, rung - 1], kind='stable')
      alive = alive[order[:math.ceil(len(alive) / eta)]]
    picks.append(alive[np.argmax(best_so_far[alive, epochs - 1])])
  return {'pick': float(np.mean(full_valid[picks])),
          'top3': float(np.mean([p in top3 for p in picks])),
          'cost': halving_cost(size, rungs, eta, epochs)}


def schedule_rows(curves: np.ndarray, full_valid: np.ndarray,
                  fixed_epochs: int, round_size: int, last: int,
                  draws: int = 2000, seed: int = 0) -> list[dict]:
  """The search's fixed fidelity (`round_size` candidates of
  `fixed_epochs`) and schedules of successive halving over the rungs,
  each at the same epochs per round: a schedule's round holds as many
  candidates as that compute pays for (at most the study's)."""
  budget = round_size * fixed_epochs
  candidates = [((), 1, fixed_epochs), ((), 1, last)]
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
                               draws, np.random.default_rng(seed))
    rows.append({'rungs': list(rungs), 'eta': eta, 'epochs': epochs,
                 'round_size': size, **replayed})
  return rows


def correlations(scores: np.ndarray, reference: np.ndarray
                 ) -> dict[str, float]:
  """Spearman and Kendall rank correlations of two `[N]` score vectors."""
  return {'spearman': float(stats.spearmanr(scores, reference).statistic),
          'kendall': float(stats.kendalltau(scores, reference).statistic)}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  rungs = sorted({int(r) for r in _RUNGS.value})
  if rungs[0] < 1:
    raise ValueError(f'--rungs={_RUNGS.value} must be epochs >= 1.')
  config = _CONFIG.value
  config.progress = False
  search_fidelity = config.fidelity.to_dict()
  data = driver.TrainingData.from_config(config)
  archs = space.sample(np.random.default_rng(config.seed), _NUM_ARCHS.value,
                       space.subspace_from_string(config.space))
  workdir = _WORKDIR.value
  os.makedirs(workdir, exist_ok=True)
  curves = low_fidelity_curves(config, data, archs, rungs[-1],
                               os.path.join(workdir, 'low_fidelity.jsonl'))
  full = []
  for index, arch in enumerate(archs):
    logging.info('Full protocol %d of %d: %s', index + 1, len(archs), arch)
    (run,) = driver.train_with_seeds(
        config, evaluation.retraining_directory(workdir, arch), arch,
        [config.seed], data)
    full.append(run)
  full_valid = np.array([r['valid/ndcg@20'] for r in full])
  full_test = np.array([r['test/ndcg@20'] for r in full])
  # The search's fixed fidelity: the best of its evaluations.
  evaluated = np.arange(search_fidelity['eval_every'],
                        search_fidelity['epochs'] + 1,
                        search_fidelity['eval_every']) - 1
  fixed = np.nanmax(curves[:, evaluated[evaluated < curves.shape[1]]], 1)
  rows = [{'fidelity': f'epoch {r}', 'epochs': r,
           **correlations(curves[:, r - 1], full_valid),
           **{f'test_{k}': v for k, v in correlations(
               curves[:, r - 1], full_test).items()}} for r in rungs]
  rows.append({'fidelity': 'the search\'s fixed fidelity (best of epochs '
                           f'{", ".join(str(e + 1) for e in evaluated)})',
               'epochs': int(search_fidelity['epochs']),
               **correlations(fixed, full_valid),
               **{f'test_{k}': v for k, v in correlations(
                   fixed, full_test).items()}})
  schedules = schedule_rows(curves, full_valid, search_fidelity['epochs'],
                            config.population_size, rungs[-1])
  write(rows, schedules, curves, rungs, full_valid, archs, full, config,
        search_fidelity, data.dataset.name)


def write(rows, schedules, curves, rungs, full_valid, archs, full, config,
          search_fidelity, dataset: str) -> None:
  """`<out>.json` (every figure), `<out>.md` (the table), `<out>.png`."""
  out = _OUT.value
  os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
  with open(out + '.json', 'w') as f:
    json.dump({'dataset': dataset, 'user_fraction':
               config.data.user_fraction, 'rows': rows,
               'schedules': schedules, 'archs': [
                   {'arch': a.to_string(), 'curve': c.tolist(),
                    'full_valid_ndcg@20': r['valid/ndcg@20'],
                    'full_test_ndcg@20': r['test/ndcg@20'],
                    'full_best_epoch': r['best_epoch']}
                   for a, c, r in zip(archs, curves, full)]}, f, indent=1)
  lines = [
      f'Fidelity study on {dataset}'
      + (f' ({config.data.user_fraction:.0%} of users)'
         if config.data.user_fraction < 1 else '')
      + f': {len(archs)} architectures drawn from the space '
      f'({config.space or "all of it"}), seed {config.seed}. Low fidelity: '
      f'trained in populations of {config.population_size} at batch '
      f'{search_fidelity["batch_size"]}, validation NDCG@20 after each '
      'epoch. Full protocol: the training protocol (at most '
      f'{config.epochs} epochs at batch {config.batch_size}, patience '
      f'{config.patience}); best validation NDCG@20 from '
      f'{full_valid.min():.4f} to {full_valid.max():.4f}.', '',
      '| fidelity | Spearman (valid) | Kendall (valid) | Spearman (test) '
      '| Kendall (test) |', '| --- | ---: | ---: | ---: | ---: |']
  lines += [f'| {r["fidelity"]} | {r["spearman"]:.3f} | {r["kendall"]:.3f} '
            f'| {r["test_spearman"]:.3f} | {r["test_kendall"]:.3f} |'
            for r in rows]
  budget = config.population_size * search_fidelity['epochs']
  lines += [
      '', f'Schedules replayed on these curves at the epochs of one '
      f'fixed-fidelity round ({config.population_size} candidates x '
      f'{search_fidelity["epochs"]} epochs = {budget}): a round of as many '
      'of the architectures as the schedule pays for (at most '
      f'{len(archs)}), halved at each rung by best validation NDCG@20 so '
      'far, picks the best at its last epoch; 2,000 draws. "pick": the mean '
      'full-protocol validation NDCG@20 of the pick; "top 3": how often it '
      'is among the 3 best of all.', '',
      '| rungs | eta | epochs | round size | epochs per round | pick | '
      'top 3 |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |']
  lines += [f'| {",".join(map(str, r["rungs"])) or "none (fixed)"} | '
            f'{r["eta"] if r["rungs"] else ""} | {r["epochs"]} | '
            f'{r["round_size"]} | {r["cost"]} | '
            f'{r["pick"]:.4f} | {r["top3"]:.2f} |' for r in schedules]
  lines += ['', f'![fidelity]({os.path.basename(out)}.png)']
  with open(out + '.md', 'w') as f:
    f.write('\n'.join(lines) + '\n')
  figure, axes = plt.subplots(1, len(rungs), figsize=(3.2 * len(rungs), 3),
                              sharey=True)
  for axis, rung, row in zip(np.atleast_1d(axes), rungs, rows):
    axis.scatter(curves[:, rung - 1], full_valid, s=12)
    axis.set_title(f'epoch {rung}: Spearman {row["spearman"]:.2f}')
    axis.set_xlabel('low-fidelity valid NDCG@20')
  np.atleast_1d(axes)[0].set_ylabel('full-protocol valid NDCG@20')
  figure.tight_layout()
  figure.savefig(out + '.png', dpi=120)
  print('\n'.join(lines))


if __name__ == '__main__':
  common.run(main)
