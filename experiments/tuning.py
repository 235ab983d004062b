"""Hand-designed models tuned alike: the (lr, L2) grid every model gets,
selection on validation NDCG@20 at one seed (then, for sampled softmax and
where a grid names them, the numbers of negatives at the selected lr and
L2), then every seed of the selected setting; and their tables
(`experiments.baselines` and the accuracy table of `experiments.reproduce`
use these).
"""

import os

from absl import logging
import numpy as np

from gnas_jax import driver
from gnas_jax import space

COLUMNS = ('test/recall@20', 'test/ndcg@20', 'test/recall@10',
           'test/ndcg@10')


def tuning_grid(arch: str, grid) -> list[str]:
  """`arch` with each (lr, L2) of `grid` (a config's `tuning`: 'lr' and
  'l2' tuples); `[arch]` without one."""
  if not grid or not (grid.get('lr') or grid.get('l2')):
    return [arch]
  default = space.from_string(arch)
  return [f'{arch},lr={lr},l2={l2}'
          for lr in grid.get('lr') or (default.lr,)
          for l2 in grid.get('l2') or (default.l2,)]


def negatives_loss(entry: int | str) -> str:
  """The sampled-softmax loss a 'negatives' grid entry names: 0 the
  protocol's count ('softmax'), N 'softmax-N', and a loss name (negatives
  shared by a mini-batch: 'shared-softmax-4096') itself."""
  if isinstance(entry, str):
    choices = space.DECISION_BY_NAME['loss'].choices
    if entry not in choices or entry == 'bpr':
      raise ValueError(
          f'config.tuning.negatives: {entry!r} is no sampled-softmax loss; '
          f'a number of negatives or one of '
          f'{", ".join(c for c in choices if c != "bpr")}.')
    return entry
  return f'softmax-{entry}' if entry else 'softmax'


def is_tuned(arch: str, grid) -> bool:
  """Whether `grid` (a config's `tuning`) gives `arch` more than one
  setting to select from on validation."""
  settings = tuning_grid(arch, grid)
  return len(settings) > 1 or bool(negatives_settings(settings[0], grid))


def negatives_settings(setting: str, grid) -> list[str]:
  """`setting` with each other sampled-softmax loss of `grid`'s 'negatives'
  tuple (`negatives_loss`: numbers of negatives per positive, or losses
  over negatives shared by a mini-batch), for a sampled-softmax
  architecture; `[]` for BPR, which scores one, or without such a tuple.
  They are tuned after the (lr, L2) grid, at the setting it selected: a
  second axis, not a product with the first."""
  entries = grid.get('negatives') if grid else ()
  loss = space.from_string(setting).loss
  if not entries or loss == 'bpr':
    return []
  losses = [negatives_loss(entry) for entry in entries]
  return [f'{setting},loss={other}' for other in losses if other != loss]


def setting_directory(arch: str) -> str:
  """One directory name for an architecture string (a per-layer one's
  slashes would nest directories): 'lightgcn,lr=0.001' ->
  'lightgcn_lr=0.001', 'agg=gcn/sage' -> 'agg=gcn-sage'."""
  return arch.replace(',', '_').replace('/', '-')


def run_all(config, workdir: str,
            data: driver.TrainingData | None = None,
            record: str | None = None) -> dict[str, dict]:
  """Tunes (`tuning_grid`) and trains each of `config.archs` on `data`
  (None: `config`'s dataset), each run in `workdir` or read from the
  `record` of finished runs, to which it is added
  (`driver.train_with_seeds`).

  Returns:
    architecture -> {'selected': the setting trained with every seed,
    'runs': its runs, 'tuning': {setting: validation NDCG@20 at the tuning
    seed, None where it diverged}, 'diverged_finals': the better settings
    passed over because a final seed diverged}.
  """
  options = config.get('tuning')
  # A bad entry fails now, not after the (lr, L2) grid has trained.
  for entry in (options.get('negatives') or ()) if options else ():
    negatives_loss(entry)
  data = driver.TrainingData.from_config(config, data)
  tuned = [arch for arch in config.archs if is_tuned(arch, options)]
  if tuned and data.valid_task is None:
    raise ValueError(
        f'config.tuning gives {tuned[0]} a grid, which is selected on '
        'validation NDCG@20, and this split has no validation pairs '
        '(data.given_valid_ratio=0 or a zero validation share of '
        'data.split_ratios); tune with validation, then retrain the '
        'selected setting without it.')

  def runs(arch, seeds):
    return driver.train_with_seeds(
        config, os.path.join(workdir, setting_directory(arch)),
        space.from_string(arch), seeds, data, record=record)

  def tune(settings, scores):
    for setting in settings:
      try:
        (run,) = runs(setting, [options.seed])
      except FloatingPointError as error:
        # A setting that diverges loses the tuning; the others go on.
        logging.warning('Tuning %s: %s', setting, error)
        scores[setting] = None
        continue
      scores[setting] = run['valid/ndcg@20']

  def ranking(grid, scores):
    # Best first; a stable sort keeps the grid's order among ties.
    return sorted((s for s in grid if scores.get(s, 0.0) is not None),
                  key=lambda s: scores.get(s, 0.0), reverse=True)

  results = {}
  for arch in config.archs:
    grid = tuning_grid(arch, options)
    scores = {}
    if is_tuned(arch, options):
      tune(grid, scores)
      if all(score is None for score in scores.values()):
        raise ValueError(
            f'Every setting of the tuning grid of {arch} diverged ('
            + ', '.join(grid) + '); give it a grid of smaller learning '
            'rates (config.tuning.lr).')
      more = negatives_settings(ranking(grid, scores)[0], options)
      tune(more, scores)
      grid = grid + more
    ranked = ranking(grid, scores)
    unstable, divergence = [], None
    for selected in ranked:
      try:
        final_runs = runs(selected, config.seeds)
        break
      except FloatingPointError as error:
        # Divergence is the setting's outcome, and the next one by
        # validation takes its place, by the same rule for every model.
        logging.warning('%s diverged with a final seed (%s); its next best '
                        'setting is trained instead.', selected, error)
        unstable.append(selected)
        divergence = error
    else:
      if len(grid) == 1:
        raise ValueError(f'{arch}: {divergence}')
      raise ValueError(
          f'{arch} diverged with a final seed of every setting that trained '
          f'at the tuning seed ({", ".join(unstable)}); give it smaller '
          'learning rates (config.tuning.lr).')
    results[arch] = {'selected': selected, 'tuning': scores,
                     'runs': final_runs, 'diverged_finals': unstable}
  return results


