"""The tables and figures of `experiments.reproduce`, as functions.

Each `run_<table>(config, run)` makes one table from its configuration
(`experiments/configs/paper/<table>.py:<scale>`, loaded as `--config`
loads it) and returns its `Output`, which writes `NAME.md` and `NAME.csv`;
figures are written by the runner.
Everything expensive is kept under `run.workdir` as it finishes; the
accuracy table's trainings also go to the records of `run.records`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from typing import Any, Callable, Sequence

from absl import flags
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

from experiments import common
from experiments import figures
from experiments import tuning
from experiments.configs import paper as paper_configs
from gnas_jax import data as data_lib
from gnas_jax import driver
from gnas_jax import models
from gnas_jax import space
from gnas_jax import train
from gnas_jax.search import loop
from gnas_jax.search import strategies as strategies_lib
from gnas_jax.search import tabular

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# In running order: accuracy uses the searches of search_efficiency.
TABLES = ('search_efficiency', 'ablations', 'accuracy', 'throughput',
          'nas_benchmarks')


def config_path(table: str, scale: str) -> str:
  """The `--config` of `table` at `scale`, relative to the repository."""
  return f'experiments/configs/paper/{table}.py:{scale}'


def paper_config(table: str, scale: str) -> ml_collections.ConfigDict:
  """`config_path(table, scale)`, loaded (and locked) as `--config` loads
  it."""
  if table not in TABLES:
    raise ValueError(f'Unknown table {table!r}; choose from '
                     f'{", ".join(TABLES)}.')
  paper_configs.check_scale(scale)
  # Absolute, so that it loads from any working directory.
  path = os.path.join(_ROOT, config_path(table, scale))
  argv = ['reproduce', f'--config={path}']
  values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', flag_values=values,
                                  sys_argv=argv)
  values(argv)
  return values.config


def table_and_scale(config_file: str) -> tuple[str, str]:
  """The table and scale of a `--config` value `.../<table>.py[:<scale>]`."""
  path, _, scale = config_file.partition(':')
  table = os.path.splitext(os.path.basename(path))[0]
  if table not in TABLES:
    raise ValueError(
        f'--config={config_file} names no table: a table is configured by '
        f'a file named after it (experiments/configs/paper/<table>.py), '
        f'one of {", ".join(TABLES)}.')
  return table, scale or 'small'  # `get_config`'s default.


def machine() -> str:
  """What ran the table, for its heading."""
  device = jax.devices()[0]
  if device.platform == 'cpu':
    where = f'{os.cpu_count()}-core {platform.machine()} CPU'
    # A process pinned to some cores (`taskset`) computes at their speed.
    # (Only Linux says which.)
    usable = (len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
              else os.cpu_count())
    if usable < os.cpu_count():
      where += f' (pinned to {usable} of its cores)'
  else:
    where = f'{device.device_kind} ({device.platform})'
  return f'{where}, JAX {jax.__version__}'


def _digest(value: Any) -> str:
  text = json.dumps(value, sort_keys=True, default=str)
  return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class Run:
  """Where a table is written, at which scale, and where the data is.

  `config_args` are the `--config` and `--config.<option>` arguments of a
  run that gave its table that way; empty for `--table` and `--scale`.
  `records` is a folder for the records of finished trainings (`record`).
  """
  workdir: str
  scale: str = 'small'
  data_dir: str = ''
  config_args: tuple[str, ...] = ()
  records: str = ''

  def record(self, name: str) -> str | None:
    """`<records>/<name>.jsonl`, the record of a table's finished trainings
    (`driver.train_with_seeds`), or None without a records folder."""
    return (os.path.join(self.records, name + '.jsonl') if self.records
            else None)

  def command(self, table: str) -> str:
    """The command that makes `table` in this run (workdir and data aside)."""
    args = self.config_args or (f'--table={table}', f'--scale={self.scale}')
    return ' '.join(_shell_word(word) for word in (
        'python', '-m', 'experiments.reproduce', *args))


def _shell_word(word: str) -> str:
  """`word` quoted for a POSIX shell; a word with single quotes (a tuple of
  strings) goes in double quotes where nothing in it would expand there."""
  quoted = shlex.quote(word)
  if quoted == word or "'" not in word or set('"$`\\!') & set(word):
    return quoted
  return f'"{word}"'


@dataclasses.dataclass
class Output:
  """A table's rows, written as Markdown and CSV."""
  header: list[str]
  rows: list[list[Any]]
  notes: list[str] = dataclasses.field(default_factory=list)
  figures: list[str] = dataclasses.field(default_factory=list)
  # (columns, one dict per row): the machine-readable CSV, when it is not
  # the displayed table.
  records: tuple[Sequence[str], list[dict]] | None = None

  def write(self, run: Run, name: str, seconds: float) -> str:
    workdir = run.workdir
    command = run.command(name)
    lines = [f'<!-- {name}.md: written by `{command}`; edit the code, not '
             'this file. -->',
             f'Produced by `{command}` on a {machine()}; wall time '
             f'{seconds / 60:.1f} min.', '',
             '| ' + ' | '.join(self.header) + ' |',
             '|' + '|'.join(' --- ' if i == 0 else ' ---: '
                            for i in range(len(self.header))) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |'
              for row in self.rows]
    if self.notes:
      lines += [''] + self.notes
    if self.figures:
      lines += [''] + [f'![{os.path.splitext(f)[0]}]({f})'
                       for f in self.figures]
    text = '\n'.join(lines) + '\n'
    with open(os.path.join(workdir, f'{name}.md'), 'w') as f:
      f.write(text)
    with open(os.path.join(workdir, f'{name}.csv'), 'w', newline='') as f:
      if self.records is None:
        writer = csv.writer(f)
        writer.writerow(self.header)
        writer.writerows(self.rows)
      else:
        columns, records = self.records
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(records)
    return text


