"""Tests for the public API: its names, and jitted against unjitted steps."""

import re
import subprocess
import sys

from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from conftest import random_pairs
from conftest import ROOT
import gnas_jax
from gnas_jax import graph as graph_lib
from gnas_jax import models
from gnas_jax import population
from gnas_jax import space
from gnas_jax import train

NUM_USERS, NUM_ITEMS, WIDTH = 20, 30, 16
# Two programs' worth of differences (aggregation, activation, readout,
# loss, learning rate) and edge dropout, which consumes the step's key.
ARCHS = ('lightgcn,width=16,layers=1',
         'gcn,width=16,layers=1,loss=softmax,lr=0.01,edge_dropout=0.1')


def test_public_names_resolve_and_are_documented():
  assert len(set(gnas_jax.__all__)) == len(gnas_jax.__all__)
  for name in gnas_jax.__all__:
    assert (getattr(gnas_jax, name).__doc__ or '').strip(), name


def test_version_is_setup_pys():
  (version,) = re.findall(r"version='([^']+)'",
                          (ROOT / 'setup.py').read_text())
  assert gnas_jax.__version__ == version


def test_import_leaves_tensorflow_unloaded():
  # TensorFlow takes seconds to import; only summary writers need it.
  subprocess.run(
      [sys.executable, '-c',
       "import gnas_jax, sys; assert 'tensorflow' not in sys.modules"],
      check=True, cwd=ROOT)


def candidate(tree, i):
  """Candidate `i`'s slice of a population pytree."""
  return jax.tree.map(lambda x: x[i], tree)


class StepEquivalenceTest(chex.TestCase):
  """The unjitted steps compute what their jitted forms do, and a
  population step what each candidate's own step does."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    pairs = random_pairs(NUM_USERS, NUM_ITEMS, 120)
    cls.graph = graph_lib.build_graph(pairs, NUM_USERS, NUM_ITEMS, 'sparse')
    cls.archs = [space.from_string(a) for a in ARCHS]
    cls.model = models.build_model(NUM_USERS, NUM_ITEMS, cls.archs)
    batches = train.BatchSampler(pairs, NUM_ITEMS, 32, 4, seed=0).epoch(0)
    cls.batch = jax.tree.map(lambda x: jnp.asarray(x[0]), batches)
    cls.keys = jax.random.split(jax.random.PRNGKey(0), len(ARCHS))

  def init_state(self, i):
    return train.init_state(self.model, train.create_optimizer(), self.graph,
                            jnp.asarray(self.archs[i].encode()), self.keys[i])

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(('lightgcn', 0), ('gcn', 1))
  def test_apply_update_equals_train_step(self, i):
    update = self.variant(train.apply_update, static_argnames='model')
    state, metrics = update(self.model, self.init_state(i), self.graph,
                            self.batch, self.keys[i])
    # `train_step` donates its state: it gets a state of its own.
    expected = train.train_step(self.model, self.init_state(i), self.graph,
                                self.batch, self.keys[i])
    chex.assert_trees_all_close((state, metrics), expected, rtol=1e-5,
                                atol=1e-6)
    chex.assert_shape(list(metrics.values()), ())
    chex.assert_tree_all_finite(state.params)
    self.assertEqual(int(state.step), 1)

  @chex.variants(with_jit=True, without_jit=True)
  def test_user_item_representations_equal_representations(self):
    state = self.init_state(1)
    represent = self.variant(train.user_item_representations,
                             static_argnames='model')
    users, items = represent(self.model, state.params, self.graph,
                             state.arch)
    chex.assert_shape(users, (NUM_USERS, WIDTH))
    chex.assert_shape(items, (NUM_ITEMS, WIDTH))
    chex.assert_tree_all_finite((users, items))
    chex.assert_trees_all_close(
        (users, items),
        train.representations(self.model, state.params, self.graph,
                              state.arch), rtol=1e-5, atol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(*[(m, m) for m in population.MODES])
  def test_population_step_equals_each_candidate_alone(self, mode):
    start = population.init_population(
        self.model, train.create_optimizer(), self.graph,
        population.encode(self.archs), self.keys)
    step = self.variant(population.step_population,
                        static_argnames=('model', 'mode'))
    stepped, metrics = step(self.model, start, self.graph, self.batch,
                            self.keys, mode=mode)
    chex.assert_shape(list(metrics.values()), (len(ARCHS),))
    np.testing.assert_array_equal(stepped.active, True)
    np.testing.assert_array_equal(stepped.failed, False)
    for i in range(len(ARCHS)):
      # 'vmap' selects where the candidate alone branches: equal to rounding.
      chex.assert_trees_all_close(
          (candidate(stepped.state, i), candidate(metrics, i)),
          train.train_step(self.model, candidate(start.state, i), self.graph,
                           self.batch, self.keys[i]), rtol=1e-5, atol=1e-5)
