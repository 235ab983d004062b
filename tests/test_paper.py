"""The tabular benchmark, replayed searches and the paper tables."""

import csv
import json
import os
import platform
import re
import shlex
import subprocess
import sys

from absl import flags
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np
import pytest

from experiments import paper
from experiments import tuning
from experiments.configs import gowalla_retrain
from experiments.configs import search_test
from experiments.configs import test as test_config
from experiments.configs.paper import ablations
from experiments.configs.paper import accuracy
from experiments.configs.paper import search_efficiency
from gnas_jax import data
from gnas_jax import space
from gnas_jax.search import strategies
from gnas_jax.search import tabular

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_SPACE = ('width=16,layers=0/1,norm=sym,readout=last/mean,'
              'edge_dropout=0,decoder=dot,loss=bpr,lr=0.001/0.01,l2=0.0001,'
              'agg=lightgcn/gcn,act=identity/relu,residual=0')


def test_enumerate_canonical_lists_each_canonical_architecture_once():
  for text in (TINY_SPACE, search_efficiency.SPACES['small'],
               'width=16,layers=0/1/2,agg=lightgcn/gat,act=relu,'
               'decoder=dot/cosine,readout=sum/mean/concat,'
               'temperature=0.1/0.5,norm=sym/none,loss=bpr,lr=0.001,l2=0.0'):
    choices = space.subspace_from_string(text)
    archs = space.enumerate_canonical(choices)
    assert len(archs) == space.count_canonical(choices)
    assert all(a == a.canonical() for a in archs)
    assert len({a.to_string() for a in archs}) == len(archs)
  # Hand count: 2 lr for MF, and 2 lr x 2 readouts x 2 agg x 2 act.
  assert len(space.enumerate_canonical(
      space.subspace_from_string(TINY_SPACE))) == 2 + 16


def test_user_fraction_keeps_the_same_users_in_train_and_test():
  rng = np.random.default_rng(0)
  users = np.repeat(np.arange(100), 5)
  train = data.Interactions(users=users, items=rng.integers(0, 50, 500))
  test = data.Interactions(users=users[::5], items=np.arange(100) % 50)
  kept_train, kept_test = data.sample_users(
      [train, test], 0.2, np.random.default_rng(1))
  chosen = np.unique(kept_train.users)
  assert len(chosen) == 20 and len(kept_train) == 100
  np.testing.assert_array_equal(np.unique(kept_test.users), chosen)
  again, _ = data.sample_users(
      [train, test], 0.2, np.random.default_rng(1))
  np.testing.assert_array_equal(again.users, kept_train.users)
  assert data.sample_users([train], 1.0, rng)[0] is train
  with pytest.raises(ValueError, match=r'data.user_fraction=1.5'):
    data.sample_users([train], 1.5, rng)


def test_user_fraction_from_the_config():
  config = test_config.get_config()
  full = data.load_dataset(config)
  config.data.user_fraction = 0.5
  half = data.load_dataset(config)
  assert half.num_users == full.num_users // 2
  assert len(half.train) < len(full.train)


def _fake_table():
  """A table over TINY_SPACE with known scores: lr=0.01 and relu help."""
  archs = space.enumerate_canonical(space.subspace_from_string(TINY_SPACE))
  records = {}
  for index, arch in enumerate(archs):
    score = 0.1 + 0.05 * (arch.lr == 0.01) + 0.02 * ('relu' in arch.act)
    records[arch.to_string()] = {
        'arch': arch.to_string(), 'valid_ndcg': score + 1e-4 * index,
        'train_seconds': 2.0, 'epochs': 1, 'failed': False}
  return tabular.Table(TINY_SPACE, records)