# --- The tabular benchmark and the searches over it -----------------------


def benchmark(config: ml_collections.ConfigDict, run: Run) -> tabular.Table:
  """The trained table of `config.benchmark` (built once per workdir)."""
  bench = config.benchmark.copy_and_resolve_references()
  bench.data_dir = run.data_dir
  folder = os.path.join(run.workdir, 'tabular')
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, f'{_digest(loop.fingerprint(bench))}.jsonl')
  return tabular.build_table(bench, data_lib.load_dataset(bench), path)


def searches(config: ml_collections.ConfigDict, table: tabular.Table,
             strategy: str, options: dict[str, Any], run: Run
             ) -> list[tabular.Trace]:
  """One replayed search per seed of `config.seeds` (each kept on disk)."""
  options = dict(config.benchmark.strategies.get(strategy) or {}, **options)
  choices = space.subspace_from_string(table.space)
  folder = os.path.join(run.workdir, 'searches')
  os.makedirs(folder, exist_ok=True)
  traces = []
  revised = list(strategies_lib.revision_setting(strategy).values())
  for seed in config.seeds:
    label = _digest([loop.fingerprint(config.benchmark), strategy, options,
                     seed, config.batch_size, config.budget, *revised])
    path = os.path.join(folder, f'{strategy}_{seed}_{label}.json')
    if os.path.exists(path):
      with open(path) as f:
        saved = json.load(f)
      traces.append(tabular.Trace(
          saved['archs'], np.array(saved['fitness']),
          np.array(saved['rounds']), np.array(saved['seconds'])))
      continue
    searcher = strategies_lib.make_strategy(
        strategy, space.search_space(choices), **options)
    trace = tabular.replay(searcher, table, seed, config.batch_size,
                           config.budget)
    with open(path + '.partial', 'w') as f:
      json.dump({'strategy': strategy, 'options': options, 'seed': seed,
                 'archs': trace.archs, 'fitness': trace.fitness.tolist(),
                 'rounds': trace.rounds.tolist(),
                 'seconds': trace.seconds.tolist()}, f)
    os.replace(path + '.partial', path)
    traces.append(trace)
  return traces


def _thresholds(config, table: tabular.Table) -> dict[str, float]:
  scores = table.scores()
  return {('best' if q == 1 else f'top {100 * (1 - q):g}%'):
          float(np.quantile(scores, q)) for q in config.quantiles}


