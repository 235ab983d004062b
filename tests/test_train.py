"""Tests for sampling, the loss, the jitted step and the training loop."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import compilations
from conftest import random_pairs
from experiments.configs import test as test_config
from gnas_jax import driver
from gnas_jax import graph as graph_lib
from gnas_jax import models
from gnas_jax import space
from gnas_jax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sampler_negatives_avoid_training_items_and_are_seeded():
  pairs = random_pairs(20, 12, 150, seed=1)
  sampler = train.BatchSampler(pairs, 12, batch_size=32, num_negatives=4,
                               seed=7)
  batch = sampler.epoch(0)
  steps = -(-len(pairs) // 32)
  assert batch.users.shape == (steps, 32)
  assert batch.negatives.shape == (steps, 32, 4)
  seen = set(map(tuple, pairs.tolist()))
  users = np.repeat(batch.users[..., None], 4, -1)
  assert not any((u, n) in seen for u, n in
                 zip(users.ravel().tolist(), batch.negatives.ravel().tolist()))
  assert all((u, p) in seen for u, p in zip(batch.users.ravel().tolist(),
                                            batch.positives.ravel().tolist()))
  # Every training pair appears in an epoch.
  drawn = set(zip(batch.users.ravel().tolist(),
                  batch.positives.ravel().tolist()))
  assert drawn == seen
  again = sampler.epoch(0)
  np.testing.assert_array_equal(again.negatives, batch.negatives)
  assert not np.array_equal(sampler.epoch(1).users, batch.users)


def test_sampler_rejects_a_user_with_every_item():
  pairs = np.array([[0, 0], [0, 1], [1, 0]])
  with pytest.raises(ValueError, match='User 0 interacted with all 2 items'):
    train.BatchSampler(pairs, 2, 4, 1, 0)


def test_bpr_and_softmax_losses_by_hand():
  num_users = 1
  # Node 0 is the user; nodes 1, 2, 3 are items 0, 1, 2.
  reps = jnp.asarray([[1.0, 0.0], [2.0, 0.0], [0.5, 1.0], [-1.0, 0.0]])
  embedding = jnp.asarray([[1.0, 1.0], [0.0, 2.0], [1.0, 0.0], [0.0, 0.0]])
  params = {'params': {'embedding': jnp.pad(embedding, ((0, 0), (0, 62)))}}
  batch = train.Batch(users=jnp.asarray([0]), positives=jnp.asarray([0]),
                      negatives=jnp.asarray([[1, 2]]))
  arch = jnp.asarray(space.from_string('mf,l2=0.001').encode())
  total, parts = train.recommendation_loss(params, arch, reps, batch,
                                           num_users)
  # s(u, p) = 2, s(u, n1) = 0.5: BPR = -log sigmoid(1.5).
  bpr = np.log1p(np.exp(-1.5))
  # L2 = 0.001 / 2 * (|e_u|^2 + |e_p|^2 + |e_n1|^2) = 0.0005 * (2 + 4 + 1).
  assert parts['ranking_loss'] == pytest.approx(bpr, rel=1e-6)
  assert parts['l2_loss'] == pytest.approx(0.0005 * 7, rel=1e-6)
  assert total == pytest.approx(bpr + 0.0035, rel=1e-6)
  softmax_arch = jnp.asarray(
      space.from_string('mf,loss=softmax,l2=0.001').encode())
  _, parts = train.recommendation_loss(params, softmax_arch, reps, batch,
                                       num_users)
  logits = np.array([2.0, 0.5, -1.0])
  assert parts['ranking_loss'] == pytest.approx(
      -(logits[0] - np.log(np.exp(logits).sum())), rel=1e-6)
  assert parts['l2_loss'] == pytest.approx(0.0005 * (2 + 4 + 1 + 0),
                                           rel=1e-6)


def random_representations(rng, num_nodes):
  """`[N, 4]` node representations and parameters of `[N, 128]` layer-0
  embeddings (the L2 term's), drawn from `rng`."""
  reps = jnp.asarray(rng.normal(size=(num_nodes, 4)), jnp.float32)
  params = {'params': {'embedding': jnp.asarray(
      rng.normal(size=(num_nodes, 128)), jnp.float32)}}
  return reps, params


def test_softmax_scores_as_many_negatives_as_its_loss_says():
  """A batch of K = 64 negatives: 'softmax-32' scores the first 32, and
  'softmax' the protocol's count, or all 64 without one; by hand, and
  equal to the loss on a batch of those 32 alone."""
  rng = np.random.default_rng(0)
  num_users, num_items = 2, 80
  reps, params = random_representations(rng, num_users + num_items)
  negatives = rng.permutation(np.arange(1, num_items))[:64]
  full = train.Batch(users=jnp.asarray([1]), positives=jnp.asarray([0]),
                     negatives=jnp.asarray(negatives[None]))
  first32 = full.replace(negatives=full.negatives[:, :32])

  def loss(arch, batch):
    encoded = jnp.asarray(space.from_string(arch).encode())
    parts = train.recommendation_loss(params, encoded, reps, batch,
                                      num_users)[1]
    return {name: float(value) for name, value in parts.items()}

  user, items = np.asarray(reps[1]), np.asarray(reps[num_users:])
  logits = items[np.concatenate([[0], negatives[:32]])] @ user
  by_hand = -(logits[0] - np.log(np.exp(logits).sum()))
  squares = (np.asarray(params['params']['embedding'])[:, :64] ** 2).sum(-1)
  l2_by_hand = 0.5 * 1e-3 * (squares[1] + squares[num_users] +
                             squares[num_users + negatives[:32]].sum())
  some = loss('mf,loss=softmax-32,l2=0.001', full)
  assert some['ranking_loss'] == pytest.approx(by_hand, rel=1e-5)
  assert some['l2_loss'] == pytest.approx(l2_by_hand, rel=1e-5)
  protocol = loss('mf,loss=softmax,l2=0.001',
                  full.replace(protocol_negatives=32))
  alone = loss('mf,loss=softmax,l2=0.001', first32)
  for name in ('ranking_loss', 'l2_loss'):
    assert protocol[name] == pytest.approx(some[name], rel=1e-6)
    assert alone[name] == pytest.approx(some[name], rel=1e-6)
  every = loss('mf,loss=softmax,l2=0.001', full)
  assert every['ranking_loss'] > some['ranking_loss']
  assert loss('mf,loss=softmax-64,l2=0.001', full) == every
  with pytest.raises(ValueError, match="Loss 'softmax-128' scores 128 "
                     'negatives per positive; the batch holds 64'):
    train.recommendation_loss(
        params, jnp.asarray(space.from_string('mf,loss=softmax-128').encode()),
        reps, full, num_users, losses=('softmax-128',))


def test_shared_softmax_scores_the_batch_negatives_against_every_positive():
  """'shared-softmax-N': each positive against the first N negatives drawn
  for the batch, without its own item among them; L2 on all N. By hand."""
  rng = np.random.default_rng(1)
  num_users, num_items = 3, 20
  reps, params = random_representations(rng, num_users + num_items)
  # Item 5, the first user's positive, is among the shared negatives.
  shared = np.array([7, 5, 11, 2] + list(range(12, 20)) + list(range(1024 - 12)),
                    np.int32) % num_items
  batch = train.Batch(users=jnp.asarray([0, 2]), positives=jnp.asarray([5, 9]),
                      negatives=jnp.zeros((2, 1), jnp.int32),
                      shared_negatives=jnp.asarray(shared))
  arch = jnp.asarray(space.from_string(
      'mf,loss=shared-softmax-1024,l2=0.001').encode())
  _, parts = train.recommendation_loss(params, arch, reps, batch, num_users)
  users, items = np.asarray(reps[:num_users]), np.asarray(reps[num_users:])
  by_hand = []
  for user, positive in ((0, 5), (2, 9)):
    negatives = shared[shared != positive]
    logits = items[np.concatenate([[positive], negatives])] @ users[user]
    by_hand.append(-(logits[0] - np.log(np.exp(logits).sum())))
  assert parts['ranking_loss'] == pytest.approx(np.mean(by_hand), rel=1e-5)
  squares = (np.asarray(params['params']['embedding'])[:, :64] ** 2).sum(-1)
  l2_by_hand = 0.5 * 1e-3 * np.mean(
      [squares[u] + squares[num_users + p] +
       squares[num_users + shared].sum() for u, p in ((0, 5), (2, 9))])
  assert parts['l2_loss'] == pytest.approx(l2_by_hand, rel=1e-5)
  with pytest.raises(ValueError, match="Loss 'shared-softmax-4096' scores "
                     '4096 negatives per mini-batch; the batch holds 1024'):
    train.recommendation_loss(
        params, jnp.asarray(space.from_string(
            'mf,loss=shared-softmax-4096').encode()),
        reps, batch, num_users, losses=('shared-softmax-4096',))


def test_negatives_shared_by_a_batch_leave_the_other_draws_alone():
  """The sampler draws S negatives per step after the per-positive ones, so
  a run with them sees the same pairs and per-positive negatives."""
  pairs = random_pairs(10, 30, 60, seed=2)
  plain = train.BatchSampler(pairs, 30, 16, 4, 0).epoch(3)
  shared = train.BatchSampler(pairs, 30, 16, 4, 0,
                              shared_negatives=1024).epoch(3)
  assert plain.shared_negatives is None
  for name in ('users', 'positives', 'negatives'):
    np.testing.assert_array_equal(getattr(shared, name), getattr(plain, name))
  assert shared.shared_negatives.shape == (plain.users.shape[0], 1024)
  assert shared.shared_negatives.dtype == np.int32
  # Drawn over every item, training items included.
  assert set(np.unique(shared.shared_negatives)) == set(range(30))


def test_the_negatives_a_loss_scores_and_a_batch_must_hold():
  def used(text):
    return train.loss_negatives(space.from_string(text).loss, 16)

  assert used('mf') == 1
  assert used('mf,loss=softmax') == 16
  assert used('mf,loss=softmax-128') == 128
  assert used('mf,loss=shared-softmax-4096') == 0
  assert train.loss_shared_negatives('shared-softmax-4096') == 4096
  assert train.loss_shared_negatives('softmax-128') == 0
  assert train.shared_negatives_to_draw(space.subspace()) == 0
  assert train.shared_negatives_to_draw(space.subspace(
      loss=('bpr', 'shared-softmax-1024', 'shared-softmax-4096'))) == 4096
  assert train.negatives_to_draw(space.subspace(), 16) == 16
  assert train.negatives_to_draw(
      space.subspace(loss=('softmax', 'softmax-64')), 16) == 64
  assert train.negatives_to_draw(space.subspace(loss=('bpr',)), 16) == 16
  pairs = random_pairs(10, 30, 60, seed=2)
  sampler = train.BatchSampler(pairs, 30, 16, 64, 0, protocol_negatives=16)
  batch = sampler.epoch(0)
  assert batch.negatives.shape[-1] == 64 and batch.protocol_negatives == 16
  with pytest.raises(ValueError, match='batch of 8 negatives per positive '
                     "cannot hold the protocol's 16"):
    train.BatchSampler(pairs, 30, 16, 8, 0, protocol_negatives=16)


@pytest.fixture(scope='module')
def tiny_problem():
  pairs = random_pairs(40, 50, 400, seed=3)
  graph = graph_lib.build_graph(pairs, 40, 50, 'sparse')
  return pairs, graph


def test_steps_learn_and_one_compilation_serves_same_shape_archs(
    tiny_problem):
  pairs, graph = tiny_problem
  first = space.from_string('lightgcn,width=16,layers=2')
  second = space.from_string('lightgcn,width=16,layers=2,readout=sum,'
                             'lr=0.01,norm=left')
  shape = models.ModelShape.covering([first, second])
  model = models.GNNRecommender(40, 50, shape)
  sampler = train.BatchSampler(pairs, 50, 64, 1, 0)
  key = jax.random.PRNGKey(0)
  before = compilations(train.train_step)
  for arch in (first, second):
    state = train.init_state(model, train.create_optimizer(), graph,
                             jnp.asarray(arch.encode()), key)
    assert float(state.opt_state.hyperparams['learning_rate']) == (
        pytest.approx(arch.lr))
    losses = []
    for epoch in range(8):
      batches = sampler.epoch(epoch)
      for step in range(sampler.steps_per_epoch):
        batch = jax.tree.map(lambda x, s=step: jnp.asarray(x[s]), batches)
        state, metrics = train.train_step(model, state, graph, batch, key)
        losses.append(float(metrics['loss']))
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert int(state.step) == 8 * sampler.steps_per_epoch
  assert compilations(train.train_step) == before + 1


def run_training(workdir, **overrides):
  config = test_config.get_config()
  config.unlock()
  for name, value in overrides.items():
    config[name] = value
  config.lock()
  return driver.train_and_evaluate(config, str(workdir))


@pytest.fixture(scope='module')
def four_epoch_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('straight')
  return workdir, run_training(workdir, epochs=4)


def test_end_to_end_writes_results(four_epoch_run):
  workdir, results = four_epoch_run
  with open(workdir / 'results.json') as f:
    saved = json.load(f)
  assert saved == pytest.approx(results)
  for key in ['test/recall@20', 'test/ndcg@20', 'valid/ndcg@20',
              'test/coverage@10', 'test/mean_popularity@20', 'best_epoch',
              'train_seconds_per_epoch', 'peak_rss_mb']:
    assert key in results, key
  assert 0 < results['test/recall@20'] <= 1
  assert 1 <= results['best_epoch'] <= results['epochs_run'] == 4
  assert results['arch'] == space.from_string(
      'lightgcn,width=16,layers=2').to_string()
  table = driver.format_results_table(results)
  assert '| test ndcg |' in table and '@20' in table


def test_summaries_are_tagged_as_the_results_are_keyed(four_epoch_run):
  from tensorboard.backend.event_processing import event_accumulator
  workdir, results = four_epoch_run
  events = event_accumulator.EventAccumulator(str(workdir / 'tensorboard'))
  events.Reload()
  tags = set(events.Tags()['tensors'])
  metrics = {k for k in results if k.startswith(('valid/', 'test/'))}
  assert metrics <= tags, metrics - tags
  assert {'train/loss', 'train/ranking_loss', 'train/l2_loss'} <= tags
  (test_ndcg,) = events.Tensors('test/ndcg@20')
  assert test_ndcg.step == results['best_epoch']
  assert float(tf_value(test_ndcg)) == pytest.approx(results['test/ndcg@20'])
  assert [e.step for e in events.Tensors('valid/ndcg@20')] == [1, 2, 3, 4]


def tf_value(event):
  from tensorboard.util import tensor_util
  return tensor_util.make_ndarray(event.tensor_proto)


def test_resumed_run_equals_uninterrupted_run(tmp_path, four_epoch_run):
  _, straight = four_epoch_run
  run_training(tmp_path, epochs=2)
  resumed = run_training(tmp_path, epochs=4)
  assert resumed['epochs_run'] == 4
  for key, value in straight.items():
    if key.startswith(('test/', 'valid/')) or key == 'best_epoch':
      assert resumed[key] == pytest.approx(value, rel=1e-6), key


def test_an_early_stopped_run_started_again_stays_stopped(tmp_path):
  first = run_training(tmp_path, epochs=40, patience=1)
  assert first['epochs_run'] < 40
  again = run_training(tmp_path, epochs=40, patience=1)
  assert again['epochs_run'] == first['epochs_run']
  assert again['test/ndcg@20'] == first['test/ndcg@20']


def test_wrong_override_type_fails_before_any_work(tmp_path):
  workdir = tmp_path / 'never'
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.train',
       '--config=experiments/configs/test.py', f'--workdir={workdir}',
       '--config.epochs=many'],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert "config.epochs" in result.stderr and 'many' in result.stderr
  assert not workdir.exists()


