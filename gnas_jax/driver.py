"""The training driver: epochs, evaluation, early stopping, checkpoints.

    results = driver.train_and_evaluate(config, workdir)

`fit` is the one loop that trains anything that learns on mini-batches: a
single model (`train_and_evaluate`) or a round's population of candidates
(`gnas_jax.search.evaluation`). It samples an epoch, steps through it,
evaluates every `eval_every` epochs and stops each candidate after
`patience` evaluations without a better score (`EarlyStopping`); what a
run does with an epoch or an evaluation (summaries, checkpoints) are its
callbacks. `train_and_evaluate` adds the single run's workdir: orbax
checkpoints that resume, a fingerprint that refuses another run's
settings, TensorBoard summaries through clu's metric writers, the exported
model, and the test of the best state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import resource
import sys
import time
from typing import Any, Callable, Iterator, Protocol, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import tqdm
from absl import logging

from gnas_jax import data as data_lib
from gnas_jax import graph as graph_lib
from gnas_jax import metrics as metrics_lib
from gnas_jax import models
from gnas_jax import recommend
from gnas_jax import records
from gnas_jax import space
from gnas_jax import train
from gnas_jax import workdir as workdir_lib

# --- What a run trains on, built once -------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainingData:
  """A dataset with what training and evaluation build from it.

  Built once per search or experiment and shared by every run on it.

  Attributes:
    dataset: the split interactions.
    graph: the training graph.
    popularity: `[I]` float32 training interactions per item.
    valid_task: ranking task of the validation pairs (training pairs
      excluded), or None without a validation split.
    test_task: ranking task of the test pairs (training and validation
      pairs excluded; `dataset.test_missed` counted as misses).
  """
  dataset: data_lib.Dataset
  graph: graph_lib.BipartiteGraph
  popularity: jax.Array
  valid_task: metrics_lib.RankingTask | None
  test_task: metrics_lib.RankingTask

  @classmethod
  def build(cls, dataset: data_lib.Dataset, backend: str = 'auto',
            eval_batch_size: int = 1024) -> TrainingData:
    """The graph (with `backend`) and the ranking tasks (`eval_batch_size`
    users at a time) of `dataset`."""
    valid_task = None
    if len(dataset.valid):
      valid_task = metrics_lib.build_ranking_task(
          dataset.num_users, dataset.num_items, [dataset.train],
          dataset.valid, eval_batch_size)
    return cls(
        dataset=dataset,
        graph=graph_lib.build_graph(dataset.train, dataset.num_users,
                                    dataset.num_items, backend),
        popularity=jnp.asarray(dataset.item_popularity(), jnp.float32),
        valid_task=valid_task,
        test_task=metrics_lib.build_ranking_task(
            dataset.num_users, dataset.num_items,
            [dataset.train, dataset.valid], dataset.test, eval_batch_size,
            missed=dataset.test_missed))

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict,
                  data: data_lib.Dataset | TrainingData | None = None
                  ) -> TrainingData:
    """`data` as it is, a dataset prepared with `config.backend` and
    `config.eval_batch_size`, or (None) `config.dataset` loaded and
    prepared."""
    if isinstance(data, TrainingData):
      return data
    return cls.build(data or data_lib.load_dataset(config), config.backend,
                     config.eval_batch_size)


# --- The loop --------------------------------------------------------------


def is_evaluation_epoch(epoch: int, eval_every: int, epochs: int) -> bool:
  """Whether the 1-based `epoch` ends with an evaluation: every
  `eval_every`-th, and the last."""
  return epoch % eval_every == 0 or epoch == epochs


@dataclasses.dataclass
class EarlyStopping:
  """Each candidate's best validation score and evaluations since.

  Attributes:
    patience: evaluations without a better score before a candidate stops.
    best_score: `[P]` best score so far (-inf before any).
    best_epoch: `[P]` the epoch that scored it (-1 before any).
    stale: `[P]` evaluations since it.
    halted: `[P]` bool, candidates stopped whatever their patience (`halt`).
  """
  patience: int
  best_score: np.ndarray
  best_epoch: np.ndarray
  stale: np.ndarray
  halted: np.ndarray

  @classmethod
  def start(cls, size: int, patience: int) -> EarlyStopping:
    return cls(patience, np.full(size, -np.inf), np.full(size, -1),
               np.zeros(size, int), np.zeros(size, bool))

  @property
  def stopped(self) -> np.ndarray:
    """`[P]` bool: candidates out of patience, or halted."""
    return (self.stale >= self.patience) | self.halted

  def halt(self, halted: np.ndarray) -> None:
    """Stops the candidates of the `[P]` bool mask (successive halving's
    losers at a rung)."""
    self.halted = self.halted | halted

  def update(self, scores: np.ndarray, epoch: int,
             evaluated: np.ndarray) -> np.ndarray:
    """Records the `[P]` `scores` of the `evaluated` candidates at `epoch`.

    Returns:
      `[P]` bool: the candidates whose score is their best so far.
    """
    improved = evaluated & (scores > self.best_score)
    self.best_score = np.where(improved, scores, self.best_score)
    self.best_epoch = np.where(improved, epoch, self.best_epoch)
    self.stale = np.where(improved, 0, self.stale + evaluated)
    return improved

  def extend(self, size: int) -> None:
    """Adds `size` candidates that have not been evaluated yet."""
    self.best_score = np.concatenate([self.best_score, np.full(size, -np.inf)])
    self.best_epoch = np.concatenate([self.best_epoch, np.full(size, -1)])
    self.stale = np.concatenate([self.stale, np.zeros(size, int)])
    self.halted = np.concatenate([self.halted, np.zeros(size, bool)])

  def to_json(self) -> dict[str, list]:
    """The state (not the patience, which a resumed run may change)."""
    return {'best_score': self.best_score.tolist(),
            'best_epoch': self.best_epoch.tolist(),
            'stale': self.stale.tolist(), 'halted': self.halted.tolist()}

  @classmethod
  def from_json(cls, saved: dict[str, list], patience: int) -> EarlyStopping:
    stale = np.asarray(saved['stale'], int)
    return cls(patience, np.asarray(saved['best_score'], float),
               np.asarray(saved['best_epoch'], int), stale,
               np.asarray(saved.get('halted', np.zeros_like(stale)), bool))


class Learner(Protocol):
  """What `fit` trains: P candidates on shared mini-batches."""

  @property
  def active(self) -> np.ndarray:
    """`[P]` bool: candidates that still train."""

  def step(self, batch: train.Batch) -> dict[str, jax.Array] | None:
    """One update of every active candidate; its step metrics, if any."""

  def evaluate(self) -> list[dict[str, float]] | None:
    """Each candidate's validation metrics; None without validation."""

  def keep(self, keep: np.ndarray) -> None:
    """Stops the candidates whose entry of `[P]` bool `keep` is False."""


