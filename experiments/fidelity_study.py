r"""How well short training ranks architectures: the fidelity study.

  python -m experiments.fidelity_study --config.dataset=ml-100k \
      --config.data_dir=/path/to/datasets --workdir=/tmp/fidelity_ml100k

Draws `--num_archs` architectures of the search config's space
(`config.space`, seeded by `config.seed`, every decision uniform), and for
each measures

* its low-fidelity curve: validation NDCG@20 after every epoch up to the
  last rung, trained as a search trains its candidates (in populations, at
  the search config's fidelity batch size, no early stopping); and
* its full-protocol score: the best validation (and the test) NDCG@20
  under the config's training protocol (that of
  `experiments/configs/train.py` by default: early stopping on validation).

For every rung it reports the Spearman and Kendall rank correlations
between the rung's validation NDCG@20 and the full-protocol one, and the
same for the search's current fixed fidelity (the best of its
evaluations). It then replays schedules of successive halving on the
recorded curves (`fidelity.schedule_rows`): at the compute of one
fixed-fidelity round, which pick does each schedule make, judged by the
full protocol. Writes `<out>.md`, `<out>.json` and `<out>.png`.

Every measurement is added, as it finishes, to a record beside the
outputs (or at `--record`): `<out>_low_fidelity.jsonl` (the curves) and
`<out>_full.jsonl` (the full-protocol results, `driver.train_with_seeds`;
`--full_record` names another, so that a study of another low fidelity,
say at another batch size, shares the full-protocol runs). Run again with
those records, the study trains only what they lack, so it may go on in
another session or on another machine from the committed records alone;
a measurement recorded under another protocol (data, seed, batch sizes,
epochs...) is refused. With `--recorded_only` it trains nothing and
reports on the architectures recorded so far (give `--record`
the study's prefix and `--out` another). Checkpoints stay under `--workdir`,
where an interrupted training resumes.

The full-protocol runs are most of the cost (hours on Gowalla). With
`--shard=I/N` a process trains only those of architectures I, I + N,
I + 2N, ... (counted from 0), and the low-fidelity populations I, I + N,
... (of `config.population_size` architectures each), and writes no
report: N processes, on the cores of one machine sharing `--workdir` and
the records, or on several machines whose records are then concatenated,
share the study out; the study run once more without `--shard` trains
what is left and reports.
"""

from __future__ import annotations

import json
import os
import shlex
import sys

from absl import app
from absl import flags
from absl import logging
import matplotlib
import numpy as np

from ml_collections import config_flags

from experiments import common
from experiments import fidelity
from experiments import paper
from gnas_jax import driver
from gnas_jax import space
from gnas_jax.search import evaluation

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/search.py',
    'Search configuration: the data, the space, the fidelity batch size, '
    'the population and the full training protocol.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where the runs are kept.')
_NUM_ARCHS = flags.DEFINE_integer('num_archs', 40, 'Architectures drawn.')
_RUNGS = common.define_integer_list(
    'rungs', [1, 3, 9, 27], 'Epochs at which low fidelity is scored.')
_ROUND_SIZE = flags.DEFINE_integer(
    'round_size', None, 'Candidates of the fixed-fidelity round whose '
    'epochs each replayed schedule gets (default: config.population_size); '
    'fewer compares fidelity batch sizes at equal seconds, where an epoch of '
    'the smaller batch costs more.')
_OUT = flags.DEFINE_string('out', 'results/fidelity',
                           'Output path without its extension.')
_RECORD = flags.DEFINE_string(
    'record', None, 'Path prefix of the records of measurements, '
    '<record>_low_fidelity.jsonl and <record>_full.jsonl (default: --out); '
    "another study's prefix replays its measurements in new outputs.")
_FULL_RECORD = flags.DEFINE_string(
    'full_record', None, 'JSON-lines record of the full-protocol runs '
    '(default: <record>_full.jsonl): a study of another low fidelity (say '
    'another --config.fidelity.batch_size) of the same architectures and '
    'protocol shares them instead of training them again.')
_RECORDED_ONLY = flags.DEFINE_bool(
    'recorded_only', False, 'Train nothing: write the outputs over the '
    'architectures whose curve and full-protocol run the records hold so '
    'far, an interim report of a study still under way (its table says '
    'so).')
_SHARD = flags.DEFINE_string(
    'shard', None, 'I/N: train only the low-fidelity populations and the '
    'full-protocol runs of architectures numbered I, I + N, ... (from 0) and '
    'write no report, so that N processes share the study out; run it once '
    'more without --shard to report.')
flags.mark_flags_as_required(['workdir'])


