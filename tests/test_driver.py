"""Tests for the driver's loop: early stopping, evaluation epochs, progress;
and its record of finished runs."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from experiments.configs import test as test_config
from gnas_jax import driver
from gnas_jax import records
from gnas_jax import space


def test_early_stopping_by_hand():
  stopping = driver.EarlyStopping.start(3, patience=2)
  evaluated = np.array([True, True, False])
  improved = stopping.update(np.array([0.1, 0.2, 0.9]), 1, evaluated)
  np.testing.assert_array_equal(improved, [True, True, False])
  improved = stopping.update(np.array([0.3, 0.1, 0.9]), 2, evaluated)
  np.testing.assert_array_equal(improved, [True, False, False])
  improved = stopping.update(np.array([0.3, 0.2, 0.9]), 3, evaluated)
  # An equal score is no improvement.
  np.testing.assert_array_equal(improved, [False, False, False])
  np.testing.assert_array_equal(stopping.best_score, [0.3, 0.2, -np.inf])
  np.testing.assert_array_equal(stopping.best_epoch, [2, 1, -1])
  np.testing.assert_array_equal(stopping.stale, [1, 2, 0])
  np.testing.assert_array_equal(stopping.stopped, [False, True, False])
  again = driver.EarlyStopping.from_json(stopping.to_json(), patience=3)
  np.testing.assert_array_equal(again.best_score, stopping.best_score)
  np.testing.assert_array_equal(again.stopped, [False, False, False])
  # Halted candidates stop whatever their patience, and stay halted.
  again.halt(np.array([True, False, False]))
  np.testing.assert_array_equal(again.stopped, [True, False, False])
  resumed = driver.EarlyStopping.from_json(again.to_json(), patience=3)
  np.testing.assert_array_equal(resumed.stopped, [True, False, False])


@pytest.mark.parametrize('epoch,expected', [(1, False), (3, True),
                                            (6, True), (7, True)])
def test_evaluation_epochs_are_every_nth_and_the_last(epoch, expected):
  assert driver.is_evaluation_epoch(epoch, 3, 7) == expected


class _Sampler:
  """Epochs of two steps whose batches are the epoch number."""
  steps_per_epoch = 2

  def epoch(self, epoch):
    return np.full(2, epoch)


class _ScriptedLearner:
  """Two candidates (or more, once added) whose validation scores follow
  a script per epoch."""

  def __init__(self, scores):
    self.scores = scores
    self.active = np.ones(2, bool)
    self.steps = []

  def step(self, batch):
    self.steps.append((int(batch), self.active.copy()))

  def evaluate(self):
    epoch = self.steps[-1][0] + 1
    return [{'ndcg@20': s} for s in self.scores[epoch][:len(self.active)]]

  def keep(self, keep):
    self.active = self.active & keep


def test_fit_stops_each_candidate_after_its_patience():
  # Candidate 0 peaks at epoch 2, candidate 1 keeps improving.
  scores = {2: [0.5, 0.1], 4: [0.4, 0.2], 6: [0.3, 0.3], 8: [0.2, 0.4],
            10: [0.1, 0.5]}
  learner = _ScriptedLearner(scores)
  stopping = driver.EarlyStopping.start(2, patience=2)
  seen = []
  driver.fit(learner, _Sampler(), stopping, epochs=10, eval_every=2,
             metric='ndcg@20',
             on_evaluation=lambda epoch, _, improved: seen.append(
                 (epoch, improved.tolist())))
  assert seen == [(2, [True, True]), (4, [False, True]), (6, [False, True]),
                  (8, [False, True]), (10, [False, True])]
  # Candidate 0 trained until its second evaluation without improvement.
  trained_0 = [epoch for epoch, active in learner.steps if active[0]]
  assert sorted(set(trained_0)) == [0, 1, 2, 3, 4, 5]
  np.testing.assert_array_equal(stopping.best_epoch, [2, 10])


def test_fit_resumes_stopped_and_ends_when_none_trains():
  learner = _ScriptedLearner({})
  stopping = driver.EarlyStopping.start(2, patience=1)
  stopping.stale[:] = 1
  driver.fit(learner, _Sampler(), stopping, epochs=5, eval_every=1,
             metric='ndcg@20', start_epoch=2)
  assert not learner.steps


# An entry point: absl's handler logs to stderr, where the bars are drawn.
PROGRESS_WITH_LOGS = r"""
from absl import app, logging
from gnas_jax import driver

def main(argv):
  with driver.progress_bar(total=3, desc='epochs') as bar:
    bar.update()
    logging.warning('a line of the log')
    bar.update()
  logging.warning('after the bar')

