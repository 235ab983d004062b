r"""Search strategies on public NAS benchmarks, with the field's protocol.

  python -m experiments.benchmark_search --benchmark=nasbench_graph \
      --datasets=all --strategies=all --seeds=20 --budget=200 \
      --workdir=/tmp/nas_benchmarks

For each dataset, strategy and seed, a search of `--budget` distinct
architectures (`--batch_size` per round) runs against the benchmark's
table. After N queries (`--queries`, counted in distinct architectures)
the pick is the best architecture by validation accuracy so far; reported
are its validation regret (the table's best validation accuracy minus the
pick's) and its test accuracy, mean and standard error over seeds.

Every finished search is appended to `WORKDIR/runs.jsonl`, so an
interrupted command continues where it stopped. Writes
`WORKDIR/nas_benchmarks.json` (every figure of the table),
`WORKDIR/nas_benchmarks.md` and `WORKDIR/nas_benchmarks.png` (regret
against queries, one panel per dataset). With `--paired_against=NAME`,
the table also compares every other strategy with NAME seed by seed
(`paired`): a difference in the means that its standard errors cannot
tell apart may still hold seed for seed, or not.

Strategies: the registered ones, ablations of the adversarial one
(`ABLATIONS`) and its options that are off by default (`EXTENSIONS`,
named explicitly, not part of 'all'), each a name for a set of options.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from experiments.configs.paper import ablations as ablations_config

def define_flags() -> None:
  """The command's flags (defined only when it runs as the command, so
  that other commands may import this module)."""
  flags.DEFINE_enum('benchmark', 'nasbench_graph', ['nasbench_graph'],
                    'The tabular benchmark.')
  flags.DEFINE_string('datasets', 'all',
                      "Comma-separated datasets of the benchmark, or 'all'.")
  flags.DEFINE_string('strategies', 'all',
                      'Comma-separated strategies (registered names or '
                      "ablations), or 'all'.")
  flags.DEFINE_integer('seeds', 20, 'Seeds 0..N-1 per strategy.')
  flags.DEFINE_integer('budget', 200, 'Queries per search.')
  flags.DEFINE_integer('batch_size', 10, 'Architectures proposed per round.')
  flags.DEFINE_string('queries', '25,50,100,200',
                      'Query counts at which the pick is reported (each at '
                      'most the budget).')
  flags.DEFINE_string('paired_against', '',
                      'A strategy of --strategies to compare every other '
                      'one with, seed by seed (a Wilcoxon signed-rank test '
                      'over every dataset and seed); none when empty.')
  flags.DEFINE_string('workdir', None, 'Output folder.', required=True)
  flags.DEFINE_bool('progress', True, 'Show a progress bar.')


BASELINES = ('random', 'evolution', 'reinforce', 'tpe', 'local')
# Each ablation turns off one part of the adversarial strategy.
ABLATIONS: dict[str, dict[str, Any]] = dict(ablations_config.VARIANTS)
# Options of the adversarial strategy that are off by default, each tried
# as a variant of its own.
EXTENSIONS: dict[str, dict[str, Any]] = {
    'adversarial-coverage': {'coverage': 0.125}}
ALL_STRATEGIES = BASELINES + tuple(ABLATIONS)
KNOWN_STRATEGIES = ALL_STRATEGIES + tuple(EXTENSIONS)


def strategy_options(label: str) -> tuple[str, dict[str, Any]]:
  """`(registered name, options)` of a strategy label."""
  if label in ABLATIONS:
    return 'adversarial', dict(ABLATIONS[label])
  if label in EXTENSIONS:
    return 'adversarial', dict(EXTENSIONS[label])
  if label in BASELINES:
    return label, {}
  raise ValueError(f'Unknown strategy {label!r}; choose from '
                   f'{", ".join(KNOWN_STRATEGIES)}, or all.')


def load_benchmark(name: str, dataset: str):
  """The benchmark object: a space, a validation objective and
  `test_accuracy`."""
  if name == 'nasbench_graph':
    from gnas_jax.bench import nasbench_graph  # pylint: disable=g-import-not-at-top
    return nasbench_graph.NasBenchGraph(dataset)
  raise ValueError(f'Unknown benchmark {name!r}; choose nasbench_graph.')


def benchmark_datasets(name: str) -> tuple[str, ...]:
  if name == 'nasbench_graph':
    from gnas_jax.bench import nasbench_graph  # pylint: disable=g-import-not-at-top
    return nasbench_graph.DATASETS
  raise ValueError(f'Unknown benchmark {name!r}; choose nasbench_graph.')


def _parse_list(text: str, known: Sequence[str], what: str) -> list[str]:
  if text == 'all':
    return list(known)
  items = [t.strip() for t in text.split(',') if t.strip()]
  for item in items:
    if item not in known:
      raise ValueError(f'Unknown {what} {item!r}; choose from '
                       f'{", ".join(known)}, or all.')
  return items


def run_one(benchmark, label: str, seed: int, budget: int, batch_size: int,
            queries: Sequence[int]) -> dict[str, Any]:
  """One search: per query count, the pick's validation regret and test
  accuracy."""
  from gnas_jax import search  # pylint: disable=g-import-not-at-top
  name, options = strategy_options(label)
  strategy = search.make_strategy(name, benchmark.space, **options)
  start = time.perf_counter()
  trace = search.run(strategy, benchmark, budget=budget,
                     batch_size=batch_size, seed=seed)
  seconds = time.perf_counter() - start
  valid = np.array([score for _, score in trace])
  picks = {}
  for n in queries:
    best = int(np.argmax(valid[:n]))  # The first of equals.
    picks[str(n)] = {
        'valid_regret': float(benchmark.best_valid - valid[best]),
        'test': float(benchmark.test_accuracy([trace[best][0]])[0])}
  return {'queries': len(trace), 'seconds': seconds, 'picks': picks,
          'regret_curve': (benchmark.best_valid -
                           np.maximum.accumulate(valid)).tolist()}


def _read_runs(path: str) -> dict[tuple[str, str, int], dict[str, Any]]:
  """Finished runs by (dataset, strategy, seed)."""
  from gnas_jax import records  # pylint: disable=g-import-not-at-top
  return {(run['dataset'], run['strategy'], run['seed']): run
          for _, run in records.read(path)}


def summarise(runs, datasets, strategies, seeds, queries, best
              ) -> dict[str, Any]:
  """Mean and standard error over seeds, per dataset, strategy and query
  count."""
  table = {}
  for dataset in datasets:
    table[dataset] = {'best_valid': best[dataset][0],
                      'test_of_best_valid': best[dataset][1],
                      'strategies': {}}
    for label in strategies:
      chosen = [runs[dataset, label, s] for s in seeds]
      entry = {}
      for n in queries:
        for key in ('valid_regret', 'test'):
          values = np.array([r['picks'][str(n)][key] for r in chosen])
          entry.setdefault(str(n), {})[key] = {
              'mean': float(values.mean()),
              'sem': float(values.std(ddof=1) / np.sqrt(len(values)))
                     if len(values) > 1 else 0.0,
              'seeds': len(values)}
      curves = np.array([r['regret_curve'] for r in chosen])
      entry['mean_regret_curve'] = curves.mean(0).tolist()
      entry['seconds_per_search'] = float(np.median(
          [r['seconds'] for r in chosen]))
      table[dataset]['strategies'][label] = entry
  return table


def paired(runs, datasets, strategies, seeds, queries, reference: str
           ) -> dict[str, Any]:
  """Each strategy against `reference`, seed by seed, per query count.

  The same seed of two strategies is a pair: its difference in validation
  regret (strategy minus reference; below 0 where the strategy's pick is
  better). Per strategy and query count: on how many datasets the mean
  difference is below, at or above 0, its mean over every (dataset, seed)
  pair, and the two-sided Wilcoxon signed-rank p-value over those pairs
  (zero differences dropped; 1 when all are zero). Nothing corrects for
  the several query counts and strategies tested.
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top
  comparison = {}
  for label in strategies:
    if label == reference:
      continue
    entry = {}
    for n in queries:
      def regrets(strategy, dataset, n=n):
        return np.array([runs[dataset, strategy, s]['picks'][str(n)][
            'valid_regret'] for s in seeds])
      differences = {d: regrets(label, d) - regrets(reference, d)
                     for d in datasets}
      means = np.array([differences[d].mean() for d in datasets])
      pooled = np.concatenate(list(differences.values()))
      p_value = (float(stats.wilcoxon(pooled).pvalue) if np.any(pooled)
                 else 1.0)
      entry[str(n)] = {'datasets_lower': int((means < 0).sum()),
                       'datasets_equal': int((means == 0).sum()),
                       'datasets_higher': int((means > 0).sum()),
                       'mean_difference': float(pooled.mean()),
                       'pairs': len(pooled), 'wilcoxon_p': p_value}
    comparison[label] = entry
  return comparison


