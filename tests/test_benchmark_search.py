"""Tests for the search benchmark on NAS-Bench-Graph and its table."""

import json
import os

import numpy as np
import pytest

pytest.importorskip('nas_bench_graph')

# pylint: disable=g-import-not-at-top
from experiments import benchmark_search
from experiments import paper
from gnas_jax import search
from gnas_jax.bench import nasbench_graph
from gnas_jax.search import strategies as strategies_lib


@pytest.fixture(scope='module')
def proteins():
  return nasbench_graph.NasBenchGraph('proteins')


def test_run_one_reports_the_best_by_validation_pick(proteins):
  result = benchmark_search.run_one(proteins, 'random', seed=3, budget=30,
                                    batch_size=10, queries=(5, 30))
  trace = search.run(search.make_strategy('random', proteins.space),
                     proteins, budget=30, batch_size=10, seed=3)
  valid = np.array([score for _, score in trace])
  for n in (5, 30):
    best = int(np.argmax(valid[:n]))
    pick = result['picks'][str(n)]
    assert pick['valid_regret'] == pytest.approx(proteins.best_valid -
                                                 valid[best])
    assert pick['test'] == pytest.approx(
        proteins.query(trace[best][0])['test'])
  assert len({str(sorted(c.items())) for c, _ in trace}) == 30


def test_adversarial_leaves_random_search_after_the_first_round(proteins):
  """The first round is uniform for both; from the second, the
  adversarial strategy proposes from its networks, whatever the budget."""
  traces = {name: search.run(search.make_strategy(
      name, proteins.space, **({'discriminator_steps': 5,
                                 'generator_steps': 2, 'ppo_epochs': 1}
                                if name == 'adversarial' else {})),
                             proteins, budget=20, batch_size=10, seed=0)
            for name in ('random', 'adversarial')}
  first = [[c for c, _ in traces[n][:10]] for n in traces]
  second = [[c for c, _ in traces[n][10:]] for n in traces]
  assert first[0] == first[1]
  assert second[0] != second[1]


def test_table_is_resumable_and_names_bad_input(tmp_path, proteins):
  del proteins
  kwargs = dict(benchmark_name='nasbench_graph', datasets=['proteins'],
                strategies=['random', 'local'], seeds=range(2), budget=20,
                batch_size=10, queries=[10, 20], workdir=str(tmp_path),
                progress=False)
  summary = benchmark_search.benchmark_search(**kwargs)
  entry = summary['datasets']['proteins']['strategies']['local']['20']
  assert entry['valid_regret']['seeds'] == 2
  for name in ('nas_benchmarks.json', 'nas_benchmarks.md',
               'nas_benchmarks.png'):
    assert os.path.exists(tmp_path / name)
  with open(tmp_path / 'runs.jsonl') as f:
    lines = f.readlines()
  assert len(lines) == 4
  # A killed write leaves a partial line: it is dropped and rerun.
  with open(tmp_path / 'runs.jsonl', 'w') as f:
    f.writelines(lines[:3] + [lines[3][:40]])
  again = benchmark_search.benchmark_search(**kwargs)

  def figures(result):  # What the searches found; their seconds vary.
    return json.dumps({s: {k: v for k, v in entry.items()
                           if k != 'seconds_per_search'}
                       for s, entry in result['datasets']['proteins'][
                           'strategies'].items()})
  assert figures(again) == figures(summary)
  with pytest.raises(ValueError, match="'fastest'"):
    benchmark_search.strategy_options('fastest')
  with pytest.raises(ValueError, match='budget'):
    benchmark_search.benchmark_search(**{**kwargs, 'budget': 0})
  with pytest.raises(ValueError, match='queries'):
    benchmark_search.benchmark_search(**{**kwargs, 'queries': [50]})