def fit(learner: Learner, sampler: train.BatchSampler,
        stopping: EarlyStopping, *, epochs: int, eval_every: int,
        metric: str, start_epoch: int = 0,
        due: Callable[[int], np.ndarray] | None = None,
        on_epoch: Callable[[int, list, float, np.ndarray], None] | None = None,
        on_evaluation: Callable[[int, list | None, np.ndarray], None]
        | None = None,
        progress: bool = False, keep_bar: bool = True) -> None:
  """Trains `learner` from `start_epoch` to `epochs` with early stopping.

  Every epoch draws `sampler.epoch(e)`; after it, `on_epoch(epoch, step
  metrics, seconds, trained)` sees the 1-based epoch, the steps' metrics
  (on the host), its wall time (sampling included, as other libraries
  count it) and the `[P]` candidates that trained in it. At evaluation
  epochs each evaluated candidate's `metric` updates `stopping`, and
  `on_evaluation(epoch, metrics, improved)` sees the candidates' metrics
  and which of them are at their best; without validation (the learner
  evaluates to None) every evaluated candidate counts as improved.

  Every candidate is evaluated at the epochs of `is_evaluation_epoch`,
  unless `due` gives each its own schedule: `due(epoch)` is the `[P]` bool
  of the candidates evaluated after the 1-based `epoch` (successive
  halving's rungs, candidates that started later). Candidates out of
  patience, or halted by `on_evaluation`, stop; `on_evaluation` may also
  add candidates to the learner (and to `stopping`), which train from the
  next epoch. The loop ends when none trains.

  With `progress` a bar counts the epochs (and one inside it the steps);
  without `keep_bar` it is cleared at the end, as inside a search's bar.
  """
  bar_options = dict(desc='epochs', initial=start_epoch, total=epochs,
                     disable=not progress, leave=keep_bar)
  with progress_bar(**bar_options) as bar:
    for epoch in range(start_epoch, epochs):
      trained = learner.active & ~stopping.stopped
      if not trained.any():
        # A run that stopped early and is started again stays stopped.
        break
      start = time.perf_counter()
      batches = jax.device_put(sampler.epoch(epoch))
      step_metrics = [
          learner.step(jax.tree.map(lambda x, s=step: x[s], batches))
          for step in tqdm.trange(sampler.steps_per_epoch, leave=False,
                                  desc=f'epoch {epoch + 1}',
                                  disable=not progress)]
      # Fetched before the clock stops: steps run asynchronously.
      step_metrics = jax.device_get(step_metrics)
      if on_epoch:
        on_epoch(epoch + 1, step_metrics, time.perf_counter() - start,
                 trained)
      bar.update()
      if due is None:
        if not is_evaluation_epoch(epoch + 1, eval_every, epochs):
          continue
        evaluated = learner.active
      else:
        evaluated = learner.active & due(epoch + 1)
        if not evaluated.any():
          continue
      results = learner.evaluate()
      if results is None:
        improved = evaluated
      else:
        scores = np.array([r.get(metric, np.nan) for r in results])
        improved = stopping.update(scores, epoch + 1, evaluated)
        bar.set_postfix(best=f'{np.max(stopping.best_score):.4f}')
      if on_evaluation:
        on_evaluation(epoch + 1, results, improved)
      running = learner.active & ~stopping.stopped
      if not running.any():
        break
      learner.keep(running)


