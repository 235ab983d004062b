"""Tests for the fidelity study's measurements and table."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from conftest import ROOT


@pytest.fixture(scope='module')
def study(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('fidelity')
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.fidelity_study',
       '--config=experiments/configs/search_test.py', f'--workdir={workdir}',
       '--num_archs=4', '--rungs=2,1', f'--out={workdir}/fidelity'],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
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
