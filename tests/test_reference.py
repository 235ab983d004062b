"""Closed-form references: EASE against per-item ridge regression, most
popular, and the script that tables them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import reference_models
from gnas_jax import reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ease_weights_solve_each_items_ridge_regression_without_itself():
  rng = np.random.default_rng(0)
  matrix = (rng.random((40, 9)) < 0.3).astype(np.float32)
  l2 = 2.5
  weights = reference.ease_weights(matrix, l2)
  assert weights.shape == (9, 9) and weights.dtype == np.float32
  np.testing.assert_array_equal(np.diag(weights), np.zeros(9))
  x = matrix.astype(np.float64)
  for item in range(9):
    others = [j for j in range(9) if j != item]
    # argmin_b |x_item - X_others b|^2 + l2 |b|^2, by its normal equations.
    a = x[:, others]
    expected = np.linalg.solve(a.T @ a + l2 * np.eye(8), a.T @ x[:, item])
    np.testing.assert_allclose(weights[others, item], expected, rtol=1e-5,
                               atol=1e-6)


def test_ease_refuses_a_weight_that_leaves_the_gram_matrix_singular():
  with pytest.raises(ValueError, match=r'L2 weight > 0, not 0\.0'):
    reference.ease_weights(np.ones((3, 2)), 0.0)


def test_popularity_representations_score_every_user_by_item_popularity():
  users, items = reference.popularity_representations(3, np.array([4, 0, 7]))
  np.testing.assert_array_equal(users @ items.T, [[4, 0, 7]] * 3)


@pytest.mark.parametrize('values,bad', [(['10', '0'], "'0'"),
                                        (['-1'], "'-1'"),
                                        (['ten'], "'ten'")])
def test_an_l2_grid_with_a_bad_weight_names_it(values, bad):
  with pytest.raises(ValueError, match=f'^--l2=.* not {bad}'):
    reference_models.l2_grid(values)


def test_ease_refuses_a_catalogue_above_its_memory_limit():
  reference_models.check_ease_memory(1000, 0.1, 'small')  # 16 MB.
  with pytest.raises(ValueError, match=(
      r'^EASE on big needs 23\.8 GB for its 40,000 x 40,000 item matrices, '
      r'above --max_ease_gb=8:')):
    reference_models.check_ease_memory(40_000, 8.0, 'big')


def test_the_script_selects_eases_weight_on_validation(tmp_path):
  out = tmp_path / 'reference_synthetic'
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.reference_models',
       '--config=experiments/configs/test.py', '--l2=0.1,10,1000',
       '--compare_to=', f'--out={out}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert result.returncode == 0, result.stderr
  record = json.loads((tmp_path / 'reference_synthetic.json').read_text())
  tried = record['ease']
  assert [entry['l2'] for entry in tried] == [0.1, 10.0, 1000.0]
  best = max(tried, key=lambda entry: entry['valid']['ndcg@20'])
  assert record['ease_selected'] == best
  # Popularity ignores the user: its scores are no better on validation
  # than EASE's best on this clustered synthetic data.
  assert record['popular']['valid']['ndcg@20'] < best['valid']['ndcg@20']
  table = (tmp_path / 'reference_synthetic.md').read_text()
  assert (f'| EASE | l2={best["l2"]:g} | {best["valid"]["ndcg@20"]:.4f} | '
          in table)
  assert '| most popular |  |' in table