# --- Summaries and progress ------------------------------------------------


def create_writer(logdir: str):
  """A clu metric writer of TensorBoard summaries under `logdir`.

  Tags are the result keys ('valid/ndcg@20'). TensorFlow, which clu
  writes summaries with, is kept off any accelerator.
  """
  # TensorFlow only writes files here: its start-up notes are noise.
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
  # Heavy imports, only when a run writes summaries.
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from clu import metric_writers  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ImportError(
        f'Writing TensorBoard summaries needs clu and TensorFlow ({error}); '
        'install them with `pip install clu tensorflow-cpu`.') from error
  tf.config.set_visible_devices([], 'GPU')
  return metric_writers.SummaryWriter(logdir)


class _AboveBars:
  """A log stream that prints each record above the open progress bars
  rather than into the line one of them is drawing."""

  def __init__(self, stream):
    self.stream = stream

  def write(self, text: str) -> None:
    tqdm.tqdm.write(text, file=self.stream, end='')

  def flush(self) -> None:
    self.stream.flush()


@contextlib.contextmanager
def progress_bar(**options) -> Iterator[tqdm.tqdm]:
  """A tqdm bar (`options` as tqdm's) above which log lines print.

  While the bar is open, absl's log records go through `tqdm.write`, which
  clears the bars, prints the record on its own line and draws them again.
  """
  handler = logging.get_absl_handler().python_handler
  stream = handler.stream
  redirect = not options.get('disable') and not isinstance(stream,
                                                           _AboveBars)
  if redirect:
    handler.setStream(_AboveBars(stream))
  bar = tqdm.tqdm(**{'file': sys.stderr, **options})
  try:
    yield bar
  finally:
    bar.close()
    if redirect:
      handler.setStream(stream)


# --- One model in a workdir ------------------------------------------------


def peak_rss_mb() -> float:
  """Peak resident memory of this process so far, in MiB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclasses.dataclass
class _Progress:
  """A run's place, checkpointed with its state."""
  epoch: int = 0
  stopping: dict[str, list] = dataclasses.field(default_factory=dict)
  best_valid: dict[str, float] = dataclasses.field(default_factory=dict)
  epoch_seconds: list[float] = dataclasses.field(default_factory=list)

  @classmethod
  def from_json(cls, saved: dict) -> _Progress:
    """Reads this layout and the one before it, which kept one candidate's
    early stopping as flat fields, so that older workdirs still resume."""
    saved = dict(saved)
    if 'best_score' in saved:
      stale = saved.pop('evaluations_without_improvement')
      saved['stopping'] = {'best_score': [saved.pop('best_score')],
                           'best_epoch': [saved.pop('best_epoch')],
                           'stale': [stale], 'halted': [False]}
    return cls(**saved)


