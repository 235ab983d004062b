r"""Merges `experiments/device_check.sh`'s records into the throughput table.

  python -m experiments.merge_device_check --device_out=/path/to/OUT

Copies the device's `throughput/<platform>_<dataset>_small.json` records
into `results/throughput/`, beside the CPU ones committed there, and
rewrites `results/throughput.md` and `results/throughput.png` from all of
them (no measuring: each platform's columns come from its records).
"""

import os
import shutil
import tempfile

from absl import app
from absl import flags
import jax

from experiments import paper

_DEVICE_OUT = flags.DEFINE_string(
    'device_out', None, 'The folder device_check.sh wrote ($OUT).')
_RESULTS = flags.DEFINE_string('results', 'results', 'The results folder.')
flags.mark_flag_as_required('device_out')


def merge(device_out: str, results: str) -> str:
  """Copies the device records into `results` and rewrites the table.

  Returns:
    The table's Markdown.
  """
  source = os.path.join(device_out, 'throughput')
  found = sorted(n for n in os.listdir(source) if n.endswith('_small.json')
                 ) if os.path.isdir(source) else []
  if not found:
    raise ValueError(f'No <platform>_<dataset>_small.json records in '
                     f'{source}; run experiments/device_check.sh first.')
  records = os.path.join(results, 'throughput')
  os.makedirs(records, exist_ok=True)
  for name in found:
    shutil.copy(os.path.join(source, name), records)
  with tempfile.TemporaryDirectory() as workdir:
    shutil.copytree(records, os.path.join(workdir, 'throughput'))
    config = paper.paper_config('throughput', 'small')
    # Every platform is measured already: nothing is run here.
    here = jax.default_backend()
    missing = [d for d in config.population_sizes if not os.path.exists(
        os.path.join(workdir, 'throughput', f'{here}_{d}_small.json'))]
    if missing:
      raise ValueError(f'{records} has no {here} records for {missing}; '
                       'run `python -m experiments.reproduce '
                       '--table=throughput --scale=small` here first.')
    output = paper.run_throughput(config, paper.Run(workdir))
    text = output.write(paper.Run(workdir), 'throughput', 0.0)
    text = text.replace(
        text.splitlines()[1],
        'Merged by `python -m experiments.merge_device_check` from the '
        f'records in `{records}/`, each measured on the platform its '
        'columns name.')
    with open(os.path.join(results, 'throughput.md'), 'w') as f:
      f.write(text)
    shutil.copy(os.path.join(workdir, 'throughput.png'), results)
  return text


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  print(merge(_DEVICE_OUT.value, _RESULTS.value))


if __name__ == '__main__':
  app.run(main)