def parse_shard(text: str | None) -> tuple[int, int]:
  """`(index, count)` of `--shard=I/N`; `(0, 1)`, the whole study, for
  None."""
  if text is None:
    return 0, 1
  try:
    index, count = (int(part) for part in text.split('/'))
  except ValueError:
    index, count = -1, 0
  if not 0 <= index < count:
    raise ValueError(f'--shard={text} is not allowed: it must be I/N with '
                     '0 <= I < N, say --shard=0/2 and --shard=1/2.')
  return index, count


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  rungs = sorted(set(_RUNGS.value))
  if not rungs or rungs[0] < 1:
    raise ValueError(f'--rungs={_RUNGS.value} must be epochs >= 1.')
  if _NUM_ARCHS.value < 2:
    raise ValueError(f'--num_archs={_NUM_ARCHS.value}: a rank correlation '
                     'needs at least 2 architectures.')
  shard, shards = parse_shard(_SHARD.value)
  if shards > 1 and _RECORDED_ONLY.value:
    raise ValueError('--shard trains, --recorded_only does not: give one '
                     'of them.')
  config = _CONFIG.value
  round_size = (config.population_size if _ROUND_SIZE.value is None
                else _ROUND_SIZE.value)
  if round_size < 1:
    raise ValueError(f'--round_size={round_size} is not allowed: it must be '
                     'a number of candidates >= 1.')
  config.progress = False
  search_fidelity = config.fidelity.to_dict()
  data = driver.TrainingData.from_config(config)
  archs = space.sample(np.random.default_rng(config.seed), _NUM_ARCHS.value,
                       space.subspace_from_string(config.space))
  workdir = _WORKDIR.value
  os.makedirs(workdir, exist_ok=True)
  record = _RECORD.value or _OUT.value
  full_record = _FULL_RECORD.value or record + '_full.jsonl'
  drawn = len(archs)
  # As far as the last rung and the search's own fidelity reach.
  epochs = max(rungs[-1], search_fidelity['epochs'])
  if shards > 1:
    curve_record = record + '_low_fidelity.jsonl'
    fidelity.record_low_fidelity(config, data, archs, epochs, curve_record,
                                 shard=(shard, shards))
    for index in range(shard, len(archs), shards):
      full_protocol_run(config, data, workdir, archs, index, full_record)
    size = config.population_size
    populations = len(range(shard * size, len(archs), shards * size))
    runs = len(range(shard, len(archs), shards))
    logging.info('Shard %d/%d has its low-fidelity populations (%d) '
                 'recorded in %s and its full-protocol runs (%d) in %s; run '
                 'the study without --shard to report.', shard, shards,
                 populations, curve_record, runs, full_record)
    return
  if _RECORDED_ONLY.value:
    archs, curves, full = recorded_measurements(
        config, data, archs, epochs, record + '_low_fidelity.jsonl',
        full_record)
  else:
    curves = fidelity.low_fidelity_curves(
        config, data, archs, epochs, record + '_low_fidelity.jsonl')
    full = [full_protocol_run(config, data, workdir, archs, index, full_record)
            for index in range(len(archs))]
  full_valid = np.array([r['valid/ndcg@20'] for r in full])
  full_test = np.array([r['test/ndcg@20'] for r in full])
  fixed = fidelity.fixed_fidelity_scores(
      curves, search_fidelity['epochs'], search_fidelity['eval_every'],
      search_fidelity['patience'])
  evaluated = [e for e in range(1, search_fidelity['epochs'] + 1)
               if driver.is_evaluation_epoch(
                   e, search_fidelity['eval_every'], search_fidelity['epochs'])]
  rows = [{'fidelity': f'epoch {r}', 'epochs': r,
           **fidelity.correlations(curves[:, r - 1], full_valid),
           **{f'test_{k}': v for k, v in fidelity.correlations(
               curves[:, r - 1], full_test).items()}} for r in rungs]
  rows.append({'fidelity': 'the search\'s fixed fidelity (best of epochs '
                           f'{", ".join(map(str, evaluated))}, patience '
                           f'{search_fidelity["patience"]})',
               'epochs': int(search_fidelity['epochs']),
               **fidelity.correlations(fixed, full_valid),
               **{f'test_{k}': v for k, v in fidelity.correlations(
                   fixed, full_test).items()}})
  schedules = fidelity.schedule_rows(
      curves, full_valid, search_fidelity['epochs'], round_size, rungs[-1])
  write(rows, schedules, curves, rungs, full_valid, archs, full, config,
        search_fidelity, data.dataset.name, round_size, drawn)


def full_protocol_run(config, data: driver.TrainingData, workdir: str,
                      archs, index: int, full_record: str) -> dict:
  """The full-protocol run of `archs[index]` (seed `config.seed`), read
  from `full_record` or trained (resuming under `workdir`) and added to
  it."""
  arch = archs[index]
  logging.info('Full protocol %d of %d: %s', index + 1, len(archs), arch)
  (run,) = driver.train_with_seeds(
      config, evaluation.retraining_directory(workdir, arch), arch,
      [config.seed], data, record=full_record)
  return run