def test_replay_reads_the_table_and_accounts_time():
  table = _fake_table()
  strategy = strategies.make_strategy(
      'random', space.search_space(space.subspace_from_string(TINY_SPACE)))
  trace = tabular.replay(strategy, table, seed=0, batch_size=4, budget=18)
  # Random search without repeats visits all 18 architectures.
  assert sorted(trace.archs) == sorted(table.records)
  np.testing.assert_allclose(
      trace.fitness, [table.records[a]['valid_ndcg'] for a in trace.archs])
  np.testing.assert_array_equal(trace.rounds, np.arange(18) // 4)
  # Each round adds its trainings (2 s each: four, and two in the last
  # round, which asks only for what the budget leaves) plus strategy time.
  per_round = trace.seconds[::4]
  assert np.all(np.diff(per_round) >= [8.0, 8.0, 8.0, 4.0])
  assert per_round[0] >= 8.0
  assert np.all(trace.seconds[trace.rounds == 4] == trace.seconds[-1])
  best = table.scores().max()
  reached = trace.evaluations_to_reach(best)
  assert trace.fitness[int(reached) - 1] == best
  assert trace.best_so_far()[-1] == best
  assert trace.evaluations_to_reach(best + 1) == float('inf')
  with pytest.raises(KeyError, match='not in the table'):
    table.fitness([space.preset('lightgcn')])


def _benchmark_config():
  config = search_test.get_config()
  config.space = TINY_SPACE
  config.population_size = 6
  config.fidelity.epochs = 1
  return config


def test_build_table_trains_every_architecture_once_and_resumes(
    tmp_path, monkeypatch):
  config = _benchmark_config()
  dataset = data.load_dataset(config)
  path = str(tmp_path / 'table.jsonl')
  table = tabular.build_table(config, dataset, path)
  assert len(table.records) == 18
  assert all(np.isfinite(r['valid_ndcg']) and r['train_seconds'] > 0
             for r in table.records.values())
  # A run killed while writing: two whole records and half a line lost.
  with open(path) as f:
    lines = f.readlines()
  with open(path, 'w') as f:
    f.writelines(lines[:-8])
    f.write(lines[-8][:20])
  trained = []
  original = tabular.evaluation.PopulationEvaluator.__call__

  def counting(self, archs, key):
    trained.extend(a.to_string() for a in archs)
    return original(self, archs, key)

  monkeypatch.setattr(tabular.evaluation.PopulationEvaluator, '__call__', counting)
  resumed = tabular.build_table(config, dataset, path)
  # Only the populations with a lost record are trained again.
  lost = {json.loads(line)['arch'] for line in lines[-8:]}
  assert lost <= set(trained) and len(trained) == 12
  assert set(resumed.records) == set(table.records)
  for arch in set(table.records) - set(trained):
    assert resumed.records[arch] == table.records[arch]
  with open(path) as f:
    assert len(f.readlines()) == 18 + 12 - 8


def _tiny_paper_config(table, scale):
  assert scale == 'small'
  if table in ('search_efficiency', 'ablations'):
    config = (search_efficiency.get_config(scale) if table ==
              'search_efficiency' else ablations.get_config(scale))
    config.benchmark = _benchmark_config()
    config.strategies = ('random', 'adversarial')
    config.seeds = (0, 1)
    config.batch_size = 4
    config.budget = 8
    if table == 'ablations':
      for name in list(config.variants):
        if name not in ('adversarial', 'adversarial-binary'):
          del config.variants[name]
    return config
  config = accuracy.get_config(scale)
  config.search = _tiny_paper_config('search_efficiency', scale)
  config.hand_designed = ('mf', 'lightgcn')
  config.hand_designed_variants = {'mf, softmax': 'mf,loss=softmax'}
  # Listed as if a search had found it: tuned as the hand-designed one is.
  config.searched = {'listed': 'lightgcn'}
  config.seeds = (0,)
  config.tuning.lr = (1e-3, 1e-2)
  config.tuning.l2 = (1e-4,)
  small = test_config.get_config()
  small.epochs = 2
  config.datasets = {'synthetic': small}
  return config


@pytest.fixture(scope='module')
def reproduced(tmp_path_factory):
  """The search, ablation and accuracy tables on tiny configurations."""
  run = paper.Run(str(tmp_path_factory.mktemp('paper')))
  outputs = {}
  for name in ('search_efficiency', 'ablations', 'accuracy'):
    output = paper.RUNNERS[name](_tiny_paper_config(name, 'small'), run)
    output.write(run, name, 1.0)
    outputs[name] = output
  return run.workdir, outputs


def test_search_tables_agree_with_their_searches(reproduced):
  workdir, outputs = reproduced
  output = outputs['search_efficiency']
  assert [row[0] for row in output.rows] == ['random', 'adversarial']
  with open(os.path.join(workdir, 'search_efficiency_curves.csv')) as f:
    curves = list(csv.DictReader(f))
  assert len(curves) == 2 * 2 * 8
  for row in output.rows:
    best = [max(float(c['valid_ndcg@20']) for c in curves
                if c['strategy'] == row[0] and c['seed'] == str(seed))
            for seed in (0, 1)]
    assert row[-2] == f'{np.median(best):.4f}'
  for name in ('search_efficiency', 'choice_frequency', 'ablations'):
    assert os.path.getsize(os.path.join(workdir, f'{name}.png')) > 10_000
  assert [r[0] for r in outputs['ablations'].rows] == [
      'adversarial', 'adversarial-binary']
  # The default variant is the adversarial search of search_efficiency.
  assert outputs['ablations'].rows[0][1:] == output.rows[1][1:]


def test_accuracy_table_trains_presets_and_the_searched(reproduced):
  workdir, outputs = reproduced
  rows = outputs['accuracy'].rows
  assert [r[1] for r in rows] == ['mf', 'lightgcn', 'mf, softmax',
                                  'searched: random', 'searched: adversarial',
                                  'searched: listed']
  # The same architecture, hand-designed or searched, is tuned alike.
  assert rows[-1][2:] == rows[1][2:]
  for row in rows:
    mean, std = row[4].split(' ± ')
    assert 0 < float(mean) <= 1 and float(std) == 0.0  # One seed.
  with open(os.path.join(workdir, 'accuracy.md')) as f:
    text = f.read()
  assert 'python -m experiments.reproduce --table=accuracy --scale=small' in (
      text)
  assert '| synthetic | lightgcn |' in text
  assert 'grid: lr in {0.001, 0.01} x L2 in {0.0001} at seed 0' in text
  assert ('"searched: X" for a strategy X is the best architecture of X\'s '
          'first search in `search_efficiency`, on synthetic; "searched: '
          'listed": found by a search of its own') in text
  dataset = data.load_dataset(test_config.get_config())
  users = np.unique(dataset.test[:, 0]).size
  assert (f'Evaluated: synthetic: {dataset.num_users:,} users ({users:,} '
          f'with a test pair), {len(dataset.test):,} test pairs.') in text
  with open(os.path.join(workdir, 'accuracy.csv')) as f:
    records = list(csv.DictReader(f))
  assert list(records[0]) == list(tuning.CSV_COLUMNS)
  assert [(r['model'], r['kind']) for r in records] == [
      ('mf', 'hand-designed'), ('lightgcn', 'hand-designed'),
      ('mf, softmax', 'hand-designed'), ('searched: random', 'searched'),
      ('searched: adversarial', 'searched'), ('searched: listed', 'searched')]
  # A variant is its preset with the options it names.
  variant = space.from_string(records[2]['arch'])
  assert variant.loss == 'softmax' and variant == space.from_string(
      f'mf,loss=softmax,lr={variant.lr},l2={variant.l2}')
  # Searched architectures are tuned on the grid too, each setting once.
  found = paper.searched_architectures(
      _tiny_paper_config('accuracy', 'small'), paper.Run(workdir))
  assert list(found) == ['searched: random', 'searched: adversarial',
                         'searched: listed']
  settings = {tuning.setting_directory(f'{arch},lr={lr},l2=0.0001')
              for arch in ('mf', 'mf,loss=softmax', *found.values())
              for lr in (0.001, 0.01)}
  assert set(os.listdir(os.path.join(
      workdir, 'accuracy', 'synthetic', 'tuned'))) == settings
  for record, row in zip(records, rows):
    assert f'`{record["arch"]}`' == row[-1]
    assert f'{float(record["test_ndcg@20_mean"]):.4f}' == row[4].split(' ')[0]
    assert record['seeds'] == '0' and record['dataset'] == 'synthetic'
  # A tuned row's architecture carries the setting its tuning selected.
  tuned = json.load(open(os.path.join(
      workdir, 'accuracy', 'synthetic', 'tuned',
      'lightgcn_lr=0.01_l2=0.0001', 'seed_0', 'results.json')))
  chosen = space.from_string(records[1]['arch'])
  assert chosen.lr in (1e-3, 1e-2) and chosen.l2 == 1e-4
  assert (chosen.lr == 1e-2) == (
      tuned['valid/ndcg@20'] >= json.load(open(os.path.join(
          workdir, 'accuracy', 'synthetic', 'tuned',
          'lightgcn_lr=0.001_l2=0.0001', 'seed_0', 'results.json')))[
              'valid/ndcg@20'])


def test_a_dataset_of_the_accuracy_table_trains_its_own_models(tmp_path):
  config = accuracy.get_config('small')
  config.search.strategies = ()
  config.hand_designed = ('lightgcn',)
  config.searched = {'listed': 'lightgcn'}
  config.seeds = (0, 1)
  config.tuning.lr = (1e-3, 1e-2)
  own = test_config.get_config()
  own.epochs = 2
  own.hand_designed = ()
  own.hand_designed_variants = {}
  own.searched = {'found here': 'mf,lr=0.003'}
  own.seeds = (0,)
  own.tuning = {'lr': (), 'l2': (), 'negatives': (), 'seed': 0}
  config.datasets = {'synthetic': own}
  run = paper.Run(str(tmp_path))
  output = paper.run_accuracy(config, run)
  # Neither the table's models, nor its seeds, nor its grid.
  assert [row[:2] for row in output.rows] == [['synthetic',
                                              'searched: found here']]
  assert output.rows[0][4].endswith('± 0.0000')  # One seed.
  assert os.listdir(os.path.join(tmp_path, 'accuracy', 'synthetic',
                                 'tuned')) == ['mf_lr=0.003']
  (record,) = output.records[1]
  assert record['kind'] == 'searched' and record['seeds'] == '0'
  assert record['arch'] == space.from_string('mf,lr=0.003').to_string()
  assert ('On synthetic, its own models (searched: found here) with seeds 0, '
          'grid: none: each model at the lr and L2 its architecture names.'
          ) in output.notes[0]
  # The table's options stand where a dataset sets none of its own.
  assert paper.dataset_options(
      accuracy.get_config('full'), 'ml-100k').seeds == (0, 1, 2)
  assert dict(paper.dataset_options(
      accuracy.get_config('full'), 'gowalla').searched) == {
          'random, full fidelity, gowalla-sub10':
              gowalla_retrain.SUBSAMPLE_BEST}


def test_accuracy_rejects_a_dataset_it_does_not_configure(tmp_path):
  config = accuracy.get_config('small')
  config.evaluate_on = ('ml-100k', 'movielens')
  with pytest.raises(ValueError, match="evaluate_on names 'movielens', "
                     r'which is not in datasets \(ml-100k, gowalla-sub10\)'):
    paper.run_accuracy(config, paper.Run(str(tmp_path)))
  assert not os.listdir(tmp_path)


def test_throughput_table_merges_platforms(tmp_path):
  folder = tmp_path / 'throughput'
  folder.mkdir()
  for platform, step, sizes in (('cpu', 80.0, (1, 4)),
                                ('gpu', 2.0, (1, 4, 64))):
    records = [{'population_size': p, 'per_candidate_step_ms': step / p,
                'specialised_amortised_step_ms': step,
                'candidates_per_hour': 1000.0 * p, 'device': platform}
               for p in sizes]
    with open(folder / f'{platform}_ml-100k_small.json', 'w') as f:
      json.dump(records, f)
  config = paper.paper_config('throughput', 'small')
  config.population_sizes = {'ml-100k': (1, 4, 16)}
  output = paper.run_throughput(config, paper.Run(str(tmp_path)))
  assert output.header[2:5] == ['CPU step / candidate (ms)',
                                'CPU specialised (ms)',
                                'CPU candidates / hour']
  assert output.rows[1] == ['ml-100k', 4, '20.0', '80.0', '4000', '0.5',
                            '2.0', '4000']
  assert output.rows[2][2:] == ['—'] * 6  # P=16 measured nowhere.
  # A size measured on the GPU alone gets its row.
  assert output.rows[3] == ['ml-100k', 64] + ['—'] * 3 + [
      '0.0', '2.0', '64000']


def _reproduce(*args):
  return subprocess.run(
      [sys.executable, '-m', 'experiments.reproduce', *args], cwd=ROOT,
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, JAX_PLATFORMS='cpu'))


