"""Training one recommender: sampling, loss, jitted steps and the loop.

The loop follows LightGCN's protocol: every step propagates over the full
training graph, scores a mini-batch of (user, positive, negatives) triples,
and minimises BPR (or sampled softmax) plus L2 on the batch's layer-0
embeddings, with Adam. Validation NDCG@20 drives early stopping; the best
state is checkpointed with orbax and restored for the test.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import resource
import time
from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
from absl import logging

from gnas_jax import data as data_lib
from gnas_jax import graph as graph_lib
from gnas_jax import metrics as metrics_lib
from gnas_jax import models
from gnas_jax import recommend
from gnas_jax import space
from gnas_jax import workdir as workdir_lib

# Adam whose learning rate lives in the optimizer state, so it can differ per
# architecture (and per candidate of a population) inside one program.
OPTIMIZER = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)


@flax.struct.dataclass
class Batch:
  """A mini-batch of training triples shared by every model trained on it.

  Attributes:
    users: `[B]` int32 user ids.
    positives: `[B]` int32 item ids the users interacted with in training.
    negatives: `[B, K]` int32 item ids they did not.
  """
  users: jax.Array
  positives: jax.Array
  negatives: jax.Array


class BatchSampler:
  """Shuffles the training pairs each epoch and draws uniform negatives.

  Negatives are uniform over the items a user has *not* interacted with in
  training (rejection sampling against the sorted training pairs). Epoch `e`
  draws from `np.random.default_rng((seed, e))`, so a resumed run samples
  exactly what an uninterrupted one would.
  """

  def __init__(self, train: np.ndarray, num_items: int, batch_size: int,
               num_negatives: int, seed: int):
    self.train = np.asarray(train, np.int64)
    self.num_items = num_items
    self.batch_size = batch_size
    self.num_negatives = num_negatives
    self.seed = seed
    self._keys = np.sort(self.train[:, 0] * num_items + self.train[:, 1])
    degrees = np.bincount(self.train[:, 0])
    if degrees.size and degrees.max() >= num_items:
      user = int(np.argmax(degrees))
      raise ValueError(
          f'User {user} interacted with all {num_items} items in training; '
          'no negative item can be sampled for it.')

  @property
  def steps_per_epoch(self) -> int:
    return max(1, math.ceil(len(self.train) / self.batch_size))

  def _is_training_pair(self, users, items):
    keys = users * self.num_items + items
    where = np.searchsorted(self._keys, keys)
    where = np.minimum(where, self._keys.size - 1)
    return self._keys[where] == keys

  def epoch(self, epoch: int) -> Batch:
    """All batches of an epoch as numpy arrays with a leading step axis."""
    rng = np.random.default_rng((self.seed, epoch))
    steps, size = self.steps_per_epoch, self.batch_size
    order = rng.permutation(len(self.train))
    # Fill the last batch with extra random pairs: every step has one shape.
    extra = rng.integers(0, len(self.train), steps * size - order.size)
    pairs = self.train[np.concatenate([order, extra])]
    users = np.repeat(pairs[:, 0:1], self.num_negatives, axis=1)
    negatives = rng.integers(0, self.num_items, users.shape)
    redraw = self._is_training_pair(users, negatives)
    while redraw.any():
      negatives[redraw] = rng.integers(0, self.num_items, redraw.sum())
      redraw[redraw] = self._is_training_pair(users[redraw],
                                              negatives[redraw])
    return Batch(
        users=pairs[:, 0].reshape(steps, size).astype(np.int32),
        positives=pairs[:, 1].reshape(steps, size).astype(np.int32),
        negatives=negatives.reshape(steps, size, -1).astype(np.int32))


@flax.struct.dataclass
class TrainState:
  """Everything that changes while a model trains.

  Attributes:
    step: scalar int32 count of applied updates.
    params: the model's parameters.
    opt_state: `OPTIMIZER` state (with the learning rate as a hyperparameter).
    arch: `[space.NUM_DECISIONS]` int32 encoded architecture.
  """
  step: jax.Array
  params: Any
  opt_state: Any
  arch: jax.Array


@functools.partial(jax.jit, static_argnames=('model',))
def init_state(model: models.GNNRecommender, graph: graph_lib.BipartiteGraph,
               arch: jax.Array, key: jax.Array) -> TrainState:
  """Initial parameters and optimizer state for an encoded architecture."""
  params = model.init(key, graph, arch)
  opt_state = OPTIMIZER.init(params)
  opt_state.hyperparams['learning_rate'] = models.arch_value(arch, 'lr')
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=opt_state, arch=arch)


def recommendation_loss(params, arch: jax.Array, reps: jax.Array,
                        batch: Batch, num_users: int,
                        losses: Sequence[str] = ('bpr', 'softmax'),
                        vectorised: bool = False
                        ) -> tuple[jax.Array, dict[str, Any]]:
  """The architecture's ranking loss plus L2 on layer-0 embeddings.

  BPR uses the first negative: `-log sigmoid(s(u, p) - s(u, n))`. Sampled
  softmax uses all K: `-log softmax([s(u, p), s(u, n_1..K)])_0`. The L2 term
  is `l2 / 2 * (|e_u|^2 + |e_p|^2 + |e_n|^2) / B` over the layer-0 embeddings
  of the batch (LightGCN's convention), with the negatives the loss used.

  Args:
    params: model parameters.
    arch: encoded architecture.
    reps: `[N, D]` node representations from the model.
    batch: the triples.
    num_users: U (items are nodes `U + item`).
    losses: the losses that can occur (a model shape's); only the
      architecture's own is computed, unless `vectorised`.
    vectorised: select rather than branch (see `models.select`).

  Returns:
    (total loss, {'loss', 'ranking_loss', 'l2_loss'}).
  """
  users = reps[batch.users]
  positive_scores = jnp.sum(users * reps[num_users + batch.positives], -1)

  def squared(rows):
    return jnp.sum(models.layer0_embeddings(params, arch, rows) ** 2, -1)

  def loss_terms(name):
    # BPR gathers one negative per example, not the K sampled for softmax.
    negatives = batch.negatives[:, :1] if name == 'bpr' else batch.negatives
    negative_scores = jnp.einsum('bd,bkd->bk', users,
                                 reps[num_users + negatives])
    if name == 'bpr':
      per_example = -jax.nn.log_sigmoid(positive_scores -
                                        negative_scores[:, 0])
    else:
      logits = jnp.concatenate([positive_scores[:, None], negative_scores],
                               1)
      per_example = -jax.nn.log_softmax(logits, axis=-1)[:, 0]
    return per_example, squared(num_users + negatives).sum(-1)

  # Rematerialised: a switch under autodiff allocates every branch's
  # residuals, and sampled softmax's gathered negatives ([B, K, D]) would
  # be zero-filled for every BPR model at each step.
  per_example, negative_l2 = models.select(
      arch[space.index('loss')], tuple(losses),
      space.DECISION_BY_NAME['loss'].choices,
      jax.checkpoint(loss_terms, static_argnums=0), vectorised)
  ranking = jnp.mean(per_example)
  l2 = models.arch_value(arch, 'l2') * 0.5 * jnp.mean(
      squared(batch.users) + squared(num_users + batch.positives) +
      negative_l2)
  total = ranking + l2
  return total, {'loss': total, 'ranking_loss': ranking, 'l2_loss': l2}


def apply_update(model: models.GNNRecommender, state: TrainState,
                 graph: graph_lib.BipartiteGraph, batch: Batch,
                 key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
  """One Adam step on a mini-batch; `key` is folded with the step count.

  Pure and unjitted: `train_step` jits it for one model, and the population
  engine maps it over candidates.
  """
  key = jax.random.fold_in(key, state.step)

  def loss_fn(params):
    reps = model.apply(params, graph, state.arch, train=True,
                       rngs={'dropout': key})
    return recommendation_loss(params, state.arch, reps, batch,
                               model.num_users, model.shape.values('loss'),
                               model.vectorised)

  grads, step_metrics = jax.grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = OPTIMIZER.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return state.replace(step=state.step + 1, params=params,
                       opt_state=opt_state), step_metrics


train_step = jax.jit(apply_update, static_argnames=('model',),
                     donate_argnames=('state',))


@functools.partial(jax.jit, static_argnames=('model',))
def representations(model: models.GNNRecommender, params,
                    graph: graph_lib.BipartiteGraph,
                    arch: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`([U, D], [I, D])` user and item representations in evaluation mode."""
  reps = model.apply(params, graph, arch)
  return reps[:model.num_users], reps[model.num_users:]


def evaluate(model: models.GNNRecommender, state: TrainState,
             graph: graph_lib.BipartiteGraph, task: metrics_lib.RankingTask,
             popularity: jax.Array, ks=(10, 20)) -> dict[str, float]:
  """Full-ranking metrics of the state's model on a task."""
  user_reps, item_reps = representations(model, state.params, graph,
                                         state.arch)
  return metrics_lib.evaluate_ranking(user_reps, item_reps, task, popularity,
                                      ks)


def peak_rss_mb() -> float:
  """Peak resident memory of this process so far, in MiB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclasses.dataclass
class _Progress:
  """Early-stopping bookkeeping, checkpointed with the state."""
  epoch: int = 0
  best_epoch: int = -1
  best_score: float = -math.inf
  evaluations_without_improvement: int = 0
  best_valid: dict[str, float] = dataclasses.field(default_factory=dict)
  epoch_seconds: list[float] = dataclasses.field(default_factory=list)


class _Checkpoints:
  """The latest states (to resume) and the best state (to test), via orbax.

  Two latest states are kept: when the newest is damaged, the run resumes
  from the one before (`workdir.restore_newest_intact`).
  """

  def __init__(self, directory: str):
    self.latest = ocp.CheckpointManager(
        os.path.join(directory, 'latest'),
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
    self.best = ocp.CheckpointManager(
        os.path.join(directory, 'best'),
        options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))

  def saved(self) -> bool:
    """Whether a run has saved anything here, intact or not."""
    return bool(self.latest.all_steps() or self.best.all_steps())

  def save(self, manager, state: TrainState, progress: _Progress):
    manager.save(int(progress.epoch), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        progress=ocp.args.JsonSave(dataclasses.asdict(progress))))
    manager.wait_until_finished()

  def _read(self, manager, step: int, template: TrainState
            ) -> tuple[TrainState, _Progress]:
    """One step, as `template`'s structure, shapes and architecture.

    Raises:
      workdir_lib.CheckpointMismatch: the step reads back but holds another
        model (another architecture, or one of other shapes).
      Exception: whatever orbax raises for a damaged step.
    """
    path = workdir_lib.step_path(manager, step)
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(template),
          progress=ocp.args.JsonRestore()))
    except Exception as error:
      # Tells a damaged step from an intact one of another model: the latter
      # reads back without the template.
      try:
        manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(),
            progress=ocp.args.JsonRestore()))
      except Exception:  # pylint: disable=broad-except
        raise error from None
      raise workdir_lib.CheckpointMismatch(
          f'Checkpoint {path} holds another model than '
          f'{space.decode(np.asarray(template.arch)).to_string()} on this '
          f'dataset ({workdir_lib.describe(error)}); resume it with the '
          'architecture and data it was trained with or choose a new '
          'workdir.') from error
    saved_arch = np.asarray(restored.state.arch)
    if not np.array_equal(saved_arch, np.asarray(template.arch)):
      raise workdir_lib.CheckpointMismatch(
          f'Checkpoint {path} holds architecture '
          f'{space.decode(saved_arch).to_string()}, not '
          f'{space.decode(np.asarray(template.arch)).to_string()}; resume '
          'it with the architecture it was trained with or choose a new '
          'workdir.')
    return restored.state, _Progress(**restored.progress)

  def restore_latest(self, template: TrainState
                     ) -> tuple[TrainState, _Progress] | None:
    """The newest intact latest state and its progress, or None.

    Raises:
      ValueError: no latest state is intact (naming the directory).
    """
    found = workdir_lib.restore_newest_intact(
        self.latest, lambda step: self._read(self.latest, step, template))
    return None if found is None else found[1]

  def restore_best(self, template: TrainState
                   ) -> tuple[TrainState, _Progress]:
    """The best state, which the results describe: never an older one.

    Raises:
      ValueError: it is missing or damaged (naming it).
    """
    step = self.best.latest_step()
    if step is None:
      raise ValueError(
          f'{self.best.directory} holds no best state to test; start the run '
          'again in a new workdir.')
    try:
      return self._read(self.best, step, template)
    except workdir_lib.CheckpointMismatch:
      raise
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(
          f'Checkpoint {workdir_lib.step_path(self.best, step)} of the best '
          f'state is damaged ({workdir_lib.describe(error)}); restore it '
          'from a backup or start a new workdir.') from error

  def close(self):
    self.latest.close()
    self.best.close()


FINGERPRINT_FILE = 'fingerprint.json'


def fingerprint(config: ml_collections.ConfigDict,
                dataset: data_lib.Dataset) -> dict[str, Any]:
  """What a resumed training run must share with the one it continues.

  The architecture, the data (its name and options, and a digest of its
  split pairs, whichever way it was loaded or passed), and what shaped the
  trajectory so far: the seed, batch size, negatives and the metric that
  picks the best state. The epochs, patience and evaluation settings may
  change; so may `data.verify_checksums`, which changes no data.
  """
  arch = space.from_string(config.arch)
  digest = hashlib.sha256(np.asarray(
      [dataset.num_users, dataset.num_items, len(dataset.train),
       len(dataset.valid), len(dataset.test)], np.int64).tobytes())
  for pairs in (dataset.train, dataset.valid, dataset.test):
    digest.update(np.ascontiguousarray(pairs, np.int32).tobytes())
  data = config.data.to_dict()
  data.pop('verify_checksums', None)
  return json.loads(json.dumps({
      'arch': arch.to_string(), 'dataset': dataset.name, 'data': data,
      'data_sha256': digest.hexdigest()[:16], 'seed': config.seed,
      'batch_size': config.batch_size,
      'num_negatives': 1 if arch.loss == 'bpr' else config.num_negatives,
      'early_stopping_metric': config.early_stopping_metric,
  }, default=str))


def _flatten(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  """`{'data': {'split': s}}` as `{'data.split': s}`."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def _check_fingerprint(workdir: str, current: dict[str, Any],
                       started: bool) -> bool:
  """Compares `current` with the fingerprint the workdir's run recorded.

  Returns:
    Whether `current` is to be recorded (`_record_fingerprint`): in a
    workdir without a run (no checkpoint yet), or with a run from before
    fingerprints were recorded (with a warning; it is recorded once its
    checkpoint restores, as that holds the architecture,
    `_Checkpoints._read`).

  Raises:
    ValueError: the run was started with other settings (listing each with
      its old and new value), or its fingerprint is unreadable.
  """
  path = os.path.join(workdir, FINGERPRINT_FILE)
  if started and os.path.exists(path):
    try:
      with open(path) as f:
        recorded = json.load(f)
      if not isinstance(recorded, dict):
        raise ValueError(f'a JSON {type(recorded).__name__}, not an object')
    except (OSError, ValueError) as error:
      raise ValueError(
          f'{path} is unreadable ({workdir_lib.describe(error)}); restore it '
          'or choose a new workdir.') from error
    old, new = _flatten(recorded), _flatten(current)
    changed = sorted(k for k in old.keys() | new.keys()
                     if old.get(k) != new.get(k))
    if changed:
      details = '; '.join(f'{k} was {old.get(k)!r}, now {new.get(k)!r}'
                          for k in changed)
      raise ValueError(
          f'{workdir} holds a training run with other settings: {details}. '
          'Resume it with the same ones (only the epochs, patience and '
          'evaluation settings may change) or choose a new workdir.')
    return False
  if started:
    logging.warning('%s predates run fingerprints; the settings of this run '
                    'become its own if its checkpoint fits them.', workdir)
  return True


def _record_fingerprint(workdir: str, current: dict[str, Any]) -> None:
  path = os.path.join(workdir, FINGERPRINT_FILE)
  # Written whole or not at all: a half-written fingerprint fits no run.
  with open(path + '.tmp', 'w') as f:
    json.dump(current, f, indent=2, sort_keys=True)
  os.replace(path + '.tmp', path)


# Counts of the training protocol, each with its least allowed value: zero
# or a negative one would otherwise fail deep inside training (a division by
# zero, an empty batch) or stop it before it starts.
TRAIN_MINIMA = (('seed', 0), ('epochs', 1), ('batch_size', 1),
                ('num_negatives', 1), ('eval_every', 1), ('patience', 1),
                ('eval_batch_size', 1), ('data.kcore', 0))


def check_config(config: ml_collections.ConfigDict,
                 minima: Sequence[tuple[str, int]] = TRAIN_MINIMA) -> None:
  """Checks the ranges of a training config's options before any work.

  Options absent from `config` are left to the code that reads them (a
  config built by hand may hold only some). The data options that
  `gnas_jax.data` checks when it loads the data are not repeated here.

  Args:
    config: A configuration with the keys of experiments/configs/train.py.
    minima: (dotted path, least value) of the options that must be
      integers at least that large; the search adds its own.

  Raises:
    ValueError: an option is out of its range; the message names it as
      `config.<path>=<value>` with the values it takes.
  """

  def get(path):
    node = config
    for part in path.split('.'):
      if not hasattr(node, 'get') or part not in node:
        return None
      node = node[part]
    return node

  def is_int(value):
    # A bool is an int to Python, never a count to a user.
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

  def fail(path, value, allowed):
    raise ValueError(f'config.{path}={value!r} is not allowed: it must be '
                     f'{allowed}.')

  for path, least in minima:
    value = get(path)
    if value is not None and not (is_int(value) and value >= least):
      fail(path, value, f'an integer >= {least}')
  ks = get('ks')
  if ks is not None and not (
      isinstance(ks, (list, tuple)) and ks
      and all(is_int(k) and k >= 1 for k in ks)):
    fail('ks', ks, 'a non-empty list of integers >= 1')
  ratio = get('data.given_valid_ratio')
  if ratio is not None and not (
      isinstance(ratio, (int, float)) and not isinstance(ratio, bool)
      and 0 <= ratio < 1):
    fail('data.given_valid_ratio', ratio, 'a number in [0, 1)')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       dataset: data_lib.Dataset | None = None
                       ) -> dict[str, Any]:
  """Trains `config.arch` on `config.dataset`, tests the best state.

  Writes `workdir/results.json`, TensorBoard logs under `workdir/tensorboard`,
  orbax checkpoints under `workdir/checkpoints` and the best state as an
  exported model (`gnas_jax.recommend`) under `workdir/model`; a run
  restarted on the same workdir continues from its latest intact checkpoint
  (`config.resume`) if it has the same `fingerprint` (recorded in
  `workdir/fingerprint.json`). The workdir is this process's while it runs
  (`gnas_jax.workdir.lock`). `dataset` replaces loading `config.dataset`.

  Returns:
    The flat results dictionary (also written as `results.json`).

  Raises:
    ValueError: another process is using the workdir, it holds a run with
      other settings (or one already, without `config.resume`), or its
      checkpoints are damaged beyond falling back to an older one.
  """
  # A wrong setting fails before the workdir is touched.
  check_config(config)
  space.from_string(config.arch)
  ks = tuple(config.ks)
  stop_metric = config.early_stopping_metric
  if stop_metric not in _metric_names(ks):
    raise ValueError(
        f'config.early_stopping_metric={stop_metric!r} is not computed; '
        f'choose from {", ".join(_metric_names(ks))}.')
  with workdir_lib.lock(workdir):
    return _train_and_evaluate(config, workdir, dataset)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        dataset: data_lib.Dataset | None) -> dict[str, Any]:
  """`train_and_evaluate` once the workdir is locked."""
  from tensorboardX import SummaryWriter  # Heavy import, only for training.

  arch = space.from_string(config.arch)
  ks = tuple(config.ks)
  stop_metric = config.early_stopping_metric
  dataset = dataset or data_lib.load_dataset(config)
  os.makedirs(workdir, exist_ok=True)
  logging.info('Dataset %s: %s', dataset.name, dataset.statistics())
  logging.info('Architecture: %s', arch.to_string())
  checkpoints = _Checkpoints(os.path.join(workdir, 'checkpoints'))
  started = checkpoints.saved()
  if started and not config.resume:
    # Its saved epochs would stand in for this run's, which orbax would
    # not overwrite.
    raise ValueError(
        f'{workdir} holds a training run already; resume it '
        '(config.resume=True) or choose a new workdir.')
  settings = fingerprint(config, dataset)
  record = _check_fingerprint(workdir, settings, started)
  graph = graph_lib.build_graph(dataset.train, dataset.num_users,
                                dataset.num_items, config.backend)
  model = models.build_model(dataset.num_users, dataset.num_items, [arch])
  key = jax.random.PRNGKey(config.seed)
  init_key, train_key = jax.random.split(key)
  state = init_state(model, graph, jnp.asarray(arch.encode()), init_key)

  num_negatives = 1 if arch.loss == 'bpr' else config.num_negatives
  sampler = BatchSampler(dataset.train, dataset.num_items, config.batch_size,
                         num_negatives, config.seed)
  popularity = jnp.asarray(dataset.item_popularity(), jnp.float32)
  valid_task = None
  if len(dataset.valid):
    valid_task = metrics_lib.build_ranking_task(
        dataset.num_users, dataset.num_items, [dataset.train], dataset.valid,
        config.eval_batch_size)
  else:
    logging.warning('No validation split: training all %d epochs without '
                    'early stopping and testing the last state.',
                    config.epochs)
  progress = _Progress()
  if config.resume:
    restored = checkpoints.restore_latest(state)
    if restored is not None:
      state, progress = restored
      logging.info('Resumed from epoch %d of %s.', progress.epoch, workdir)
  if record:
    _record_fingerprint(workdir, settings)

  writer = SummaryWriter(os.path.join(workdir, 'tensorboard'))
  epochs = tqdm.trange(progress.epoch, config.epochs, desc='epochs',
                       disable=not config.progress, initial=progress.epoch,
                       total=config.epochs)
  for epoch in epochs:
    if progress.evaluations_without_improvement >= config.patience:
      # A run that stopped early and is started again stays stopped.
      break
    # Epoch time counts sampling too, as other libraries' epochs do.
    start = time.perf_counter()
    batches = jax.device_put(sampler.epoch(epoch))
    step_metrics = []
    for step in tqdm.trange(sampler.steps_per_epoch, leave=False,
                            desc=f'epoch {epoch + 1}',
                            disable=not config.progress):
      batch = jax.tree.map(lambda x, s=step: x[s], batches)
      state, m = train_step(model, state, graph, batch, train_key)
      step_metrics.append(m)
    losses = jax.device_get(step_metrics)
    progress.epoch_seconds.append(time.perf_counter() - start)
    progress.epoch = epoch + 1
    for name in losses[0]:
      writer.add_scalar(f'train/{name}',
                        float(np.mean([m[name] for m in losses])), epoch + 1)
    if not np.isfinite(losses[-1]['loss']):
      raise FloatingPointError(
          f'Training diverged at epoch {epoch + 1} (loss '
          f'{losses[-1]["loss"]}); lower the learning rate of {arch}.')
    if (epoch + 1) % config.eval_every and epoch + 1 != config.epochs:
      continue
    if valid_task is None:
      progress.best_epoch = epoch + 1
      checkpoints.save(checkpoints.latest, state, progress)
      checkpoints.save(checkpoints.best, state, progress)
      continue
    valid = evaluate(model, state, graph, valid_task, popularity, ks)
    for name, value in valid.items():
      writer.add_scalar(_summary_tag('valid', name), value, epoch + 1)
    score = valid[stop_metric]
    if score > progress.best_score:
      progress.best_score, progress.best_epoch = score, epoch + 1
      progress.best_valid = valid
      progress.evaluations_without_improvement = 0
      checkpoints.save(checkpoints.best, state, progress)
    else:
      progress.evaluations_without_improvement += 1
    checkpoints.save(checkpoints.latest, state, progress)
    epochs.set_postfix(loss=f'{losses[-1]["loss"]:.4f}',
                       **{stop_metric: f'{score:.4f}',
                          'best': f'{progress.best_score:.4f}'})
    logging.info('epoch %d: loss %.4f, valid %s %.4f (best %.4f at %d)',
                 epoch + 1, losses[-1]['loss'], stop_metric, score,
                 progress.best_score, progress.best_epoch)
    if progress.evaluations_without_improvement >= config.patience:
      logging.info('Early stopping: no better %s in %d evaluations.',
                   stop_metric, config.patience)
      break
  writer.flush()

  state, _ = checkpoints.restore_best(state)
  checkpoints.close()
  recommend.export_model(os.path.join(workdir, 'model'), arch, state.params,
                         dataset, config.to_dict())
  test_task = metrics_lib.build_ranking_task(
      dataset.num_users, dataset.num_items, [dataset.train, dataset.valid],
      dataset.test, config.eval_batch_size)
  start = time.perf_counter()
  test = evaluate(model, state, graph, test_task, popularity, ks)
  test_seconds = time.perf_counter() - start
  for name, value in test.items():
    writer.add_scalar(_summary_tag('test', name), value,
                      progress.best_epoch)
  writer.close()

  results = {f'test/{k}': v for k, v in test.items()}
  results.update({f'valid/{k}': v for k, v in progress.best_valid.items()})
  # The first epoch includes compilation; the median ignores it.
  results.update({
      'best_epoch': progress.best_epoch,
      'epochs_run': progress.epoch,
      'train_seconds_per_epoch': float(np.median(progress.epoch_seconds))
                                 if progress.epoch_seconds else float('nan'),
      'test_seconds': test_seconds,
      'peak_rss_mb': peak_rss_mb(),
      'num_parameters': models.count_parameters(arch, dataset.num_users,
                                                dataset.num_items),
      'arch': arch.to_string(),
      'dataset': dataset.name,
      'seed': int(config.seed),
      'backend': graph.backend,
      'device': jax.devices()[0].platform,
  })
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=2, sort_keys=True)
  return results


def _summary_tag(split: str, metric: str) -> str:
  # TensorBoard tags may not contain '@'.
  return f'{split}/{metric.replace("@", "_")}'


def _metric_names(ks) -> list[str]:
  return [f'{name}@{k}'
          for name in metrics_lib.RANKING_METRICS +
          metrics_lib.CATALOGUE_METRICS for k in ks]


def format_results_table(results: dict[str, Any], split: str = 'test') -> str:
  """A Markdown table of a split's metrics: one row per metric, one column
  per cut-off."""
  prefix = f'{split}/'
  names, ks = [], []
  for key in results:
    if key.startswith(prefix) and '@' in key:
      name, k = key[len(prefix):].split('@')
      if name not in names:
        names.append(name)
      if int(k) not in ks:
        ks.append(int(k))
  ks.sort()
  lines = ['| metric | ' + ' | '.join(f'@{k}' for k in ks) + ' |',
           '| --- |' + ' ---: |' * len(ks)]
  for name in names:
    cells = [f'{results.get(f"{prefix}{name}@{k}", float("nan")):.4f}'
             for k in ks]
    lines.append(f'| {split} {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)
