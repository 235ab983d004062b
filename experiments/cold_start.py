r"""Evaluates cold start by fold-in against popularity and retraining.

  python -m experiments.cold_start --config=experiments/configs/cold_start.py \
      --workdir=/tmp/gnas_cold --config.data_dir=../shared/datasets

A share of users (`config.cold.fraction` of those with at least
`min_interactions`) is removed from training entirely. The model trains on
the others; then each held-out user's interactions, in a seeded random
order (the datasets keep no timestamps after splitting), are cut into the
first n (the history the model is given) and the rest (the targets). For
each n the table reports Recall@20 and NDCG@20 over the targets, history
excluded from ranking, for:

  fold-in        the trained model, each user folded in alone (no
                 retraining)
  popularity     items ranked by training popularity
  in training    the same users' results from a model retrained with their
                 n interactions inside the training data

Writes `WORKDIR/cold_start.json` and prints a Markdown table.
"""

import dataclasses
import json
import os

from absl import app
from absl import flags
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

from experiments import common
from gnas_jax import data as data_lib
from gnas_jax import driver
from gnas_jax import metrics as metrics_lib
from gnas_jax import recommend

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/cold_start.py', 'Configuration.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['workdir'])

KS = (20,)


def split_cold_users(dataset, fraction, min_interactions, seed):
  """`(cold users [C], their interactions in random order [C lists])`."""
  pairs = np.concatenate([dataset.train, dataset.valid, dataset.test])
  counts = np.bincount(pairs[:, 0], minlength=dataset.num_users)
  eligible = np.flatnonzero(counts >= min_interactions)
  rng = np.random.default_rng(seed)
  cold = np.sort(rng.choice(eligible, int(round(fraction * len(eligible))),
                            replace=False))
  items = [rng.permutation(pairs[pairs[:, 0] == u, 1]) for u in cold]
  return cold, items


def without_users(dataset, users, extra_train=None):
  """The dataset with `users`' pairs removed (and `extra_train` added)."""
  def keep(pairs):
    return pairs[~np.isin(pairs[:, 0], users)]
  train_pairs = keep(dataset.train)
  if extra_train is not None:
    train_pairs = np.unique(np.concatenate([train_pairs, extra_train]),
                            axis=0).astype(np.int32)
  return dataclasses.replace(dataset, train=train_pairs,
                             valid=keep(dataset.valid),
                             test=keep(dataset.test))


def task_pairs(histories, targets):
  """Local-index `[n, 2]` pairs of the held-out users."""
  def pairs(lists):
    return np.concatenate([np.stack([np.full(len(x), u), x], 1)
                           for u, x in enumerate(lists)]).astype(np.int32)
  return pairs(histories), pairs(targets)


def metrics_of(user_reps, item_reps, histories, targets, num_items,
               popularity):
  history_pairs, target_pairs = task_pairs(histories, targets)
  task = metrics_lib.build_ranking_task(len(histories), num_items,
                                        [history_pairs], target_pairs)
  result = metrics_lib.evaluate_ranking(jnp.asarray(user_reps),
                                        jnp.asarray(item_reps), task,
                                        popularity, KS)
  return {'recall@20': result['recall@20'], 'ndcg@20': result['ndcg@20']}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  config = _CONFIG.value
  workdir = _WORKDIR.value
  sizes = tuple(config.cold.history_sizes)
  if max(sizes) >= config.cold.min_interactions:
    raise ValueError(
        f'config.cold.history_sizes={sizes} must stay below '
        f'config.cold.min_interactions={config.cold.min_interactions}, so '
        'that every held-out user keeps targets.')
  dataset = data_lib.load_dataset(config)
  cold, items = split_cold_users(dataset, config.cold.fraction,
                                 config.cold.min_interactions,
                                 config.cold.seed)
  base = without_users(dataset, cold)
  driver.train_and_evaluate(config, os.path.join(workdir, 'without_cold'),
                           base)
  model = recommend.Recommender.load(os.path.join(workdir, 'without_cold'))
  popularity = jnp.asarray(base.item_popularity(), jnp.float32)
  rows = []
  for n in config.cold.history_sizes:
    histories = [x[:n] for x in items]
    targets = [x[n:] for x in items]
    raw_histories = [[str(model.raw_item_ids[i]) for i in h]
                     for h in histories]
    row = {'n': n, 'users': len(cold)}
    # One user at a time: held-out users do not see each other.
    folded = np.concatenate([model.fold_in([h]) for h in raw_histories])
    row['fold_in'] = metrics_of(folded, model.item_reps, histories, targets,
                                dataset.num_items, popularity)
    row['popularity'] = metrics_of(
        np.ones((len(cold), 1), np.float32), np.asarray(popularity)[:, None],
        histories, targets, dataset.num_items, popularity)
    if config.cold.compare_in_training:
      extra = np.concatenate([np.stack([np.full(n, u), h], 1)
                              for u, h in zip(cold, histories)])
      run_dir = os.path.join(workdir, f'in_training_n{n}')
      driver.train_and_evaluate(config, run_dir,
                               without_users(dataset, cold, extra))
      warm = recommend.Recommender.load(run_dir)
      row['in_training'] = metrics_of(
          warm.user_reps[cold], warm.item_reps, histories, targets,
          dataset.num_items, popularity)
    rows.append(row)
  with open(os.path.join(workdir, 'cold_start.json'), 'w') as f:
    json.dump(rows, f, indent=2)
  columns = [c for c in ('fold_in', 'popularity', 'in_training')
             if c in rows[0]]
  print('| n | users | ' + ' | '.join(
      f'{c.replace("_", " ")} R@20 | {c.replace("_", " ")} N@20'
      for c in columns) + ' |')
  print('| ---: | ---: |' + ' ---: | ---: |' * len(columns))
  for row in rows:
    print(f'| {row["n"]} | {row["users"]} | ' + ' | '.join(
        f'{row[c]["recall@20"]:.4f} | {row[c]["ndcg@20"]:.4f}'
        for c in columns) + ' |')


if __name__ == '__main__':
  common.run(main)