def _appended_decisions_at_default(older: np.ndarray,
                                   current: np.ndarray) -> bool:
  """Whether `older`, an encoding saved before the decisions after its end
  were appended to `space.DECISIONS`, holds `current`: the same leading
  indices, and each appended decision at its default after them."""
  kept = older.shape[0] if older.ndim == 1 else current.shape[0]
  defaults = space.Architecture().encode()
  return (kept < current.shape[0]
          and np.array_equal(older, current[:kept])
          and np.array_equal(current[kept:], defaults[kept:]))


def _saved_shape(manager: ocp.CheckpointManager, step: int,
                 key: str) -> tuple[int, ...] | None:
  """The shape of the state's `key` array as saved at `step`; None where
  the step's metadata does not read (the restore then says why)."""
  try:
    return tuple(manager.item_metadata(step).state[key].shape)
  except Exception:  # pylint: disable=broad-except
    return None


class _Checkpoints:
  """The latest states (to resume) and the best state (to test), via orbax.

  Two latest states are kept: when the newest is damaged, the run resumes
  from the one before (`workdir.restore_newest_intact`).
  """

  def __init__(self, directory: str):
    # orbax refuses a relative path once it writes.
    directory = os.path.abspath(directory)
    def manager(name, max_to_keep):
      # Named handlers let a step's array shapes be read before the step.
      return ocp.CheckpointManager(
          os.path.join(directory, name),
          options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                               create=True),
          item_handlers={'state': ocp.StandardCheckpointHandler(),
                         'progress': ocp.JsonCheckpointHandler()})

    self.latest = manager('latest', 2)
    self.best = manager('best', 1)

  def saved(self) -> bool:
    """Whether a run has saved anything here, intact or not."""
    return bool(self.latest.all_steps() or self.best.all_steps())

  def save(self, manager, state: train.TrainState, progress: _Progress):
    manager.save(int(progress.epoch), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        progress=ocp.args.JsonSave(dataclasses.asdict(progress))))
    manager.wait_until_finished()

  def _read(self, manager, step: int, template: train.TrainState
            ) -> tuple[train.TrainState, _Progress]:
    """One step, as `template`'s structure, shapes and architecture.

    Raises:
      workdir_lib.CheckpointMismatch: the step reads back but holds another
        model (another architecture, or one of other shapes).
      Exception: whatever orbax raises for a damaged step.
    """
    path = workdir_lib.step_path(manager, step)
    current = np.asarray(template.arch)
    arch = space.decode(current).to_string()

    def restore(state_template):
      return manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(state_template),
          progress=ocp.args.JsonRestore()))

    # An encoding saved before decisions were appended to `space.DECISIONS`
    # is shorter: it is read at its saved shape, since a read that fails
    # leaves orbax's reads of the other arrays unawaited.
    saved_shape = _saved_shape(manager, step, 'arch')
    if saved_shape is not None and saved_shape != current.shape:
      template = template.replace(arch=np.zeros(saved_shape, current.dtype))
    try:
      restored = restore(template)
    except Exception as error:
      # Tells a damaged step from an intact one of another model: the latter
      # reads back without the template.
      try:
        restore(None)
      except Exception:  # pylint: disable=broad-except
        raise error from None
      raise workdir_lib.CheckpointMismatch(
          f'Checkpoint {path} holds another model than {arch} on this '
          f'dataset ({workdir_lib.describe(error)}); resume it with the '
          'architecture and data it was trained with or choose a new '
          'workdir.') from error
    state = restored.state
    saved_arch = np.asarray(state.arch)
    if saved_arch.shape != current.shape:
      if not _appended_decisions_at_default(saved_arch, current):
        raise workdir_lib.CheckpointMismatch(
            f'Checkpoint {path} holds another model than {arch} on this '
            f'dataset (an architecture vector of {saved_arch.size} '
            f'decisions, where this version has {current.size}: '
            f'{saved_arch.tolist()}); resume it with the '
            'architecture and data it was trained with or choose a new '
            'workdir.')
      # The same model, whose vector lacks the new decisions' (default)
      # slots.
      state = state.replace(arch=jnp.asarray(current))
    elif not np.array_equal(saved_arch, current):
      raise workdir_lib.CheckpointMismatch(
          f'Checkpoint {path} holds architecture '
          f'{space.decode(saved_arch).to_string()}, not {arch}; resume it '
          'with the architecture it was trained with or choose a new '
          'workdir.')
    return state, _Progress.from_json(restored.progress)

  def restore_latest(self, template: train.TrainState
                     ) -> tuple[train.TrainState, _Progress] | None:
    """The newest intact latest state and its progress, or None.

    Raises:
      ValueError: no latest state is intact (naming the directory).
    """
    found = workdir_lib.restore_newest_intact(
        self.latest, lambda step: self._read(self.latest, step, template))
    return None if found is None else found[1]

  def restore_best(self, template: train.TrainState
                   ) -> tuple[train.TrainState, _Progress]:
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
                dataset: data_lib.Dataset,
                arch: space.Architecture | None = None) -> dict[str, Any]:
  """What a resumed training run must share with the one it continues.

  The architecture, the data (its name and options, and a digest of its
  split pairs, whichever way it was loaded or passed), and what shaped the
  trajectory so far: the seed, batch size, negatives, optimizer and the
  metric that picks the best state. The epochs, patience and evaluation
  settings may change; so may `data.verify_checksums`, which changes no
  data. `arch` (None: `config.arch`) is the architecture trained.
  """
  arch = arch or space.from_string(config.arch)
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
      'num_negatives': train.loss_negatives(arch.loss, config.num_negatives),
      'early_stopping_metric': config.early_stopping_metric,
      **changed_trainer_options(config),
  }, default=str))


