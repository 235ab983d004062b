"""Tests for the experiment scripts' own logic (tables, reuse of runs)."""

import json

from experiments import baselines
from experiments.configs import test as test_config


def test_baselines_table_reports_mean_and_sample_std():
  runs = [{'test/recall@20': r, 'test/ndcg@20': n, 'test/recall@10': 0.1,
           'test/ndcg@10': 0.2, 'best_epoch': e,
           'train_seconds_per_epoch': 1.0, 'seed': seed}
          for seed, (r, n, e) in enumerate([(0.30, 0.20, 10),
                                            (0.32, 0.26, 20)])]
  table = baselines.summary_table({'lightgcn': runs})
  row = table.splitlines()[2]
  # Recall@20: mean 0.31, sample std sqrt(2 * 0.01^2 / 1) = 0.0141.
  assert row.startswith('| lightgcn | 0.3100 ± 0.0141 | 0.2300 ± 0.0424 |')
  assert row.endswith('| 15.00 ± 7.07 | 1.00 ± 0.00 | 2 |')


def test_baselines_reuse_finished_runs(tmp_path):
  finished = {'test/ndcg@20': 0.5, 'seed': 3}
  run_dir = tmp_path / 'mf' / 'seed_3'
  run_dir.mkdir(parents=True)
  (run_dir / 'results.json').write_text(json.dumps(finished))
  config = test_config.get_config()
  with config.unlocked():
    config.archs, config.seeds = ('mf',), (3,)
  assert baselines.run_all(config, str(tmp_path)) == {
      'mf': [dict(finished, workdir=str(run_dir))]}