def test_unknown_metric_for_early_stopping_lists_choices(tmp_path):
  with pytest.raises(ValueError, match=r"early_stopping_metric='auc'.*"
                     r"ndcg@20"):
    run_training(tmp_path, early_stopping_metric='auc')


def test_user_sampling_weighs_users_equally_and_draws_their_items():
  # User 0 has 20 training items, users 1-4 one each.
  pairs = np.array([[0, i] for i in range(20)] +
                   [[u, 20 + u] for u in range(1, 5)])
  users_first = train.BatchSampler(pairs, 40, batch_size=24,
                                   num_negatives=1, seed=0, sampling='users')
  by_pairs = train.BatchSampler(pairs, 40, batch_size=24, num_negatives=1,
                                seed=0)
  drawn = [users_first.epoch(e) for e in range(200)]
  users = np.concatenate([b.users.ravel() for b in drawn])
  # As many draws per epoch as there are pairs, one step here.
  assert users_first.steps_per_epoch == 1 and users.size == 200 * 24
  np.testing.assert_allclose(np.bincount(users, minlength=5) / users.size,
                             0.2, atol=0.02)
  training = set(map(tuple, pairs.tolist()))
  positives = np.concatenate([b.positives.ravel() for b in drawn])
  assert all(p in training for p in zip(users.tolist(), positives.tolist()))
  # User 0 draws each of its items alike.
  items_of_0 = np.bincount(positives[users == 0], minlength=20)[:20]
  assert items_of_0.min() > 0.5 * items_of_0.mean()
  # Shuffled pairs give user 0 its 20 of 24.
  assert np.mean(by_pairs.epoch(0).users == 0) == pytest.approx(20 / 24)


def test_an_unknown_sampling_is_named():
  with pytest.raises(ValueError, match=r"config\.sampling='user' .* pairs, "
                     'users'):
    train.BatchSampler(np.array([[0, 0]]), 3, 4, 1, 0, sampling='user')
