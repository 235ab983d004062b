r"""Can the start of a curve predict its end? Fidelity studies re-scored.

  python -m experiments.fidelity_extrapolation \
      --out=results/fidelity_extrapolation

Reads fidelity-study reports (`experiments.fidelity_study`'s `<out>.json`:
each architecture's low-fidelity curve and full-protocol validation
NDCG@20) and ranks the architectures at each of `--epochs` two ways
(`fidelity.rung_scores`):

* best so far: the best validation NDCG@20 up to that epoch, which
  successive halving in the search ranks by;
* extrapolated: where a least-squares line in log(epoch) through the last
  third of the curve so far reaches after `--factor` times the epochs.

For each it gives the rank correlations with the full-protocol score and
replays the study's schedules with it (`fidelity.schedule_rows`, at the
compute of the study's fixed-fidelity round): the search's fixed round,
its multi-fidelity schedule (rungs 1 and 3, eta 3, to epoch 27), the
best of all schedules and their mean. Nothing trains; writes `<out>.md` and `<out>.json`.
"""

from __future__ import annotations

import json
import os
import shlex
import sys

from absl import app
from absl import flags

from experiments import common
from experiments import fidelity
from experiments import paper

_REPORTS = flags.DEFINE_list(
    'reports', ['results/fidelity.json', 'results/fidelity_b2048.json',
                'results/fidelity_gowalla-sub10.json',
                'results/fidelity_gowalla-sub10_b2048.json'],
    'Fidelity-study reports (JSON) to re-score.')
_EPOCHS = common.define_integer_list(
    'epochs', [3, 9, 27], 'Epochs at which to compare the scorings.')
_FACTOR = flags.DEFINE_float(
    'factor', 10.0, 'How far the extrapolated score looks ahead, in '
    'multiples of the epochs trained so far.')
_OUT = flags.DEFINE_string(
    'out', '', 'Prefix of the .md and .json written ("" prints only).')


def schedule_text(row: dict) -> str:
  """'rungs 1,3, eta 3, 27 candidates to epoch 27', say."""
  rungs = ','.join(map(str, row['rungs']))
  return ((f'rungs {rungs}, eta {row["eta"]}, ' if rungs else '') +
          f'{row["round_size"]} candidates to epoch {row["epochs"]}')


def pick_cell(row: dict, with_schedule: bool) -> str:
  text = f'{row["pick"]:.4f} ({row["top3"]:.2f}'
  return text + (f'; {schedule_text(row)})' if with_schedule else ')')


def table(results: list[dict], factor: float) -> str:
  """The markdown report."""
  command = shlex.join(['python', '-m', 'experiments.fidelity_extrapolation']
                       + sys.argv[1:])
  lines = [f'<!-- Written by `{command}`; edit the code, not this file. -->',
           f'Produced on a {paper.machine()}; nothing trained.', '',
           'Low-fidelity curves of the fidelity studies ranked by the best '
           'validation NDCG@20 so far (what successive halving uses) and by '
           'its extrapolation: a least-squares line in log(epoch) through '
           'the last third of the epochs so far (at least 3), read at '
           f'{factor:g} times those epochs. Spearman (Kendall) with the '
           'full-protocol validation NDCG@20.', '',
           '| study | epoch | best so far | extrapolated |',
           '| --- | ---: | ---: | ---: |']
  for result in results:
    by_scoring = {}
    for row in result['correlations']:
      by_scoring.setdefault(row['epoch'], {})[row['scoring']] = row
    for epoch, row in by_scoring.items():
      cells = [f'{row[s]["spearman"]:.2f} ({row[s]["kendall"]:.2f})'
               for s in fidelity.SCORINGS]
      lines.append(f'| {result["name"]} | {epoch} | ' + ' | '.join(cells)
                   + ' |')
  lines += ['', 'Replayed rounds (2,000 draws each, at the compute of the '
            "study's fixed-fidelity round): the mean full-protocol "
            'validation NDCG@20 of the pick, and how often it is among the '
            '3 best of the study, ranking by each scoring.', '',
            '| study | best of all | round | best so far | extrapolated |',
            '| --- | ---: | --- | ---: | ---: |']
  for result in results:
    rows = {}
    for row in result['picks']:
      rows.setdefault(row['schedule'], {})[row['scoring']] = row
    for label, scored in rows.items():
      first = next(iter(scored.values()))
      if label == 'mean over halving schedules':
        label = f'mean over the {first["count"]} halving schedules'
      elif label != 'best schedule':
        label += f': {schedule_text(first)}'
      cells = [pick_cell(scored[s], label == 'best schedule')
               if s in scored else '—' for s in fidelity.SCORINGS]
      lines.append(f'| {result["name"]} | {result["best_full_valid"]:.4f} '
                   f'| {label} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  factor = _FACTOR.value
  results = [fidelity.rescore_study(fidelity.load_study_report(path),
                                    _EPOCHS.value, factor)
             for path in _REPORTS.value]
  text = table(results, factor)
  print(text)
  if _OUT.value:
    os.makedirs(os.path.dirname(_OUT.value) or '.', exist_ok=True)
    with open(_OUT.value + '.md', 'w') as f:
      f.write(text)
    with open(_OUT.value + '.json', 'w') as f:
      json.dump({'factor': factor, 'studies': results}, f, indent=1)


if __name__ == '__main__':
  common.run(main)