def changed_trainer_options(config: ml_collections.ConfigDict
                            ) -> dict[str, Any]:
  """The trainer options (optimizer, sampling) that differ from their
  defaults, for fingerprints: runs recorded before an option existed used
  its default, and still resume."""
  changed = {}
  if train.create_optimizer(config) is not train.create_optimizer():
    changed['optimizer'] = config.optimizer.to_dict()
  if config.get('sampling', 'pairs') != 'pairs':
    changed['sampling'] = config.sampling
  return changed


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
    changed = records.changed_settings(recorded, current)
    if changed:
      details = records.describe_changes(changed)
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

  def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)

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
  if ratio is not None and not (is_number(ratio) and 0 <= ratio < 1):
    fail('data.given_valid_ratio', ratio, 'a number in [0, 1)')
  for beta in ('optimizer.b1', 'optimizer.b2'):
    value = get(beta)
    if value is not None and not (is_number(value) and 0 <= value < 1):
      fail(beta, value, 'a number in [0, 1)')
  sampling = get('sampling')
  if sampling is not None and sampling not in train.SAMPLINGS:
    fail('sampling', sampling, f'one of {", ".join(train.SAMPLINGS)}')
  eps = get('optimizer.eps')
  if eps is not None and not (is_number(eps) and eps > 0):
    fail('optimizer.eps', eps, 'a number > 0')
  stop_metric = get('early_stopping_metric')
  if stop_metric is not None and ks is not None and (
      stop_metric not in train.metric_names(ks)):
    raise ValueError(
        f'config.early_stopping_metric={stop_metric!r} is not computed; '
        f'choose from {", ".join(train.metric_names(ks))}.')


class _SingleModel:
  """One model as `fit` trains it: a population of one."""

  def __init__(self, model: models.GNNRecommender, state: train.TrainState,
               data: TrainingData, train_key: jax.Array, ks: Sequence[int]):
    self.model, self.state, self.data = model, state, data
    self.train_key, self.ks = train_key, tuple(ks)

  active = np.ones(1, bool)  # A diverging model stops the run instead.

  def step(self, batch: train.Batch) -> dict[str, jax.Array]:
    self.state, step_metrics = train.train_step(
        self.model, self.state, self.data.graph, batch, self.train_key)
    return step_metrics

  def evaluate(self) -> list[dict[str, float]] | None:
    if self.data.valid_task is None:
      return None
    return [train.evaluate(self.model, self.state, self.data.graph,
                           self.data.valid_task, self.data.popularity,
                           self.ks)]

  def keep(self, keep: np.ndarray) -> None:
    del keep  # The loop ends when its one model stops.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       data: data_lib.Dataset | TrainingData | None = None,
                       arch: space.Architecture | None = None
                       ) -> dict[str, Any]:
  """Trains an architecture on a dataset and tests its best state.

  Writes `workdir/results.json`, TensorBoard summaries under
  `workdir/tensorboard` (tagged as the results are keyed), orbax
  checkpoints under `workdir/checkpoints` and the best state as an exported
  model (`gnas_jax.recommend`) under `workdir/model`; a run restarted on
  the same workdir continues from its latest intact checkpoint
  (`config.resume`) if it has the same `fingerprint` (recorded in
  `workdir/fingerprint.json`). The workdir is this process's while it runs
  (`gnas_jax.workdir.lock`).

  Args:
    config: the protocol (experiments/configs/train.py's options).
    workdir: where the run lives.
    data: the dataset, or one prepared already (`TrainingData`, whose
      graph and tasks are then reused); None loads `config.dataset`.
    arch: the architecture; None parses `config.arch`.

  Returns:
    The flat results dictionary (also written as `results.json`).

  Raises:
    ValueError: a setting is out of range; another process is using the
      workdir, it holds a run with other settings (or one already, without
      `config.resume`), or its checkpoints are damaged beyond falling back
      to an older one.
  """
  # A wrong setting fails before the workdir is touched.
  check_config(config)
  arch = arch or space.from_string(config.arch)
  # The checkpoint managers and the summary writer close whether the run
  # ends or fails: orbax's background threads would otherwise outlive it.
  with workdir_lib.lock(workdir), contextlib.ExitStack() as to_close:
    return _train_and_evaluate(config, workdir, data, arch, to_close)