def paired_markdown(comparison, reference: str) -> list[str]:
  """The lines of `paired`'s table."""
  lines = [f'**Paired by seed against `{reference}`**: datasets where the '
           'mean validation regret is lower / equal / higher than '
           f'`{reference}`\'s, the mean difference x 100 over every '
           '(dataset, seed) pair (below 0: lower regret), and the two-sided '
           'Wilcoxon signed-rank p-value over those pairs, uncorrected for '
           'the several query counts.', '',
           '| strategy | queries | lower / equal / higher | mean difference '
           'x 100 | pairs | Wilcoxon p |',
           '| --- | ---: | ---: | ---: | ---: | ---: |']
  for label, entry in comparison.items():
    for n, value in entry.items():
      lines.append(
          f'| {label} | {n} | {value["datasets_lower"]} / '
          f'{value["datasets_equal"]} / {value["datasets_higher"]} | '
          f'{100 * value["mean_difference"]:+.3f} | {value["pairs"]} | '
          f'{value["wilcoxon_p"]:.3f} |')
  return lines


def markdown(table, queries, budget, seeds, batch_size, command,
             comparison=None, reference: str = '') -> str:
  """The regret table (bold: lowest mean per dataset and query count) and
  the test accuracy of each pick at the largest query count."""
  lines = [f'<!-- nas_benchmarks.md: written by `{command}`; edit the code, '
           'not this file. -->', '',
           f'NAS-Bench-Graph (Qin et al. 2022), every dataset; {len(seeds)} '
           f'seeds per strategy, {batch_size} proposals per round, '
           f'{budget} queries (distinct architectures). After N queries '
           'the pick is the best by validation accuracy; validation regret '
           '= the table\'s best validation accuracy minus the pick\'s, in '
           'accuracy points x 100, mean ± standard error over seeds. Bold: '
           'the lowest mean among the baselines and `adversarial` (its '
           'ablations, below it, do not compete); "datasets led" counts '
           'them.', '']
  for n in queries:
    lines += [f'**Validation regret x 100 after {n} queries**', '']
    strategies = list(next(iter(table.values()))['strategies'])
    lines.append('| strategy | ' + ' | '.join(table) + ' | datasets led |')
    lines.append('| --- |' + ' ---: |' * (len(table) + 1))
    # The lead is among the baselines and the adversarial strategy; its
    # ablations are shown beside them but do not compete.
    contenders = [s for s in strategies if s in BASELINES + ('adversarial',)]
    leaders = {d: min(contenders or strategies, key=lambda s, d=d: table[d][
        'strategies'][s][str(n)]['valid_regret']['mean']) for d in table}
    for label in strategies:
      cells = []
      for dataset in table:
        value = table[dataset]['strategies'][label][str(n)]['valid_regret']
        text = f'{100 * value["mean"]:.2f} ± {100 * value["sem"]:.2f}'
        cells.append(f'**{text}**' if leaders[dataset] == label else text)
      led = sum(leader == label for leader in leaders.values())
      lines.append(f'| {label} | ' + ' | '.join(cells) + f' | {led} |')
    lines.append('')
  n = queries[-1]
  lines += [f'**Test accuracy (%) of the pick after {n} queries** (the '
            'best-validation architecture of the table in the last row)',
            '']
  lines.append('| strategy | ' + ' | '.join(table) + ' |')
  lines.append('| --- |' + ' ---: |' * len(table))
  for label in strategies:
    cells = []
    for dataset in table:
      value = table[dataset]['strategies'][label][str(n)]['test']
      cells.append(f'{100 * value["mean"]:.2f} ± {100 * value["sem"]:.2f}')
    lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
  lines.append('| best validation | ' + ' | '.join(
      f'{100 * table[d]["test_of_best_valid"]:.2f}' for d in table) + ' |')
  lines += ['', '**Seconds per search** (median over seeds, on the machine '
            'that ran it; the strategy\'s own time, as the table answers '
            'queries at once)', '']
  lines.append('| strategy | ' + ' | '.join(table) + ' |')
  lines.append('| --- |' + ' ---: |' * len(table))
  for label in strategies:
    lines.append(f'| {label} | ' + ' | '.join(
        f'{table[d]["strategies"][label]["seconds_per_search"]:.1f}'
        for d in table) + ' |')
  if comparison:
    lines += [''] + paired_markdown(comparison, reference)
  return '\n'.join(lines) + '\n'