def _evaluations_cell(traces, threshold: float, budget: int) -> str:
  """Median (interquartile range) evaluations to reach `threshold`; a
  search that never reaches it counts as more than the budget."""
  counts = np.array([min(t.evaluations_to_reach(threshold), budget + 1)
                     for t in traces])
  q1, median, q3 = np.percentile(counts, [25, 50, 75], method='nearest')
  missed = int((counts > budget).sum())

  def show(x):
    return f'>{budget}' if x > budget else f'{x:g}'

  cell = f'{show(median)} ({show(q1)}–{show(q3)})'
  return cell + (f', {missed} of {len(counts)} missed' if missed else '')


def _search_rows(traces_by_label, thresholds, budget: int
                 ) -> list[list[Any]]:
  rows = []
  for label, traces in traces_by_label.items():
    best = np.array([t.fitness.max() for t in traces])
    minutes = np.array([t.seconds[-1] for t in traces]) / 60
    rows.append([label, *(_evaluations_cell(traces, v, budget)
                          for v in thresholds.values()),
                 f'{np.median(best):.4f}', f'{np.median(minutes):.1f}'])
  return rows


def _search_header(config, thresholds) -> list[str]:
  return ['strategy', *(f'evaluations to {name} (≥ {value:.4f})'
                        for name, value in thresholds.items()),
          f'best after {config.budget} (median)',
          'minutes for the budget (median)']


def _table_note(config, table: tabular.Table) -> str:
  scores = table.scores()
  bench = config.benchmark
  return (f'Tabular benchmark: the {len(scores)} canonical architectures of '
          f'`{table.space}`, each trained once on {bench.dataset} for '
          f'{bench.fidelity.epochs} epochs at batch '
          f'{bench.fidelity.batch_size} (validation NDCG@20 from '
          f'{scores.min():.4f} to {scores.max():.4f}, median '
          f'{np.median(scores):.4f}). Each strategy searches it with seeds '
          f'{", ".join(map(str, config.seeds))}, {config.batch_size} '
          f'proposals per round, {config.budget} evaluations. Evaluations: '
          'median (interquartile range) over seeds. Wall time: the '
          'recorded training time of the architectures evaluated plus the '
          "strategy's own time.")


def run_search_efficiency(config, run: Run) -> Output:
  workdir = run.workdir
  table = benchmark(config, run)
  traces = {name: searches(config, table, name, {}, run)
            for name in config.strategies}
  thresholds = _thresholds(config, table)
  figures.search_curves(
      traces, thresholds, os.path.join(workdir, 'search_efficiency.png'),
      f'Search efficiency on the {config.benchmark.dataset} tabular '
      'benchmark')
  shown = {name: traces[name][0] for name in ('random', 'adversarial')
           if name in traces}
  figures.choice_frequency(
      shown, space.subspace_from_string(table.space),
      os.path.join(workdir, 'choice_frequency.png'),
      'Share of each choice among the proposals of each round (seed 0)')
  with open(os.path.join(workdir, 'search_efficiency_curves.csv'), 'w',
            newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['strategy', 'seed', 'evaluation', 'round', 'arch',
                     'valid_ndcg@20', 'best_so_far', 'wall_seconds'])
    for name, runs in traces.items():
      for seed, trace in zip(config.seeds, runs):
        for i, (arch, fit, best, r, s) in enumerate(zip(
            trace.archs, trace.fitness, trace.best_so_far(), trace.rounds,
            trace.seconds)):
          writer.writerow([name, seed, i + 1, r, arch, f'{fit:.6f}',
                           f'{best:.6f}', f'{s:.2f}'])
  return Output(_search_header(config, thresholds),
                _search_rows(traces, thresholds, config.budget),
                notes=[_table_note(config, table),
                       'Every evaluation of every search is in '
                       '`search_efficiency_curves.csv` (workdir).'],
                figures=['search_efficiency.png', 'choice_frequency.png'])


def run_ablations(config, run: Run) -> Output:
  workdir = run.workdir
  table = benchmark(config, run)
  traces = {name: searches(config, table, 'adversarial', options.to_dict(),
                           run)
            for name, options in config.variants.items()}
  thresholds = _thresholds(config, table)
  figures.search_curves(
      traces, thresholds, os.path.join(workdir, 'ablations.png'),
      'Ablations of the adversarial strategy')
  header = _search_header(config, thresholds)
  header[0] = 'variant'
  return Output(header, _search_rows(traces, thresholds, config.budget),
                notes=[_table_note(config, table)],
                figures=['ablations.png'])


# --- Accuracy ---------------------------------------------------------------


