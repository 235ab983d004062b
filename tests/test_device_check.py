"""experiments/device_check.sh, shrunk to run on this CPU, and its merge."""

import json
import os
import re
import subprocess

import pytest

from experiments import merge_device_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'experiments', 'device_check.sh')


@pytest.fixture(scope='module')
def smoke_out(tmp_path_factory):
  out = tmp_path_factory.mktemp('device_out')
  env = dict(os.environ, OUT=str(out))
  run = subprocess.run([SCRIPT, '--smoke'], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=1200)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  return out


def test_smoke_run_tests_and_measures(smoke_out):
  with open(smoke_out / 'environment.json') as f:
    assert json.load(f)['platform'] == 'cpu'
  log = (smoke_out / 'tests.log').read_text()
  # One run per backend: the smoke run keeps the isolation test in 'vmap'.
  assert len(re.findall(r'\b1 passed, \d+ deselected', log)) == 2, log
  with open(smoke_out / 'throughput' / 'cpu_synthetic_small.json') as f:
    records = json.load(f)
  assert [r['population_size'] for r in records] == [1, 2]
  for record in records:
    assert record['mode'] == 'vmap'
    assert record['compile_count'] >= 1
    assert record['per_candidate_step_ms'] > 0
    assert record['specialised_amortised_step_ms'] > record[
        'specialised_step_ms']


def test_merge_adds_the_device_columns(smoke_out, tmp_path):
  results = tmp_path / 'results'
  (results / 'throughput').mkdir(parents=True)
  cpu = [{'population_size': p, 'per_candidate_step_ms': 10.0,
          'specialised_amortised_step_ms': 12.0, 'candidates_per_hour': 5.0,
          'device': 'cpu'} for p in (1, 4, 16)]
  with open(results / 'throughput' / 'cpu_ml-100k_small.json', 'w') as f:
    json.dump(cpu, f)
  text = merge_device_check.merge(str(smoke_out), str(results))
  assert (results / 'throughput' / 'cpu_synthetic_small.json').exists()
  assert (results / 'throughput.png').exists()
  assert '| ml-100k | 16 | 10.0 | 12.0 | 5 |' in text
  assert '| synthetic | 2 |' in text
  assert text == (results / 'throughput.md').read_text()


def test_merge_without_records_says_what_to_run(tmp_path):
  with pytest.raises(ValueError, match='run experiments/device_check.sh'):
    merge_device_check.merge(str(tmp_path), str(tmp_path / 'results'))


def test_unknown_option_is_refused():
  run = subprocess.run([SCRIPT, '--fast'], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
  assert run.returncode == 2
  assert "unknown option '--fast'" in run.stderr
