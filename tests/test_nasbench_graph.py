"""Tests for the NAS-Bench-Graph adapter: its declared space counts and
canonicalises as the package does, and its answers are the package's."""

import itertools
import pickle
import sys

import numpy as np
import pytest

nas_bench_graph = pytest.importorskip('nas_bench_graph')

from gnas_jax.bench import nasbench_graph as nbg

Arch = nas_bench_graph.Arch


def package_hash(config):
  link = [int(node) for node in config['link'].split(',')]
  return Arch(link, [config[f'op{i}'] for i in range(4)]).valid_hash()


def config_of(link, ops):
  return {'link': link, **{f'op{i}': op for i, op in enumerate(ops)}}


@pytest.fixture(scope='module')
def cora():
  return nbg.NasBenchGraph('cora')


@pytest.fixture(scope='module')
def proteins():
  return nbg.NasBenchGraph('proteins')


def test_datasets_are_the_packages_tables():
  assert nbg.DATASETS == ('cora', 'citeseer', 'pubmed', 'cs', 'physics',
                          'photo', 'computers', 'arxiv', 'proteins')
  keys = set(nas_bench_graph.light_read('cora'))
  for dataset in nbg.DATASETS[1:-1]:
    assert set(nas_bench_graph.light_read(dataset)) == keys


def test_space_declares_the_packages_choices(cora, proteins):
  space = cora.space
  assert space.names == ('link', 'op0', 'op1', 'op2', 'op3')
  assert space.choices['link'] == tuple(
      ','.join(map(str, link)) for link in nas_bench_graph.link_list)
  assert space.choices['link'][1] == '0,0,0,1'
  for name in space.names[1:]:
    assert space.choices[name] == tuple(nas_bench_graph.gnn_list)
    assert proteins.space.allowed[name] == tuple(
        nas_bench_graph.gnn_list_proteins)
  assert nbg.search_space('cora') is space


def test_counts_equal_the_table_sizes(cora, proteins):
  assert cora.space.count() == len(cora) == 26206
  assert proteins.space.count() == len(proteins) == 2021
  assert len(nas_bench_graph.light_read('cora')) == 26206
  assert len(nas_bench_graph.light_read('proteins')) == 2021


def test_restricting_cora_to_the_proteins_operations_counts_2021(cora):
  ops = nas_bench_graph.gnn_list_proteins
  restricted = cora.space.restrict(op0=ops, op1=ops, op2=ops, op3=ops)
  assert restricted.count() == 2021


def test_canonical_form_is_the_packages_hash_class(cora):
  space = cora.space
  sizes = [len(space.choices[n]) for n in space.names]
  raw = np.array(list(itertools.product(*map(range, sizes))), np.int32)
  canonical = space.canonical(raw)
  np.testing.assert_array_equal(space.canonical(canonical), canonical)
  valid = space.valid(canonical)
  # Equal canonical tokens exactly when equal package hashes.
  by_tokens = {}
  for row, tokens, ok in zip(raw, canonical, valid):
    config = space.decode(row)
    all_skip = all(config[f'op{i}'] == 'skip' for i in range(4))
    assert ok != all_skip
    if ok:
      by_tokens.setdefault(tokens.tobytes(), set()).add(package_hash(config))
  assert all(len(hashes) == 1 for hashes in by_tokens.values())
  assert len(by_tokens) == 26206


@pytest.mark.parametrize('dataset', ['cora', 'proteins'])
def test_enumerated_architectures_are_the_table(dataset, cora, proteins):
  bench = {'cora': cora, 'proteins': proteins}[dataset]
  rows = bench.space.enumerate()
  np.testing.assert_array_equal(bench.space.canonical(rows), rows)
  hashes = [package_hash(bench.space.decode(row)) for row in rows]
  assert set(hashes) == set(nas_bench_graph.light_read(dataset))
  assert len(set(hashes)) == len(rows)