def searched_architectures(config, run: Run) -> dict[str, str]:
  """Label -> searched architecture: each strategy of `config.search`
  (the best architecture of its first seed's search), then
  `config.searched`."""
  search_config = config.search
  found = {}
  if search_config.strategies:
    table = benchmark(search_config, run)
    for name in search_config.strategies:
      trace = searches(search_config, table, name, {}, run)[0]
      found[name] = trace.archs[int(np.argmax(trace.fitness))]
  found.update(config.searched)
  return {f'searched: {label}': arch for label, arch in found.items()}


def searched_note(config) -> str:
  """Where the accuracy table's searched architectures come from."""
  sources = []
  if config.search.strategies:
    sources.append('"searched: X" for a strategy X is the best architecture '
                   "of X's first search in `search_efficiency`, on "
                   f'{config.search.benchmark.dataset}')
  if config.searched:
    labels = ', '.join(f'"searched: {label}"' for label in config.searched)
    sources.append(f'{labels}: found by a search of its own, named in the '
                   "table's configuration")
  if not sources:
    return ''
  return ('; '.join(sources) + '. A searched architecture is used as found '
          'on every dataset that names no models of its own.')


def evaluated_pairs(dataset) -> str:
  """How many users and test pairs a dataset's test evaluates."""
  per_user = np.bincount(dataset.test[:, 0], minlength=dataset.num_users)
  missed = (np.zeros_like(per_user) if dataset.test_missed is None
            else dataset.test_missed)
  with_pairs = int(((per_user + missed) > 0).sum())
  text = (f'{dataset.num_users:,} users ({with_pairs:,} with a test pair), '
          f'{int(per_user.sum() + missed.sum()):,} test pairs')
  if missed.sum():
    text += (f', of which {int(missed.sum()):,} have an item unseen in '
             'training and count as misses')
  return text


# Options of the accuracy table that a dataset's protocol may set for
# itself, replacing the table's there: a dataset too large for every model
# of the table trains the models, seeds and grid it names.
DATASET_OPTIONS = ('hand_designed', 'hand_designed_variants', 'searched',
                   'seeds', 'tuning')


def dataset_options(config, dataset_name: str) -> ml_collections.ConfigDict:
  """The accuracy table's `DATASET_OPTIONS` for `dataset_name`: those its
  protocol (`config.datasets[dataset_name]`) sets, the table's otherwise."""
  protocol = config.datasets[dataset_name]
  return ml_collections.ConfigDict(
      {name: protocol[name] if name in protocol else config[name]
       for name in DATASET_OPTIONS}, sort_keys=False)


def _grid_note(grid, num_negatives: int) -> str:
  """The tuning grid `grid` (a `tuning` option) in words."""
  text = (f'lr in {{{", ".join(map(str, grid.lr))}}} x L2 in '
          f'{{{", ".join(map(str, grid.l2))}}} at seed {grid.seed}'
          if grid.lr or grid.l2 else
          'none: each model at the lr and L2 its architecture names')
  negatives = grid.get('negatives') or ()
  if negatives:
    def entry_note(entry):
      if not isinstance(entry, str):
        return f'{entry}' if entry else f'{num_negatives} (the protocol\'s)'
      loss = tuning.negatives_loss(entry)
      shared = train.loss_shared_negatives(loss)
      if shared:
        return f'{shared} per mini-batch ({loss})'
      return f'{train.loss_negatives(loss, num_negatives)} ({loss})'

    text += (f'; then, for sampled softmax, negatives in '
             f'{{{", ".join(map(entry_note, negatives))}}} at the selected '
             'lr and L2')
  return text