def test_a_revised_strategy_searches_again(tmp_path, proteins, monkeypatch):
  del proteins
  kwargs = dict(benchmark_name='nasbench_graph', datasets=['proteins'],
                strategies=['random', 'evolution'], seeds=range(1),
                budget=20, batch_size=10, queries=[20],
                workdir=str(tmp_path), progress=False)
  benchmark_search.benchmark_search(**kwargs)
  revised = strategies_lib.STRATEGIES['evolution'].revision + 1
  monkeypatch.setattr(strategies_lib.STRATEGIES['evolution'], 'revision',
                      revised)
  benchmark_search.benchmark_search(**kwargs)
  with open(tmp_path / 'runs.jsonl') as f:
    runs = [json.loads(line) for line in f]
  # Random search's record is reused; evolution's, of its older revision,
  # is searched again.
  assert [(r['strategy'], r.get('strategy_revision')) for r in runs] == [
      ('random', None), ('evolution', revised - 1), ('evolution', revised)]


def test_paper_table_reads_the_benchmark(tmp_path):
  config = paper.paper_config('nas_benchmarks', 'small')
  with config.unlocked():
    config.datasets = 'proteins'
    config.strategies = 'random,evolution'
    config.seeds = 2
    config.budget = 20
    config.queries = (10, 20)
  output = paper.run_nas_benchmarks(config, paper.Run(str(tmp_path)))
  assert output.header == ['strategy', 'proteins', 'datasets led']
  assert [row[0] for row in output.rows] == ['random', 'evolution']
  assert sum(row[-1] for row in output.rows) == 1
  assert os.path.exists(tmp_path / 'nas_benchmarks.png')
  assert os.path.exists(tmp_path / 'nas_benchmarks_full.md')


def test_paired_comparison_by_hand(tmp_path):
  # Reference regrets 0.1 everywhere; each strategy adds known differences,
  # two datasets of three seeds (six pairs, distinct magnitudes: exact test).
  added = {'adversarial': [[0.0] * 3, [0.0] * 3],
           'better': [[-0.01, -0.02, -0.03], [-0.04, -0.05, 0.06]],
           'same': [[0.0] * 3, [0.0] * 3],
           'worse': [[0.01, 0.02, 0.03], [0.04, 0.05, 0.06]]}
  runs = {(dataset, label, seed): {'picks': {'10': {
              'valid_regret': 0.1 + added[label][d][seed]}}}
          for label in added for d, dataset in enumerate(('a', 'b'))
          for seed in range(3)}
  comparison = benchmark_search.paired(runs, ['a', 'b'], list(added),
                                       range(3), [10], 'adversarial')
  assert list(comparison) == ['better', 'same', 'worse']
  better = comparison['better']['10']
  assert (better['datasets_lower'], better['datasets_equal'],
          better['datasets_higher']) == (2, 0, 0)  # Means -0.02 and -0.01.
  np.testing.assert_allclose(better['mean_difference'], -0.015)
  # Signed ranks 1..5 negative, 6 positive: W+ = 6; 14 of the 64 sign
  # patterns give W+ <= 6, so the two-sided p is 2 * 14 / 64.
  np.testing.assert_allclose(better['wilcoxon_p'], 2 * 14 / 64)
  assert comparison['same']['10']['datasets_equal'] == 2
  assert comparison['same']['10']['wilcoxon_p'] == 1.0
  worse = comparison['worse']['10']
  assert worse['datasets_higher'] == 2 and worse['pairs'] == 6
  np.testing.assert_allclose(worse['wilcoxon_p'], 2 / 64)
  lines = benchmark_search.paired_markdown(comparison, 'adversarial')
  assert '| better | 10 | 2 / 0 / 0 | -1.500 | 6 | 0.438 |' in lines
  with pytest.raises(ValueError, match="--paired_against='tpe' is not one"):
    benchmark_search.benchmark_search(
        'nasbench_graph', ['proteins'], ['random'], range(1), 20, 10, [20],
        str(tmp_path), progress=False, paired_against='tpe')
  assert not os.listdir(tmp_path)  # Refused before any search.