def test_reproduce_command_rejects_an_unknown_table():
  result = _reproduce('--table=speed', '--workdir=/tmp/unused')
  assert result.returncode != 0
  assert "flag --table=speed" in result.stderr


def test_paper_config_is_the_config_flag_with_its_overrides():
  argv = ['prog', '--config=' + paper.config_path('accuracy', 'full'),
          '--config.seeds=(7,)']
  values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', flag_values=values,
                                  sys_argv=argv)
  values(argv)
  expected = paper.paper_config('accuracy', 'full')
  with expected.unlocked():
    expected.seeds = (7,)
  assert values.config == expected
  assert paper.table_and_scale(values['config'].config_filename) == (
      'accuracy', 'full')
  assert paper.table_and_scale('/elsewhere/ablations.py') == (
      'ablations', 'small')
  with pytest.raises(ValueError, match='names no table'):
    paper.table_and_scale('experiments/configs/train.py')
  with pytest.raises(ValueError, match="Unknown scale 'medium'"):
    paper.paper_config('accuracy', 'medium')


def test_reproduce_from_a_config_file_writes_its_command(tmp_path):
  # Records for every size: the table is written without measuring.
  (tmp_path / 'throughput').mkdir()
  records = [{'population_size': p, 'per_candidate_step_ms': 1.0,
              'candidates_per_hour': 10.0, 'device': 'cpu'} for p in (1, 4)]
  with open(tmp_path / 'throughput' / 'cpu_ml-100k_full.json', 'w') as f:
    json.dump(records, f)
  result = _reproduce(
      '--config=experiments/configs/paper/throughput.py:full',
      "--config.population_sizes={'ml-100k': (1, 4)}", '--config.steps=3',
      f'--workdir={tmp_path}')
  assert result.returncode == 0, result.stderr
  with open(tmp_path / 'throughput.md') as f:
    produced = f.read().splitlines()[1]
  command = ('python -m experiments.reproduce '
             '--config=experiments/configs/paper/throughput.py:full '
             '"--config.population_sizes={\'ml-100k\': (1, 4)}" '
             '--config.steps=3')
  assert produced.startswith(f'Produced by `{command}` on a ')
  # The command as written runs the table again, pasted into a shell.
  assert shlex.split(command)[3:] == [
      '--config=experiments/configs/paper/throughput.py:full',
      "--config.population_sizes={'ml-100k': (1, 4)}", '--config.steps=3']
  with open(tmp_path / 'throughput.csv') as f:
    assert [row[:2] for row in csv.reader(f)][1:] == [
        ['ml-100k', '1'], ['ml-100k', '4']]


