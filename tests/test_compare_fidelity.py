"""The equal-wall-time comparison of fixed and multi-fidelity searches."""

import json
import os

import pytest

from experiments import fidelity
from experiments import paper
from experiments.configs import search_test
from gnas_jax import records as records_lib
from gnas_jax.search import loop
from gnas_jax.search import strategies as strategies_lib


@pytest.mark.usefixtures('rounds_outlast_a_second')
def test_both_searches_get_the_same_wall_time_and_protocol(tmp_path):
  config = search_test.get_config()
  with config.unlocked():
    config.strategy = 'random'
  searches = tmp_path / 'searches.jsonl'
  records = fidelity.compare(
      config, str(tmp_path / 'runs'), seeds=[0], wall_seconds=1, epochs=2,
      rungs=[1], eta=2, refill=2, record=str(searches))
  assert [r['variant'] for r in records] == ['fixed', 'multi-fidelity']
  fixed, multi = records
  assert fixed['fidelity']['rungs'] == [] and multi['fidelity']['refill'] == 2
  for record in records:
    # The wall time, not the budget, ended the search after its first round.
    assert record['rounds'] == 1
    workdir = tmp_path / 'runs' / f'{record["variant"]}_seed0'
    with open(workdir / 'search_summary.json') as f:
      summary = json.load(f)
    assert 'reference' not in summary
    best = max(summary['finalists'], key=lambda f: f['valid_ndcg@20']['mean'])
    assert record['valid_ndcg@20'] == best['valid_ndcg@20']['mean']
    assert record['best_arch'] == best['arch']
    assert record['machine'] == paper.machine()
  # A refilling round evaluates its population and the refills.
  assert (fixed['evaluations'], multi['evaluations']) == (4, 6)
  text = fidelity.table(records, config, 1)
  assert '| multi-fidelity | 0 | 2 epochs, rungs 1, eta 2, refill 2 | 6 |' in (
      text)
  assert f'| {paper.machine()} | `{multi["best_arch"]}` |' in text
  # A row recorded before rows named their machine says so.
  unrecorded = {k: v for k, v in multi.items() if k != 'machine'}
  assert f'| not recorded | `{multi["best_arch"]}` |' in fidelity.table(
      [unrecorded], config, 1)

  # The record alone carries the comparison elsewhere: nothing runs again.
  again = fidelity.compare(
      config, str(tmp_path / 'elsewhere'), seeds=[0], wall_seconds=1,
      epochs=2, rungs=[1], eta=2, refill=2, record=str(searches))
  assert again == records and not (tmp_path / 'elsewhere').exists()
  # One variant alone: its rows only, and the table's mean for it only.
  alone = fidelity.compare(
      config, str(tmp_path / 'elsewhere'), seeds=[0], wall_seconds=1,
      epochs=2, rungs=[1], eta=2, refill=2, record=str(searches),
      variants=('multi-fidelity',))
  assert alone == [multi]
  assert 'fixed:' not in fidelity.table(alone, config, 1)
  # A row of another protocol is refused before any search.
  with pytest.raises(ValueError, match=(
      f'{searches}:1: the fixed search of seed 0 was run with other '
      'settings: max_wall_seconds was 1, now 2. Give another record or '
      'remove that line.')):
    fidelity.compare(config, str(tmp_path / 'elsewhere'), seeds=[0],
                     wall_seconds=2, epochs=2, rungs=[1], eta=2, refill=2,
                     record=str(searches))
  # So is a multi-fidelity search run under older halving rules.
  rows = [json.loads(line) for line in searches.read_text().splitlines()]
  assert rows[1]['protocol']['fidelity'].pop('halving_rules') == (
      loop.HALVING_RULES)
  assert 'halving_rules' not in rows[0]['protocol']['fidelity']
  searches.write_text(''.join(json.dumps(row) + '\n' for row in rows))
  with pytest.raises(ValueError, match=(
      f'{searches}:2: the multi-fidelity search of seed 0 was run with other '
      f'settings: fidelity.halving_rules was absent, now '
      f'{loop.HALVING_RULES}.')):
    fidelity.compare(config, str(tmp_path / 'elsewhere'), seeds=[0],
                     wall_seconds=1, epochs=2, rungs=[1], eta=2, refill=2,
                     record=str(searches))
  # And a search by another revision of the strategy (the first revision
  # is no setting).
  revision = strategies_lib.STRATEGIES[config.strategy].revision
  rows[1]['protocol']['fidelity']['halving_rules'] = loop.HALVING_RULES
  rows[0]['protocol']['strategy_revision'] = revision + 1
  searches.write_text(''.join(json.dumps(row) + '\n' for row in rows))
  now = strategies_lib.revision_setting(config.strategy).get(
      'strategy_revision', records_lib.ABSENT)
  with pytest.raises(ValueError, match=(
      f'{searches}:1: the fixed search of seed 0 was run with other '
      f'settings: strategy_revision was {revision + 1}, now {now!r}.')):
    fidelity.compare(config, str(tmp_path / 'elsewhere'), seeds=[0],
                     wall_seconds=1, epochs=2, rungs=[1], eta=2, refill=2,
                     record=str(searches))
  assert not (tmp_path / 'elsewhere').exists()


def test_a_bad_schedule_is_refused_before_any_search(tmp_path):
  with pytest.raises(ValueError, match=r'is not increasing.*from --epochs, '
                     '--rungs, --eta and --refill'):
    fidelity.compare(search_test.get_config(), str(tmp_path), [0],
                     1, 4, [3, 1], 3, 2)
  config = search_test.get_config()
  config.final.top_k = 0
  with pytest.raises(ValueError, match=r'config\.final\.top_k=0: the '
                     'comparison retrains the best finalists'):
    fidelity.compare(config, str(tmp_path), [0], 1, 4, [1, 3], 3, 2)
  for variants in (('fixed', 'halving'), ('fixed', 'fixed')):
    with pytest.raises(ValueError, match=(
        f'--variants={",".join(variants)}: the variants are fixed, '
        r'multi-fidelity \(one or both, each once\)\.')):
      fidelity.compare(search_test.get_config(), str(tmp_path), [0],
                       1, 4, [1, 3], 3, 2, variants=variants)
  assert not os.listdir(tmp_path)