def summary_table(results: dict[str, dict]) -> str:
  """Markdown: one row per architecture, mean ± sample std over runs: the
  validation NDCG@20 that selects, the test metrics, the best and the
  last epoch."""
  metrics = ('valid/ndcg@20', *COLUMNS)
  header = ['model', *metrics, 'best epoch', 'epochs run', 's / epoch',
            'runs']
  lines = ['| ' + ' | '.join(header) + ' |',
           '| --- |' + ' ---: |' * (len(header) - 1)]
  for arch, result in results.items():
    runs = result['runs']
    # A run without validation (a retraining on every training pair) has
    # no validation column.
    cells = [driver.format_statistic(driver.seed_statistics(runs, column),
                                     4 if column in metrics else 2)
             if all(column in run for run in runs) else '-'
             for column in (*metrics, 'best_epoch', 'epochs_run',
                            'train_seconds_per_epoch')]
    label = arch if result['selected'] == arch else (
        f'{arch} ({result["selected"][len(arch) + 1:]})')
    label += final_divergence_note(arch, result)
    lines.append(f'| {label} | ' + ' | '.join(cells) + f' | {len(runs)} |')
  return '\n'.join(lines)


def final_divergence_note(arch: str, result: dict) -> str:
  """' (diverged with a final seed: lr=0.01,l2=0.0)' naming the settings of
  `arch` that `run_all` passed over for it, or ''."""
  passed_over = result.get('diverged_finals')
  if not passed_over:
    return ''
  return (' (diverged with a final seed: '
          + '; '.join(s[len(arch) + 1:] or s for s in passed_over) + ')')


CSV_COLUMNS = ('dataset', 'model', 'kind', 'arch', 'test_recall@20_mean',
               'test_recall@20_std', 'test_ndcg@20_mean', 'test_ndcg@20_std',
               'seeds', 'best_epoch')


def csv_row(dataset: str, model: str, kind: str, arch: str,
            runs: list[dict]) -> dict:
  """One model's machine-readable row (`CSV_COLUMNS`): `arch` is the full
  string of the setting its `runs` trained, which `experiments.train
  --config.arch=...` retrains."""
  recall = driver.seed_statistics(runs, 'test/recall@20')
  ndcg = driver.seed_statistics(runs, 'test/ndcg@20')
  return {'dataset': dataset, 'model': model, 'kind': kind,
          'arch': space.from_string(arch).to_string(),
          'test_recall@20_mean': recall['mean'],
          'test_recall@20_std': recall['std'],
          'test_ndcg@20_mean': ndcg['mean'], 'test_ndcg@20_std': ndcg['std'],
          'seeds': ' '.join(map(str, ndcg['seeds'])),
          'best_epoch': float(np.mean([r['best_epoch'] for r in runs]))}


# What a row's model is: designed by hand, or found by a search.
KINDS = ('hand-designed', 'searched')


def check_kind(kind: str) -> str:
  """`kind` if it is one of `KINDS`; otherwise a ValueError naming it."""
  if kind not in KINDS:
    raise ValueError(f'config.kind is {kind!r}; it must be one of '
                     f'{", ".join(map(repr, KINDS))}.')
  return kind


def dataset_label(dataset: str, user_fraction: float = 1.0) -> str:
  """The CSV's name for `dataset` under a user subsample: the registry's
  name, with `-subP` for P% of the users (`gowalla-sub10`), so a subsample
  is never read as the whole dataset."""
  if user_fraction >= 1:
    return dataset
  return f'{dataset}-sub{100 * user_fraction:g}'


def csv_rows(results: dict[str, dict], dataset: str,
             kind: str = 'hand-designed') -> list[dict]:
  """One row per model of `run_all`'s results (`csv_row`), each of `kind`
  (`KINDS`)."""
  check_kind(kind)
  return [csv_row(dataset, arch, kind, result['selected'], result['runs'])
          for arch, result in results.items()]