@pytest.mark.parametrize('args,message', [
    (('--table=accuracy',
      '--config=experiments/configs/paper/accuracy.py:small'),
     'Give either --table (and --scale) or --config.'),
    (('--config=experiments/configs/paper/accuracy.py', '--scale=full'),
     'With --config the scale follows the path'),
    (('--config=experiments/configs/test.py',),
     'Error: --config=experiments/configs/test.py names no table'),
    (('--config=experiments/configs/paper/accuracy.py', '--config.seedz=1'),
     ('Error: unknown option --config.seedz; did you mean --config.seeds or '
      '--config.searched?')),
])
def test_reproduce_command_rejects_a_wrong_config(tmp_path, args, message):
  result = _reproduce(*args, f'--workdir={tmp_path / "never"}')
  assert result.returncode == 1 and message in result.stderr
  assert not (tmp_path / 'never').exists()


def test_readme_shows_the_committed_tables():
  with open(os.path.join(ROOT, 'README.md')) as f:
    readme = f.read()
  results = os.path.join(ROOT, 'results')
  for name in paper.TABLES:
    with open(os.path.join(results, f'{name}.md')) as f:
      table = '\n'.join(line for line in f.read().splitlines()
                        if line.startswith('|'))
    assert table in readme, f'README.md does not show results/{name}.md'
    with open(os.path.join(results, f'{name}.md')) as f:
      for figure in re.findall(r'\]\((\w+\.png)\)', f.read()):
        assert os.path.exists(os.path.join(results, figure))


