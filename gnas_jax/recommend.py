"""Trained recommenders as files: export, load, recommend, fold in.

    recommend.export_model(directory, arch, params, dataset)
    model = recommend.Recommender.load(directory)
    model.recommend(['196', '186'], k=20)           # raw user ids
    model.similar_items('242', k=10)                 # item association
    model.recommend_for_histories([['50', '181']])   # a new user (cold start)

A model directory holds `model.json` (format version, architecture string,
raw id mappings, the training configuration) and, written with orbax,
`arrays/` (parameters, the training graph's pairs and every known
interaction, which recommendations exclude). Loading needs neither the
dataset nor the training code path.

Cold start by fold-in: a user absent from training, with a few
interactions, is added to the training graph as a new node whose layer-0
embedding is the mean of its items' layer-0 embeddings; the trained model's
propagation over the augmented graph (degrees include the new edges) then
computes its representation (the GNN's inductive step), with no parameter
updated. Recommendations score it against the trained item
representations, as for every other user. Users folded in by one call
join the graph together, so with two or more layers those who share items
influence each other slightly; fold in one at a time to avoid it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from gnas_jax import graph as graph_lib
from gnas_jax import models
from gnas_jax import space

FORMAT_VERSION = 1
_META = 'model.json'
_ARRAYS = 'arrays'


def model_directory(path: str) -> str:
  """`path` itself, or its `model/` folder (a training workdir)."""
  if os.path.exists(os.path.join(path, _META)):
    return path
  inner = os.path.join(path, 'model')
  if os.path.exists(os.path.join(inner, _META)):
    return inner
  raise FileNotFoundError(
      f'No exported model in {path!r} (expected {_META} there or in '
      f'{os.path.join(path, "model")!r}); train one with experiments.train, '
      'which exports its best state to WORKDIR/model.')


def export_model(directory: str, arch: space.Architecture, params,
                 dataset, config: dict[str, Any] | None = None) -> None:
  """Writes a trained model to `directory` (replacing an earlier export).

  Args:
    directory: the model directory.
    arch: the trained architecture.
    params: its Flax parameters (of a model built for `[arch]`).
    dataset: the `gnas_jax.data.Dataset` it was trained on.
    config: the training configuration, stored for the record.
  """
  directory = os.path.abspath(directory)
  # Written beside the target, then swapped in: a reader never finds
  # arrays and metadata of two different exports.
  staging = f'{directory}.partial'
  shutil.rmtree(staging, ignore_errors=True)
  seen = np.concatenate([dataset.train, dataset.valid, dataset.test])
  arrays = {'params': jax.device_get(params),
            'train': np.asarray(dataset.train, np.int32),
            'seen': np.unique(seen, axis=0).astype(np.int32)}
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(staging, _ARRAYS), arrays)
    checkpointer.wait_until_finished()
  meta = {'format_version': FORMAT_VERSION, 'arch': arch.to_string(),
          'dataset': dataset.name, 'num_users': int(dataset.num_users),
          'num_items': int(dataset.num_items),
          'raw_user_ids': [str(u) for u in dataset.raw_user_ids],
          'raw_item_ids': [str(i) for i in dataset.raw_item_ids],
          'config': config or {}}
  with open(os.path.join(staging, _META), 'w') as f:
    json.dump(meta, f)
  shutil.rmtree(directory, ignore_errors=True)
  os.replace(staging, directory)


@functools.partial(jax.jit, static_argnames='k')
def _top_k(user_reps, item_reps, excluded, k):
  """Top items per row: `[B, D] x [I, D]`, `[B, I]` bool excluded."""
  scores = user_reps @ item_reps.T
  scores = jnp.where(excluded, -jnp.inf, scores)
  return jax.lax.top_k(scores, k)


class Recommender:
  """A loaded model: representations of every training user and item."""

  def __init__(self, directory: str):
    directory = model_directory(directory)
    with open(os.path.join(directory, _META)) as f:
      meta = json.load(f)
    version = meta.get('format_version')
    if version != FORMAT_VERSION:
      raise ValueError(
          f'{directory} holds a model of format version {version}; this '
          f'gnas-jax reads version {FORMAT_VERSION}. Export it again with '
          'the matching version.')
    self.directory = directory
    self.arch = space.from_string(meta['arch'])
    self.num_users, self.num_items = meta['num_users'], meta['num_items']
    self.raw_user_ids = np.asarray(meta['raw_user_ids'])
    self.raw_item_ids = np.asarray(meta['raw_item_ids'])
    if (len(self.raw_user_ids), len(self.raw_item_ids)) != (
        self.num_users, self.num_items):
      raise ValueError(f'{directory}/{_META} is inconsistent: '
                       f'{len(self.raw_user_ids)} user ids for '
                       f'{self.num_users} users.')
    self.user_index = {u: i for i, u in enumerate(self.raw_user_ids)}
    self.item_index = {v: i for i, v in enumerate(self.raw_item_ids)}
    self.config = meta['config']
    self.model = models.build_model(self.num_users, self.num_items,
                                    [self.arch])
    with ocp.StandardCheckpointer() as checkpointer:
      arrays = checkpointer.restore(os.path.join(directory, _ARRAYS))
    self.params = jax.tree.map(jnp.asarray, arrays['params'])
    self.train_pairs = np.asarray(arrays['train'], np.int32)
    self.seen = _csr(np.asarray(arrays['seen']), self.num_users)
    self.graph = graph_lib.build_graph(self.train_pairs, self.num_users,
                                       self.num_items)
    self._check_shapes(jax.eval_shape(
        self.model.init, jax.random.PRNGKey(0), self.graph,
        jnp.asarray(self.arch.encode())))
    reps = self.model.apply(self.params, self.graph,
                            jnp.asarray(self.arch.encode()))
    self.user_reps = reps[:self.num_users]
    self.item_reps = reps[self.num_users:]

  @classmethod
  def load(cls, directory: str) -> Recommender:
    """The model `export_model` wrote to `directory`."""
    return cls(directory)

  def _check_shapes(self, expected):
    """Parameters must be those the architecture's model has."""
    got = jax.tree.map(lambda x: x.shape, self.params)
    want = jax.tree.map(lambda x: x.shape, expected)
    if got != want:
      raise ValueError(
          f'The parameters in {self.directory} do not match architecture '
          f'{self.arch.to_string()!r} with {self.num_users} users and '
          f'{self.num_items} items; the model directory is damaged or from '
          'another version.')

  def _check_k(self, k: int) -> int:
    if not 1 <= k <= self.num_items:
      raise ValueError(f'k={k} is out of range: choose 1 <= k <= '
                       f'{self.num_items} (the number of items).')
    return k

  def _item_ids(self, raw_items: Sequence[str]) -> np.ndarray:
    unknown = [i for i in raw_items if str(i) not in self.item_index]
    if unknown:
      raise KeyError(
          f'Unknown item ids {unknown[:10]}' +
          (f' and {len(unknown) - 10} more' if len(unknown) > 10 else '') +
          f'; the model knows {self.num_items} items (e.g. '
          f'{", ".join(self.raw_item_ids[:3])}).')
    return np.array([self.item_index[str(i)] for i in raw_items], np.int64)

  def _user_ids(self, raw_users: Sequence[str]) -> np.ndarray:
    unknown = [u for u in raw_users if str(u) not in self.user_index]
    if unknown:
      raise KeyError(
          f'Unknown user ids {unknown[:10]}; the model was trained on '
          f'{self.num_users} users (e.g. {", ".join(self.raw_user_ids[:3])}).'
          ' Recommend for a new user from their interactions with '
          '`recommend_for_histories` (command line: --history).')
    return np.array([self.user_index[str(u)] for u in raw_users], np.int64)

  def _rank(self, user_reps, excluded_rows, k, batch_size=1024):
    """Top-k (raw item id, score) lists for `[B, D]` representations."""
    results = []
    for start in range(0, len(user_reps), batch_size):
      rows = excluded_rows[start:start + batch_size]
      block = user_reps[start:start + batch_size]
      count = block.shape[0]
      # Fixed batch shapes: one compilation serves every request size.
      size = batch_size if count > 64 else 64
      excluded = np.zeros((size, self.num_items), bool)
      for r, items in enumerate(rows):
        excluded[r, items] = True
      padded = jnp.zeros((size, block.shape[1])).at[:count].set(block)
      scores, items = jax.device_get(_top_k(
          padded, self.item_reps, jnp.asarray(excluded), k))
      for r in range(count):
        valid = np.isfinite(scores[r])
        results.append([(str(self.raw_item_ids[i]), float(s)) for i, s in
                        zip(items[r][valid], scores[r][valid])])
    return results

  def recommend(self, raw_users: Sequence[str], k: int = 20,
                exclude_seen: bool = True
                ) -> list[list[tuple[str, float]]]:
    """Each user's top-k (raw item id, score), best first."""
    k = self._check_k(k)
    users = self._user_ids(raw_users)
    excluded = [self.seen[u] if exclude_seen else () for u in users]
    return self._rank(self.user_reps[users], excluded, k)

  def fold_in(self, histories: Sequence[Sequence[str]]) -> jax.Array:
    """`[N, D]` representations of new users from their raw item ids."""
    if not histories or any(not h for h in histories):
      raise ValueError('Fold-in needs at least one interaction per new user.')
    items = [np.unique(self._item_ids(h)) for h in histories]
    new = len(items)
    pairs = np.concatenate(
        [self.train_pairs] + [np.stack(
            [np.full(len(i), self.num_users + n), i], 1)
                              for n, i in enumerate(items)]).astype(np.int32)
    # New users are nodes U..U+N-1; their layer-0 rows go between the
    # users' and the items' rows of the embedding table.
    table = self.params['params']['embedding']
    item_table = table[self.num_users:]
    new_rows = jnp.stack([item_table[i].mean(0) for i in items])
    embedding = jnp.concatenate([table[:self.num_users], new_rows,
                                 item_table])
    params = {**self.params,
              'params': {**self.params['params'], 'embedding': embedding}}
    model = self.model.clone(num_users=self.num_users + new)
    graph = graph_lib.build_graph(pairs, self.num_users + new,
                                  self.num_items, self.graph.backend)
    reps = model.apply(params, graph, jnp.asarray(self.arch.encode()))
    return reps[self.num_users:self.num_users + new]

  def recommend_for_histories(self, histories: Sequence[Sequence[str]],
                              k: int = 20, exclude_seen: bool = True
                              ) -> list[list[tuple[str, float]]]:
    """Top-k for new users given their interactions (cold start)."""
    k = self._check_k(k)
    reps = self.fold_in(histories)
    excluded = [self._item_ids(h) if exclude_seen else () for h in histories]
    return self._rank(reps, excluded, k)

  def similar_items(self, raw_item: str, k: int = 10
                    ) -> list[tuple[str, float]]:
    """The k items whose representations are closest in cosine."""
    if not 1 <= k < self.num_items:
      raise ValueError(f'k={k} is out of range: choose 1 <= k <= '
                       f'{self.num_items - 1} (the other items).')
    item = self._item_ids([raw_item])[0]
    reps = models.l2_normalise(self.item_reps)
    scores = np.array(reps @ reps[item])
    scores[item] = -np.inf
    order = np.argsort(-scores, kind='stable')[:k]
    return [(str(self.raw_item_ids[i]), float(scores[i])) for i in order]


def _csr(pairs: np.ndarray, num_users: int) -> list[np.ndarray]:
  """Each user's items, from `[n, 2]` pairs."""
  order = np.argsort(pairs[:, 0], kind='stable')
  pairs = pairs[order]
  bounds = np.searchsorted(pairs[:, 0], np.arange(num_users + 1))
  return [pairs[bounds[u]:bounds[u + 1], 1] for u in range(num_users)]
