"""NAS-Bench-Graph: a tabular benchmark of GNN architectures for node
classification, as a declared search space and an objective.

NAS-Bench-Graph (Qin et al., "NAS-Bench-Graph: Benchmarking Graph Neural
Architecture Search", NeurIPS 2022 Datasets and Benchmarks Track) trained
every architecture of a small GNN space on nine node-classification
datasets and recorded each one's validation and test accuracy, latency
and parameter count. An architecture is a macro structure `link` (which
earlier node each of the four computing nodes reads; one of the 9
structures of the package's `link_list`, e.g. `[0, 0, 0, 1]`) and one
operation per node, `op0`..`op3`, from the package's `gnn_list` (gat, gcn,
gin, cheb, sage, arma, graph, fc, skip). Isomorphic architectures are one
architecture; the package identifies them by `Arch(link, ops).valid_hash()`,
and there are 26,206 distinct ones (the all-skip architectures are
invalid). The proteins table covers only the operations of
`gnn_list_proteins` (gcn, sage, arma, fc, skip): 2,021 architectures.

    bench = NasBenchGraph('cora')
    config = {'link': '0,0,0,1', 'op0': 'gcn', 'op1': 'gat',
              'op2': 'sage', 'op3': 'skip'}
    bench.query(config)     # {'valid': ..., 'test': ..., 'latency': ...,
                            #  'params': ...}
    bench([config])         # [validation accuracy], the search objective

The tables are read only through the package's own reader,
`nas_bench_graph.light_read(name)`, from the files its wheel installs;
install it with `pip install 'gnas-jax[bench]'`.

Canonical form. `search_space(dataset)` declares the decisions `link`
(choices like `'0,0,0,1'`, the package's `link_list` in its order) and
`op0`..`op3`, and canonicalises a configuration with the package's
`valid_hash()`. Each hash class is represented by the package's own normal
form of its architectures: the Arch that `valid_hash()` hashes (after
`regularize()`, `move_skip_op()` and `equalpart_sort()`), written as a
configuration. It is used when its link lies in `link_list` and it hashes
to the same value again (a fixed point, so canonicalisation is
idempotent); otherwise the class is represented by its first raw
configuration in enumeration order (decisions in declaration order,
choices in the package's order). With nas-bench-graph 1.4.0 every class
takes the normal form.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Iterable, Mapping

import numpy as np

from gnas_jax.search.search_space import SearchSpace

DATASETS = ('cora', 'citeseer', 'pubmed', 'cs', 'physics', 'photo',
            'computers', 'arxiv', 'proteins')

DECISIONS = ('link', 'op0', 'op1', 'op2', 'op3')

# (link, op0, op1, op2, op3): a configuration as a hashable key.
_Key = tuple[str, str, str, str, str]


def _package():
  """The `nas_bench_graph` module, or an ImportError saying how to get it."""
  try:
    import nas_bench_graph  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ImportError(
        'NAS-Bench-Graph needs the package nas-bench-graph; install it with '
        "pip install 'gnas-jax[bench]'.") from error
  return nas_bench_graph


def _check_dataset(dataset: str) -> None:
  if dataset not in DATASETS:
    raise ValueError(f'Unknown NAS-Bench-Graph dataset {dataset!r}; choose '
                     f'from {", ".join(DATASETS)}.')


def _link_string(link: Iterable[int]) -> str:
  return ','.join(str(int(node)) for node in link)


def _arch(key: _Key):
  """The package's `Arch` of a configuration key."""
  link, *ops = key
  return _package().Arch([int(node) for node in link.split(',')], list(ops))


def _key(config: Mapping[str, Any]) -> _Key:
  return tuple(config[name] for name in DECISIONS)


@functools.lru_cache(maxsize=None)
def _table(dataset: str) -> dict[int, dict[str, Any]]:
  """The package's table of `dataset`: `valid_hash()` -> record."""
  _check_dataset(dataset)
  return _package().light_read(dataset)


@functools.lru_cache(maxsize=None)
def _classes() -> tuple[dict[_Key, int], dict[int, _Key]]:
  """`(hashes, representatives)`: every raw configuration's package hash
  (`valid_hash()`), and each hash's canonical configuration (see the
  module docstring). The same for every dataset."""
  package = _package()
  links = [_link_string(link) for link in package.link_list]
  hashes, first = {}, {}
  for key in itertools.product(links, *[package.gnn_list] * 4):
    value = _arch(key).valid_hash()
    hashes[key] = value
    first.setdefault(value, key)
  representatives = {}
  for value, key in first.items():
    normal = _arch(key).regularize()
    normal.move_skip_op()
    normal.equalpart_sort()
    candidate = None
    if list(normal.link) in [list(l) for l in package.link_list]:
      candidate = (_link_string(normal.link), *normal.ops)
      if _arch(candidate).valid_hash() != value:
        candidate = None
    representatives[value] = candidate or key
  return hashes, representatives


class _Canonicalize:
  """A configuration's canonical configuration on `dataset`'s table, or
  None where it is all-skip or its hash is not in the table (a picklable
  `canonicalize` for `SearchSpace`)."""

  def __init__(self, dataset: str):
    self.dataset = dataset

  def __call__(self, config: Mapping[str, Any]) -> dict[str, Any] | None:
    key = _key(config)
    if all(op == 'skip' for op in key[1:]):
      return None
    hashes, representatives = _classes()
    value = hashes[key]
    if value not in _table(self.dataset):
      return None
    return dict(zip(DECISIONS, representatives[value]))


