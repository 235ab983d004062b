"""The figures of `experiments.reproduce` (matplotlib, written as PNG)."""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use('Agg')  # Files only: no display on servers and in CI.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from gnas_jax import space
from gnas_jax.search import tabular

_DPI = 120


def _band(ax, x, curves: np.ndarray, label: str, color) -> None:
  """Median line and interquartile band of `[seeds, N]` curves."""
  q1, median, q3 = np.percentile(curves, [25, 50, 75], axis=0)
  ax.plot(x, median, label=label, color=color, linewidth=1.8)
  ax.fill_between(x, q1, q3, color=color, alpha=0.18, linewidth=0)


def search_curves(traces: dict[str, Sequence[tabular.Trace]],
                  thresholds: dict[str, float], path: str,
                  title: str) -> None:
  """Best-so-far validation NDCG@20 against evaluations and wall time.

  Args:
    traces: label -> one trace per seed (equal lengths).
    thresholds: label -> NDCG@20, drawn as dotted horizontal lines.
    path: the PNG to write.
    title: the figure's title.
  """
  fig, (by_evals, by_time) = plt.subplots(1, 2, figsize=(11, 4.2),
                                          sharey=True)
  colors = plt.get_cmap('tab10')
  for index, (label, runs) in enumerate(traces.items()):
    best = np.stack([t.best_so_far() for t in runs])
    evaluations = np.arange(1, best.shape[1] + 1)
    _band(by_evals, evaluations, best, label, colors(index))
    # Each seed's curve on a common grid of minutes, as a step function.
    minutes = np.stack([t.seconds for t in runs]) / 60
    # From the first time every seed has a result, so that each grid point
    # is a median over all seeds (monotone, as each seed's curve is).
    grid = np.linspace(minutes[:, 0].max(), np.median(minutes[:, -1]), 200)
    on_grid = np.stack([
        b[np.searchsorted(m, grid, side='right') - 1]
        for m, b in zip(minutes, best)])
    q1, median, q3 = np.percentile(on_grid, [25, 50, 75], axis=0)
    by_time.plot(grid, median, color=colors(index), linewidth=1.8)
    by_time.fill_between(grid, q1, q3, color=colors(index), alpha=0.18,
                         linewidth=0)
  for ax in (by_evals, by_time):
    for name, value in thresholds.items():
      ax.axhline(value, color='grey', linestyle=':', linewidth=1)
      ax.annotate(name, (1.0, value), xycoords=('axes fraction', 'data'),
                  ha='right', va='bottom', fontsize=8, color='grey')
    ax.grid(alpha=0.3)
  by_evals.set_xlabel('evaluations')
  by_evals.set_ylabel('best validation NDCG@20 so far')
  by_time.set_xlabel('wall time (minutes: training + strategy)')
  by_evals.legend(loc='lower right', fontsize=8)
  if thresholds:
    # Zoom on where the strategies differ: around the thresholds.
    values = list(thresholds.values())
    spread = max(values) - min(values) or 0.1 * max(values)
    by_evals.set_ylim(min(values) - 0.6 * spread, max(values) + 0.15 * spread)
  fig.suptitle(title + ' (median, interquartile band over seeds)',
               fontsize=11)
  fig.tight_layout()
  fig.savefig(path, dpi=_DPI)
  plt.close(fig)


def _values(arch: space.Architecture, decision: space.Decision) -> tuple:
  """The decision's value in every layer, or its single value."""
  value = getattr(arch, decision.name)
  return value if decision.per_layer else (value,)


def _choice_shares(archs: Sequence[space.Architecture], rounds: np.ndarray,
                   decision: space.Decision,
                   choices: Sequence[Any]) -> np.ndarray:
  """`[rounds, len(choices)]` share of each choice among the proposals of
  each round (per-layer decisions count every layer present)."""
  counts = np.zeros((int(rounds.max()) + 1, len(choices)))
  for arch, round_index in zip(archs, rounds):
    for v in _values(arch, decision):
      counts[round_index, choices.index(v)] += 1
  totals = counts.sum(axis=1, keepdims=True)
  return np.divide(counts, totals, out=np.zeros_like(counts),
                   where=totals > 0)


def choice_frequency(traces: dict[str, tabular.Trace],
                     choices: dict[str, tuple[Any, ...]], path: str,
                     title: str) -> None:
  """The share of each choice per round, one row per searched decision.

  Columns are strategies (one seed each); a decision narrowing to one
  choice early is convergence or mode collapse, a flat one is exploration.
  """
  # Decisions the proposals actually vary (a restricted space may leave a
  # decision with choices that cannot matter, such as a dot decoder's
  # temperature).
  proposed = {label: [space.from_string(a) for a in trace.archs]
              for label, trace in traces.items()}
  decisions = [d for d in space.DECISIONS
               if len({v for archs in proposed.values() for a in archs
                       for v in _values(a, d)}) > 1]
  fig, axes = plt.subplots(len(decisions), len(traces), squeeze=False,
                           figsize=(4.2 * len(traces), 1.6 * len(decisions)),
                           sharex=True)
  for column, (label, trace) in enumerate(traces.items()):
    for row, decision in enumerate(decisions):
      ax = axes[row, column]
      options = list(choices[decision.name])
      shares = _choice_shares(proposed[label], trace.rounds, decision,
                              options)
      rounds = np.arange(1, len(shares) + 1)
      ax.stackplot(rounds, shares.T,
                   labels=[str(v) for v in options],
                   colors=plt.get_cmap('Set2').colors[:len(options)])
      ax.set_ylim(0, 1)
      ax.set_xlim(1, len(shares))
      if column == 0:
        ax.set_ylabel(decision.name, fontsize=9)
      if column == len(traces) - 1:
        ax.legend(loc='center left', bbox_to_anchor=(1.01, 0.5), fontsize=7,
                  frameon=False)
      if row == 0:
        ax.set_title(label, fontsize=10)
      ax.tick_params(labelsize=7)
  for ax in axes[-1]:
    ax.set_xlabel('round')
  fig.suptitle(title, fontsize=11)
  fig.tight_layout()
  fig.savefig(path, dpi=_DPI)
  plt.close(fig)


