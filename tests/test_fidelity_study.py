"""Tests for the fidelity study's measurements and table."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from conftest import ROOT
from experiments import fidelity
from experiments.configs import search_test
from gnas_jax import driver
from gnas_jax import records
from gnas_jax import space
from gnas_jax.search import evaluation


def run_study(workdir, *options):
  return subprocess.run(
      [sys.executable, '-m', 'experiments.fidelity_study',
       '--config=experiments/configs/search_test.py', f'--workdir={workdir}',
       '--num_archs=4', '--rungs=2,1', *options],
      cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def study(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('fidelity')
  result = run_study(workdir, f'--out={workdir}/fidelity')
  assert result.returncode == 0, result.stderr[-3000:]
  with open(workdir / 'fidelity.json') as f:
    return workdir, json.load(f)


def test_rank_correlations_are_those_of_the_recorded_scores(study):
  workdir, record = study
  archs = record['archs']
  assert len(archs) == 4 and len({a['arch'] for a in archs}) == 4
  full = [a['full_valid_ndcg@20'] for a in archs]
  for row, rung in zip(record['rows'], (1, 2)):
    rung_scores = [a['curve'][rung - 1] for a in archs]
    assert row['epochs'] == rung
    assert row['spearman'] == pytest.approx(
        stats.spearmanr(rung_scores, full).statistic)
    assert row['kendall'] == pytest.approx(
        stats.kendalltau(rung_scores, full).statistic)
  # The search's fixed fidelity (search_test: 2 epochs, each evaluated).
  fixed = [max(a['curve'][:2]) for a in archs]
  assert record['rows'][-1]['spearman'] == pytest.approx(
      stats.spearmanr(fixed, full).statistic)
  table = (workdir / 'fidelity.md').read_text()
  assert '| epoch 1 |' in table and '| epoch 2 |' in table
  assert (workdir / 'fidelity.png').stat().st_size > 0


def test_full_protocol_scores_are_the_retrained_runs(study):
  workdir, record = study
  runs = sorted(workdir.glob('final/*/seed_0/results.json'))
  by_arch = {json.loads(p.read_text())['arch']: json.loads(p.read_text())
             for p in runs}
  for arch in record['archs']:
    run = by_arch[arch['arch']]
    assert arch['full_valid_ndcg@20'] == run['valid/ndcg@20']
    assert arch['full_test_ndcg@20'] == run['test/ndcg@20']
    # Low fidelity trains every candidate to the last rung.
    assert np.isfinite(arch['curve']).all() and len(arch['curve']) == 2


def test_a_smaller_round_replays_at_its_epochs_from_the_kept_runs(study):
  """--round_size gives every schedule the epochs of a smaller fixed round
  (equal seconds for a costlier epoch) and trains nothing again."""
  workdir, record = study
  kept = (workdir / 'fidelity_low_fidelity.jsonl').read_text()
  result = run_study(workdir, '--round_size=2', f'--out={workdir}/small',
                     f'--record={workdir}/fidelity')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Low fidelity: architectures' not in result.stderr
  assert 'with seed 0 in' not in result.stderr  # Nothing trained.
  assert (workdir / 'fidelity_low_fidelity.jsonl').read_text() == kept
  small = json.loads((workdir / 'small.json').read_text())
  assert small['archs'] == record['archs']
  (fixed,) = [r for r in small['schedules'] if not r['rungs']]
  # search_test's fixed fidelity: 2 epochs, so 2 candidates x 2 epochs.
  assert (fixed['round_size'], fixed['cost']) == (2, 4)
  assert all(r['cost'] <= 4 for r in small['schedules'])
  assert '(2 candidates x 2 epochs = 4)' in (workdir / 'small.md').read_text()


def test_the_records_alone_carry_a_study_to_another_workdir(study,
                                                            tmp_path):
  """A study continued without its checkpoints (another session, another
  machine, shards of it) trains nothing its records hold and writes the
  same figures."""
  workdir, record = study
  texts = {name: (workdir / name).read_text() for name in
           ('fidelity_low_fidelity.jsonl', 'fidelity_full.jsonl')}
  full = [json.loads(line) for line in
          texts['fidelity_full.jsonl'].splitlines()]
  assert [r['arch'] for r in full] == [a['arch'] for a in record['archs']]
  assert [r['valid/ndcg@20'] for r in full] == [
      a['full_valid_ndcg@20'] for a in record['archs']]
  for name, text in texts.items():
    (tmp_path / name).write_text(text)
  # A shard (architectures 1 and 3 of 4) trains what the record lacks (the
  # last one) and reports nothing.
  lines = texts['fidelity_full.jsonl'].splitlines(True)
  (tmp_path / 'fidelity_full.jsonl').write_text(''.join(lines[:3]))
  result = run_study(tmp_path / 'empty', f'--out={tmp_path}/fidelity',
                     '--shard=1/2')
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stderr.count('with seed 0 in') == 1
  assert 'Low fidelity: architectures' not in result.stderr
  # Its low fidelity: none of the one population of 4.
  assert ('Shard 1/2 has its low-fidelity populations (0) recorded in '
          f'{tmp_path}/fidelity_low_fidelity.jsonl and its full-protocol '
          'runs (2)') in result.stderr
  assert not (tmp_path / 'fidelity.json').exists()
  # Trained again in another workdir, the run scores as the one recorded.
  again = json.loads((tmp_path / 'fidelity_full.jsonl').read_text()
                     .splitlines()[3])
  scores = lambda run: {k: v for k, v in run.items()
                        if k.startswith(('valid/', 'test/'))}
  assert again['arch'] == full[3]['arch'] and scores(again)
  assert scores(again) == scores(full[3])
  shutil.rmtree(tmp_path / 'empty')
  result = run_study(tmp_path / 'empty', f'--out={tmp_path}/fidelity')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Low fidelity: architectures' not in result.stderr
  assert 'with seed 0 in' not in result.stderr  # Nothing trained.
  assert not (tmp_path / 'empty' / 'final').exists()
  again = json.loads((tmp_path / 'fidelity.json').read_text())
  assert again['archs'] == record['archs'] and again['rows'] == record['rows']


def test_a_shard_outside_its_count_is_refused(tmp_path):
  shard = '2/2'
  result = run_study(tmp_path / 'never', f'--shard={shard}')
  assert result.returncode == 1
  assert (f'Error: --shard={shard} is not allowed: it must be I/N with '
          '0 <= I < N, say --shard=0/2 and --shard=1/2.\n') in result.stderr
  assert not (tmp_path / 'never').exists()


def test_a_study_of_another_batch_size_shares_the_full_protocol_runs(
    study, tmp_path):
  workdir, record = study
  full_record = tmp_path / 'shared_full.jsonl'
  full_record.write_text((workdir / 'fidelity_full.jsonl').read_text())
  result = run_study(tmp_path / 'other', f'--out={tmp_path}/b256',
                     f'--full_record={full_record}',
                     '--config.fidelity.batch_size=256')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'with seed 0 in' not in result.stderr  # No full-protocol training.
  assert not (tmp_path / 'b256_full.jsonl').exists()
  curves = records.read(str(tmp_path / 'b256_low_fidelity.jsonl'))
  assert len(curves) == 4
  assert {r['protocol']['fidelity.batch_size'] for _, r in curves} == {256}
  other = json.loads((tmp_path / 'b256.json').read_text())
  assert [a['full_valid_ndcg@20'] for a in other['archs']] == [
      a['full_valid_ndcg@20'] for a in record['archs']]
  assert [a['curve'] for a in other['archs']] != [
      a['curve'] for a in record['archs']]
  # Its interim report reads the shared record too.
  result = run_study(tmp_path / 'other', '--recorded_only',
                     f'--record={tmp_path}/b256',
                     f'--full_record={full_record}',
                     f'--out={tmp_path}/b256_interim',
                     '--config.fidelity.batch_size=256')
  assert result.returncode == 0, result.stderr[-3000:]
  interim = json.loads((tmp_path / 'b256_interim.json').read_text())
  assert interim['archs'] == other['archs']


def test_an_interim_report_covers_the_recorded_architectures_only(
    study, tmp_path):
  """--recorded_only reports on the architectures measured so far, says
  it is interim, and trains nothing."""
  workdir, record = study
  lines = (workdir / 'fidelity_full.jsonl').read_text().splitlines(True)
  (tmp_path / 'part_low_fidelity.jsonl').write_text(
      (workdir / 'fidelity_low_fidelity.jsonl').read_text())
  # The second and third architectures' full runs are recorded.
  (tmp_path / 'part_full.jsonl').write_text(''.join(lines[1:3]))
  result = run_study(tmp_path / 'interim', '--recorded_only',
                     f'--record={tmp_path}/part', f'--out={tmp_path}/interim')
  assert result.returncode == 0, result.stderr[-3000:]
  assert not (tmp_path / 'interim' / 'final').exists()
  assert 'Low fidelity: architectures' not in result.stderr
  interim = json.loads((tmp_path / 'interim.json').read_text())
  assert interim['archs'] == record['archs'][1:3]
  full = [a['full_valid_ndcg@20'] for a in interim['archs']]
  first = [a['curve'][0] for a in interim['archs']]
  assert interim['rows'][0]['spearman'] == pytest.approx(
      stats.spearmanr(first, full).statistic)
  assert ('**Interim:** the 2 of the 4 architectures drawn whose '
          'full-protocol run is recorded so far') in (
              tmp_path / 'interim.md').read_text()
  # The complete study's table says nothing of the kind.
  assert 'Interim' not in (workdir / 'fidelity.md').read_text()
  (tmp_path / 'part_full.jsonl').write_text(lines[0])
  result = run_study(tmp_path / 'interim', '--recorded_only',
                     f'--record={tmp_path}/part', f'--out={tmp_path}/interim')
  assert result.returncode == 1
  assert (f'--recorded_only: the records {tmp_path}/part_low_fidelity.jsonl '
          f'and {tmp_path}/part_full.jsonl hold 1 of the 4 architectures '
          'measured in full; a rank correlation needs 2.') in result.stderr


def test_a_record_of_another_protocol_is_refused(study, tmp_path):
  workdir, _ = study
  for name in ('fidelity_low_fidelity.jsonl', 'fidelity_full.jsonl'):
    (tmp_path / name).write_text((workdir / name).read_text())
  result = run_study(tmp_path / 'other', f'--out={tmp_path}/fidelity',
                     '--config.patience=7')
  assert result.returncode == 1
  assert f'{tmp_path}/fidelity_full.jsonl:1: ' in result.stderr
  assert ('(seed 0) was trained with other settings: patience was 100, now '
          '7. Give another record or remove that line.') in result.stderr
  assert not (tmp_path / 'other' / 'final').exists()


def test_a_round_of_no_candidates_is_refused_before_any_training(tmp_path):
  result = run_study(tmp_path / 'never', '--round_size=0')
  assert result.returncode == 1
  assert ('Error: --round_size=0 is not allowed: it must be a number of '
          'candidates >= 1.\n') in result.stderr
  assert not (tmp_path / 'never').exists()


def test_halving_cost_counts_every_candidate_epoch():
  # 9 candidates: 9 x 1 epoch, 3 go on to epoch 3 (2 more each), 1 goes
  # on to epoch 9 (6 more).
  assert fidelity.halving_cost(9, (1, 3), 3, 9) == 9 + 3 * 2 + 6
  assert fidelity.halving_cost(16, (), 3, 8) == 128
  # ceil: 5 candidates, eta 2, keep 3 after epoch 1.
  assert fidelity.halving_cost(5, (1,), 2, 4) == 5 + 3 * 3


def test_replayed_schedule_picks_by_the_curves():
  # Four architectures: the first leads early and fades, the last starts
  # slow and wins; the full protocol agrees with the late scores.
  curves = np.array([[0.5, 0.5, 0.5], [0.4, 0.4, 0.4], [0.3, 0.3, 0.3],
                     [0.1, 0.2, 0.9]])
  full = np.array([0.5, 0.4, 0.3, 0.9])
  rng = np.random.default_rng(0)
  # Without halving, the round picks the best at epoch 3: the last.
  fixed = fidelity.replay_schedule(curves, full, (), 1, 3, 4, 5, rng)
  assert fixed == {'pick': 0.9, 'top3': 1.0, 'cost': 12}
  # Halving at epoch 1 with eta 2 drops the late one.
  halved = fidelity.replay_schedule(curves, full, (1,), 2, 3, 4, 5,
                                          rng)
  assert halved == {'pick': 0.5, 'top3': 1.0, 'cost': 4 + 2 * 2}
  rows = fidelity.schedule_rows(curves, full, fixed_epochs=3,
                                      round_size=2, last=3, draws=50)
  assert rows[0]['rungs'] == [] and rows[0]['round_size'] == 2
  # Every schedule stays within the fixed round's 6 epochs.
  assert all(r['cost'] <= 6 for r in rows)
  # A fixed fidelity beyond the recorded epochs is left out, not indexed.
  rows = fidelity.schedule_rows(curves, full, fixed_epochs=8,
                                      round_size=2, last=3, draws=5)
  assert all(r['epochs'] <= 3 for r in rows)


def test_the_fixed_fidelity_row_scores_as_the_search_does():
  nan = np.nan
  curves = np.array([[0.1, 0.3, 0.2, 0.5],
                     [0.4, 0.3, 0.2, 0.6],
                     [0.1, nan, nan, nan]])  # Diverged in its second epoch.
  # Every epoch evaluated, patience 1: each stops at its first fall.
  np.testing.assert_allclose(
      fidelity.fixed_fidelity_scores(curves, 4, 1, 1), [0.3, 0.4, 0.0])
  # Epochs 2 and 3 (the last) evaluated: epoch 1's 0.4 is never seen.
  np.testing.assert_allclose(
      fidelity.fixed_fidelity_scores(curves, 3, 2, 2), [0.3, 0.3, 0.0])


def test_a_diverged_candidate_counts_as_zero_in_a_correlation():
  got = fidelity.correlations(np.array([0.1, np.nan, 0.3, 0.2]),
                              np.array([0.2, 0.0, 0.4, 0.3]))
  assert got == {'spearman': pytest.approx(1.0), 'kendall': pytest.approx(1.0)}


def test_low_fidelity_trains_every_epoch_and_keeps_recorded_curves(
    tmp_path):
  """Whatever the config's rungs and patience, every candidate trains to
  the end; a population's rows recorded already stay as they are."""
  config = search_test.get_config()
  with config.unlocked():
    config.fidelity.rungs = (1,)
    config.fidelity.eta = 4
    config.fidelity.patience = 1
  archs = space.sample(np.random.default_rng(0), 4,
                       space.subspace_from_string(config.space))
  path = str(tmp_path / 'curves.jsonl')
  longer = [0.5, 0.25, 0.125]
  records.append(path, [{'arch': archs[1].to_string(), 'curve': longer,
                         'protocol': fidelity.low_fidelity_protocol(config)}])
  curves = fidelity.low_fidelity_curves(
      config, driver.TrainingData.from_config(config), archs, 2, path)
  assert np.isfinite(curves).all() and curves.shape == (4, 2)
  np.testing.assert_array_equal(curves[1], longer[:2])
  rows = [row for _, row in records.read(path)]
  assert [row['arch'] for row in rows] == [archs[1].to_string()] + [
      a.to_string() for a in archs if a != archs[1]]