@functools.lru_cache(maxsize=None)
def search_space(dataset: str = 'cora') -> SearchSpace:
  """NAS-Bench-Graph's space as a declared search space (cached).

  Args:
    dataset: one of `DATASETS`. Proteins allows only the operations of
      `gnn_list_proteins`; the others allow all of `gnn_list`.

  Returns:
    A `SearchSpace` with decisions `link` (the package's `link_list` as
    strings like `'0,0,0,1'`, in its order) and `op0`..`op3` (the package's
    `gnn_list`), K = 5 positions, vocab V = 9. Its canonical form is the
    package's `valid_hash()` class (module docstring); configurations that
    are all-skip or absent from the dataset's table are invalid, so
    `count()` equals the table's size.

  Raises:
    ValueError: for an unknown dataset.
    ImportError: when nas-bench-graph is not installed.
  """
  _check_dataset(dataset)
  package = _package()
  ops = tuple(package.gnn_list)
  decisions = {'link': tuple(_link_string(l) for l in package.link_list),
               **{name: ops for name in DECISIONS[1:]}}
  allowed = None
  if dataset == 'proteins':
    allowed = {name: tuple(package.gnn_list_proteins)
               for name in DECISIONS[1:]}
  return SearchSpace(decisions, canonicalize=_Canonicalize(dataset),
                     allowed=allowed)


class NasBenchGraph:
  """One dataset's NAS-Bench-Graph table as an objective to maximise.

  Looks each architecture up by the package's own hash,
  `Arch(link, ops).valid_hash()`, of the configuration given, so its
  answers are the package's.

  Attributes:
    dataset: the dataset's name (one of `DATASETS`).
    space: its declared search space (`search_space(dataset)`).
    best_valid: the highest validation accuracy in the table.
    best_valid_test: the test accuracy of the architecture with that
      validation accuracy (of the smallest hash among ties).
    best_valid_config: that architecture's canonical configuration.
  """

  def __init__(self, dataset: str = 'cora'):
    """Reads `dataset`'s table.

    Raises:
      ValueError: for an unknown dataset, naming it and the choices.
      ImportError: when nas-bench-graph is not installed.
    """
    _check_dataset(dataset)
    _package()
    self.dataset = dataset
    self.space = search_space(dataset)
    self._table = _table(dataset)
    best = min(self._table,
               key=lambda h: (-self._table[h]['valid_perf'], h))
    self.best_valid = float(self._table[best]['valid_perf'])
    self.best_valid_test = float(self._table[best]['perf'])
    self.best_valid_config = dict(zip(DECISIONS, _classes()[1][best]))
    self._valid_scores = None

  def __repr__(self) -> str:
    return f'NasBenchGraph({self.dataset!r})'

  def __len__(self) -> int:
    """The number of distinct architectures in the table."""
    return len(self._table)

  def _config(self, config) -> dict[str, Any]:
    if isinstance(config, Mapping):
      return dict(config)
    return self.space.decode(np.asarray(config))

  def record(self, config) -> dict[str, Any]:
    """The package's raw record ('valid_perf', 'perf', 'latency', 'para')
    of a configuration dict (or `[K]` tokens of `space`).

    Raises:
      ValueError: naming an unknown decision, a choice outside the space,
        a left-out decision or an invalid (e.g. all-skip) architecture.
    """
    config = self._config(config)
    self.space.encode(config)
    value = _arch(_key(config)).valid_hash()
    return self._table[value]

  def query(self, config) -> dict[str, float]:
    """A configuration's recorded results.

    Args:
      config: `{'link': '0,0,0,1', 'op0': ..., ..., 'op3': ...}`, or `[K]`
        int tokens of `space`.

    Returns:
      `{'valid': validation accuracy, 'test': test accuracy, 'latency':
      seconds, 'params': parameter count in millions}`, as the package
      records them.

    Raises:
      ValueError: naming an unknown decision, a choice outside the space,
        a left-out decision or an invalid (e.g. all-skip) architecture.
    """
    record = self.record(config)
    return {'valid': float(record['valid_perf']),
            'test': float(record['perf']),
            'latency': float(record['latency']),
            'params': float(record['para'])}

  def __call__(self, configs) -> list[float]:
    """Validation accuracies of configurations (dicts, or `[N, K]` tokens):
    the objective a search maximises."""
    return [float(self.record(c)['valid_perf']) for c in configs]

  def test_accuracy(self, configs) -> list[float]:
    """Test accuracies of configurations (dicts, or `[N, K]` tokens)."""
    return [float(self.record(c)['perf']) for c in configs]

  def valid_scores(self) -> np.ndarray:
    """`[N]` float64 validation accuracy of every architecture, row `i`
    for row `i` of `space.enumerate()` (N = the table's size)."""
    if self._valid_scores is None:
      hashes = _classes()[0]
      rows = self.space.enumerate()
      self._valid_scores = np.array(
          [self._table[hashes[_key(self.space.decode(row))]]['valid_perf']
           for row in rows], np.float64)
    return self._valid_scores.copy()