def _label_apart(ax, points: list[tuple[float, float, str]],
                 fontsize: float = 7) -> None:
  """Labels each `(x, y, label)` point of `ax` to its upper right, moving
  a label down until it overlaps none placed before (points close
  together, as models of one size and score are, would stack their labels
  into one blot); a moved label gets a line to its point."""
  ax.autoscale_view()
  to_pixels = ax.transData.transform
  points_per_pixel = 72 / ax.figure.dpi
  line = fontsize * 1.3 / points_per_pixel  # One text line, in pixels.
  placed = []  # (left, right, bottom) of each label, in pixels.
  for x, y, label in sorted(points, key=lambda p: -p[1]):
    px, py = to_pixels((x, y))
    left = px + 5 / points_per_pixel
    right = left + 0.6 * fontsize * len(label) / points_per_pixel
    bottom = py + 4 / points_per_pixel
    while any(left < r and l < right and abs(bottom - b) < line
              for l, r, b in placed):
      bottom -= line / 2
    placed.append((left, right, bottom))
    offset = (5, (bottom - py) * points_per_pixel)
    moved = offset[1] < 0
    ax.annotate(label, (x, y), textcoords='offset points', xytext=offset,
                fontsize=fontsize, arrowprops=dict(
                    arrowstyle='-', color='grey', linewidth=0.5)
                if moved else None)


def pareto(points: dict[str, list[dict[str, Any]]], path: str) -> None:
  """Test NDCG@20 against parameters per dataset, with the Pareto front.

  Args:
    points: dataset -> [{'label', 'parameters', 'ndcg', 'ndcg_std',
      'searched'}].
    path: the PNG to write.
  """
  fig, axes = plt.subplots(1, len(points), figsize=(6 * len(points), 4.6),
                           squeeze=False)
  for ax, (dataset, rows) in zip(axes[0], points.items()):
    for row in rows:
      marker, color = (('*', 'tab:red') if row['searched']
                       else ('o', 'tab:blue'))
      ax.errorbar(row['parameters'], row['ndcg'], yerr=row['ndcg_std'],
                  fmt=marker, color=color, markersize=9 if marker == '*'
                  else 6, capsize=2)
    _label_apart(ax, [(r['parameters'], r['ndcg'], r['label']) for r in rows])
    # The front: no other model is both smaller and more accurate.
    ordered = sorted(rows, key=lambda r: (r['parameters'], -r['ndcg']))
    front, best = [], -np.inf
    for row in ordered:
      if row['ndcg'] > best:
        front.append(row)
        best = row['ndcg']
    ax.step([r['parameters'] for r in front], [r['ndcg'] for r in front],
            where='post', color='grey', linestyle='--', linewidth=1,
            label='Pareto front')
    # Embedding tables dominate, so the counts span a narrow range.
    ax.xaxis.set_major_formatter(
        matplotlib.ticker.FuncFormatter(lambda x, _: f'{x / 1e3:,.0f}k'))
    ax.set_xlabel('parameters')
    ax.set_ylabel('test NDCG@20')
    ax.set_title(dataset, fontsize=10)
    ax.grid(alpha=0.3)
    ax.plot([], [], 'o', color='tab:blue', label='hand-designed')
    ax.plot([], [], '*', color='tab:red', label='searched')
    ax.legend(fontsize=8, loc='best')
  fig.suptitle('Accuracy against size (mean ± std over seeds)', fontsize=11)
  fig.tight_layout()
  fig.savefig(path, dpi=_DPI)
  plt.close(fig)


def throughput(records: dict[str, list[dict[str, Any]]], path: str) -> None:
  """Per-candidate step time and candidates per hour against P.

  Args:
    records: 'platform / dataset' -> benchmark records (one per P).
    path: the PNG to write.
  """
  fig, (step_ax, rate_ax) = plt.subplots(1, 2, figsize=(10, 4))
  for label, rows in records.items():
    sizes = [r['population_size'] for r in rows]
    line, = step_ax.plot(sizes, [r['per_candidate_step_ms'] for r in rows],
                         'o-', label=f'{label}: population')
    specialised = [(r['population_size'], r['specialised_amortised_step_ms'])
                   for r in rows if 'specialised_amortised_step_ms' in r]
    if specialised:
      step_ax.plot(*zip(*specialised), 'x:', color=line.get_color(),
                   label=f'{label}: specialised, one by one')
    rate_ax.plot(sizes, [r['candidates_per_hour'] for r in rows], 'o-',
                 color=line.get_color(), label=label)
  for ax in (step_ax, rate_ax):
    ax.set_xscale('log', base=2)
    ax.set_xlabel('population size P')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  step_ax.set_ylabel('training step per candidate (ms)')
  rate_ax.set_ylabel('candidates per hour')
  fig.suptitle('Population throughput', fontsize=11)
  fig.tight_layout()
  fig.savefig(path, dpi=_DPI)
  plt.close(fig)
