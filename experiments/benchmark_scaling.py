r"""How the population's step grows with the graph and with P.

  python -m experiments.benchmark_scaling --data_dir=../shared/datasets \
      --out_dir=results

Runs `experiments.benchmark_population` (each point in its own process,
grouped population only) over two sweeps and writes `scaling.json` (every
record), `scaling.md` and the log-log figure `scaling.png` to `--out_dir`:

  graph   P = `--graph_population`, ML-100K and Gowalla (LightGCN's split)
          keeping 10%, 25%, 50% and 100% of its users (ML-1M too where
          present), each mode, the sparse backend
  P       ML-100K at P = 1, 4, 16, 64, each mode and each backend

Each sweep states its slope: the least-squares exponent b of
cost ~ size^b on the log-log plot, for the step per candidate against the
training interactions (1 would be linear in the graph), and for the whole
population's step against P (1 would be linear in P: no work shared).
Points that finish are kept in `scaling.json`, so an interrupted run resumes
where it stopped.
"""

import json
import os
import subprocess
import sys
import tempfile

from absl import app
from absl import flags
from absl import logging
import numpy as np

from experiments import common
from gnas_jax import data

_DATA_DIR = flags.DEFINE_string(
    'data_dir', os.environ.get('GNAS_DATA_DIR', ''), 'Data folder.')
_OUT_DIR = flags.DEFINE_string('out_dir', 'results', 'Output folder.')
_MODES = flags.DEFINE_list('modes', ['map', 'vmap'], 'Population modes.')
_SIZES = common.define_integer_list('population_sizes', [1, 4, 16, 64],
                                    'P of the P sweep (ML-100K).')
_VMAP_MAX = flags.DEFINE_integer(
    'vmap_max_population', 16, "Largest P measured in 'vmap' mode (on a "
    'CPU it computes every option of a group for every candidate).')
_GRAPH_P = flags.DEFINE_integer('graph_population', 8,
                                'P of the graph sweep.')
_FRACTIONS = flags.DEFINE_list('gowalla_fractions',
                               ['0.1', '0.25', '0.5', '1.0'],
                               'Shares of Gowalla users of the graph sweep.')
_STEPS = flags.DEFINE_integer('steps', 5, 'Timed steps per point.')


def _points() -> list[dict]:
  """Every (sweep, dataset, fraction, backend, mode, sizes) to measure."""
  points = []
  graphs = [('ml-100k', 1.0)] + [('gowalla', float(f))
                                 for f in _FRACTIONS.value]
  if _has('ml-1m'):
    graphs.append(('ml-1m', 1.0))
  for mode in _MODES.value:
    for dataset, fraction in graphs:
      points.append(dict(sweep='graph', dataset=dataset, fraction=fraction,
                         backend='sparse', mode=mode,
                         sizes=[_GRAPH_P.value]))
    for backend in ('sparse', 'dense'):
      sizes = [s for s in _SIZES.value
               if mode == 'map' or s <= _VMAP_MAX.value]
      points.append(dict(sweep='P', dataset='ml-100k', fraction=1.0,
                         backend=backend, mode=mode, sizes=sizes))
  return points


def _has(name: str) -> bool:
  try:
    data.registry.resolve(data.DATASETS[name], _DATA_DIR.value,
                          download=False)
    return True
  except (ValueError, KeyError, FileNotFoundError):
    return False


def _measure(point: dict) -> list[dict]:
  with tempfile.NamedTemporaryFile(suffix='.json') as out:
    subprocess.run(
        [sys.executable, '-m', 'experiments.benchmark_population',
         f'--dataset={point["dataset"]}', f'--data_dir={_DATA_DIR.value}',
         f'--user_fraction={point["fraction"]}',
         f'--backend={point["backend"]}', f'--mode={point["mode"]}',
         f'--population_sizes={",".join(map(str, point["sizes"]))}',
         f'--steps={_STEPS.value}', '--superset=false', '--specialised=0',
         f'--out={out.name}'], check=True)
    with open(out.name) as f:
      return json.load(f)


def slope(x, y) -> float:
  """The least-squares b of y ~ x^b."""
  b, _ = np.polyfit(np.log(np.asarray(x, float)),
                    np.log(np.asarray(y, float)), 1)
  return float(b)


def _key(point: dict) -> str:
  return json.dumps({k: point[k] for k in ('sweep', 'dataset', 'fraction',
                                           'backend', 'mode', 'sizes')},
                    sort_keys=True)