def recorded_measurements(config, data: driver.TrainingData, archs, epochs,
                          curve_record: str, full_record: str):
  """`(archs, [N, epochs] curves, full-protocol runs)` of the `archs`
  whose curve (to `epochs`) and full-protocol run the records hold, in the
  order drawn; nothing is trained.

  Raises:
    ValueError: the records hold fewer than 2 of them, or hold one
      measured under another protocol (naming file and line).
  """
  curves = fidelity.recorded_curves(
      curve_record, fidelity.low_fidelity_protocol(config))
  run_config = driver.seed_config(config, config.seed)
  kept = []
  for arch in archs:
    curve = curves.get(arch.to_string(), [])
    run = driver.recorded_run(full_record, driver.run_protocol(
        run_config, data.dataset, arch))
    if run is not None and len(curve) >= epochs:
      kept.append((arch, curve[:epochs], run))
  if len(kept) < 2:
    raise ValueError(
        f'--recorded_only: the records {curve_record} and '
        f'{full_record} hold {len(kept)} of the {len(archs)} '
        'architectures measured in full; a rank correlation needs 2. Run '
        'the study without --recorded_only to train them.')
  archs, kept_curves, runs = zip(*kept)
  return list(archs), np.array(kept_curves), list(runs)


def write(rows, schedules, curves, rungs, full_valid, archs, full, config,
          search_fidelity, dataset: str, round_size: int, drawn: int) -> None:
  """`<out>.json` (every figure), `<out>.md` (the table), `<out>.png`."""
  out = _OUT.value
  os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
  with open(out + '.json', 'w') as f:
    json.dump({'dataset': dataset, 'user_fraction':
               config.data.user_fraction, 'rows': rows,
               'schedules': schedules, 'archs': [
                   {'arch': a.to_string(), 'curve': c.tolist(),
                    'full_valid_ndcg@20': r['valid/ndcg@20'],
                    'full_test_ndcg@20': r['test/ndcg@20'],
                    'full_best_epoch': r['best_epoch']}
                   for a, c, r in zip(archs, curves, full)]}, f, indent=1)
  # The command as given, less the machine's own paths.
  command = shlex.join(['python', '-m', 'experiments.fidelity_study'] + [
      arg for arg in sys.argv[1:]
      if not arg.startswith(('--workdir', '--config.data_dir'))])
  lines = [
      f'<!-- Written by `{command}`; edit the code, not this file. -->',
      f'Produced on a {paper.machine()}.', '',
      f'Fidelity study on {dataset}'
      + (f' ({config.data.user_fraction:.0%} of users)'
         if config.data.user_fraction < 1 else '')
      + f': {len(archs)} architectures drawn from the space '
      f'({config.space or "all of it"}), seed {config.seed}. Low fidelity: '
      f'trained in populations of {config.population_size} at batch '
      f'{search_fidelity["batch_size"]}, validation NDCG@20 after each '
      'epoch. Full protocol: the training protocol (at most '
      f'{config.epochs} epochs at batch {config.batch_size}, patience '
      f'{config.patience}); best validation NDCG@20 from '
      f'{full_valid.min():.4f} to {full_valid.max():.4f}.', '']
  if len(archs) < drawn:
    lines += [
        f'**Interim:** the {len(archs)} of the {drawn} architectures drawn '
        'whose full-protocol run is recorded so far; the study is still '
        'under way, and these figures will change.', '']
  lines += [
      '| fidelity | Spearman (valid) | Kendall (valid) | Spearman (test) '
      '| Kendall (test) |', '| --- | ---: | ---: | ---: | ---: |']
  lines += [f'| {r["fidelity"]} | {r["spearman"]:.3f} | {r["kendall"]:.3f} '
            f'| {r["test_spearman"]:.3f} | {r["test_kendall"]:.3f} |'
            for r in rows]
  budget = round_size * search_fidelity['epochs']
  lines += [
      '', f'Schedules replayed on these curves at the epochs of one '
      f'fixed-fidelity round ({round_size} candidates x '
      f'{search_fidelity["epochs"]} epochs = {budget}): a round of as many '
      'of the architectures as the schedule pays for (at most '
      f'{len(archs)}), halved at each rung by best validation NDCG@20 so '
      'far, picks the best at its last epoch; 2,000 draws. "pick": the mean '
      'full-protocol validation NDCG@20 of the pick; "top 3": how often it '
      'is among the 3 best of all.', '',
      '| rungs | eta | epochs | round size | epochs per round | pick | '
      'top 3 |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |']
  lines += [f'| {",".join(map(str, r["rungs"])) or "none (fixed)"} | '
            f'{r["eta"] if r["rungs"] else ""} | {r["epochs"]} | '
            f'{r["round_size"]} | {r["cost"]} | '
            f'{r["pick"]:.4f} | {r["top3"]:.2f} |' for r in schedules]
  lines += ['', f'![fidelity]({os.path.basename(out)}.png)']
  with open(out + '.md', 'w') as f:
    f.write('\n'.join(lines) + '\n')
  figure, axes = plt.subplots(1, len(rungs), figsize=(3.2 * len(rungs), 3),
                              sharey=True)
  for axis, rung, row in zip(np.atleast_1d(axes), rungs, rows):
    axis.scatter(curves[:, rung - 1], full_valid, s=12)
    axis.set_title(f'epoch {rung}: Spearman {row["spearman"]:.2f}')
    axis.set_xlabel('low-fidelity valid NDCG@20')
  np.atleast_1d(axes)[0].set_ylabel('full-protocol valid NDCG@20')
  figure.tight_layout()
  figure.savefig(out + '.png', dpi=120)
  print('\n'.join(lines))


if __name__ == '__main__':
  common.run(main)