def test_query_agrees_with_the_package(cora, proteins):
  configs = [
      config_of('0,0,0,1', ['gcn', 'gat', 'sage', 'skip']),
      config_of('0,1,2,3', ['skip', 'skip', 'gcn', 'gcn']),
      config_of('0,0,1,2', ['gin', 'cheb', 'arma', 'graph']),
      config_of('0,1,1,1', ['fc', 'gat', 'gat', 'skip']),
  ]
  rng = np.random.default_rng(0)
  rows = cora.space.enumerate()
  configs += [cora.space.decode(r) for r in rows[rng.choice(len(rows), 8)]]
  table = nas_bench_graph.light_read('cora')
  for config in configs:
    record = table[package_hash(config)]
    assert cora.query(config) == {
        'valid': record['valid_perf'], 'test': record['perf'],
        'latency': record['latency'], 'params': record['para']}
  assert cora(configs) == [table[package_hash(c)]['valid_perf']
                           for c in configs]
  assert cora.test_accuracy(configs) == [table[package_hash(c)]['perf']
                                         for c in configs]
  tokens = np.stack([cora.space.encode(c) for c in configs])
  assert cora(tokens) == cora(configs)
  config = config_of('0,1,2,2', ['sage', 'arma', 'fc', 'skip'])
  record = nas_bench_graph.light_read('proteins')[package_hash(config)]
  assert proteins.query(config)['valid'] == record['valid_perf']


@pytest.mark.parametrize('first, second', [
    # Nodes 1 and 2 both read the input: op1 and op2 swap.
    (('0,0,0,1', ['gcn', 'gat', 'sage', 'fc']),
     ('0,0,0,1', ['gcn', 'sage', 'gat', 'fc'])),
    # Every node reads the input: any order.
    (('0,0,0,0', ['gcn', 'gat', 'sage', 'fc']),
     ('0,0,0,0', ['fc', 'sage', 'gat', 'gcn'])),
])
def test_isomorphic_spellings_give_the_same_answer(cora, first, second):
  first, second = config_of(*first), config_of(*second)
  assert first != second
  assert package_hash(first) == package_hash(second)
  np.testing.assert_array_equal(cora.space.encode(first),
                                cora.space.encode(second))
  assert cora.query(first) == cora.query(second)


def test_best_valid_and_scores(cora):
  table = nas_bench_graph.light_read('cora')
  scores = cora.valid_scores()
  assert scores.shape == (26206,) and scores.dtype == np.float64
  assert cora.best_valid == scores.max() == max(
      r['valid_perf'] for r in table.values())
  best = cora.query(cora.best_valid_config)
  assert (best['valid'], best['test']) == (cora.best_valid,
                                           cora.best_valid_test)
  rows = cora.space.enumerate()
  for i in (0, 1000, 26205):
    assert scores[i] == cora([rows[i]])[0]


def test_space_pickles(cora):
  space = pickle.loads(pickle.dumps(cora.space))
  rows = cora.space.enumerate()[:50]
  np.testing.assert_array_equal(space.canonical(rows), rows)


def test_unknown_dataset_is_named():
  with pytest.raises(ValueError, match="'karate'.*cora"):
    nbg.NasBenchGraph('karate')
  with pytest.raises(ValueError, match="'karate'"):
    nbg.search_space('karate')


@pytest.mark.parametrize('config, named', [
    ({**config_of('0,0,0,1', ['gcn'] * 4), 'op4': 'gcn'}, "'op4'"),
    (config_of('0,0,0,1', ['gcn', 'mlp', 'gcn', 'gcn']), "'mlp'"),
    (config_of('0,1,1,0', ['gcn'] * 4), "'0,1,1,0'"),
    ({'link': '0,0,0,1', 'op0': 'gcn', 'op1': 'gcn', 'op2': 'gcn'}, "'op3'"),
])
def test_bad_configurations_are_named(cora, config, named):
  with pytest.raises(ValueError, match=named):
    cora.query(config)
  with pytest.raises(ValueError, match=named):
    cora([config])


@pytest.mark.parametrize('link', ['0,0,0,0', '0,0,0,1', '0,1,2,3'])
def test_all_skip_is_invalid(cora, link):
  config = config_of(link, ['skip'] * 4)
  with pytest.raises(ValueError,
                     match="'op3': 'skip'}.*not a valid architecture"):
    cora.query(config)


def test_proteins_rejects_operations_outside_its_list(proteins):
  config = config_of('0,0,0,1', ['gat', 'gcn', 'gcn', 'gcn'])
  with pytest.raises(ValueError, match="'gat' of decision 'op0'"):
    proteins.query(config)


def test_missing_package_says_how_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, 'nas_bench_graph', None)
  with pytest.raises(ImportError, match=r"pip install 'gnas-jax\[bench\]'"):
    nbg.NasBenchGraph('cora')
