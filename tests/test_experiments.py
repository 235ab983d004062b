"""Tests for the experiment scripts' own logic (tables, reuse of runs)."""

import json
import re

import numpy as np
import pytest

from experiments import tuning
from experiments.configs import test as test_config
from gnas_jax import records
from gnas_jax import space


def test_baselines_table_reports_mean_and_sample_std():
  runs = [{'valid/ndcg@20': 0.1, 'test/recall@20': r, 'test/ndcg@20': n,
           'test/recall@10': 0.1, 'test/ndcg@10': 0.2, 'best_epoch': e,
           'epochs_run': e + 30, 'train_seconds_per_epoch': 1.0,
           'seed': seed}
          for seed, (r, n, e) in enumerate([(0.30, 0.20, 10),
                                            (0.32, 0.26, 20)])]
  table = tuning.summary_table(
      {'lightgcn': {'selected': 'lightgcn', 'runs': runs, 'tuning': {}}})
  row = table.splitlines()[2]
  # Recall@20: mean 0.31, sample std sqrt(2 * 0.01^2 / 1) = 0.0141.
  assert row.startswith(
      '| lightgcn | 0.1000 ± 0.0000 | 0.3100 ± 0.0141 | 0.2300 ± 0.0424 |')
  assert row.endswith('| 15.00 ± 7.07 | 45.00 ± 7.07 | 1.00 ± 0.00 | 2 |')


def test_a_run_without_validation_has_no_validation_cell():
  # A retraining on every training pair (data.given_valid_ratio=0).
  runs = [{'test/recall@20': 0.3, 'test/ndcg@20': 0.2, 'test/recall@10': 0.1,
           'test/ndcg@10': 0.1, 'best_epoch': 81, 'epochs_run': 81,
           'train_seconds_per_epoch': 2.0, 'seed': 0}]
  table = tuning.summary_table(
      {'mf': {'selected': 'mf', 'runs': runs, 'tuning': {}}})
  assert table.splitlines()[2].startswith('| mf | - | 0.3000 ± 0.0000 |')


def test_baselines_reuse_finished_runs(tmp_path):
  finished = {'test/ndcg@20': 0.5, 'seed': 3}
  run_dir = tmp_path / 'mf' / 'seed_3'
  run_dir.mkdir(parents=True)
  (run_dir / 'results.json').write_text(json.dumps(finished))
  config = test_config.get_config()
  with config.unlocked():
    config.archs, config.seeds = ('mf',), (3,)
  assert tuning.run_all(config, str(tmp_path)) == {'mf': {
      'selected': 'mf', 'tuning': {},
      'runs': [dict(finished, workdir=str(run_dir))], 'diverged_finals': []}}


def test_a_baselines_row_is_of_the_configured_kind():
  runs = [{'test/recall@20': 0.3, 'test/ndcg@20': 0.2, 'best_epoch': 7,
           'seed': 0}]
  results = {'mf': {'selected': 'mf', 'runs': runs}}
  (row,) = tuning.csv_rows(results, 'gowalla', 'searched')
  assert (row['dataset'], row['model'], row['kind']) == (
      'gowalla', 'mf', 'searched')
  assert row['arch'] == space.preset('mf').to_string()
  with pytest.raises(ValueError, match=r"config.kind is 'serached'; it must "
                     r"be one of 'hand-designed', 'searched'"):
    tuning.csv_rows(results, 'gowalla', 'serached')


def test_a_subsample_is_named_by_its_share_of_users():
  assert tuning.dataset_label('gowalla') == 'gowalla'
  assert tuning.dataset_label('gowalla', 1.0) == 'gowalla'
  assert tuning.dataset_label('gowalla', 0.1) == 'gowalla-sub10'
  assert tuning.dataset_label('ml-100k', 0.25) == 'ml-100k-sub25'
  assert tuning.dataset_label('yelp2018', 0.025) == 'yelp2018-sub2.5'


def test_tuning_grid_is_the_product_of_lr_and_l2():
  assert tuning.tuning_grid('mf', None) == ['mf']
  grid = {'lr': (1e-3, 1e-2), 'l2': (), 'seed': 0}
  # An empty axis keeps the architecture's own value.
  assert tuning.tuning_grid('mf', grid) == [
      f'mf,lr=0.001,l2={space.preset("mf").l2}',
      f'mf,lr=0.01,l2={space.preset("mf").l2}']