def plot(table, path: str) -> None:
  """Mean validation regret against queries, one panel per dataset."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  datasets = list(table)
  columns = min(3, len(datasets))
  rows = -(-len(datasets) // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(4 * columns,
                                                      3.2 * rows),
                              squeeze=False)
  for ax, dataset in zip(axes.flat, datasets):
    for label, entry in table[dataset]['strategies'].items():
      curve = np.asarray(entry['mean_regret_curve'])
      style = '-' if label in ('adversarial',) + BASELINES else ':'
      ax.plot(np.arange(1, len(curve) + 1), np.maximum(curve, 1e-5),
              style, label=label, linewidth=1.2)
    ax.set_yscale('log')
    ax.set_title(dataset)
    ax.set_xlabel('queries')
    ax.set_ylabel('validation regret')
  for ax in list(axes.flat)[len(datasets):]:
    ax.axis('off')
  axes.flat[0].legend(fontsize=6)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def benchmark_search(benchmark_name: str, datasets: Sequence[str],
                     strategies: Sequence[str], seeds: Sequence[int],
                     budget: int, batch_size: int, queries: Sequence[int],
                     workdir: str, progress: bool = True,
                     command: str = '', paired_against: str = ''
                     ) -> dict[str, Any]:
  """Runs (or reads back) every search and writes the table and figure;
  with `paired_against`, also every other strategy's `paired` comparison
  with that one."""
  from gnas_jax import driver  # pylint: disable=g-import-not-at-top
  from gnas_jax import records  # pylint: disable=g-import-not-at-top
  from gnas_jax.search import strategies as strategies_lib  # pylint: disable=g-import-not-at-top
  from gnas_jax.search.run import check_budget  # pylint: disable=g-import-not-at-top
  check_budget(budget, batch_size)
  queries = sorted(queries)
  if not queries or queries[0] < 1 or queries[-1] > budget:
    raise ValueError(f'--queries must lie in 1..budget ({budget}); got '
                     f'{queries}.')
  if paired_against and paired_against not in strategies:
    raise ValueError(f'--paired_against={paired_against!r} is not one of '
                     f'--strategies ({", ".join(strategies)}).')
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, 'runs.jsonl')
  runs = _read_runs(path)
  best = {}
  def settings(label):
    # A record is reused only for the search it would run again.
    name, options = strategy_options(label)
    return {'budget': budget, 'batch_size': batch_size, 'strategy_name': name,
            'options': {**strategies_lib.options(name), **options},
            **strategies_lib.revision_setting(name)}

  todo = [(d, s, seed) for d in datasets for s in strategies for seed in seeds
          if (d, s, seed) not in runs or
          any(runs[d, s, seed].get(k) != v for k, v in settings(s).items())]
  with driver.progress_bar(total=len(todo), desc='searches',
                           disable=not progress) as bar:
    for dataset in datasets:
      benchmark = load_benchmark(benchmark_name, dataset)
      best[dataset] = (benchmark.best_valid, benchmark.best_valid_test)
      for label, seed in [(s, seed) for d, s, seed in todo if d == dataset]:
        result = run_one(benchmark, label, seed, budget, batch_size,
                         range(1, budget + 1))
        run = {'dataset': dataset, 'strategy': label, 'seed': seed,
               **settings(label), **result}
        runs[dataset, label, seed] = run
        records.append(path, [run])
        bar.update()
        bar.set_postfix(dataset=dataset, strategy=label)
  table = summarise(runs, datasets, strategies, seeds, queries, best)
  summary = {'benchmark': benchmark_name, 'budget': budget,
             'batch_size': batch_size, 'seeds': list(seeds),
             'queries': list(queries), 'command': command,
             'datasets': table}
  if paired_against:
    summary['paired_against'] = paired_against
    summary['paired'] = paired(runs, datasets, strategies, seeds, queries,
                               paired_against)
  with open(os.path.join(workdir, 'nas_benchmarks.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  with open(os.path.join(workdir, 'nas_benchmarks.md'), 'w') as f:
    f.write(markdown(table, queries, budget, seeds, batch_size, command,
                     summary.get('paired'), paired_against))
  plot(table, os.path.join(workdir, 'nas_benchmarks.png'))
  return summary


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  logging.set_verbosity(logging.WARNING)
  options = flags.FLAGS
  try:
    datasets = _parse_list(options.datasets,
                           benchmark_datasets(options.benchmark), 'dataset')
    strategies = (list(ALL_STRATEGIES) if options.strategies == 'all' else
                  _parse_list(options.strategies, KNOWN_STRATEGIES,
                              'strategy'))
    queries = [int(q) for q in options.queries.split(',') if q.strip()]
    command = ('python -m experiments.benchmark_search '
               f'--benchmark={options.benchmark} --datasets={options.datasets}'
               f' --strategies={options.strategies} --seeds={options.seeds} '
               f'--budget={options.budget} --batch_size={options.batch_size}'
               + (f' --paired_against={options.paired_against}'
                  if options.paired_against else ''))
    summary = benchmark_search(
        options.benchmark, datasets, strategies, range(options.seeds),
        options.budget, options.batch_size, queries, options.workdir,
        options.progress, command, options.paired_against)
  except ValueError as e:
    raise SystemExit(f'Error: {e}') from None
  print(markdown(summary['datasets'], summary['queries'], summary['budget'],
                 summary['seeds'], summary['batch_size'], command,
                 summary.get('paired'), options.paired_against))


if __name__ == '__main__':
  define_flags()
  app.run(main)