def populations_of_one(num_archs):
  """`(config, data, archs)`: the test search config with one
  architecture per population, and `num_archs` architectures of it."""
  config = search_test.get_config()
  with config.unlocked():
    config.population_size = 1
  archs = space.sample(np.random.default_rng(0), num_archs,
                       space.subspace_from_string(config.space))
  return config, driver.TrainingData.from_config(config), archs


def test_sharded_low_fidelity_populations_train_as_one_process_does(
    tmp_path):
  """Populations 0 and 2 in one shard, 1 in the other: together the same
  curves as the whole, unsharded."""
  config, data, archs = populations_of_one(3)
  shared = str(tmp_path / 'shared.jsonl')
  first = fidelity.record_low_fidelity(config, data, archs, 2, shared,
                                       shard=(0, 2))
  assert sorted(first) == sorted([archs[0].to_string(),
                                  archs[2].to_string()])
  second = fidelity.record_low_fidelity(config, data, archs, 2, shared,
                                        shard=(1, 2))
  assert sorted(second) == sorted(a.to_string() for a in archs)
  whole = fidelity.low_fidelity_curves(config, data, archs, 2,
                                       str(tmp_path / 'whole.jsonl'))
  np.testing.assert_array_equal(
      [second[a.to_string()] for a in archs], whole)


