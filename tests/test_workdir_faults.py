"""Faults of a workdir: two processes on it, a damaged checkpoint or trial
store, and a run resumed with other settings than it was started with."""

import contextlib
import gc
import glob
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys

import orbax.checkpoint as ocp
import pytest

from conftest import needs_data
from experiments.configs import search_test
from experiments.configs import test as test_config
from gnas_jax import data as data_lib
from gnas_jax import driver
from gnas_jax import space
from gnas_jax import workdir as workdir_lib
from gnas_jax.search import loop
from gnas_jax.search import store as store_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get('GNAS_DATA_DIR', '')
JSON_ERROR = 'JSONDecodeError: Expecting value: line 1 column 1 (char 0)'
# Holds a workdir's lock until its stdin closes.
HOLDER = """
import sys
from gnas_jax import workdir
with workdir.lock(sys.argv[1]):
  print('locked', flush=True)
  sys.stdin.read()
"""


def training_config(**overrides):
  """experiments/configs/test.py with dotted overrides."""
  config = test_config.get_config()
  config.unlock()
  for key, value in overrides.items():
    *parents, leaf = key.split('.')
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  config.lock()
  return config


def search_config():
  """A random search of two rounds of two candidates in a space of one
  model shape: seconds on a CPU."""
  config = search_test.get_config()
  config.strategy = 'random'
  config.population_size = 2
  config.budget = 4
  config.fidelity.epochs = 1
  config.space = ('width=16,layers=1,agg=lightgcn,act=identity,readout=last,'
                  'decoder=dot,loss=bpr')
  return config


def copy_workdir(source, tmp_path):
  target = str(tmp_path / 'workdir')
  shutil.copytree(source, target)
  return target


def truncate(path):
  with open(path, 'w'):
    pass