app.run(main)
"""


def test_log_lines_print_above_an_open_progress_bar():
  result = subprocess.run([sys.executable, '-c', PROGRESS_WITH_LOGS],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr
  lines = result.stderr.split('\n')
  for message in ('a line of the log', 'after the bar'):
    (line,) = [line for line in lines if message in line]
    # No bar is drawn on the record's line: it starts its line.
    assert line.split('\r')[-1].startswith('W'), repr(line)
    assert 'epochs' not in line.split('\r')[-1], repr(line)


def test_fit_evaluates_each_candidate_when_it_is_due():
  scores = {e: [0.1 * e, 0.3 - 0.01 * e] for e in range(1, 7)}
  learner = _ScriptedLearner(scores)
  stopping = driver.EarlyStopping.start(2, 10)
  seen = []
  # Candidate 0 at epochs 1, 2 and 3; candidate 1 at epochs 3 and 6.
  schedule = {1: [True, False], 2: [True, False], 3: [True, True],
              6: [False, True]}
  driver.fit(learner, _Sampler(), stopping, epochs=6, eval_every=1,
             metric='ndcg@20',
             due=lambda epoch: np.array(schedule.get(epoch, [False] * 2)),
             on_evaluation=lambda epoch, _, improved: seen.append(
                 (epoch, improved.tolist())))
  assert seen == [(1, [True, False]), (2, [True, False]), (3, [True, True]),
                  (6, [False, False])]
  np.testing.assert_array_equal(stopping.stale, [0, 1])
  np.testing.assert_array_equal(stopping.best_epoch, [3, 3])


def test_candidates_added_at_an_evaluation_train_from_the_next_epoch():
  learner = _ScriptedLearner({e: [0.5, 0.1, 0.2] for e in range(1, 5)})
  stopping = driver.EarlyStopping.start(2, 10)

  def on_evaluation(epoch, results, improved):
    del results, improved
    if epoch == 2:
      stopping.halt(np.array([False, True]))
      stopping.extend(1)
      learner.active = np.append(learner.active, True)

  driver.fit(learner, _Sampler(), stopping, epochs=4, eval_every=2,
             metric='ndcg@20', on_evaluation=on_evaluation)
  assert [active.tolist() for _, active in learner.steps] == (
      [[True, True]] * 4 + [[True, False, True]] * 4)
  np.testing.assert_array_equal(stopping.best_epoch, [2, 2, 4])


def test_a_finished_run_is_read_back_only_under_its_protocol(
    tmp_path, monkeypatch, caplog):
  """A run finished with fewer epochs is trained again (resumed), not
  passed off as a run of the longer protocol, in its record too."""
  config = test_config.get_config()
  arch = space.from_string('mf')
  trained = []

  def fake_training(run_config, workdir, data, arch):
    del data, arch
    trained.append(run_config.epochs)
    os.makedirs(workdir, exist_ok=True)
    results = {'epochs_run': run_config.epochs}
    with open(os.path.join(workdir, 'results.json'), 'w') as f:
      json.dump(results, f)
    return results

  monkeypatch.setattr(driver, 'train_and_evaluate', fake_training)
  data = driver.TrainingData.from_config(config)
  directory = str(tmp_path / 'runs')
  epochs = config.epochs
  driver.train_with_seeds(config, directory, arch, [0], data)
  (run,) = driver.train_with_seeds(config, directory, arch, [0], data)
  assert trained == [epochs] and run['epochs_run'] == epochs
  with config.unlocked():
    config.epochs = epochs + 2
  record = str(tmp_path / 'runs.jsonl')
  (run,) = driver.train_with_seeds(config, directory, arch, [0], data,
                                   record=record)
  assert trained == [epochs, epochs + 2] and run['epochs_run'] == epochs + 2
  ((_, row),) = records.read(record)
  assert (row['epochs_run'], row['protocol']['epochs']) == (epochs + 2,) * 2
  # A run finished before its protocol was kept is taken as it is.
  os.remove(os.path.join(directory, 'seed_0', driver.PROTOCOL_FILE))
  with config.unlocked():
    config.epochs = epochs + 3
  with caplog.at_level(logging.WARNING):
    (run,) = driver.train_with_seeds(config, directory, arch, [0], data)
  assert trained == [epochs, epochs + 2] and run['epochs_run'] == epochs + 2
  assert 'predates the record of its protocol' in caplog.text


def test_a_record_carries_finished_runs_to_another_directory(
    tmp_path, monkeypatch):
  """Runs held by a record are read from it, trained nowhere, whatever the
  directory; every other finished run is added to it."""
  config = test_config.get_config()
  arch = space.from_string('mf')
  trained = []

  def fake_training(run_config, workdir, data, arch):
    del data
    trained.append(run_config.seed)
    return {'valid/ndcg@20': 0.5 + run_config.seed, 'workdir_seen': workdir,
            'arch': arch.to_string(), 'seed': run_config.seed}

  monkeypatch.setattr(driver, 'train_and_evaluate', fake_training)
  record = str(tmp_path / 'records' / 'runs.jsonl')
  data = driver.TrainingData.from_config(config)
  driver.train_with_seeds(config, str(tmp_path / 'a'), arch, [0, 1], data,
                          record=record)
  again = driver.train_with_seeds(config, str(tmp_path / 'b'), arch, [1, 2],
                                  data, record=record)
  assert trained == [0, 1, 2]  # Seed 1 came from the record.
  assert again[0]['valid/ndcg@20'] == 1.5
  assert again[0]['workdir'] == str(tmp_path / 'b' / 'seed_1')
  rows = records.read(record)
  assert [(n, r['protocol']['seed']) for n, r in rows] == [(1, 0), (2, 1),
                                                           (3, 2)]
  assert rows[0][1]['protocol'] == driver.run_protocol(
      config, data.dataset, arch)
  # Another architecture shares the record under any protocol.
  other = space.from_string('lightgcn')
  with config.unlocked():
    config.epochs += 1
  driver.train_with_seeds(config, str(tmp_path / 'c'), other, [0], data,
                          record=record)
  assert trained == [0, 1, 2, 0]
  # The same architecture and seed under another protocol is refused.
  with pytest.raises(ValueError) as error:
    driver.train_with_seeds(config, str(tmp_path / 'd'), arch, [0], data,
                            record=record)
  assert str(error.value) == (
      f'{record}:1: {arch.to_string()} (seed 0) was trained with other '
      f'settings: epochs was {config.epochs - 1}, now {config.epochs}. '
      'Give another record or remove that line.')


def test_a_diverging_run_names_its_seed_directory_and_learning_rate(
    tmp_path, monkeypatch):
  config = test_config.get_config()
  with config.unlocked():
    config.epochs = 2
  step = driver._SingleModel.step

  def non_finite_loss(self, batch):
    return dict(step(self, batch), loss=np.float32(np.nan))

  monkeypatch.setattr(driver._SingleModel, 'step', non_finite_loss)
  arch = space.from_string('mf')
  directory = str(tmp_path / 'runs')
  with pytest.raises(FloatingPointError) as error:
    driver.train_with_seeds(config, directory, arch, [3])
  assert str(error.value) == (
      f'Seed 3 ({os.path.join(directory, "seed_3")}): Training diverged at '
      f'epoch 1 (loss nan); lower the learning rate of {arch}.')
  # Nothing claims the run finished.
  assert not os.path.exists(os.path.join(directory, 'seed_3', 'results.json'))
  # Asked again under the same protocol, it says so without training (a
  # training now would finish: the loss is finite again).
  monkeypatch.setattr(driver._SingleModel, 'step', step)
  with pytest.raises(FloatingPointError) as again:
    driver.train_with_seeds(config, directory, arch, [3])
  assert str(again.value) == (
      f'Seed 3 ({os.path.join(directory, "seed_3")}): Training diverged at '
      f'epoch 1 (loss nan); lower the learning rate of {arch}. Recorded '
      f'in {driver.DIVERGED_FILE}: delete it to train again.')
  # Under another protocol, it trains.
  (run,) = driver.train_with_seeds(config, directory,
                                   space.from_string('mf,lr=0.0001'), [3])
  assert np.isfinite(run['valid/ndcg@20'])
  assert not os.path.exists(os.path.join(directory, 'seed_3',
                                         driver.DIVERGED_FILE))


def test_a_run_without_validation_trains_every_epoch_and_tests_the_last(
    tmp_path, caplog):
  """A retraining on every training pair: no early stopping, the last
  state tested, each epoch logged."""
  config = test_config.get_config()
  with config.unlocked():
    config.epochs = 2
    config.data.split_ratios = (0.9, 0.0, 0.1)
  with caplog.at_level(logging.INFO):
    (run,) = driver.train_with_seeds(config, str(tmp_path),
                                     space.from_string('mf'), [0])
  assert run['best_epoch'] == run['epochs_run'] == 2
  assert not [key for key in run if key.startswith('valid/')]
  assert np.isfinite(run['test/ndcg@20'])
  assert 'epoch 2 of 2: loss' in caplog.text