def single_model_sampler(config: ml_collections.ConfigDict,
                         dataset: data_lib.Dataset,
                         arch: space.Architecture) -> train.BatchSampler:
  """The batches `config` trains `arch` alone on: as many negatives per
  positive, and per mini-batch, as its loss scores."""
  return train.BatchSampler(
      dataset.train, dataset.num_items, config.batch_size,
      train.loss_negatives(arch.loss, config.num_negatives), config.seed,
      config.get('sampling', 'pairs'),
      shared_negatives=train.loss_shared_negatives(arch.loss))


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        data: data_lib.Dataset | TrainingData | None,
                        arch: space.Architecture,
                        to_close: contextlib.ExitStack) -> dict[str, Any]:
  """`train_and_evaluate` once the workdir is locked; what it opens is
  closed by `to_close`."""
  ks = tuple(config.ks)
  stop_metric = config.early_stopping_metric
  data = TrainingData.from_config(config, data)
  dataset = data.dataset
  os.makedirs(workdir, exist_ok=True)
  logging.info('Dataset %s: %s', dataset.name, dataset.statistics())
  logging.info('Architecture: %s', arch.to_string())
  checkpoints = to_close.enter_context(contextlib.closing(
      _Checkpoints(os.path.join(workdir, 'checkpoints'))))
  started = checkpoints.saved()
  if started and not config.resume:
    # Its saved epochs would stand in for this run's, which orbax would
    # not overwrite.
    raise ValueError(
        f'{workdir} holds a training run already; resume it '
        '(config.resume=True) or choose a new workdir.')
  settings = fingerprint(config, dataset, arch)
  record = _check_fingerprint(workdir, settings, started)
  model = models.build_model(dataset.num_users, dataset.num_items, [arch])
  init_key, train_key = jax.random.split(jax.random.PRNGKey(config.seed))
  state = train.init_state(model, train.create_optimizer(config), data.graph,
                           jnp.asarray(arch.encode()), init_key)
  sampler = single_model_sampler(config, dataset, arch)
  if data.valid_task is None:
    logging.warning('No validation split: training all %d epochs without '
                    'early stopping and testing the last state.',
                    config.epochs)
  progress = _Progress()
  stopping = EarlyStopping.start(1, config.patience)
  if config.resume:
    restored = checkpoints.restore_latest(state)
    if restored is not None:
      state, progress = restored
      stopping = EarlyStopping.from_json(progress.stopping, config.patience)
      logging.info('Resumed from epoch %d of %s.', progress.epoch, workdir)
  if record:
    _record_fingerprint(workdir, settings)

  learner = _SingleModel(model, state, data, train_key, ks)
  writer = to_close.enter_context(contextlib.closing(
      create_writer(os.path.join(workdir, 'tensorboard'))))
  last_loss = [math.nan]  # The latest epoch's, for the log.

  def on_epoch(epoch, losses, seconds, trained):
    del trained
    progress.epoch_seconds.append(seconds)
    progress.epoch = epoch
    writer.write_scalars(epoch, {
        f'train/{name}': float(np.mean([m[name] for m in losses]))
        for name in losses[0]})
    if not np.isfinite(losses[-1]['loss']):
      raise FloatingPointError(
          f'Training diverged at epoch {epoch} (loss '
          f'{losses[-1]["loss"]}); lower the learning rate of {arch}.')
    last_loss[0] = float(losses[-1]['loss'])

  def on_evaluation(epoch, results, improved):
    progress.stopping = stopping.to_json()
    if improved[0]:
      if results is not None:
        progress.best_valid = results[0]
      checkpoints.save(checkpoints.best, learner.state, progress)
    checkpoints.save(checkpoints.latest, learner.state, progress)
    if results is None:
      logging.info('epoch %d of %d: loss %.4f (no validation)', epoch,
                   config.epochs, last_loss[0])
      return
    writer.write_scalars(epoch, {f'valid/{name}': value
                                 for name, value in results[0].items()})
    logging.info('epoch %d: loss %.4f, valid %s %.4f (best %.4f at %d)',
                 epoch, last_loss[0], stop_metric,
                 results[0][stop_metric], stopping.best_score[0],
                 stopping.best_epoch[0])
    if stopping.stopped[0]:
      logging.info('Early stopping: no better %s in %d evaluations.',
                   stop_metric, config.patience)

  fit(learner, sampler, stopping, epochs=config.epochs,
      eval_every=config.eval_every, metric=stop_metric,
      start_epoch=progress.epoch, on_epoch=on_epoch,
      on_evaluation=on_evaluation, progress=config.progress)
  writer.flush()

  state, best = checkpoints.restore_best(learner.state)
  best_epoch = int(best.epoch)
  recommend.export_model(os.path.join(workdir, 'model'), arch, state.params,
                         dataset, config.to_dict())
  start = time.perf_counter()
  test = train.evaluate(model, state, data.graph, data.test_task,
                        data.popularity, ks)
  test_seconds = time.perf_counter() - start
  writer.write_scalars(best_epoch, {f'test/{name}': value
                                    for name, value in test.items()})

  results = {f'test/{k}': v for k, v in test.items()}
  results.update({f'valid/{k}': v for k, v in progress.best_valid.items()})
  # The first epoch includes compilation; the median ignores it.
  results.update({
      'best_epoch': best_epoch,
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
      'backend': data.graph.backend,
      'device': jax.devices()[0].platform,
  })
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=2, sort_keys=True)
  return results


