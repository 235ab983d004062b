"""Closed-form reference recommenders: how far a split lets a model go.

Neither is a GNN nor part of the search space. They answer a question the
accuracy table raises: how much better than tuned LightGCN can any model be
on this split? Both score through `metrics.evaluate_ranking` (score = dot
product of a user row and an item row), so they are ranked, excluded and
counted exactly as the trained models are.

* Most popular: every user gets the items with the most training
  interactions.
* EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data",
  WWW 2019): item-item weights `B` minimising
  `|X - X B|^2 + l2 |B|^2` subject to `diag(B) = 0`, for the `[U, I]`
  binary training matrix `X`. Its closed form is
  `B = I - P diag(1 / diag(P))` with the diagonal then zeroed,
  `P = (X^T X + l2 I)^-1`. It is a strong, cheap baseline on dense
  datasets; it inverts a dense `[I, I]` matrix, so its memory grows with
  the square of the catalogue.
"""

from __future__ import annotations

import numpy as np


def ease_memory_bytes(num_items: int) -> int:
  """Peak memory of `ease_weights`: a float64 Gram matrix and its inverse."""
  return 2 * 8 * num_items * num_items


def ease_weights(matrix: np.ndarray, l2: float) -> np.ndarray:
  """EASE's item-item weights.

  Args:
    matrix: `[U, I]` binary training matrix.
    l2: the ridge weight (> 0).

  Returns:
    `[I, I]` float32 `B` with a zero diagonal; user `u`'s scores are
    `matrix[u] @ B`.
  """
  if not l2 > 0:
    raise ValueError(f'EASE needs an L2 weight > 0, not {l2!r}: without it '
                     'the Gram matrix of a sparse catalogue is singular.')
  x = np.asarray(matrix, np.float64)
  gram = x.T @ x
  gram[np.diag_indices_from(gram)] += l2
  inverse = np.linalg.inv(gram)
  weights = -inverse / np.diag(inverse)[None, :]
  np.fill_diagonal(weights, 0.0)
  return weights.astype(np.float32)


def popularity_representations(num_users: int, popularity: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray]:
  """`([U, 1], [I, 1])` representations whose dot products are the `[I]`
  item popularities, the same for every user."""
  return (np.ones((num_users, 1), np.float32),
          np.asarray(popularity, np.float32)[:, None])