def write_outputs(done: dict[str, list[dict]], out_dir: str,
                  modes: list[str], graph_population: int, steps: int) -> str:
  """scaling.md and scaling.png from the measured points; the Markdown.

  Args:
    done: `_key(point)` -> the benchmark records of that point.
    out_dir: where to write.
    modes: the population modes measured.
    graph_population: P of the graph sweep.
    steps: timed steps per point.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  lines = ['<!-- scaling.md: written by `python -m '
           'experiments.benchmark_scaling`; edit the code, not this file. '
           '-->', '']
  fig, (graph_ax, size_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
  graph_rows = [(json.loads(k), r) for k, records in done.items()
                for r in records if json.loads(k)['sweep'] == 'graph']
  device = next((r['device'] for records in done.values() for r in records),
                '?')
  lines += [f'Measured on: {device}.', '',
            '**Against the graph** (P = '
            f'{graph_population}, sparse backend, step per candidate):', '',
            '| graph | users | items | training pairs | mode | step / '
            'candidate (ms) | programs | peak RSS (MiB) |',
            '| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |']
  notes = []
  for mode in modes:
    rows = sorted(((p, r) for p, r in graph_rows if p['mode'] == mode),
                  key=lambda pr: pr[1]['num_interactions'])
    for point, r in rows:
      name = point['dataset'] + (f' {point["fraction"]:.0%}'
                                 if point['dataset'] == 'gowalla' else '')
      lines.append(f'| {name} | {r["num_users"]:,} | {r["num_items"]:,} | '
                   f'{r["num_interactions"]:,} | {mode} | '
                   f'{r["per_candidate_step_ms"]:.1f} | '
                   f'{r["compile_count"]} | {r["peak_rss_mb"]:.0f} |')
    if len(rows) >= 2:
      x = [r['num_interactions'] for _, r in rows]
      y = [r['per_candidate_step_ms'] for _, r in rows]
      b = slope(x, y)
      notes.append(f'{mode}: step per candidate ~ pairs^{b:.2f}')
      graph_ax.loglog(x, y, 'o-', label=f'{mode} (slope {b:.2f})')
  lines += ['', 'Slope (least squares on the log-log plot): ' +
            '; '.join(notes) + '.', '',
            '**Against P** (ML-100K, the whole population\'s step):', '',
            '| backend | mode | P | step / candidate (ms) | population '
            'step (ms) | programs | peak RSS (MiB) |',
            '| --- | --- | ---: | ---: | ---: | ---: | ---: |']
  notes = []
  for key, records in done.items():
    point = json.loads(key)
    if point['sweep'] != 'P':
      continue
    for r in records:
      lines.append(
          f'| {point["backend"]} | {point["mode"]} | '
          f'{r["population_size"]} | {r["per_candidate_step_ms"]:.1f} | '
          f'{r["per_candidate_step_ms"] * r["population_size"]:.1f} | '
          f'{r["compile_count"]} | {r["peak_rss_mb"]:.0f} |')
    if len(records) >= 2:
      x = [r['population_size'] for r in records]
      y = [r['per_candidate_step_ms'] * r['population_size']
           for r in records]
      b = slope(x, y)
      label = f'{point["backend"]}, {point["mode"]}'
      notes.append(f'{label}: population step ~ P^{b:.2f}')
      size_ax.loglog(x, y, 'o-', base=2, label=f'{label} (slope {b:.2f})')
  lines += ['', 'Slope: ' + '; '.join(notes) + '.', '',
            'The populations are the first P of one seeded draw of random '
            'architectures of the whole space, trained in groups of like '
            'architectures (one compiled program each); a larger P adds '
            'architectures, so the mix changes too. Medians of '
            f'{steps} steps after compilation, batch 2048.', '',
            '![scaling](scaling.png)']
  graph_ax.set_xlabel('training pairs')
  graph_ax.set_ylabel('step per candidate (ms)')
  graph_ax.set_title(f'against the graph (P = {graph_population})')
  size_ax.set_xlabel('population size P')
  size_ax.set_ylabel('population step (ms)')
  size_ax.set_title('against P (ML-100K)')
  for ax in (graph_ax, size_ax):
    ax.grid(alpha=0.3, which='both')
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, 'scaling.png'), dpi=120)
  plt.close(fig)
  text = '\n'.join(lines) + '\n'
  with open(os.path.join(out_dir, 'scaling.md'), 'w') as f:
    f.write(text)
  return text


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  path = os.path.join(_OUT_DIR.value, 'scaling.json')
  done = {}
  if os.path.exists(path):
    with open(path) as f:
      done = json.load(f)
  for point in _points():
    key = _key(point)
    if key in done:
      continue
    logging.info('Measuring %s.', key)
    done[key] = _measure(point)
    with open(path + '.partial', 'w') as f:
      json.dump(done, f, indent=1)
    os.replace(path + '.partial', path)
    print(write_outputs(done, _OUT_DIR.value, _MODES.value, _GRAPH_P.value,
                          _STEPS.value), flush=True)
  print(write_outputs(done, _OUT_DIR.value, _MODES.value, _GRAPH_P.value,
                          _STEPS.value))


if __name__ == '__main__':
  common.run(main)