def test_negatives_are_tuned_for_sampled_softmax_models_only():
  grid = {'lr': (1e-3, 1e-2), 'l2': (), 'negatives': (0, 128), 'seed': 0}
  setting = 'mf,loss=softmax,lr=0.01,l2=0.0001'
  assert tuning.negatives_settings(setting, grid) == [
      f'{setting},loss=softmax-128']
  assert tuning.negatives_settings(f'{setting},loss=softmax-64', grid) == [
      f'{setting},loss=softmax-64,loss=softmax',
      f'{setting},loss=softmax-64,loss=softmax-128']
  assert tuning.negatives_settings('mf,lr=0.01', grid) == []
  assert tuning.negatives_settings(setting, {'lr': (1e-3,)}) == []
  # An entry may name a loss over negatives shared by a mini-batch.
  shared = {'negatives': (0, 'shared-softmax-4096')}
  assert tuning.negatives_settings(setting, shared) == [
      f'{setting},loss=shared-softmax-4096']
  for entry in ('bpr', 'shared-softmax-7'):
    with pytest.raises(ValueError, match=f"config.tuning.negatives: '{entry}' "
                       'is no sampled-softmax loss; a number of negatives '
                       'or one of softmax, softmax-32'):
      tuning.negatives_settings(setting, {'negatives': (entry,)})
  # The (lr, L2) grid itself has no negatives axis.
  assert len(tuning.tuning_grid('mf,loss=softmax', grid)) == 2


def test_a_setting_of_a_per_layer_architecture_is_one_directory():
  assert tuning.setting_directory(
      'width=16,layers=2,agg=gcn/sage,lr=0.001') == (
          'width=16_layers=2_agg=gcn-sage_lr=0.001')
  assert tuning.setting_directory('lightgcn,lr=0.01,l2=0.0001') == (
      'lightgcn_lr=0.01_l2=0.0001')


def test_tuning_selects_on_validation_and_trains_the_selection(
    tmp_path, monkeypatch):
  config = mf_tuning_config((0, 1))
  record = str(tmp_path / 'runs.jsonl')
  results = tuning.run_all(config, str(tmp_path / 'first'),
                           record=record)['mf']
  # Another workdir (session, machine) goes on from the record alone.
  def no_training(*args):
    raise AssertionError(f'trained again: {args[-1]}')
  monkeypatch.setattr(tuning.driver, 'train_and_evaluate', no_training)
  again = tuning.run_all(config, str(tmp_path / 'again'),
                         record=record)['mf']
  strip = lambda runs: [{k: v for k, v in r.items() if k != 'workdir'}
                        for r in runs]
  assert again['tuning'] == results['tuning']
  assert strip(again['runs']) == strip(results['runs'])
  assert len(records.read(record)) == 3
  scores = results['tuning']
  assert sorted(scores) == ['mf,lr=0.001,l2=0.0', 'mf,lr=0.01,l2=0.0']
  assert results['selected'] == max(scores, key=scores.get)
  runs = results['runs']
  assert [r['seed'] for r in runs] == [0, 1]
  # The tuning run of the selected setting is its seed-0 run.
  assert runs[0]['valid/ndcg@20'] == scores[results['selected']]
  (row,) = tuning.csv_rows({'mf': results}, 'synthetic')
  assert row['arch'] == space.from_string(results['selected']).to_string()
  assert row['seeds'] == '0 1' and row['kind'] == 'hand-designed'
  assert row['test_ndcg@20_mean'] == pytest.approx(
      np.mean([r['test/ndcg@20'] for r in runs]))
  assert '| mf (lr=' in tuning.summary_table({'mf': results})


def diverge_when(monkeypatch, condition):
  """Makes the tuning's trainings of (arch, seeds) where `condition` holds
  raise as a diverging training does."""
  train_with_seeds = tuning.driver.train_with_seeds

  def training(config, directory, arch, seeds, data, record):
    if condition(arch, seeds):
      raise FloatingPointError('Training diverged at epoch 1 (loss nan).')
    return train_with_seeds(config, directory, arch, seeds, data, record)

  monkeypatch.setattr(tuning.driver, 'train_with_seeds', training)


def mf_tuning_config(seeds):
  """The test protocol tuning MF's lr over {1e-3, 1e-2} at seed 0."""
  config = test_config.get_config()
  with config.unlocked():
    config.archs, config.seeds = ('mf',), seeds
    config.tuning = {'lr': (1e-3, 1e-2), 'l2': (0.0,), 'seed': 0}
  return config


