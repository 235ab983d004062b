"""The README's table of config options, and configs that stay data."""

import ast
import os
import re

import pytest

from experiments import config_docs
from experiments.configs import search
from experiments.configs import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, 'experiments', 'configs')


def _leaves(config, prefix=''):
  for key, value in config.items():
    if hasattr(value, 'items'):
      yield from _leaves(value, f'{prefix}{key}.')
    else:
      yield prefix + key


def test_readme_shows_the_current_config_tables():
  with open(config_docs.README) as f:
    readme = f.read()
  assert config_docs.replace_tables(
      readme, config_docs.config_tables()) == readme, (
          'README.md is out of date: run python -m experiments.config_docs '
          '--write')


def _rows(table):
  """Option -> default cell of each row of a Markdown table."""
  rows = {}
  for line in table.splitlines():
    if line.startswith('| `'):
      cells = re.split(r' (?<!\\)\| ', line)
      rows[cells[0].strip('| `')] = cells[1]
  return rows


def test_every_option_is_listed_with_its_default():
  trained, added = config_docs.config_tables().split(
      '`experiments/configs/search.py` adds:')
  listed = {train: _rows(trained), search: {**_rows(trained), **_rows(added)}}
  for module, rows in listed.items():
    config = module.get_config()
    for name in _leaves(config):
      assert name in rows, f'{module.__name__}: {name}'
      assert rows[name] == '`' + repr(config[name]).replace('|', r'\|') + '`'


def test_comments_become_meanings():
  rows = {o.name: o for o in config_docs.options(train)}
  assert rows['data.kcore'].comment == (
      'Repeatedly drop users and items with fewer interactions (0 '
      'disables).')
  # A comment spanning lines is one sentence; a group keeps its own.
  assert rows['patience'].comment.startswith(
      'Evaluations without a better validation score before stopping. '
      'Graph recommenders')
  assert rows['data.synthetic'].is_group
  assert rows['data.synthetic'].comment == (
      'The synthetic generator (the offline default).')
  # Options in file order, each group's options right after it.
  names = list(rows)
  assert names.index('dataset') < names.index('data') < names.index(
      'data.synthetic') < names.index('data.synthetic.seed') < names.index(
          'arch')


def test_replace_tables_needs_both_markers():
  text = f'a\n{config_docs.START}\nold\n{config_docs.END}\nb\n'
  assert config_docs.replace_tables(text, 'new') == 'a\nnew\nb\n'
  with pytest.raises(ValueError, match='config-table:end'):
    config_docs.replace_tables(f'a\n{config_docs.START}\n', 'new')


def _config_files():
  for folder, _, names in os.walk(CONFIGS):
    for name in sorted(names):
      if name.endswith('.py'):
        yield os.path.relpath(os.path.join(folder, name), ROOT)


@pytest.mark.parametrize('path', list(_config_files()))
def test_configs_import_only_ml_collections_and_configs(path):
  # Configs name components, they do not import them: loading one must not
  # start JAX or touch the library.
  with open(os.path.join(ROOT, path)) as f:
    tree = ast.parse(f.read(), path)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      modules = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      modules = [node.module or ''] if node.level == 0 else []
    else:
      continue
    for module in modules:
      assert module.split('.')[0] == 'ml_collections' or (
          module + '.').startswith('experiments.configs.'), (
              f'{path}:{node.lineno} imports {module}')