# --- Several seeds ---------------------------------------------------------


def run_protocol(config: ml_collections.ConfigDict, dataset: data_lib.Dataset,
                 arch: space.Architecture) -> dict[str, Any]:
  """What a finished run's results depend on: its `fingerprint` and the
  epochs, patience and evaluation settings that a resumed run may change."""
  return {**fingerprint(config, dataset, arch),
          'epochs': int(config.epochs), 'patience': int(config.patience),
          'eval_every': int(config.eval_every),
          'ks': [int(k) for k in config.ks]}


def recorded_run(path: str, protocol: dict[str, Any]
                 ) -> dict[str, Any] | None:
  """The results that the record `path` holds for the run `protocol`
  describes (`run_protocol`, which names its architecture and seed), or
  None.

  Raises:
    ValueError: the record holds that architecture and seed trained under
      another protocol, naming file, line and each setting that differs.
  """
  unit = (protocol['arch'], protocol['seed'])
  return records.find(
      path, key=lambda row: (row.get('protocol', {}).get('arch'),
                             row.get('protocol', {}).get('seed')),
      expected={unit: protocol}.get,
      subject=lambda _: f'{unit[0]} (seed {unit[1]}) was trained').get(unit)


def seed_config(config: ml_collections.ConfigDict,
                seed: int) -> ml_collections.ConfigDict:
  """`config` as `train_with_seeds` runs it for `seed` (a copy)."""
  run_config = config.copy_and_resolve_references()
  with run_config.unlocked():
    run_config.seed = seed
    run_config.progress = False
  return run_config