def run_accuracy(config, run: Run) -> Output:
  """Hand-designed and searched models tuned alike (`experiments.tuning`:
  the (lr, L2) grid of `config.tuning` at one seed, selection on
  validation NDCG@20, then sampled softmax's numbers of negatives where the
  grid names them, then every seed), under one protocol per dataset of
  `config.evaluate_on`; a dataset's protocol may name its own models,
  seeds and grid (`DATASET_OPTIONS`)."""
  evaluate_on = tuple(config.evaluate_on or config.datasets)
  unknown = sorted(set(evaluate_on) - set(config.datasets))
  if unknown:
    raise ValueError(
        f'accuracy: evaluate_on names {", ".join(map(repr, unknown))}, '
        f'which is not in datasets ({", ".join(config.datasets)}).')
  workdir = run.workdir
  table_searched = searched_architectures(config, run)
  rows, records, points, evaluated, own = [], [], {}, [], []
  for dataset_name in evaluate_on:
    options = dataset_options(config, dataset_name)
    own_options = [name for name in DATASET_OPTIONS
                   if name in config.datasets[dataset_name]]
    protocol = config.datasets[dataset_name].copy_and_resolve_references()
    protocol.data_dir = run.data_dir
    data = driver.TrainingData.from_config(protocol)
    dataset = data.dataset
    evaluated.append(f'{dataset_name}: {evaluated_pairs(dataset)}')
    folder = os.path.join(workdir, 'accuracy', dataset_name)
    variants = dict(options.hand_designed_variants)
    searched = ({f'searched: {label}': arch
                 for label, arch in options.searched.items()}
                if 'searched' in own_options else table_searched)
    with protocol.unlocked():
      # Strategies that found one architecture share its runs.
      protocol.archs = tuple(dict.fromkeys(
          (*options.hand_designed, *variants.values(), *searched.values())))
      protocol.seeds = tuple(options.seeds)
      protocol.tuning = options.tuning
    tuned = tuning.run_all(protocol, os.path.join(folder, 'tuned'), data,
                           record=run.record(f'accuracy_{dataset_name}'))
    trained = [(name, 'hand-designed', name)
               for name in options.hand_designed]
    trained += [(label, 'hand-designed', arch)
                for label, arch in variants.items()]
    trained += [(label, 'searched', arch)
                for label, arch in searched.items()]
    if own_options:
      own.append(
          f'On {dataset_name}, its own models ('
          + ', '.join(label for label, _, _ in trained) + ') with seeds '
          + ', '.join(map(str, options.seeds)) + ', grid: '
          + _grid_note(options.tuning, protocol.num_negatives))
    points[dataset_name] = []
    for label, kind, model in trained:
      result = tuned[model]
      arch, results = result['selected'], result['runs']
      architecture = space.from_string(arch)
      record = tuning.csv_row(dataset_name, label, kind, arch, results)
      records.append(record)
      parameters = models.count_parameters(
          architecture, dataset.num_users, dataset.num_items)
      ndcg = driver.seed_statistics(results, 'test/ndcg@20')
      rows.append([dataset_name,
                   label + tuning.final_divergence_note(model, result),
                   f'{parameters:,}',
                   driver.format_statistic(
                       driver.seed_statistics(results, 'test/recall@20')),
                   driver.format_statistic(ndcg),
                   f'{record["best_epoch"]:.0f}',
                   f'{np.mean([r["train_seconds_per_epoch"] for r in results]):.2f}',
                   f'`{record["arch"]}`'])
      same = [p for p in points[dataset_name] if p['arch'] == arch]
      if same:  # Strategies that found one architecture share a point.
        same[0]['label'] += ', ' + label.replace('searched: ', '')
        continue
      points[dataset_name].append({
          'label': label.replace('searched: ', ''), 'arch': arch,
          'parameters': parameters, 'ndcg': ndcg['mean'],
          'ndcg_std': ndcg['std'], 'searched': kind == 'searched'})
  figures.pareto(points, os.path.join(workdir, 'accuracy_pareto.png'))
  protocol = config.datasets[evaluate_on[0]]
  subsampled = ', '.join(
      f'{name} keeps a seeded {p.data.user_fraction:.0%} of its users'
      + (f', then the {p.data.kcore}-core of their training pairs'
         if p.data.kcore > 1 else '')
      + (' and every test pair of theirs'
         if p.data.unseen_test_ids == 'miss' else '')
      for name, p in config.datasets.items()
      if name in evaluate_on and p.data.user_fraction < 1)
  grid = _grid_note(config.tuning, protocol.num_negatives)
  sources = searched_note(config)
  return Output(
      ['dataset', 'model', 'parameters', 'test Recall@20', 'test NDCG@20',
       'best epoch', 's / epoch', 'architecture'], rows,
      notes=[f'Mean ± standard deviation over seeds '
             f'{", ".join(map(str, config.seeds))}, one protocol for every '
             f'model: at most {protocol.epochs} epochs at batch '
             f'{protocol.batch_size}, early stopping on validation NDCG@20 '
             f'after {protocol.patience} evaluations (every '
             f'{protocol.eval_every} epochs) without improvement, full '
             'ranking; one sampled negative per positive for the BPR loss, '
             f'{protocol.num_negatives} for sampled softmax (`softmax`) and N '
             'for `softmax-N` (the loss is part of an architecture). Every '
             'model, hand-designed or searched, '
             f'is tuned alike before its seeds train (grid: {grid}; the '
             'setting with the best validation NDCG@20 is the one shown, in '
             'its architecture string). '
             + ''.join(f'{text}. ' for text in own)
             + (f'{sources} ' if sources else '')
             + 'Evaluated: ' + '; '.join(evaluated) + '. '
             + (f'Subsampled: {subsampled}.' if subsampled else '')],
      figures=['accuracy_pareto.png'],
      records=(tuning.CSV_COLUMNS, records))


