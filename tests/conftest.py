"""Shared fixtures: small graphs and datasets, and the real-data switch."""

import os

import numpy as np
import pytest

from gnas_jax import graph as graph_lib

DATA_DIR = os.environ.get('GNAS_DATA_DIR', '')
needs_data = pytest.mark.skipif(
    not DATA_DIR, reason='GNAS_DATA_DIR is not set (CI points it at '
    '../shared/datasets); real-data tests are skipped.')


def random_pairs(num_users, num_items, num_pairs, seed=0):
  """`[n, 2]` distinct (user, item) pairs covering every user and item."""
  rng = np.random.default_rng(seed)
  pairs = np.stack([rng.integers(0, num_users, num_pairs),
                    rng.integers(0, num_items, num_pairs)], axis=1)
  cover = np.stack([np.arange(max(num_users, num_items)) % num_users,
                    np.arange(max(num_users, num_items)) % num_items], 1)
  return np.unique(np.concatenate([pairs, cover]), axis=0)


@pytest.fixture(scope='session')
def small_pairs():
  """Training pairs of a 12-user, 15-item graph."""
  return random_pairs(12, 15, 60)


@pytest.fixture(scope='session', params=graph_lib.BACKENDS)
def small_graph(request, small_pairs):
  """The 12-user, 15-item graph, once per propagation backend."""
  return graph_lib.build_graph(small_pairs, 12, 15, request.param)


@pytest.fixture(scope='session')
def sparse_graph(small_pairs):
  """The 12-user, 15-item graph with the CSR backend."""
  return graph_lib.build_graph(small_pairs, 12, 15, 'sparse')


def dense_adjacency(pairs, num_users, num_items):
  """`[N, N]` numpy adjacency of the bipartite graph (reference)."""
  n = num_users + num_items
  adjacency = np.zeros((n, n))
  adjacency[pairs[:, 0], num_users + pairs[:, 1]] = 1
  adjacency[num_users + pairs[:, 1], pairs[:, 0]] = 1
  return adjacency
