"""Tests for exported models: recommendations, fold-in and bad input."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from experiments.configs import test as test_config
from gnas_jax import data as data_lib
from gnas_jax import driver
from gnas_jax import recommend

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A tiny LightGCN (width 16, 2 layers) trained and exported."""
  workdir = str(tmp_path_factory.mktemp('trained'))
  config = test_config.get_config()
  driver.train_and_evaluate(config, workdir)
  return workdir, data_lib.load_dataset(config)


@pytest.fixture(scope='module')
def model(trained):
  return recommend.Recommender.load(trained[0])


def _embedding(model):
  return np.asarray(model.params['params']['embedding'])[:, :16]


def _lightgcn_reps(embedding, pairs, num_users, num_items, layers=2):
  """Dense numpy LightGCN: mean of layers 0..L of D^-1/2 A D^-1/2."""
  n = num_users + num_items
  adjacency = np.zeros((n, n))
  adjacency[pairs[:, 0], num_users + pairs[:, 1]] = 1
  adjacency[num_users + pairs[:, 1], pairs[:, 0]] = 1
  degree = adjacency.sum(1)
  scale = np.where(degree > 0, degree, 1) ** -0.5
  norm = scale[:, None] * adjacency * scale[None, :]
  h, outputs = embedding, [embedding]
  for _ in range(layers):
    h = norm @ h
    outputs.append(h)
  return np.mean(outputs, axis=0)


def test_representations_match_a_dense_reference(model, trained):
  _, dataset = trained
  reference = _lightgcn_reps(_embedding(model), dataset.train,
                             dataset.num_users, dataset.num_items)
  np.testing.assert_allclose(model.user_reps[:, :16],
                             reference[:dataset.num_users], atol=1e-5)
  np.testing.assert_allclose(model.item_reps[:, :16],
                             reference[dataset.num_users:], atol=1e-5)


def test_recommend_ranks_unseen_items_by_score(model, trained):
  _, dataset = trained
  raw_users = [str(u) for u in dataset.raw_user_ids[[0, 7, 42]]]
  results = model.recommend(raw_users, k=10)
  known = np.concatenate([dataset.train, dataset.valid, dataset.test])
  for raw_user, ranked in zip(raw_users, results):
    user = model.user_index[raw_user]
    scores = np.array(model.user_reps[user] @ model.item_reps.T)
    seen = known[known[:, 0] == user, 1]
    scores[seen] = -np.inf
    expected = np.argsort(-scores, kind='stable')[:10]
    assert [item for item, _ in ranked] == [
        str(dataset.raw_item_ids[i]) for i in expected]
    np.testing.assert_allclose([s for _, s in ranked], scores[expected],
                               rtol=1e-5)
  with_seen = model.recommend(raw_users[:1], k=150, exclude_seen=False)[0]
  assert len(with_seen) == 150
  # A batch of many users gives each user's own single-user answer.
  many = [str(u) for u in dataset.raw_user_ids] * 2
  assert model.recommend(many, k=5)[7] == model.recommend([many[7]], k=5)[0]


def test_fold_in_propagates_over_the_augmented_graph(model, trained):
  _, dataset = trained
  history = [[str(dataset.raw_item_ids[i]) for i in (3, 17, 40)],
             [str(dataset.raw_item_ids[5])]]
  reps = np.asarray(model.fold_in(history))
  embedding = _embedding(model)
  users, items = embedding[:dataset.num_users], embedding[dataset.num_users:]
  new_pairs = np.array([[dataset.num_users, 3], [dataset.num_users, 17],
                        [dataset.num_users, 40], [dataset.num_users + 1, 5]])
  augmented = np.concatenate([
      users, items[[3, 17, 40]].mean(0, keepdims=True), items[[5]], items])
  reference = _lightgcn_reps(augmented,
                             np.concatenate([dataset.train, new_pairs]),
                             dataset.num_users + 2, dataset.num_items)
  np.testing.assert_allclose(reps[:, :16], reference[dataset.num_users:
                                                     dataset.num_users + 2],
                             atol=1e-5)
  ranked = model.recommend_for_histories(history[:1], k=5)[0]
  assert not {item for item, _ in ranked} & set(history[0])


def test_similar_items_by_cosine(model, trained):
  _, dataset = trained
  reps = np.array(model.item_reps)
  reps = reps / np.linalg.norm(reps, axis=1, keepdims=True)
  cosine = reps @ reps[4]
  cosine[4] = -np.inf
  expected = [str(dataset.raw_item_ids[i]) for i in np.argsort(-cosine)[:5]]
  assert [i for i, _ in model.similar_items(
      str(dataset.raw_item_ids[4]), 5)] == expected


def test_bad_input_is_named(model):
  with pytest.raises(KeyError, match=r"Unknown user ids \['nobody'\].*--history"):
    model.recommend(['nobody'])
  with pytest.raises(KeyError, match=r"Unknown item ids \['zz'\]"):
    model.recommend_for_histories([['zz']])
  with pytest.raises(KeyError, match=r"Unknown item ids \['zz'\]"):
    model.similar_items('zz')
  with pytest.raises(ValueError, match='k=0 is out of range'):
    model.recommend(['0'], k=0)
  with pytest.raises(ValueError, match='k=151 is out of range.*150'):
    model.recommend(['0'], k=151)
  with pytest.raises(ValueError, match='at least one interaction'):
    model.fold_in([[]])


def test_model_directory_from_another_version_or_damaged(trained, tmp_path):
  copy = tmp_path / 'model'
  shutil.copytree(os.path.join(trained[0], 'model'), copy)
  meta = json.loads((copy / 'model.json').read_text())
  (copy / 'model.json').write_text(json.dumps(dict(meta, format_version=0)))
  with pytest.raises(ValueError, match='format version 0.*reads version 1'):
    recommend.Recommender.load(str(copy))
  (copy / 'model.json').write_text(json.dumps(dict(
      meta, arch=meta['arch'].replace('width=16', 'width=32'))))
  with pytest.raises(ValueError, match='do not match architecture'):
    recommend.Recommender.load(str(copy))
  with pytest.raises(FileNotFoundError, match='No exported model'):
    recommend.Recommender.load(str(tmp_path / 'nowhere'))


def test_command_line_on_a_training_workdir(trained):
  workdir, dataset = trained
  user = str(dataset.raw_user_ids[0])
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.recommend', f'--model_dir={workdir}',
       f'--user={user},nobody', '--k=3'],
      cwd=_ROOT, capture_output=True, text=True)
  assert result.returncode == 1
  assert "Unknown user ids ['nobody']" in result.stderr
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.recommend', f'--model_dir={workdir}',
       f'--user={user}', '--k=3'], cwd=_ROOT, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
  assert result.stdout.count(' item ') == 3