def hold(workdir):
  """A process that holds `workdir`'s lock until `release`."""
  process = subprocess.Popen(
      [sys.executable, '-c', HOLDER, workdir], cwd=ROOT, text=True,
      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
  assert process.stdout.readline().strip() == 'locked'
  return process


def release(process):
  """Ends a `hold` (its lock is released as its stdin closes)."""
  process.stdin.close()
  process.stdout.close()
  return process.wait(timeout=60)


def in_use(workdir, pid):
  return re.escape(f'workdir {workdir} is in use by process {pid}; wait for '
                   'it to end or choose another workdir.')


def try_lock_elsewhere(workdir):
  """Whether another process can take `workdir`'s lock now."""
  result = subprocess.run(
      [sys.executable, '-c', HOLDER, workdir], cwd=ROOT, input='',
      capture_output=True, text=True, timeout=60)
  return result.returncode == 0


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A finished 3-epoch run: latest checkpoints 2 and 3."""
  workdir = str(tmp_path_factory.mktemp('trained'))
  results = driver.train_and_evaluate(training_config(), workdir)
  return workdir, results


@pytest.fixture(scope='module')
def searched(tmp_path_factory):
  """A finished search: checkpoints after rounds 1 and 2, 4 trials."""
  workdir = str(tmp_path_factory.mktemp('searched'))
  facts = loop.search(search_config(), workdir)
  return workdir, facts


def trial_rows(workdir):
  with sqlite3.connect(os.path.join(workdir, 'trials.sqlite')) as db:
    return db.execute('SELECT round, slot, arch, valid_ndcg, valid_recall, '
                      'failed, epochs FROM trials ORDER BY round, '
                      'slot').fetchall()


# The workdir lock.


def test_a_training_run_refuses_a_workdir_another_process_holds(tmp_path):
  workdir = str(tmp_path / 'run')
  holder = hold(workdir)
  try:
    with pytest.raises(ValueError, match=in_use(workdir, holder.pid)):
      driver.train_and_evaluate(training_config(), workdir)
  finally:
    assert release(holder) == 0
  assert not os.path.exists(os.path.join(workdir, 'checkpoints'))


def test_a_search_refuses_a_workdir_another_process_holds(tmp_path):
  workdir = str(tmp_path / 'search')
  holder = hold(workdir)
  try:
    with pytest.raises(ValueError, match=in_use(workdir, holder.pid)):
      loop.search(search_config(), workdir)
  finally:
    assert release(holder) == 0
  assert not os.path.exists(os.path.join(workdir, 'trials.sqlite'))


def test_a_second_training_process_exits_at_once(tmp_path):
  workdir = str(tmp_path / 'run')
  with workdir_lib.lock(workdir):
    result = subprocess.run(
        [sys.executable, '-m', 'experiments.train',
         '--config=experiments/configs/test.py', f'--workdir={workdir}'],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert (f'Error: workdir {workdir} is in use by process '
          f'{os.getpid()}; wait for it to end or choose another workdir.'
          in result.stderr)
  assert 'Traceback' not in result.stderr
  assert os.listdir(workdir) == ['.lock']


def test_a_killed_holder_leaves_a_lock_that_blocks_nobody(tmp_path):
  workdir = str(tmp_path / 'run')
  holder = hold(workdir)
  holder.send_signal(signal.SIGKILL)
  assert release(holder) == -signal.SIGKILL
  with open(os.path.join(workdir, '.lock')) as f:
    assert f.read().strip() == str(holder.pid)
  with workdir_lib.lock(workdir):
    with open(os.path.join(workdir, '.lock')) as f:
      assert f.read().strip() == str(os.getpid())
    # Another lock of this same process is refused as well.
    with pytest.raises(ValueError, match=in_use(workdir, os.getpid())):
      with workdir_lib.lock(workdir):
        pass
  with open(os.path.join(workdir, '.lock')) as f:
    assert not f.read()


def test_a_failed_run_releases_its_workdir(tmp_path):
  workdir = str(tmp_path / 'run')
  with pytest.raises(ValueError, match='no-such-dataset'):
    driver.train_and_evaluate(
        training_config(dataset='no-such-dataset'), workdir)
  # It was taken (before the dataset was looked for) and given back.
  assert os.path.exists(os.path.join(workdir, '.lock'))
  assert try_lock_elsewhere(workdir)
  config = search_config()
  config.dataset = 'no-such-dataset'
  with pytest.raises(ValueError, match='no-such-dataset'):
    loop.search(config, workdir)
  assert try_lock_elsewhere(workdir)


# The trial store.


def test_a_malformed_trial_store_is_named(tmp_path):
  path = str(tmp_path / 'trials.sqlite')
  store = store_lib.TrialStore(path)
  store.add_round([{'round': r, 'slot': s, 'arch': 'lightgcn' * 100,
                    'valid_ndcg': 0.1, 'valid_recall': 0.2, 'failed': 0,
                    'epochs': 1, 'fidelity_epochs': 1, 'seed': 0,
                    'train_seconds': 1.0}
                   for r in range(10) for s in range(10)])
  store.close()
  os.truncate(path, 4096)
  with pytest.raises(ValueError, match=re.escape(
      f'Trial store {path} is unreadable (database disk image is '
      'malformed); restore it from a backup or start a new workdir.')):
    store_lib.TrialStore(path)
  with open(path, 'wb') as f:
    f.write(b'not a database' * 100)
  with pytest.raises(ValueError, match=re.escape(
      f'Trial store {path} is unreadable (file is not a database); restore '
      'it from a backup or start a new workdir.')):
    store_lib.TrialStore(path)


@pytest.mark.parametrize('damage,lost', [
    (truncate, 'empty (0 bytes)'), (os.remove, 'missing')])
def test_a_lost_trial_store_of_a_checkpointed_search_is_refused(
    searched, tmp_path, damage, lost):
  workdir = copy_workdir(searched[0], tmp_path)
  path = os.path.join(workdir, 'trials.sqlite')
  damage(path)
  with pytest.raises(ValueError, match=re.escape(
      f'Trial store {path} is {lost} while {workdir}/search_state holds the '
      'search after round 2; restore the trial store from a backup or '
      'start a new workdir.')):
    loop.search(search_config(), workdir)
  # Left as it was found, for whoever restores it.
  assert os.path.exists(path) == (lost != 'missing')
  assert not os.path.exists(path) or not os.path.getsize(path)


def test_a_damaged_trial_store_of_a_search_is_refused(searched, tmp_path):
  workdir = copy_workdir(searched[0], tmp_path)
  path = os.path.join(workdir, 'trials.sqlite')
  with open(path, 'r+b') as f:
    f.write(b'not a database')
  with pytest.raises(ValueError, match=re.escape(
      f'Trial store {path} is unreadable (file is not a database); restore '
      'it from a backup or start a new workdir.')):
    loop.search(search_config(), workdir)


def test_a_trial_store_without_checkpointed_trials_is_refused(
    searched, tmp_path):
  workdir = copy_workdir(searched[0], tmp_path)
  path = os.path.join(workdir, 'trials.sqlite')
  with sqlite3.connect(path) as db:
    db.execute('DELETE FROM trials WHERE round = 0')
  with pytest.raises(ValueError, match=re.escape(
      f'Trial store {path} holds 2 trials of the 2 rounds checkpointed in '
      f'{workdir}/search_state, not 4; restore it from a backup or start a '
      'new workdir.')):
    loop.search(search_config(), workdir)


# Damaged checkpoints.


def test_training_resumes_from_the_newest_intact_checkpoint(
    trained, tmp_path, caplog):
  workdir = copy_workdir(trained[0], tmp_path)
  latest = os.path.join(workdir, 'checkpoints', 'latest')
  assert sorted(os.listdir(latest)) == ['2', '3']
  truncate(os.path.join(latest, '3', 'state', '_METADATA'))
  with caplog.at_level(logging.WARNING):
    results = driver.train_and_evaluate(training_config(), workdir)
  assert (f'Checkpoint {latest}/3 is damaged ({JSON_ERROR}); resuming from '
          f'{latest}/2, the newest intact one. The damaged one is now in '
          f'{latest}.damaged/3.' in caplog.text)
  assert os.listdir(f'{latest}.damaged') == ['3']
  assert sorted(os.listdir(latest)) == ['2', '3']
  for key, value in trained[1].items():
    if key.startswith(('test/', 'valid/')) or key in ('best_epoch',
                                                       'epochs_run'):
      assert results[key] == pytest.approx(value, rel=1e-6), key


# Orbax leaves its reads of the damaged array's neighbours unawaited; they
# are reported when collected: here, as this test's warnings, or, if still
# pending when it ends, during a later test of this worker.
@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
def test_a_damaged_array_file_is_named_without_tensorstore_specs(
    trained, tmp_path, caplog):
  workdir = copy_workdir(trained[0], tmp_path)
  latest = os.path.join(workdir, 'checkpoints', 'latest')
  for path in glob.glob(f'{latest}/3/state/ocdbt.process_0/d/*'):
    os.truncate(path, os.path.getsize(path) // 2)
  with caplog.at_level(logging.WARNING):
    driver.train_and_evaluate(training_config(), workdir)
  warning, = [r.getMessage() for r in caplog.records
              if 'is damaged' in r.getMessage()]
  assert warning.startswith(f'Checkpoint {latest}/3 is damaged (Exception: ')
  assert warning.endswith(f'resuming from {latest}/2, the newest intact '
                          f'one. The damaged one is now in '
                          f'{latest}.damaged/3.')
  assert '{' not in warning and len(warning) < 600
  gc.collect()


def test_training_without_an_intact_checkpoint_names_them(trained,
                                                          tmp_path):
  workdir = copy_workdir(trained[0], tmp_path)
  latest = os.path.join(workdir, 'checkpoints', 'latest')
  for step in ('2', '3'):
    truncate(os.path.join(latest, step, 'progress', 'metadata'))
  with pytest.raises(ValueError, match=re.escape(
      f'No checkpoint in {latest} is intact ({latest}/3: {JSON_ERROR}; '
      f'{latest}/2: {JSON_ERROR}); restore them from a backup or start a new '
      'workdir.')):
    driver.train_and_evaluate(training_config(), workdir)
  # Nothing is set aside when nothing can stand in for it.
  assert sorted(os.listdir(latest)) == ['2', '3']
  assert not os.path.exists(f'{latest}.damaged')


def test_a_damaged_best_state_is_named(trained, tmp_path):
  workdir = copy_workdir(trained[0], tmp_path)
  best = os.path.join(workdir, 'checkpoints', 'best')
  step, = os.listdir(best)
  truncate(os.path.join(best, step, 'state', '_METADATA'))
  with pytest.raises(ValueError, match=re.escape(
      f'Checkpoint {best}/{step} of the best state is damaged '
      f'({JSON_ERROR}); restore it from a backup or start a new workdir.')):
    driver.train_and_evaluate(training_config(), workdir)


def test_a_search_resumes_from_the_newest_intact_round(searched, tmp_path,
                                                       caplog):
  reference, facts = searched
  workdir = copy_workdir(reference, tmp_path)
  state = os.path.join(workdir, 'search_state')
  truncate(os.path.join(state, '2', 'meta', 'metadata'))
  with caplog.at_level(logging.WARNING):
    resumed = loop.search(search_config(), workdir)
  assert (f'Checkpoint {state}/2 is damaged ({JSON_ERROR}); resuming from '
          f'{state}/1, the newest intact one. The damaged one is now in '
          f'{state}.damaged/2.' in caplog.text)
  # Round 2 ran again, to the same trials.
  assert trial_rows(workdir) == trial_rows(reference)
  assert sorted(os.listdir(state)) == ['1', '2']
  for key in ('evaluations', 'rounds', 'best_arch', 'best_valid_ndcg@20'):
    assert resumed[key] == facts[key], key


def test_a_search_checkpointed_before_scores_had_a_fidelity_goes_on(
    searched, tmp_path):
  """Its archive lacks `fidelity`; the scores count alike, and one more
  round follows the two it holds."""
  reference, _ = searched
  workdir = copy_workdir(reference, tmp_path)
  directory = os.path.join(workdir, 'search_state')
  with contextlib.closing(loop._StateCheckpoints(directory)) as checkpoints:
    rounds, state, meta = checkpoints.restore()
  del state['archive']['fidelity']
  for step in os.listdir(directory):
    shutil.rmtree(os.path.join(directory, step))
  # A new manager: the first one remembers the steps just removed.
  with contextlib.closing(loop._StateCheckpoints(directory)) as checkpoints:
    checkpoints.save(rounds, state, meta)
  config = search_config()
  config.budget = 6
  facts = loop.search(config, workdir)
  assert facts['evaluations'] == 6
  assert trial_rows(workdir)[:4] == trial_rows(reference)


def test_a_search_without_an_intact_checkpoint_names_them(searched,
                                                          tmp_path):
  workdir = copy_workdir(searched[0], tmp_path)
  state = os.path.join(workdir, 'search_state')
  truncate(os.path.join(state, '2', 'meta', 'metadata'))
  truncate(os.path.join(state, '1', 'state', '_METADATA'))
  with pytest.raises(ValueError, match=re.escape(
      f'No checkpoint in {state} is intact ({state}/2: {JSON_ERROR}; '
      f'{state}/1: {JSON_ERROR}); restore them from a backup or start a new '
      'workdir.')):
    loop.search(search_config(), workdir)


# Resuming with other settings.


def changed_settings(workdir, old, new, keys):
  """The error for a run started with fingerprint `old`, resumed with
  `new`, which differ in `keys` (dotted)."""
  def value(fingerprint, key):
    for part in key.split('.'):
      fingerprint = fingerprint[part]
    return fingerprint
  details = '; '.join(f'{k} was {value(old, k)!r}, now {value(new, k)!r}'
                      for k in keys)
  return re.escape(
      f'{workdir} holds a training run with other settings: {details}. '
      'Resume it with the same ones (only the epochs, patience and '
      'evaluation settings may change) or choose a new workdir.')


def test_a_training_run_refuses_another_architecture(trained, tmp_path):
  workdir = copy_workdir(trained[0], tmp_path)
  old = space.from_string('lightgcn,width=16,layers=2').to_string()
  new = space.from_string('ngcf,width=16,layers=2').to_string()
  with pytest.raises(ValueError, match=re.escape(
      f'{workdir} holds a training run with other settings: arch was '
      f"'{old}', now '{new}'. Resume it with the same ones (only the epochs, "
      'patience and evaluation settings may change) or choose a new '
      'workdir.')):
    driver.train_and_evaluate(training_config(arch='ngcf,width=16,layers=2'),
                             workdir)
  # More epochs and another patience are a continuation.
  results = driver.train_and_evaluate(training_config(epochs=4, patience=50),
                                     workdir)
  assert results['epochs_run'] == 4


def test_a_training_run_refuses_another_split(trained, tmp_path):
  workdir = copy_workdir(trained[0], tmp_path)
  config = training_config(**{'data.split_seed': 1})
  old = driver.fingerprint(training_config(),
                          data_lib.load_dataset(training_config()))
  new = driver.fingerprint(config, data_lib.load_dataset(config))
  with pytest.raises(ValueError, match=changed_settings(
      workdir, old, new, ['data.split_seed', 'data_sha256'])):
    driver.train_and_evaluate(config, workdir)


def test_a_training_run_refuses_another_sampling(trained, tmp_path):
  workdir = copy_workdir(trained[0], tmp_path)
  config = training_config(sampling='users')
  # The default is not recorded: runs from before the option still resume.
  assert 'sampling' not in driver.fingerprint(training_config(),
                                              data_lib.load_dataset(config))
  with pytest.raises(ValueError, match=re.escape(
      "sampling was absent, now 'users'")):
    driver.train_and_evaluate(config, workdir)


def test_a_fingerprint_holds_the_negatives_its_architecture_scores():
  """Its loss's count: one for BPR, the protocol's for 'softmax', N for
  'softmax-N' (the count that shaped a run's trajectory)."""
  config = training_config(num_negatives=16)
  dataset = data_lib.load_dataset(config)

  def negatives(arch):
    return driver.fingerprint(config, dataset,
                              space.from_string(arch))['num_negatives']

  assert negatives('mf') == 1
  assert negatives('mf,loss=softmax') == 16
  assert negatives('mf,loss=softmax-64') == 64


@needs_data
def test_a_training_run_refuses_another_dataset(trained, tmp_path):
  workdir = copy_workdir(trained[0], tmp_path)
  config = training_config(dataset='ml-100k', data_dir=DATA_DIR)
  old = driver.fingerprint(training_config(),
                          data_lib.load_dataset(training_config()))
  new = driver.fingerprint(config, data_lib.load_dataset(config))
  with pytest.raises(ValueError, match=changed_settings(
      workdir, old, new, ['data_sha256', 'dataset'])):
    driver.train_and_evaluate(config, workdir)


def test_a_run_from_before_fingerprints_still_holds_its_architecture(
    trained, tmp_path):
  workdir = copy_workdir(trained[0], tmp_path)
  fingerprint = os.path.join(workdir, driver.FINGERPRINT_FILE)
  os.remove(fingerprint)
  old = space.from_string('lightgcn,width=16,layers=2').to_string()
  other = 'lightgcn,width=16,layers=2,readout=sum'
  new = space.from_string(other).to_string()
  with pytest.raises(ValueError, match=re.escape(
      f'Checkpoint {workdir}/checkpoints/latest/3 holds architecture {old}, '
      f'not {new}; resume it with the architecture it was trained with or '
      'choose a new workdir.')):
    driver.train_and_evaluate(training_config(arch=other), workdir)
  assert not os.path.exists(fingerprint)
  driver.train_and_evaluate(training_config(), workdir)
  with pytest.raises(ValueError, match='arch was'):
    driver.train_and_evaluate(training_config(arch=other), workdir)


def test_a_run_checkpointed_in_the_earlier_progress_layout_resumes(
    trained, tmp_path):
  """The layout before population-wide early stopping kept one candidate's
  best score, best epoch and stale count as flat fields."""
  workdir = copy_workdir(trained[0], tmp_path)
  paths = glob.glob(f'{workdir}/checkpoints/*/*/progress/metadata')
  assert len(paths) == 3
  for path in paths:
    with open(path) as file:
      progress = json.load(file)
    stopping = progress.pop('stopping')
    progress.update(best_score=stopping['best_score'][0],
                    best_epoch=stopping['best_epoch'][0],
                    evaluations_without_improvement=stopping['stale'][0])
    with open(path, 'w') as file:
      json.dump(progress, file)
  results = driver.train_and_evaluate(training_config(), workdir)
  for key, value in trained[1].items():
    if key.startswith(('test/', 'valid/')) or key in ('best_epoch',
                                                       'epochs_run'):
      assert results[key] == pytest.approx(value, rel=1e-6), key
  results = driver.train_and_evaluate(training_config(epochs=4), workdir)
  assert results['epochs_run'] == 4


# Reading the shorter vector at the current shape would fail and leave
# orbax's reads of the other arrays unawaited, reported once collected:
# an error for reads of this test's own workdir (named after it), while
# those another test left behind on this worker (the damaged-array test's,
# still pending when it ended) may be collected here too.
@pytest.mark.filterwarnings(
    'ignore::pytest.PytestUnraisableExceptionWarning',
    'error:(?s).*test_a_run_checkpointed_befor:'
    'pytest.PytestUnraisableExceptionWarning')
def test_a_run_checkpointed_before_a_decision_was_appended_resumes(
    trained, tmp_path):
  """Its checkpoints hold an encoding one slot shorter (saved before
  message dropout, say): the same model, since the slot is at its default.
  Other shapes stay refused."""
  workdir = str(tmp_path / 'workdir')
  shutil.copytree(trained[0], workdir,
                  ignore=shutil.ignore_patterns('checkpoints'))

  def rewrite(trim):
    with contextlib.closing(driver._Checkpoints(
        os.path.join(trained[0], 'checkpoints'))) as saved, contextlib.closing(
            driver._Checkpoints(os.path.join(workdir, 'checkpoints'))) as older:
      for name in ('latest', 'best'):
        source, target = getattr(saved, name), getattr(older, name)
        for step in source.all_steps():
          untyped = source.restore(step, args=ocp.args.Composite(
              state=ocp.args.StandardRestore(),
              progress=ocp.args.JsonRestore()))
          untyped.state['arch'] = trim(untyped.state['arch'])
          target.save(step, args=ocp.args.Composite(
              state=ocp.args.StandardSave(untyped.state),
              progress=ocp.args.JsonSave(untyped.progress)))
          target.wait_until_finished()

  rewrite(lambda arch: arch[:-1])
  results = driver.train_and_evaluate(training_config(), workdir)
  gc.collect()
  for key, value in trained[1].items():
    if key.startswith(('test/', 'valid/')) or key in ('best_epoch',
                                                       'epochs_run'):
      assert results[key] == pytest.approx(value, rel=1e-6), key
  shutil.rmtree(os.path.join(workdir, 'checkpoints'))
  # A shorter vector whose kept slots differ holds another model.
  rewrite(lambda arch: (arch + 1)[:-1])
  with pytest.raises(ValueError, match=re.escape(
      f'Checkpoint {workdir}/checkpoints/latest/3 holds another model than '
      f'{space.from_string(training_config().arch).to_string()} on this '
      'dataset')):
    driver.train_and_evaluate(training_config(), workdir)


def test_a_relative_workdir_resumes_and_saves(trained, tmp_path,
                                              monkeypatch):
  copy_workdir(trained[0], tmp_path)
  monkeypatch.chdir(tmp_path)
  results = driver.train_and_evaluate(training_config(epochs=4), 'workdir')
  assert results['epochs_run'] == 4
  assert os.path.isdir(tmp_path / 'workdir/checkpoints/latest/4')


def test_a_training_workdir_holds_one_run(trained, tmp_path):
  workdir = copy_workdir(trained[0], tmp_path)
  with pytest.raises(ValueError, match=re.escape(
      f'{workdir} holds a training run already; resume it '
      '(config.resume=True) or choose a new workdir.')):
    driver.train_and_evaluate(training_config(resume=False), workdir)