# --- Throughput -------------------------------------------------------------


def throughput_records(folder: str, scale: str
                       ) -> dict[tuple[str, str], list[dict]]:
  """(platform, dataset) -> benchmark records, from `folder`'s
  `{platform}_{dataset}_{scale}.json` files."""
  records = {}
  for name in sorted(os.listdir(folder)):
    if name.endswith(f'_{scale}.json'):
      platform_name, dataset_name = name[:-len(f'_{scale}.json')].split('_')
      with open(os.path.join(folder, name)) as f:
        records[(platform_name, dataset_name)] = json.load(f)
  return records


def run_throughput(config, run: Run) -> Output:
  workdir, scale = run.workdir, run.scale
  folder = os.path.join(workdir, 'throughput')
  os.makedirs(folder, exist_ok=True)
  here = jax.default_backend()
  for dataset_name, sizes in config.population_sizes.items():
    path = os.path.join(folder, f'{here}_{dataset_name}_{scale}.json')
    if os.path.exists(path):
      continue
    subprocess.run(
        [sys.executable, '-m', 'experiments.benchmark_population',
         f'--dataset={dataset_name}', f'--data_dir={run.data_dir}',
         f'--population_sizes={",".join(map(str, sizes))}',
         f'--steps={config.steps}', f'--batch_size={config.batch_size}',
         f'--fidelity_epochs={config.fidelity_epochs}',
         f'--specialised={config.specialised}',
         f'--out={path}.partial'], check=True)
    os.replace(path + '.partial', path)
  records = throughput_records(folder, scale)
  platforms = sorted({p for p, _ in records} | {'cpu', 'gpu'},
                     key=lambda p: ('cpu', 'gpu', 'tpu').index(p))
  header = ['dataset', 'P']
  for p in platforms:
    header += [f'{p.upper()} step / candidate (ms)',
               f'{p.upper()} specialised (ms)',
               f'{p.upper()} candidates / hour']
  rows = []
  datasets = list(config.population_sizes) + sorted(
      {d for _, d in records} - set(config.population_sizes))
  for dataset_name in datasets:
    # Every size measured on some platform gets a row.
    sizes = set(config.population_sizes.get(dataset_name, ()))
    for (_, d), found in records.items():
      if d == dataset_name:
        sizes |= {r['population_size'] for r in found}
    for size in sorted(sizes):
      row = [dataset_name, size]
      for p in platforms:
        found = [r for r in records.get((p, dataset_name), [])
                 if r['population_size'] == size]
        row += ([f'{found[0]["per_candidate_step_ms"]:.1f}',
                 common.table_cell(found[0], 'specialised_amortised_step_ms',
                                   '.1f'),
                 f'{found[0]["candidates_per_hour"]:.0f}'] if found
                else ['—'] * 3)
      rows.append(row)
  figures.throughput({f'{p} / {d}': r for (p, d), r in records.items()},
                     os.path.join(workdir, 'throughput.png'))
  accelerators = {p: r[0]['device'] for (p, _), r in records.items()
                  if p != 'cpu'}
  return Output(header, rows, notes=[
      'One training step of the first P of a seeded draw of random '
      'architectures of the whole space (batch '
      f'{config.batch_size}, shared mini-batches), median of '
      f'{config.steps} steps, divided by P, in the grouped population (one '
      'compiled program per group of like architectures, compiled before '
      'timing). "Specialised": the same architectures (up to '
      f'{config.specialised}) each compiled alone, mean step plus its '
      f'compilation spread over {config.fidelity_epochs} epochs: what '
      'training candidates one by one costs. Candidates per hour: '
      f'{config.fidelity_epochs} epochs each at the population\'s speed, '
      'programs cached. '
      + ''.join(f'{p.upper()} columns: {d}. ' for p, d in accelerators.items())
      + 'A column of dashes has not been measured: run this command on '
      'that platform with the same workdir, or `experiments/device_check.sh`'
      ' there, to fill it.'],
      figures=['throughput.png'])


