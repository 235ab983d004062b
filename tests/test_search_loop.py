"""End-to-end tests of the search loop: resume after SIGKILL, summary."""

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from experiments.configs import search_test
from gnas_jax import data as data_lib
from gnas_jax import driver
from gnas_jax import space
from gnas_jax.search import evaluation
from gnas_jax.search import loop
from gnas_jax.search import strategies as strategies_lib
from gnas_jax.search.strategies import base

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DETERMINISTIC = ('round', 'slot', 'arch', 'valid_ndcg', 'valid_recall',
                  'failed', 'epochs')


def _rows(workdir):
  with sqlite3.connect(os.path.join(workdir, 'trials.sqlite')) as db:
    return db.execute(f'SELECT {", ".join(_DETERMINISTIC)} FROM trials '
                      'ORDER BY round, slot').fetchall()


def _checkpointed_rounds(workdir):
  directory = os.path.join(workdir, 'search_state')
  if not os.path.isdir(directory):
    return 0
  return max([int(n) for n in os.listdir(directory) if n.isdigit()],
             default=0)


def _finished_at(workdir, rounds):
  with sqlite3.connect(os.path.join(workdir, 'trials.sqlite')) as db:
    return db.execute('SELECT round, slot, finished_at FROM trials WHERE '
                      'round < ? ORDER BY round, slot', (rounds,)).fetchall()


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('uninterrupted'))
  summary = loop.run_search(search_test.get_config(), workdir)
  return workdir, summary


def test_summary_reports_search_finalists_and_reference(uninterrupted):
  workdir, summary = uninterrupted
  with open(os.path.join(workdir, 'search_summary.json')) as f:
    assert json.load(f) == json.loads(json.dumps(summary))
  assert summary['evaluations'] == 16 and summary['rounds'] == 4
  assert len(_rows(workdir)) == 16
  best = max(_rows(workdir), key=lambda row: row[3])
  assert summary['best_arch'] == best[2]
  assert summary['finalists'][0]['search_valid_ndcg@20'] == best[3]
  # Each metric over the seeds is labelled, with the seeds it comes from.
  chosen = max(summary['finalists'], key=lambda c: c['valid_ndcg@20']['mean'])
  assert summary['test_ndcg@20'] == chosen['test_ndcg@20']
  seeds = list(search_test.get_config().final.seeds)
  runs = []
  for seed in seeds:
    path = os.path.join(os.path.dirname(chosen['run_dir']),
                        f'seed_{seed}', 'results.json')
    with open(path) as f:
      runs.append(json.load(f)['test/ndcg@20'])
  statistic = summary['test_ndcg@20']
  assert statistic['seeds'] == seeds and statistic['values'] == runs
  assert statistic['mean'] == pytest.approx(np.mean(runs))
  assert statistic['std'] == pytest.approx(
      np.std(runs, ddof=1) if len(runs) > 1 else 0.0)
  assert 0 < statistic['mean'] < 1
  assert summary['reference']['name'] == 'lightgcn'
  assert summary['reference']['arch'] == space.from_string(
      'lightgcn').to_string()
  run_dir = summary['finalists'][0]['run_dir']
  with open(os.path.join(run_dir, 'results.json')) as f:
    assert json.load(f)['arch'] == summary['best_arch']
  # Each finalist's run exports a model for `experiments.recommend`.
  assert os.path.exists(os.path.join(run_dir, 'model', 'model.json'))


