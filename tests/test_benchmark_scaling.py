"""The scaling report: slopes and tables from benchmark records."""

import json

import pytest

from experiments import benchmark_scaling


def test_slope_recovers_the_exponent():
  sizes = [1, 4, 16, 64]
  assert benchmark_scaling.slope(sizes, [3 * s**0.5 for s in sizes]) == (
      pytest.approx(0.5))


def record(pairs, size, step_ms):
  return {'num_users': 10, 'num_items': 20, 'num_interactions': pairs,
          'population_size': size, 'per_candidate_step_ms': step_ms,
          'compile_count': 2, 'peak_rss_mb': 100.0, 'device': 'cpu'}


def key(sweep, dataset, fraction, sizes):
  return json.dumps({'sweep': sweep, 'dataset': dataset,
                     'fraction': fraction, 'backend': 'sparse',
                     'mode': 'map', 'sizes': sizes}, sort_keys=True)


def test_report_states_both_slopes(tmp_path):
  done = {
      key('graph', 'ml-100k', 1.0, [8]): [record(1000, 8, 2.0)],
      key('graph', 'gowalla', 0.5, [8]): [record(4000, 8, 8.0)],
      key('graph', 'gowalla', 1.0, [8]): [record(16000, 8, 32.0)],
      # A population step growing as P^0.5: 10 ms at P=1, 20 ms at P=4.
      key('P', 'ml-100k', 1.0, [1, 4]): [record(1000, 1, 10.0),
                                         record(1000, 4, 5.0)],
  }
  text = benchmark_scaling.write_outputs(done, str(tmp_path), ['map'], 8, 5)
  assert 'map: step per candidate ~ pairs^1.00' in text
  assert 'sparse, map: population step ~ P^0.50' in text
  assert '| gowalla 50% | 10 | 20 | 4,000 | map | 8.0 | 2 | 100 |' in text
  assert '| sparse | map | 4 | 5.0 | 20.0 | 2 | 100 |' in text
  assert (tmp_path / 'scaling.md').read_text() == text
  assert (tmp_path / 'scaling.png').exists()
