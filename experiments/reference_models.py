r"""Closed-form references on a split: most popular and tuned EASE.

  python -m experiments.reference_models --config.dataset=ml-100k \
      --config.data_dir=/path/to/datasets --out=results/reference_ml-100k

Loads the dataset and split of a training config (the default protocol of
`experiments/configs/train.py`, so the split of the accuracy table), scores
most popular, and EASE at every L2 weight of `--l2`; selects EASE's weight
on validation NDCG@20 and reports its test metrics (`gnas_jax.reference`).
With `--compare_to` (the accuracy table's CSV), each row also shows its
test NDCG@20 as a multiple of the best hand-designed model's on the same
dataset. Writes `<out>.md` and `<out>.json`.

Neither model is a GNN or in the search space: they tell how much room a
split leaves above tuned LightGCN, which a searched model's gain is read
against.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags
import numpy as np

from experiments import common
from experiments import paper
from gnas_jax import driver
from gnas_jax import graph as graph_lib
from gnas_jax import metrics
from gnas_jax import reference

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/train.py',
    'Training configuration: its dataset, preprocessing and split.',
    lock_config=True)
_L2 = flags.DEFINE_list(
    'l2', [f'{m * 10**e:g}' for e in range(4) for m in (1, 2, 3, 5)]
    + ['10000'],
    'EASE L2 weights tried; validation NDCG@20 selects one.')
_MAX_EASE_GB = flags.DEFINE_float(
    'max_ease_gb', 8.0, "Memory EASE may take for its dense item-item "
    'matrices (2 x 8 x items^2 bytes); a larger catalogue is refused.')
_COMPARE_TO = flags.DEFINE_string(
    'compare_to', 'results/accuracy.csv',
    "An accuracy CSV (`experiments.reproduce`'s); '' shows no ratios.")
_LABEL = flags.DEFINE_string(
    'label', '', "The dataset's name in `--compare_to` and the table "
    "(default: the dataset's own name).")
_OUT = flags.DEFINE_string(
    'out', '', 'Output path without extension (default: '
    'results/reference_<label>).')


def l2_grid(values) -> list[float]:
  """The `--l2` flag's values as floats, each > 0."""
  grid = []
  for value in values:
    try:
      weight = float(value)
    except ValueError:
      weight = None
    if weight is None or not weight > 0:
      raise ValueError(f'--l2={",".join(values)} is not allowed: each '
                       f'weight must be a number > 0, not {value!r}.')
    grid.append(weight)
  return grid


def check_ease_memory(num_items: int, limit_gb: float, label: str) -> None:
  """Raises ValueError when EASE's item matrices exceed `limit_gb`."""
  needed = reference.ease_memory_bytes(num_items) / 2**30
  if needed > limit_gb:
    raise ValueError(
        f'EASE on {label} needs {needed:.1f} GB for its {num_items:,} x '
        f'{num_items:,} item matrices, above --max_ease_gb={limit_gb:g}: '
        'raise it on a machine with the memory, or evaluate a user '
        'subsample with a smaller catalogue.')


def best_hand_designed(path: str, label: str) -> tuple[str, float] | None:
  """(model, test NDCG@20 mean) of the best hand-designed row of `label`
  in an accuracy CSV, or None when it has none."""
  if not path:
    return None
  if not os.path.exists(path):
    raise FileNotFoundError(f'--compare_to={path}: no such file (give an '
                            "accuracy CSV, or '' for no ratios).")
  with open(path, newline='') as f:
    rows = [row for row in csv.DictReader(f)
            if row['dataset'] == label and row['kind'] == 'hand-designed']
  if not rows:
    return None
  best = max(rows, key=lambda row: float(row['test_ndcg@20_mean']))
  return best['model'], float(best['test_ndcg@20_mean'])