def test_a_population_another_process_recorded_meanwhile_is_not_trained(
    tmp_path, monkeypatch):
  config, data, archs = populations_of_one(2)
  path = str(tmp_path / 'curves.jsonl')
  trained = []
  train = evaluation.PopulationEvaluator.__call__

  def train_then_another_records(self, chunk, key):
    trained.append([a.to_string() for a in chunk])
    # While this population trains, another process records the next.
    records.append(path, [{'arch': archs[1].to_string(), 'curve': [0.5, 0.25],
                           'protocol': fidelity.low_fidelity_protocol(config)}])
    return train(self, chunk, key)

  monkeypatch.setattr(evaluation.PopulationEvaluator, '__call__',
                      train_then_another_records)
  curves = fidelity.low_fidelity_curves(config, data, archs, 2, path)
  assert trained == [[archs[0].to_string()]]
  np.testing.assert_array_equal(curves[1], [0.5, 0.25])
  assert len(records.read(path)) == 2


def log_linear(intercept, slope, epochs):
  return intercept + slope * np.log(np.arange(1, epochs + 1))


def test_the_extrapolated_score_reads_a_log_linear_curve_ahead():
  curves = np.stack([log_linear(0.1, 0.2, 6),
                     [0.3, 0.2, 0.1, np.nan, 0.1, 0.1]])
  scores = fidelity.rung_scores(curves, 'extrapolated', factor=10)
  # Before epoch 3, the best so far; from it, the line at 10x the epochs.
  np.testing.assert_allclose(scores[0, :2], curves[0, :2])
  np.testing.assert_allclose(scores[0, 2:], log_linear(0.1, 0.2, 60)[
      [29, 39, 49, 59]])
  # The least-squares line through epochs 1-3, at epoch 30.
  slope, intercept = np.polyfit(np.log([1, 2, 3]), curves[1, :3], 1)
  assert scores[1, 2] == pytest.approx(intercept + slope * np.log(30))
  # A NaN in the window (epochs 2-4 at epoch 4, ... 4-6 at 6) gives NaN.
  assert np.isnan(scores[1, 3:]).all()
  np.testing.assert_allclose(fidelity.rung_scores(curves, 'best')[1],
                             [0.3] * 6)
  with pytest.raises(ValueError, match="scoring='last' is not allowed"):
    fidelity.rung_scores(curves, 'last')


