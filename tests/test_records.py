"""Tests for the records of finished work: appending, reading past an
interrupted write, and refusing a row of another protocol."""

import logging
import re

import pytest

from gnas_jax import records


def test_rows_read_back_with_their_line_numbers(tmp_path):
  path = str(tmp_path / 'folder' / 'runs.jsonl')
  assert records.read(path) == []
  records.append(path, [{'arch': 'mf'}, {'arch': 'gcn'}])
  records.append(path, [])
  records.append(path, [{'arch': 'gat', 'valid': [0.5, 0.25]}])
  assert records.read(path) == [(1, {'arch': 'mf'}), (2, {'arch': 'gcn'}),
                                (3, {'arch': 'gat', 'valid': [0.5, 0.25]})]


def test_an_interrupted_append_costs_only_its_own_row(tmp_path, caplog):
  path = str(tmp_path / 'runs.jsonl')
  records.append(path, [{'arch': 'mf'}])
  with open(path, 'a') as f:
    f.write('{"arch": "gc')  # Killed mid-write.
  with caplog.at_level(logging.WARNING):
    assert records.read(path) == [(1, {'arch': 'mf'})]
  assert 'dropped an unfinished last line (12 characters)' in caplog.text
  records.append(path, [{'arch': 'gcn'}])
  assert [row['arch'] for _, row in records.read(path)] == ['mf', 'gcn']
  # Killed between a whole row and its newline: the row is kept.
  with open(path, 'a') as f:
    f.write('{"arch": "gat"}')
  records.append(path, [{'arch': 'gin'}])
  assert [row['arch'] for _, row in records.read(path)] == [
      'mf', 'gcn', 'gat', 'gin']


@pytest.mark.parametrize('line', ['[1, 2]', '{"arch": ', 'NaN x'])
def test_a_damaged_line_before_the_last_is_named(tmp_path, line):
  path = str(tmp_path / 'runs.jsonl')
  with open(path, 'w') as f:
    f.write(f'{{"arch": "mf"}}\n{line}\n{{"arch": "gcn"}}\n')
  with pytest.raises(ValueError, match=re.escape(
      f'{path}:2 is not a JSON object; mend or remove that line.')):
    records.read(path)


def test_find_returns_the_rows_asked_for_and_refuses_other_protocols(
    tmp_path):
  path = str(tmp_path / 'runs.jsonl')
  protocol = {'epochs': 10, 'data': {'split': 'random', 'seed': 0}}
  records.append(path, [
      {'arch': 'mf', 'valid': 0.1, 'protocol': protocol},
      {'arch': 'gcn', 'valid': 0.2, 'protocol': {**protocol, 'epochs': 5}},
      {'arch': 'gat', 'valid': 0.3, 'protocol': protocol}])
  asked = {'mf': protocol, 'gat': protocol}
  find = lambda expected: records.find(
      path, key=lambda row: row['arch'], expected=expected,
      subject='{} was trained'.format)
  # gcn, trained otherwise, is not asked for, so it does not matter.
  assert find(asked.get) == {'mf': {'arch': 'mf', 'valid': 0.1},
                             'gat': {'arch': 'gat', 'valid': 0.3}}
  assert records.find(None, key=lambda row: row['arch'],
                      expected=asked.get, subject=str) == {}
  other = {'epochs': 10, 'data': {'split': 'temporal'}, 'batch': 64}
  with pytest.raises(ValueError) as error:
    find({'gat': other}.get)
  assert str(error.value) == (
      f"{path}:3: gat was trained with other settings: batch was absent, "
      "now 64; data.seed was 0, now absent; data.split was 'random', now "
      "'temporal'. Give another record or remove that line.")


def test_changed_settings_compares_nested_settings_by_dotted_key():
  old = {'lr': 0.01, 'data': {'split': 'random', 'seed': 0}}
  new = {'lr': 0.01, 'data': {'split': 'random', 'seed': 1}, 'l2': 1e-4}
  assert records.changed_settings(old, new) == [('data.seed', 0, 1),
                                                ('l2', records.ABSENT, 1e-4)]
  assert records.changed_settings(old, old) == []
  # A setting of None is a missing one: records from before it still fit.
  assert records.changed_settings(old, {**old, 'max_wall_seconds': None}) == []