def evaluate_references(data: driver.TrainingData, grid: list[float],
                        ks=(10, 20), progress: bool = True) -> dict:
  """Most popular, and EASE at every weight of `grid`.

  Returns:
    {'popular': {'valid': metrics, 'test': metrics},
     'ease': [{'l2', 'valid', 'test', 'seconds'} per weight],
     'ease_selected': the entry with the best validation NDCG@20}.
  """
  dataset = data.dataset
  popularity = np.asarray(data.popularity)

  def scored(user_reps, item_reps):
    return {split: metrics.evaluate_ranking(user_reps, item_reps, task,
                                            popularity, ks)
            for split, task in (('valid', data.valid_task),
                                ('test', data.test_task))}

  results = {'popular': scored(*reference.popularity_representations(
      dataset.num_users, popularity))}
  matrix = graph_lib.interaction_matrix(dataset.train, dataset.num_users,
                                        dataset.num_items)
  results['ease'] = []
  with driver.progress_bar(desc='EASE', total=len(grid), unit='weight',
                           disable=not progress) as bar:
    for weight in grid:
      start = time.perf_counter()
      weights = reference.ease_weights(matrix, weight)
      # Item rows of B^T: user u's score of item i is X[u] . B[:, i].
      entry = {'l2': weight, **scored(matrix, weights.T)}
      entry['seconds'] = time.perf_counter() - start
      results['ease'].append(entry)
      bar.update()
  results['ease_selected'] = max(results['ease'],
                                 key=lambda e: e['valid']['ndcg@20'])
  return results


def format_table(results: dict, label: str, baseline) -> list[str]:
  """The Markdown rows: one per model, then EASE's weight curve."""
  def ratio(value):
    return f'{value / baseline[1]:.3f}x' if baseline else '—'

  lines = ['| model | selected | valid NDCG@20 | test Recall@20 | '
           'test NDCG@20 | x best hand-designed |',
           '| --- | --- | ---: | ---: | ---: | ---: |']
  chosen = results['ease_selected']
  for name, selected, entry in (
      ('most popular', '', results['popular']),
      ('EASE', f'l2={chosen["l2"]:g}', chosen)):
    lines.append(
        f'| {name} | {selected} | {entry["valid"]["ndcg@20"]:.4f} | '
        f'{entry["test"]["recall@20"]:.4f} | '
        f'{entry["test"]["ndcg@20"]:.4f} | '
        f'{ratio(entry["test"]["ndcg@20"])} |')
  if baseline:
    lines.append(f'| {baseline[0]} (tuned, 3 seeds; accuracy table) |  |  '
                 f'|  | {baseline[1]:.4f} | 1.000x |')
  lines += ['', f'EASE on {label} at every L2 weight tried:', '',
            '| l2 | valid NDCG@20 | test NDCG@20 | seconds |',
            '| ---: | ---: | ---: | ---: |']
  lines += [f'| {e["l2"]:g} | {e["valid"]["ndcg@20"]:.4f} | '
            f'{e["test"]["ndcg@20"]:.4f} | {e["seconds"]:.1f} |'
            for e in results['ease']]
  return lines


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  config = _CONFIG.value
  grid = l2_grid(_L2.value)
  data = driver.TrainingData.from_config(config)
  dataset = data.dataset
  label = _LABEL.value or dataset.name
  if data.valid_task is None:
    raise ValueError(f'{label} has no validation split to select EASE\'s '
                     'L2 weight on.')
  check_ease_memory(dataset.num_items, _MAX_EASE_GB.value, label)
  baseline = best_hand_designed(_COMPARE_TO.value, label)
  results = evaluate_references(data, grid, config.ks, config.progress)
  out = _OUT.value or os.path.join('results', f'reference_{label}')
  os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
  with open(out + '.json', 'w') as f:
    json.dump({'dataset': label, 'best_hand_designed': baseline, **results},
              f, indent=1)
  command = shlex.join(['python', '-m', 'experiments.reference_models'] + [
      arg for arg in sys.argv[1:] if not arg.startswith('--config.data_dir')])
  table = format_table(results, label, baseline)
  lines = [
      f'<!-- Written by `{command}`; edit the code, not this file. -->',
      f'Produced on a {paper.machine()}.', '',
      f'Closed-form references on {label}, on the split and with the '
      'full-ranking evaluation of the accuracy table. EASE\'s L2 weight is '
      'selected on validation NDCG@20. Neither model is a GNN or in the '
      f'search space. Evaluated: {paper.evaluated_pairs(dataset)}.', '',
      *table, '']
  with open(out + '.md', 'w') as f:
    f.write('\n'.join(lines))
  print('\n'.join(table[:4 + bool(baseline)]))
  print(f'Wrote {out}.md and {out}.json.')


if __name__ == '__main__':
  common.run(main)