def test_halving_by_extrapolation_keeps_a_slow_starter():
  # The first plateaus at 0.5; the second is at 0.4 by epoch 3 and rising.
  curves = np.stack([np.full(4, 0.5), log_linear(0.1, 0.3 / np.log(3), 4)])
  full = np.array([0.5, 0.9])
  replay = lambda scoring: fidelity.replay_schedule(
      curves, full, (3,), 2, 4, 2, 3, np.random.default_rng(0),
      fidelity.rung_scores(curves, scoring))
  assert replay('best')['pick'] == 0.5
  assert replay('extrapolated')['pick'] == 0.9


def test_fidelity_extrapolation_rescores_a_report(tmp_path):
  # Final order by the lines at epoch 60: B, C, A, D; the full protocol's.
  lines = {'A': (0.5, 0.0), 'B': (0.1, 0.2), 'C': (0.3, 0.05),
           'D': (0.0, 0.1)}
  full = {'A': 0.5, 'B': 0.9, 'C': 0.6, 'D': 0.4}
  report = {'dataset': 'synthetic', 'schedules': [
      {'rungs': [], 'eta': 1, 'epochs': 3, 'round_size': 2}], 'archs': [
          {'arch': name, 'curve': log_linear(*line, 6).tolist(),
           'full_valid_ndcg@20': full[name]}
          for name, line in lines.items()]}
  path = tmp_path / 'study.json'
  path.write_text(json.dumps(report))
  result = subprocess.run([sys.executable, '-m',
                           'experiments.fidelity_extrapolation',
                           f'--reports={path}', '--epochs=6',
                           f'--out={tmp_path}/x'],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  study, = json.loads((tmp_path / 'x.json').read_text())['studies']
  spearman = {row['scoring']: row['spearman']
              for row in study['correlations']}
  # Best so far at epoch 6 ranks A, B, C, D: sum of squared rank
  # differences 6, so 1 - 6 * 6 / (4 * 15).
  assert spearman == {'best': pytest.approx(0.4),
                      'extrapolated': pytest.approx(1.0)}
  assert '| study | 6 | 0.40 (0.33) | 1.00 (1.00) |' in (
      tmp_path / 'x.md').read_text()
  loaded = fidelity.load_study_report(str(path))
  with pytest.raises(ValueError,
                     match='study has curves of 6 epochs only'):
    fidelity.rescore_study(loaded, [3, 9], 10.0)
  with pytest.raises(ValueError, match='--factor=1 is not allowed: it must '
                     'be above 1'):
    fidelity.rescore_study(loaded, [3], 1.0)