def train_with_seeds(config: ml_collections.ConfigDict, directory: str,
                     arch: space.Architecture, seeds: Sequence[int],
                     data: data_lib.Dataset | TrainingData | None = None,
                     record: str | None = None) -> list[dict[str, Any]]:
  """`arch` trained with the protocol of `config` once per seed.

  Seed `s` runs in `directory/seed_<s>`; a run finished there under the
  same protocol is read back from its results.json, any other resumes
  (`_finished_run`). With a `record` (a
  JSON-lines file of results only, which may be committed), a run it holds
  under the same protocol (`run_protocol`) is read from it and trains
  nowhere, and every other finished run is added to it: a program
  continues from its record in another session or on another machine,
  without the directories.

  Returns:
    Each seed's results, with its 'workdir'.
  """
  runs = []
  for seed in seeds:
    run_dir = os.path.join(directory, f'seed_{seed}')
    run_config = seed_config(config, seed)
    # Prepared at the first run that needs it, then shared.
    data = TrainingData.from_config(config, data)
    protocol = run_protocol(run_config, data.dataset, arch)
    if record:
      results = recorded_run(record, protocol)
      if results is not None:
        runs.append(dict(results, workdir=run_dir))
        continue
    results = _finished_run(run_dir, protocol)
    if results is None:
      diverged_path = os.path.join(run_dir, DIVERGED_FILE)
      diverged = _recorded_divergence(diverged_path, protocol)
      if diverged:
        raise FloatingPointError(
            f'Seed {seed} ({run_dir}): {diverged} Recorded in '
            f'{DIVERGED_FILE}: delete it to train again.')
      logging.info('Training %s with seed %d in %s.', arch, seed, run_dir)
      try:
        results = train_and_evaluate(run_config, run_dir, data, arch)
      except FloatingPointError as error:
        # Remembered, so that a program run again (a table's tuning) goes
        # on without repeating the epochs up to the divergence.
        os.makedirs(run_dir, exist_ok=True)
        with open(diverged_path, 'w') as f:
          json.dump({'protocol': protocol, 'message': str(error)}, f,
                    indent=2, sort_keys=True)
        raise FloatingPointError(f'Seed {seed} ({run_dir}): {error}') from error
      os.makedirs(run_dir, exist_ok=True)
      with open(os.path.join(run_dir, PROTOCOL_FILE), 'w') as f:
        json.dump(protocol, f, indent=2, sort_keys=True)
      if os.path.exists(diverged_path):
        os.remove(diverged_path)
    if record:
      records.append(record, [dict(results, protocol=protocol)])
    runs.append(dict(results, workdir=run_dir))
  return runs


# Beside a finished run's results.json: the protocol (`run_protocol`) they
# were obtained under, written by `train_with_seeds`.
PROTOCOL_FILE = 'protocol.json'


# In a run's directory where its training diverged: the protocol and the
# training's message, which `train_with_seeds` raises again under the same
# protocol instead of training.
DIVERGED_FILE = 'diverged.json'


def _protocol_changes(recorded: dict[str, Any], protocol: dict[str, Any]):
  """`records.changed_settings` from a protocol read back from JSON to
  `protocol` (as JSON would give it back: tuples as lists)."""
  return records.changed_settings(recorded, json.loads(json.dumps(protocol)))


def _recorded_divergence(path: str, protocol: dict[str, Any]) -> str | None:
  """The message of a training that diverged under `protocol`, if its
  `DIVERGED_FILE` at `path` says so; otherwise None."""
  try:
    with open(path) as f:
      diverged = json.load(f)
  except FileNotFoundError:
    return None
  if _protocol_changes(diverged['protocol'], protocol):
    return None
  return diverged['message']


def _finished_run(run_dir: str, protocol: dict[str, Any]
                  ) -> dict[str, Any] | None:
  """The results of the run finished in `run_dir` under `protocol`, or None
  where none has finished there, or one has under another protocol (more
  epochs, say: training it again resumes from its checkpoint, or is
  refused if its settings cannot change)."""
  path = os.path.join(run_dir, 'results.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    results = json.load(f)
  try:
    with open(os.path.join(run_dir, PROTOCOL_FILE)) as f:
      finished_under = json.load(f)
  except FileNotFoundError:
    logging.warning('%s predates the record of its protocol: its results '
                    'are taken as they are.', run_dir)
    return results
  changed = _protocol_changes(finished_under, protocol)
  if not changed:
    return results
  logging.info('%s finished with other settings (%s); training it again.',
               run_dir, records.describe_changes(changed))
  return None


def seed_statistics(runs: Sequence[dict[str, Any]],
                    key: str) -> dict[str, Any]:
  """`{'mean', 'std', 'seeds', 'values'}` of `key` over runs of several
  seeds; the std is the sample one (0 for one run)."""
  values = [float(r[key]) for r in runs]
  return {'mean': float(np.mean(values)),
          'std': float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
          'seeds': [int(r['seed']) for r in runs], 'values': values}


def format_statistic(statistic: dict[str, Any], digits: int = 4) -> str:
  """'mean ± std' of a `seed_statistics` result."""
  return (f'{statistic["mean"]:.{digits}f} ± '
          f'{statistic["std"]:.{digits}f}')


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
