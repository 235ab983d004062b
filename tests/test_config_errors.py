"""Tests for the range checks of configs and the entry points' answers to
a user's mistakes: one `Error:` line, exit status 1, no traceback."""

import os
import subprocess
import sys

from absl import flags
from ml_collections import config_flags
import pytest

from experiments import common
from experiments.configs import gowalla_search
from experiments.configs import search_test
from experiments.configs import test as test_config
from gnas_jax import driver
from gnas_jax.search import loop

from conftest import with_value

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def integer(path, value, least):
  return (path, value, f'config.{path}={value!r} is not allowed: it must be '
          f'an integer >= {least}.')


TRAIN_CASES = [
    integer('epochs', 0, 1),
    integer('epochs', -3, 1),
    integer('patience', 0, 1),
    integer('eval_every', 0, 1),
    integer('batch_size', 0, 1),
    integer('num_negatives', 0, 1),
    integer('eval_batch_size', 0, 1),
    integer('seed', -1, 0),
    integer('data.kcore', -1, 0),
    ('ks', (), 'config.ks=() is not allowed: it must be a non-empty list of '
     'integers >= 1.'),
    ('ks', (0, 20), 'config.ks=(0, 20) is not allowed: it must be a '
     'non-empty list of integers >= 1.'),
    ('data.given_valid_ratio', 1.0, 'config.data.given_valid_ratio=1.0 is '
     'not allowed: it must be a number in [0, 1).'),
    ('sampling', 'user', "config.sampling='user' is not allowed: it must be "
     'one of pairs, users.'),
    ('optimizer.b2', 1.0, 'config.optimizer.b2=1.0 is not allowed: it must '
     'be a number in [0, 1).'),
    ('optimizer.eps', 0.0, 'config.optimizer.eps=0.0 is not allowed: it '
     'must be a number > 0.'),
]

SEARCH_CASES = [
    integer('budget', -5, 0),
    ('budget', 0, 'config.budget=0 (no limit on evaluations) needs a wall '
     'time to end the search: set config.max_wall_seconds to a number of '
     'seconds > 0, or config.budget to a number of evaluations >= 1.'),
    integer('population_size', 0, 1),
    integer('fidelity.epochs', 0, 1),
    integer('fidelity.eval_every', 0, 1),
    integer('fidelity.patience', 0, 1),
    integer('fidelity.batch_size', 0, 1),
    integer('final.top_k', -1, 0),
    # The final retraining's protocol is checked with the search.
    integer('patience', 0, 1),
    ('final.seeds', (), 'config.final.seeds=() is not allowed: it must be a '
     'non-empty list of integers >= 0.'),
    ('max_wall_seconds', -1, 'config.max_wall_seconds=-1 is not allowed: it '
     'must be a number >= 0 (0: no limit).'),
    ('fidelity.rungs', (1, 1), 'config.fidelity.rungs=(1, 1) is not '
     'increasing: each rung must come after the one before.'),
    ('fidelity.rungs', (1, 3), 'config.fidelity.rungs=(1, 3) exceeds the '
     'epoch budget: its last rung is after config.fidelity.epochs=2.'),
    ('fidelity.rungs', (0,), 'config.fidelity.rungs=(0,) is not allowed: it '
     'must be a list of epochs >= 1.'),
    ('fidelity.eta', 1, 'config.fidelity.eta=1 is not allowed: it must be an '
     'integer >= 2 (the share of candidates a rung keeps is 1/eta).'),
    ('final.user_fraction', 1.5, 'config.final.user_fraction=1.5 is not '
     'allowed: it must be a share of the users in (0, 1], or None for the '
     "search's own data."),
    ('final.user_fraction', 1.0, "config.final.user_fraction=1.0 needs "
     "config.data.split='given': with config.data.split='random' another "
     "share of the users is split anew, and the finalists' test would hold "
     'pairs the search trained or validated on.'),
    ('fidelity.refill', -1, 'config.fidelity.refill=-1 is not allowed: it '
     'must be an integer >= 0 (0: no refills).'),
    ('fidelity.refill', 2, 'config.fidelity.refill=2 fills the slots that '
     'successive halving frees, and there is none: set config.fidelity.rungs '
     'too (for example (1, 3)).'),
]


@pytest.mark.parametrize('path,value,message', TRAIN_CASES)
def test_training_option_out_of_range(path, value, message):
  config = with_value(test_config.get_config(), path, value)
  with pytest.raises(ValueError) as error:
    driver.check_config(config)
  assert str(error.value) == message


@pytest.mark.parametrize('path,value,message', SEARCH_CASES)
def test_search_option_out_of_range(path, value, message):
  config = with_value(search_test.get_config(), path, value)
  with pytest.raises(ValueError) as error:
    loop.check_config(config)
  assert str(error.value) == message