# --- Public NAS benchmarks ------------------------------------------------


def run_nas_benchmarks(config, run: Run) -> Output:
  """Every strategy on NAS-Bench-Graph (`experiments.benchmark_search`).

  The searches and their full tables (each query count, the picks' test
  accuracy, seconds per search) go to `WORKDIR/nas_benchmarks/`; this
  table is the validation regret after 100 queries.
  """
  from experiments import benchmark_search  # pylint: disable=g-import-not-at-top
  workdir = os.path.join(run.workdir, 'nas_benchmarks')
  datasets = benchmark_search.benchmark_datasets(config.benchmark)
  if config.datasets != 'all':
    datasets = tuple(config.datasets.split(','))
  strategies = (benchmark_search.ALL_STRATEGIES if config.strategies == 'all'
                else tuple(config.strategies.split(',')))
  command = (f'python -m experiments.benchmark_search --benchmark='
             f'{config.benchmark} --datasets={config.datasets} --strategies='
             f'{config.strategies} --seeds={config.seeds} --budget='
             f'{config.budget} --batch_size={config.batch_size}')
  summary = benchmark_search.benchmark_search(
      config.benchmark, datasets, strategies, range(config.seeds),
      config.budget, config.batch_size, config.queries, workdir,
      progress=True, command=command)
  for name in ('nas_benchmarks.md', 'nas_benchmarks.png'):
    target = ('nas_benchmarks_full.md' if name.endswith('.md') else name)
    with open(os.path.join(workdir, name), 'rb') as source, open(
        os.path.join(run.workdir, target), 'wb') as copy:
      copy.write(source.read())
  table = summary['datasets']
  queries = str(100 if 100 in config.queries else config.queries[-1])
  contenders = [s for s in strategies
                if s in benchmark_search.BASELINES + ('adversarial',)]
  leaders = {d: min(contenders, key=lambda s, d=d: table[d]['strategies'][
      s][queries]['valid_regret']['mean']) for d in table}
  rows = []
  for label in strategies:
    cells = []
    for dataset in table:
      value = table[dataset]['strategies'][label][queries]['valid_regret']
      text = f'{100 * value["mean"]:.2f} ± {100 * value["sem"]:.2f}'
      cells.append(f'**{text}**' if leaders[dataset] == label else text)
    rows.append([label, *cells,
                 sum(leader == label for leader in leaders.values())])
  search_minutes = sum(
      entry['seconds_per_search'] * config.seeds
      for d in table for entry in table[d]['strategies'].values()) / 60
  return Output(
      ['strategy', *table, 'datasets led'], rows,
      notes=[f'Validation regret x 100 after {queries} queries on '
             'NAS-Bench-Graph (Qin et al. 2022): the table\'s best '
             'validation accuracy minus that of the best-by-validation '
             f'pick, mean ± standard error over {config.seeds} seeds; '
             f'{config.batch_size} proposals per round, {config.budget} '
             'queries (distinct architectures) per search. Bold: the lowest '
             'mean among the baselines and `adversarial`; its ablations '
             '(the rows below it) do not compete. The searches took about '
             f'{search_minutes:.0f} CPU-minutes in all (medians per search '
             'times seeds). Every query count, the test accuracy of each '
             'pick and the seconds per search: `nas_benchmarks_full.md`.'],
      figures=['nas_benchmarks.png'])


RUNNERS: dict[str, Callable[..., Output]] = {
    'search_efficiency': run_search_efficiency,
    'ablations': run_ablations,
    'accuracy': run_accuracy,
    'throughput': run_throughput,
    'nas_benchmarks': run_nas_benchmarks,
}