def test_killed_search_resumes_to_the_uninterrupted_result(
    uninterrupted, tmp_path):
  reference_dir, reference = uninterrupted
  workdir = str(tmp_path / 'killed')
  command = [sys.executable, '-m', 'experiments.search',
             '--config=experiments/configs/search_test.py',
             f'--workdir={workdir}']
  process = subprocess.Popen(command, cwd=_ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  # Kill it once the first round is checkpointed: the second is in flight.
  while time.time() < deadline and process.poll() is None:
    if _checkpointed_rounds(workdir):
      break
    time.sleep(0.1)
  process.send_signal(signal.SIGKILL)
  process.wait()
  checkpointed = _checkpointed_rounds(workdir)
  assert 1 <= checkpointed < 4, checkpointed
  kept = _finished_at(workdir, checkpointed)
  assert len(kept) == 4 * checkpointed

  summary = loop.run_search(search_test.get_config(), workdir)
  rows = _rows(workdir)
  assert rows == _rows(reference_dir)
  assert len({(r[0], r[1]) for r in rows}) == 16
  # Rounds finished before the kill were not run again.
  assert _finished_at(workdir, checkpointed) == kept
  for key in ('best_arch', 'evaluations', 'test_ndcg@20',
              'test_recall@20'):
    assert summary[key] == reference[key], key


def test_a_workdir_holds_one_search(uninterrupted):
  workdir, _ = uninterrupted
  config = search_test.get_config()
  config.resume = False
  with pytest.raises(ValueError, match='holds a search already'):
    loop.search(config, workdir)
  config = search_test.get_config()
  config.seed = 1
  config.population_size = 8
  with pytest.raises(ValueError,
                     match='other settings of population_size, seed'):
    loop.search(config, workdir)


def test_a_search_by_another_revision_of_its_strategy_is_refused(
    uninterrupted, monkeypatch):
  workdir, _ = uninterrupted
  config = search_test.get_config()
  started = strategies_lib.STRATEGIES[config.strategy].revision
  monkeypatch.setattr(strategies_lib.STRATEGIES[config.strategy], 'revision',
                      started + 1)
  with pytest.raises(ValueError, match=(
      f"revision {started} of the '{config.strategy}' strategy, which "
      f"proposes otherwise than this version's revision {started + 1}")):
    loop.search(config, workdir)


def test_a_state_saved_with_another_encoding_is_refused_on_resume(tmp_path):
  # A search saved before a decision was appended to the encoding: its
  # archive holds one token fewer per architecture.
  strategy = loop.build_strategy(search_test.get_config())
  template = strategy.init(jax.random.PRNGKey(0))
  tokens = strategy.ask(template, jax.random.PRNGKey(1), 2)
  older = dataclasses.replace(template, archive=base.Archive(
      tokens[:, :-1], np.zeros(2, np.float32), np.zeros(2, np.float32)))
  checkpoints = loop._StateCheckpoints(str(tmp_path))
  checkpoints.save(1, older, {'rounds_done': 1, 'wall_seconds': 0.0,
                              'fingerprint': {}})
  rounds_done, state_dict, _ = checkpoints.restore()
  width = space.NUM_DECISIONS
  with pytest.raises(ValueError, match=(
      rf'{tmp_path}/1 holds a strategy state that does not fit this one '
      rf'\(ValueError: \.archive\.tokens has shape \(2, {width - 1}\), '
      rf'where this version has \(0, {width}\)\)')):
    checkpoints.state(template, rounds_done, state_dict)
  # The state as saved by this version resumes.
  current, _ = strategy.tell(template, tokens, np.zeros(2))
  checkpoints.save(2, current, {'rounds_done': 2, 'wall_seconds': 0.0,
                                'fingerprint': {}})
  rounds_done, state_dict, _ = checkpoints.restore()
  resumed = checkpoints.state(template, rounds_done, state_dict)
  np.testing.assert_array_equal(resumed.archive.tokens, tokens)
  checkpoints.close()


def test_survivors_are_the_best_share_of_the_candidates():
  scores = np.array([0.5, 0.9, 0.1, 0.7, 0.7, 0.3])
  candidates = np.array([True, True, True, True, True, False])
  # ceil(5 / 2) = 3 go on: 0.9, then 0.7 twice (the earlier first).
  np.testing.assert_array_equal(
      evaluation.survivors(scores, candidates, 2),
      [False, True, False, True, True, False])
  np.testing.assert_array_equal(
      evaluation.survivors(scores, candidates, 3),
      [False, True, False, True, False, False])


def evaluate_sampled(size: int, seed: int, **fidelity):
  """`(config, result)`: `size` architectures drawn with `seed` from
  search_test's space, evaluated in one round with its fidelity updated
  by `fidelity`."""
  config = search_test.get_config()
  with config.unlocked():
    config.fidelity.update(fidelity)
  choices = space.subspace_from_string(config.space)
  archs = space.sample(np.random.default_rng(seed), size, choices)
  evaluator = evaluation.PopulationEvaluator(
      config, driver.TrainingData.from_config(config), choices)
  return config, evaluator(archs, jax.random.PRNGKey(7))


def test_a_search_draws_the_most_negatives_its_space_scores():
  config = search_test.get_config()
  data = driver.TrainingData.from_config(config)
  for text, drawn in (('', config.num_negatives),
                      ('loss=bpr/softmax/softmax-64', 64),
                      ('loss=bpr', config.num_negatives)):
    evaluator = evaluation.PopulationEvaluator(
        config, data, space.subspace_from_string(text))
    assert evaluator.sampler.num_negatives == drawn, text
    assert evaluator.sampler.protocol_negatives == config.num_negatives


def test_a_rung_stops_all_but_the_best_candidates():
  config, result = evaluate_sampled(4, 3, rungs=(1,), eta=2)
  assert not result['failed'].any()
  at_rung = result['curve'][:, 0]
  going_on = result['epochs'] == config.fidelity.epochs
  # Two of four go on: those with the better scores at the rung.
  assert going_on.sum() == 2
  assert at_rung[going_on].min() >= at_rung[~going_on].max()
  np.testing.assert_array_equal(result['epochs'][~going_on], 1)
  assert np.isnan(result['curve'][~going_on, 1]).all()
  # Each score counts at the epochs its candidate was allotted.
  np.testing.assert_array_equal(
      result['fidelity'], np.where(going_on, config.fidelity.epochs, 1))


def test_a_candidate_that_stops_on_its_own_is_judged_at_the_rung():
  """Rung at epoch 2 of 4, eta 2, patience 1: a candidate whose score
  falls at epoch 2 stops there before the rung ranks it. It is ranked with
  its best score all the same, and counts at 4 epochs only if the rung
  would have let it go on."""
  _, result = evaluate_sampled(6, 4, rungs=(2,), eta=2, epochs=4, patience=1)
  assert not result['failed'].any()
  curve = result['curve']
  at_rung = np.fmax(curve[:, 0], curve[:, 1])  # Best score by epoch 2.
  stopped_on_its_own = (result['epochs'] < 4) & (curve[:, 1] < curve[:, 0])
  fidelity = result['fidelity']
  assert set(fidelity[stopped_on_its_own]) == {2, 4}
  # What counts at 4 epochs beat at the rung all that count at 2.
  assert at_rung[fidelity == 4].min() > at_rung[fidelity == 2].max()
  np.testing.assert_array_equal(fidelity[~stopped_on_its_own],
                                np.where(result['epochs'] == 2, 2, 4)[
                                    ~stopped_on_its_own])


def halving_config():
  """search_test's config with a rung at epoch 1, eta 2 and two refills;
  and its space."""
  config = search_test.get_config()
  with config.unlocked():
    config.fidelity.rungs = (1,)
    config.fidelity.eta = 2
    config.fidelity.refill = 2
  return config, space.subspace_from_string(config.space)


def test_refills_take_the_freed_slots_and_pass_the_same_rungs():
  """Rung at epoch 1, eta 2, two refills: the two candidates the rung stops
  make room for two new ones, which start then and are judged at their own
  first epoch among all six that reached it."""
  config, choices = halving_config()
  archs = space.sample(np.random.default_rng(3), 6, choices)
  evaluator = evaluation.PopulationEvaluator(
      config, driver.TrainingData.from_config(config), choices)
  calls = []

  def refill(stopped, results, wanted):
    calls.append((stopped.tolist(), results['ndcg'][stopped].tolist(),
                  wanted))
    return archs[4:4 + wanted]

  result = evaluator(archs[:4], jax.random.PRNGKey(7), refill)
  assert not result['failed'].any()
  assert [a.to_string() for a in result['archs']] == [
      a.to_string() for a in archs]
  at_rung = result['curve'][:, 0]
  (stopped, scores, wanted), = calls
  # The first four met the rung together: the better two went on.
  going_on = result['epochs'][:4] == config.fidelity.epochs
  assert sorted(stopped) == np.flatnonzero(~going_on).tolist()
  assert wanted == 2
  np.testing.assert_allclose(scores, at_rung[stopped])
  assert at_rung[:4][going_on].min() >= at_rung[:4][~going_on].max()
  # Each new one went on only if among the best ceil(6 / 2) = 3 of the six
  # rung scores.
  third_best = np.sort(at_rung)[::-1][2]
  for position in (4, 5):
    assert result['epochs'][position] == (
        2 if at_rung[position] >= third_best else 1)
  # The round went on until the refilled candidates were done.
  assert np.isfinite(result['curve'][4:, 0]).all()


def test_a_rung_ranks_its_arrivals_by_their_scores_on_arrival():
  # Position 2 arrived with 0.35, 3 with 0.32; 0 and 1 with less.
  np.testing.assert_array_equal(
      evaluation.promoted({0: 0.3, 1: 0.2, 2: 0.35, 3: 0.32}, 5, 2),
      [False, False, True, True, False])
  # A candidate that failed on its way counts below every score.
  np.testing.assert_array_equal(
      evaluation.promoted({0: float('nan'), 1: 0.1}, 2, 2), [False, True])


def test_refills_of_a_stopped_candidates_shape_train_in_its_program():
  config, choices = halving_config()
  like = [space.from_string(f'lightgcn,width=16,layers=1,readout=last,'
                            f'act=identity,lr={lr},l2={l2}')
          for lr in (1e-3, 1e-2) for l2 in (1e-4, 1e-3, 0.0)]
  evaluator = evaluation.PopulationEvaluator(
      config, driver.TrainingData.from_config(config), choices)
  result = evaluator(like[:4], jax.random.PRNGKey(7),
                     lambda stopped, results, wanted: like[4:4 + wanted])
  assert len(result['archs']) == 6
  # The two refills took the slots the rung freed: one program in all.
  assert result['programs'] == 1


def test_a_refilling_search_resumes_to_the_uninterrupted_result(tmp_path):
  config = search_test.get_config()
  with config.unlocked():
    config.strategy = 'random'
    config.budget = 12
    config.fidelity.rungs = (1,)
    config.fidelity.eta = 2
    config.fidelity.refill = 2
  whole = str(tmp_path / 'whole')
  facts = loop.search(config, whole)
  rows = _rows(whole)
  assert facts['evaluations'] == len(rows) == 12
  # A round evaluates its four and the two that take the freed slots.
  assert [r[0] for r in rows] == [0] * 6 + [1] * 6
  assert len({r[2] for r in rows}) == 12
  # The rung halted some of each round's candidates: their trials say they
  # count at epoch 1, the others at the fidelity's 2.
  with sqlite3.connect(os.path.join(whole, 'trials.sqlite')) as db:
    fidelity, epochs = zip(*db.execute(
        'SELECT fidelity_epochs, epochs FROM trials ORDER BY round, slot'))
  assert fidelity == epochs and sorted(set(fidelity)) == [
      1, config.fidelity.epochs]
  # A search whose budget ends with the first round, continued.
  resumed = str(tmp_path / 'resumed')
  with config.unlocked():
    config.budget = 6
  assert loop.search(config, resumed)['rounds'] == 1
  with config.unlocked():
    config.budget = 12
  loop.search(config, resumed)
  assert _rows(resumed) == rows


def write_given_split(dataset, folder):
  """`dataset` as LightGCN's files: training (and validation) items, test
  items, one line per user."""
  folder.mkdir()
  for name, pairs in (('train.txt', np.concatenate([dataset.train,
                                                    dataset.valid])),
                      ('test.txt', dataset.test)):
    lines = [' '.join(map(str, [user, *sorted(pairs[pairs[:, 0] == user,
                                                    1])]))
             for user in np.unique(pairs[:, 0])]
    (folder / name).write_text('\n'.join(lines) + '\n')
  return str(folder)


def test_finalists_retrain_on_the_share_of_users_the_config_names(
    tmp_path):
  """A search on half the users of a given split whose finalist and
  reference are retrained and tested on all of them."""
  config = search_test.get_config()
  with config.unlocked():
    config.dataset = write_given_split(
        data_lib.load_dataset(search_test.get_config()), tmp_path / 'given')
    config.data.split = 'given'
    config.strategy = 'random'
    config.budget = 4
    config.data.user_fraction = 0.5
    config.final.user_fraction = 1.0
  summary = loop.run_search(config, str(tmp_path / 'search'))
  with config.unlocked():
    config.data.user_fraction = 1.0
  whole = data_lib.load_dataset(config)
  assert summary['final_users'] == whole.num_users
  assert summary['search_users'] < whole.num_users
  for run in (summary['finalists'][0], summary['reference']):
    with open(os.path.join(run['run_dir'], driver.FINGERPRINT_FILE)) as f:
      assert json.load(f)['data']['user_fraction'] == 1.0


def test_the_search_and_its_choice_never_read_the_test_split(
    uninterrupted, tmp_path, monkeypatch):
  """Another test split (every other pair), the same training and
  validation: the same trials and the same choice; only the reported test
  figures differ."""
  reference_dir, reference = uninterrupted
  config = search_test.get_config()
  dataset = data_lib.load_dataset(config)
  other = dataclasses.replace(dataset, test=dataset.test[::2])
  monkeypatch.setattr(data_lib, 'load_dataset', lambda config: other)
  workdir = str(tmp_path / 'other_test')
  summary = loop.run_search(config, workdir)
  assert _rows(workdir) == _rows(reference_dir)
  assert summary['best_arch'] == reference['best_arch']
  for ours, theirs in zip(summary['finalists'], reference['finalists']):
    assert ours['valid_ndcg@20'] == theirs['valid_ndcg@20']
  assert summary['test_ndcg@20'] != reference['test_ndcg@20']


@pytest.mark.usefixtures('rounds_outlast_a_second')
@pytest.mark.parametrize('budget', [None, 0], ids=['budget', 'no_budget'])
def test_a_wall_time_budget_ends_the_search_after_the_round_that_spends_it(
    uninterrupted, tmp_path, capsys, budget):
  """The first round outlasts a one-second budget: the search stops there,
  records that round as the uninterrupted search did, and its progress bar
  counts rounds against the wall time rather than against the budget;
  alike with the config's budget of evaluations and with none (0)."""
  reference_dir, _ = uninterrupted
  config = search_test.get_config()
  with config.unlocked():
    config.max_wall_seconds = 1
    config.final.reference = ''
    config.progress = True
    if budget is not None:
      config.budget = budget
  workdir = str(tmp_path / 'timed')
  summary = loop.run_search(config, workdir)
  assert summary['rounds'] == 1 and summary['evaluations'] == 4
  assert _rows(workdir) == _rows(reference_dir)[:4]
  bar = capsys.readouterr().err
  assert 'wall=' in bar and '/1 s' in bar
  assert f'/{config.budget // config.population_size}' not in bar


def test_an_option_added_later_counts_in_the_fingerprint_only_when_set():
  """Searches recorded before `coverage` existed ran without probes, and
  still resume; a search with probes is another search."""
  config = search_test.get_config()
  with config.unlocked():
    config.strategy = 'adversarial'
  assert 'coverage' not in loop.fingerprint(config)['options']
  assert loop.fingerprint(config)['options']['mutations'] == 8
  with config.unlocked():
    config.strategies.adversarial.coverage = 0.125
  assert loop.fingerprint(config)['options']['coverage'] == 0.125