def test_a_refill_from_a_space_the_first_round_exhausts_is_refused():
  config = search_test.get_config()
  with config.unlocked():
    config.space = ('width=16,layers=1,agg=lightgcn,act=identity,'
                    'readout=last,decoder=dot,loss=bpr,norm=sym,'
                    'edge_dropout=0.0,residual=0,lr=0.001,l2=0.0001/0.001')
    config.fidelity.rungs = (1,)
    config.fidelity.refill = 2
  with pytest.raises(ValueError) as error:
    loop.check_config(config)
  assert str(error.value) == (
      f'config.fidelity.refill=2 has nothing to refill with: the space '
      f'{config.space!r} holds 2 architectures and the first round takes '
      'population_size=4 of them; widen config.space or set '
      'config.fidelity.refill=0.')


def test_the_default_configs_pass():
  driver.check_config(test_config.get_config())
  loop.check_config(search_test.get_config())
  loop.check_config(gowalla_search.get_config())


def test_training_checks_before_touching_the_workdir(tmp_path):
  workdir = tmp_path / 'never'
  config = with_value(test_config.get_config(), 'patience', 0)
  with pytest.raises(ValueError, match=r'^config\.patience=0 '):
    driver.train_and_evaluate(config, str(workdir))
  assert not workdir.exists()


def test_search_checks_before_loading_data(tmp_path, monkeypatch):
  def no_loading(config):
    raise AssertionError('the data was loaded')

  monkeypatch.setattr(loop.data_lib, 'load_dataset', no_loading)
  workdir = tmp_path / 'never'
  config = with_value(search_test.get_config(), 'budget', -5)
  with pytest.raises(ValueError, match=r'^config\.budget=-5 '):
    loop.run_search(config, str(workdir))
  with pytest.raises(ValueError, match=r'^config\.budget=-5 '):
    loop.search(config, str(workdir))
  assert not workdir.exists()


def run_entry_point(module, config, workdir, *options):
  return subprocess.run(
      [sys.executable, '-m', f'experiments.{module}', f'--config={config}',
       f'--workdir={workdir}', *options],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, JAX_PLATFORMS='cpu'))


def assert_one_line_error(result, message):
  assert result.returncode == 1, result.stderr
  assert f'Error: {message}\n' in result.stderr
  assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('module,config,flag,message', [
    ('train', 'experiments/configs/test.py', '--config.epochs=0',
     'config.epochs=0 is not allowed: it must be an integer >= 1.'),
    ('search', 'experiments/configs/search_test.py', '--config.budget=-5',
     'config.budget=-5 is not allowed: it must be an integer >= 0.'),
    ('search', 'experiments/configs/search_test.py',
     '--config.population_size=0',
     'config.population_size=0 is not allowed: it must be an integer >= 1.'),
    ('train', 'experiments/configs/test.py', '--config.epochz=3',
     'unknown option --config.epochz; did you mean --config.epochs?'),
])
def test_entry_point_answers_with_one_line(tmp_path, module, config, flag,
                                           message):
  workdir = tmp_path / 'never'
  result = run_entry_point(module, config, workdir, flag)
  assert_one_line_error(result, message)
  assert not workdir.exists()


def test_unknown_nested_option_suggests_the_close_names():
  values = flags.FlagValues()
  config_flags.DEFINE_config_file(
      'config', 'experiments/configs/search_test.py', 'Search.',
      flag_values=values)
  message = common.unknown_config_option(
      ['prog', '--config.fidelity.patiense=3'], values)
  assert message == ('unknown option --config.fidelity.patiense; did you '
                     'mean --config.fidelity.patience?')
  assert common.unknown_config_option(
      ['prog', '--config.fidelity.patience=3'], values) is None


def test_debug_shows_the_traceback(tmp_path):
  result = run_entry_point('train', 'experiments/configs/test.py',
                           tmp_path / 'never', '--config.epochs=0',
                           '--debug')
  assert result.returncode == 1
  assert 'Traceback' in result.stderr
  assert ('ValueError: config.epochs=0 is not allowed: it must be an '
          'integer >= 1.') in result.stderr


def test_help_lists_every_config_option_and_exits_0():
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.search',
       '--config=experiments/configs/search_test.py', '--help'],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  text = result.stdout
  assert 'Options of --config=experiments/configs/search_test.py' in text
  # The file given, not the default, sets the defaults listed.
  lines = text.splitlines()
  (where,) = [i for i, line in enumerate(lines)
              if line.startswith('  --config.budget:')]
  assert 'Evaluations' in lines[where]  # Its comment in search.py.
  assert lines[where + 1] == (
      f'    (default: {search_test.get_config().budget!r})')
  for option in ('fidelity.epochs', 'optimizer.b1', 'data.columns',
                 'strategies.adversarial.hidden'):
    assert any(line.startswith(f'  --config.{option}:') for line in lines), (
        option)