def test_negatives_are_tuned_after_lr_and_l2_at_the_selected_setting(
    tmp_path, monkeypatch):
  """A sampled-softmax model's numbers of negatives compete at the (lr, L2)
  the grid selected (2 + 1 tuning runs, not 2 x 2); a BPR model has none."""
  trained = []

  def training(config, directory, arch, seeds, data, record):
    trained.append((arch.to_string(), tuple(seeds)))
    score = arch.lr + (0.5 if arch.loss == 'softmax-64' else 0.0)
    return [{'seed': seed, 'valid/ndcg@20': score} for seed in seeds]

  monkeypatch.setattr(tuning.driver, 'train_with_seeds', training)
  config = mf_tuning_config((0, 1))
  with config.unlocked():
    config.archs = ('mf,loss=softmax', 'mf')
    config.tuning.negatives = (0, 64)
  results = tuning.run_all(config, str(tmp_path))

  def setting(text):
    return space.from_string(text).to_string()

  softmax = results['mf,loss=softmax']
  selected = 'mf,loss=softmax,lr=0.01,l2=0.0,loss=softmax-64'
  assert softmax['selected'] == selected
  assert list(softmax['tuning']) == [
      'mf,loss=softmax,lr=0.001,l2=0.0', 'mf,loss=softmax,lr=0.01,l2=0.0',
      selected]
  assert trained == [
      (setting('mf,loss=softmax,lr=0.001,l2=0'), (0,)),
      (setting('mf,loss=softmax,lr=0.01,l2=0'), (0,)),
      (setting(selected), (0,)), (setting(selected), (0, 1)),
      (setting('mf,lr=0.001,l2=0'), (0,)), (setting('mf,lr=0.01,l2=0'), (0,)),
      (setting('mf,lr=0.01,l2=0'), (0, 1))]


def test_a_grid_without_validation_is_refused_before_training(
    tmp_path, monkeypatch):
  diverge_when(monkeypatch, lambda arch, seeds: pytest.fail('trained'))
  config = mf_tuning_config((0,))
  with config.unlocked():
    config.data.split_ratios = (0.9, 0.0, 0.1)
  with pytest.raises(ValueError, match=re.escape(
      'config.tuning gives mf a grid, which is selected on validation '
      'NDCG@20, and this split has no validation pairs')):
    tuning.run_all(config, str(tmp_path))


def test_a_diverging_setting_loses_the_tuning_and_the_others_go_on(
    tmp_path, monkeypatch):
  diverge_when(monkeypatch, lambda arch, seeds: arch.lr == 1e-2)
  config = mf_tuning_config((0,))
  results = tuning.run_all(config, str(tmp_path))['mf']
  assert results['tuning']['mf,lr=0.01,l2=0.0'] is None
  assert results['selected'] == 'mf,lr=0.001,l2=0.0'
  # A grid whose every setting diverges is refused, naming them.
  with config.unlocked():
    config.tuning = {'lr': (1e-2,), 'l2': (0.0, 1e-4), 'seed': 0}
  with pytest.raises(ValueError, match=re.escape(
      'Every setting of the tuning grid of mf diverged (mf,lr=0.01,l2=0.0, '
      'mf,lr=0.01,l2=0.0001); give it a grid of smaller learning rates')):
    tuning.run_all(config, str(tmp_path))


def test_a_selected_setting_that_diverges_with_a_final_seed_gives_way(
    tmp_path, monkeypatch):
  finals = []

  def among_the_first_failing_finals(arch, seeds):
    if len(seeds) == 1:  # The tuning.
      return False
    finals.append(arch.to_string())
    return len(finals) <= failing_finals

  diverge_when(monkeypatch, among_the_first_failing_finals)
  config = mf_tuning_config((0, 1))
  failing_finals = 1
  results = tuning.run_all(config, str(tmp_path))['mf']
  scores = results['tuning']
  best, runner_up = sorted(scores, key=scores.get, reverse=True)
  # The best setting by validation diverged; the next one is trained.
  assert results['diverged_finals'] == [best]
  assert results['selected'] == runner_up
  assert [r['seed'] for r in results['runs']] == [0, 1]
  assert (f'(diverged with a final seed: {best[len("mf,"):]})'
          in tuning.summary_table({'mf': results}))
  # Every setting diverging with a final seed is refused, naming them.
  finals.clear()
  failing_finals = 2
  with pytest.raises(ValueError, match=re.escape(
      f'mf diverged with a final seed of every setting that trained at the '
      f'tuning seed ({best}, {runner_up}); give it smaller learning rates')):
    tuning.run_all(config, str(tmp_path))
  # Untuned, the model's own divergence is the message.
  with config.unlocked():
    config.tuning = {'lr': (), 'l2': (), 'seed': 0}
  finals.clear()
  with pytest.raises(ValueError, match=re.escape(
      'mf: Training diverged at epoch 1 (loss nan).')):
    tuning.run_all(config, str(tmp_path))
