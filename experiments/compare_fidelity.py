r"""A fixed-fidelity search against a multi-fidelity one at equal wall time.

  python -m experiments.compare_fidelity --config.dataset=ml-100k \
      --config.data_dir=/path/to/datasets --workdir=/tmp/compare_fidelity \
      --wall_seconds=1800 --rungs=1,3,9 --eta=3 --refill=32 --epochs=9

Runs, for each seed of `--seeds`, the search of `--config` twice with
`config.max_wall_seconds=--wall_seconds` and a budget the wall time
exhausts first (the limit is checked after each round, so a search's last
round may run over it: the table gives each search's own seconds):

* `fixed`: the config's own fidelity (every candidate trains
  `fidelity.epochs` epochs, early stopping aside);
* `multi-fidelity`: up to `--epochs` epochs, successive halving at
  `--rungs` with `--eta`, and `--refill` new proposals per round in the
  slots halving frees.

Each search's `final.top_k` best candidates are then retrained under the
config's full training protocol (seed `final.seeds`), and the table
reports the best full-protocol validation NDCG@20 each search found (and
that finalist's test NDCG@20, which decides nothing). Both searches are
resumable workdirs under `--workdir`, so a run continues where it
stopped. Writes `<out>.md` and `<out>.json`.
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
from ml_collections import config_flags
import numpy as np

from experiments import common
from experiments import paper
from gnas_jax.search import loop

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/search.py',
    'Search configuration: data, space, strategy, fixed fidelity and the '
    'full training protocol.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where the searches live.')
_WALL_SECONDS = flags.DEFINE_integer(
    'wall_seconds', 1800, 'Wall time of each search (its rounds; the '
    'retraining of its finalists comes on top).', lower_bound=1)
_SEEDS = flags.DEFINE_list('seeds', ['0'], 'Search seeds.')
_EPOCHS = flags.DEFINE_integer(
    'epochs', 9, 'Most epochs a multi-fidelity candidate trains.',
    lower_bound=1)
_RUNGS = flags.DEFINE_list('rungs', ['1', '3'],
                           'Successive-halving rungs of the multi-fidelity '
                           'search (epochs).')
_ETA = flags.DEFINE_integer('eta', 3, 'A rung keeps the best 1/eta.')
_REFILL = flags.DEFINE_integer(
    'refill', 32, 'New proposals per multi-fidelity round.', lower_bound=0)
_OUT = flags.DEFINE_string('out', 'results/multi_fidelity',
                           'Output path without its extension.')
flags.mark_flags_as_required(['workdir'])

VARIANTS = ('fixed', 'multi-fidelity')


def variant_config(config, variant: str, seed: int, wall_seconds: int,
                   epochs: int, rungs, eta: int, refill: int):
  """`config` as `variant` searches with it."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.seed = seed
    config.max_wall_seconds = wall_seconds
    # The wall time ends the search, not the budget.
    config.budget = 10 ** 9
    config.final.reference = ''
    config.progress = False
    if variant == 'multi-fidelity':
      config.fidelity.epochs = epochs
      config.fidelity.rungs = tuple(rungs)
      config.fidelity.eta = eta
      config.fidelity.refill = refill
  loop.check_config(config)
  return config


def compare(config, workdir: str, seeds, wall_seconds: int, epochs: int,
            rungs, eta: int, refill: int) -> list[dict]:
  """One record per (variant, seed): the search's facts and its best
  finalist under the full protocol."""
  # Every config is checked before the first search starts.
  searches = [(seed, variant, variant_config(
      config, variant, seed, wall_seconds, epochs, rungs, eta, refill))
              for seed in seeds for variant in VARIANTS]
  records = []
  for seed, variant, searched in searches:
    summary = loop.run_search(
        searched, os.path.join(workdir, f'{variant}_seed{seed}'))
    best = max(summary['finalists'],
               key=lambda f: f['valid_ndcg@20']['mean'])
    records.append({
        'variant': variant, 'seed': seed,
        'evaluations': summary['evaluations'],
        'rounds': summary['rounds'],
        'search_seconds': summary['wall_seconds'],
        'best_arch': best['arch'],
        'search_valid_ndcg@20': best['search_valid_ndcg@20'],
        'valid_ndcg@20': best['valid_ndcg@20']['mean'],
        'test_ndcg@20': best['test_ndcg@20']['mean'],
        'fidelity': searched.fidelity.to_dict()})
  return records


def table(records: list[dict], config, wall_seconds: int) -> str:
  """Markdown: one row per search, and each variant's mean."""
  lines = [
      f'Searches of {wall_seconds} s each on {config.dataset} '
      f'(strategy {config.strategy}, population {config.population_size}); '
      f'the best {config.final.top_k} of each retrained under the full '
      f'protocol (at most {config.epochs} epochs at batch '
      f'{config.batch_size}, patience {config.patience}), seed '
      f'{config.final.seeds[0]}. Produced on a {paper.machine()}.', '',
      '| search | seed | fidelity | evaluations | rounds | search s | best '
      'full-protocol valid NDCG@20 | its test NDCG@20 | architecture |',
      '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |']
  for r in records:
    fidelity = r['fidelity']
    schedule = (f'{fidelity["epochs"]} epochs' if r['variant'] == 'fixed'
                else f'{fidelity["epochs"]} epochs, rungs '
                f'{",".join(map(str, fidelity["rungs"]))}, eta '
                f'{fidelity["eta"]}, refill {fidelity["refill"]}')
    lines.append(
        f'| {r["variant"]} | {r["seed"]} | {schedule} | {r["evaluations"]} '
        f'| {r["rounds"]} | {r["search_seconds"]:.0f} | '
        f'{r["valid_ndcg@20"]:.4f} | {r["test_ndcg@20"]:.4f} | '
        f'`{r["best_arch"]}` |')
  for variant in VARIANTS:
    values = [r['valid_ndcg@20'] for r in records if r['variant'] == variant]
    lines.append(f'\n{variant}: best full-protocol validation NDCG@20 '
                 f'{np.mean(values):.4f} (mean over {len(values)} seeds)')
  return '\n'.join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  config = _CONFIG.value
  rungs = [int(r) for r in _RUNGS.value]
  records = compare(config, _WORKDIR.value, [int(s) for s in _SEEDS.value],
                    _WALL_SECONDS.value, _EPOCHS.value, rungs, _ETA.value,
                    _REFILL.value)
  text = table(records, config, _WALL_SECONDS.value)
  out = _OUT.value
  os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
  with open(out + '.md', 'w') as f:
    f.write(text + '\n')
  with open(out + '.json', 'w') as f:
    json.dump(records, f, indent=1)
  print(text)


if __name__ == '__main__':
  common.run(main)