def test_evaluated_pairs_count_the_missed_test_pairs():
  class Split:
    num_users = 4
    # Users 0 and 2 have rankable test pairs; user 3 only a missed one.
    test = np.array([[0, 1], [0, 2], [2, 0]])
    test_missed = np.array([1, 0, 0, 2])

  assert paper.evaluated_pairs(Split()) == (
      '4 users (3 with a test pair), 6 test pairs, of which 3 have an item '
      'unseen in training and count as misses')
  Split.test_missed = None
  assert paper.evaluated_pairs(Split()) == (
      '4 users (2 with a test pair), 3 test pairs')


def test_the_machine_names_the_cores_a_pinned_process_may_use(monkeypatch):
  monkeypatch.setattr(os, 'cpu_count', lambda: 8)
  monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1, 2, 3, 4, 5,
                                                            6, 7})
  machine = f'8-core {platform.machine()} CPU, JAX {jax.__version__}'
  assert paper.machine() == machine
  monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {3})
  assert paper.machine() == (f'8-core {platform.machine()} CPU (pinned to 1 '
                             f'of its cores), JAX {jax.__version__}')
  # Where the system does not say (macOS), the machine is named alone.
  monkeypatch.delattr(os, 'sched_getaffinity')
  assert paper.machine() == machine


def test_the_table_note_names_each_number_of_negatives_tuned():
  grid = ml_collections.ConfigDict({
      'lr': (0.001, 0.01), 'l2': (), 'seed': 0,
      'negatives': (0, 128, 'softmax-64', 'shared-softmax-4096')})
  assert paper._grid_note(grid, 16) == (
      'lr in {0.001, 0.01} x L2 in {} at seed 0; then, for sampled softmax, '
      "negatives in {16 (the protocol's), 128, 64 (softmax-64), 4096 per "
      'mini-batch (shared-softmax-4096)} at the selected lr and L2')
