r"""Searches architectures, retrains the best and tests them.

  python -m experiments.search --config=experiments/configs/search.py \
      --workdir=/tmp/gnas_search [--config.strategy=adversarial \
      --config.dataset=ml-100k --config.data_dir=../shared/datasets \
      --config.budget=208 --config.population_size=16 --config.seed=0]

Writes `WORKDIR/trials.sqlite` (every evaluated candidate), TensorBoard
logs, the strategy's checkpoints and `WORKDIR/search_summary.json`; run the
same command again to resume an interrupted search. Any architecture
string it prints retrains with `python -m experiments.train --workdir=DIR
--config.arch='<string>'` (and the same dataset flags).
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from gnas_jax import driver
from gnas_jax.search import loop

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/search.py', 'Search configuration.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for the trial store, checkpoints and logs.')
flags.mark_flags_as_required(['workdir'])


def format_summary(summary) -> str:
  """A Markdown table of the finalists and the reference."""
  lines = ['| architecture | search valid NDCG@20 | valid NDCG@20 | '
           'test Recall@20 | test NDCG@20 |',
           '| --- | ---: | ---: | ---: | ---: |']

  cell = driver.format_statistic
  for finalist in summary.get('finalists', []):
    lines.append(f'| `{finalist["arch"]}` | '
                 f'{finalist["search_valid_ndcg@20"]:.4f} | '
                 f'{cell(finalist["valid_ndcg@20"])} | '
                 f'{cell(finalist["test_recall@20"])} | '
                 f'{cell(finalist["test_ndcg@20"])} |')
  reference = summary.get('reference')
  if reference:
    lines.append(f'| {reference["name"]} (reference) | | '
                 f'{cell(reference["valid_ndcg@20"])} | '
                 f'{cell(reference["test_recall@20"])} | '
                 f'{cell(reference["test_ndcg@20"])} |')
  return '\n'.join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  common.quiet_library_logs()
  summary = loop.run_search(_CONFIG.value, _WORKDIR.value)
  print(format_summary(summary))
  print(f'{summary["strategy"]} search: {summary["evaluations"]} '
        f'evaluations in {summary["wall_seconds"]:.0f} s; best '
        f'{summary.get("best_arch")}; summary in '
        f'{_WORKDIR.value}/search_summary.json')


if __name__ == '__main__':
  common.run(main)
