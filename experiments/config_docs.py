r"""Lists every option of the training and search configs with its default.

  python -m experiments.config_docs           # prints the Markdown tables
  python -m experiments.config_docs --write   # updates them in README.md

Each option's meaning is the comment block right above its assignment in
the config file (empty where there is none), so the configs stay the one
place where an option is explained; the README shows the tables between
`START` and `END`, and a test keeps them current.
"""

import ast
import dataclasses
import inspect
import os
from typing import Any

from absl import app
from absl import flags
import ml_collections

from experiments.configs import search
from experiments.configs import train

START = '<!-- config-table:start -->'
END = '<!-- config-table:end -->'
README = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'README.md')

_WRITE = flags.DEFINE_bool(
    'write', False, f'Replace the tables between {START} and {END} in '
    'README.md instead of printing them.')


@dataclasses.dataclass(frozen=True)
class Option:
  """One option (or group of options) of a config."""
  name: str  # Dotted, without `config.`: 'data.split'.
  default: Any
  comment: str
  is_group: bool = False


def _comments(source: str) -> dict[str, tuple[int, str]]:
  """Dotted name -> (line, comment above it) of each `config.<name> = ...`
  in `source`."""
  lines = source.splitlines()
  found = {}
  for node in ast.walk(ast.parse(source)):
    if not isinstance(node, ast.Assign) or len(node.targets) != 1:
      continue
    target = ast.unparse(node.targets[0])
    if not target.startswith('config.'):
      continue
    comment = []
    for above in reversed(lines[:node.lineno - 1]):
      if not above.strip().startswith('#'):
        break
      comment.insert(0, above.strip().lstrip('#').strip())
    found[target[len('config.'):]] = (node.lineno, ' '.join(comment))
  return found


def file_comments(path: str) -> dict[str, tuple[int, str]]:
  """`_comments` of the config file `path` and of the `experiments.configs`
  modules it builds on (its own comments first), for configs that extend
  another."""
  with open(path) as f:
    source = f.read()
  found = {}
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.ImportFrom) and node.module == 'experiments.configs':
      for alias in node.names:
        base = os.path.join(os.path.dirname(path), f'{alias.name}.py')
        # Ranked before this file's: the base config is built first.
        found.update({k: (line - 10**6, c)
                      for k, (line, c) in file_comments(base).items()})
  # An assignment without a comment keeps the meaning its base gave.
  found.update({k: (line, c) if c or k not in found else (line, found[k][1])
                for k, (line, c) in _comments(source).items()})
  return found


def options(module, config: ml_collections.ConfigDict | None = None,
            comments: dict[str, tuple[int, str]] | None = None
            ) -> list[Option]:
  """Every option and group of `module.get_config()`, groups first and in
  the order of the module's source; options set inside a group's literal
  follow it in the group's order. `config` and `comments` replace the
  module's config and source comments (for a config file given by path)."""
  if comments is None:
    comments = _comments(inspect.getsource(module))
  if config is None:
    config = module.get_config()

  def walk(config: ml_collections.ConfigDict, prefix: str) -> list[Option]:
    names = sorted(config.keys(), key=lambda k: comments.get(
        prefix + k, (float('inf'), ''))[0])
    found = []
    for key in names:
      name, value = prefix + key, config[key]
      comment = comments.get(name, (0, ''))[1]
      if isinstance(value, ml_collections.ConfigDict):
        found.append(Option(name, None, comment, is_group=True))
        found += walk(value, name + '.')
      else:
        found.append(Option(name, value, comment))
    return found

  return walk(config, '')


def flag_help(flag: str, path: str, config: ml_collections.ConfigDict
              ) -> str:
  """`--help`'s listing of `config` (loaded from `path`): each option as
  `--<flag>.<name>` with its default and meaning."""
  lines = []
  for option in options(None, config, file_comments(path.split(':')[0])):
    if option.is_group:
      continue
    lines.append(f'  --{flag}.{option.name}: {option.comment}'.rstrip())
    lines.append(f'    (default: {option.default!r})')
  return '\n'.join(lines)


def _cell(text: str) -> str:
  return text.replace('|', r'\|')


def markdown_table(rows: list[Option]) -> str:
  """`rows` as a Markdown table of option, default and meaning."""
  lines = ['| option | default | meaning |', '| --- | --- | --- |']
  for row in rows:
    default = '' if row.is_group else f'`{_cell(repr(row.default))}`'
    lines.append(f'| `{row.name}` | {default} | {_cell(row.comment)} |')
  return '\n'.join(lines)


def config_tables() -> str:
  """The README's block: every option of `train.py`, then what `search.py`
  adds to it or changes."""
  trained = {o.name: o for o in options(train)}
  added = [o for o in options(search) if o.name not in trained or (
      not o.is_group and o.default != trained[o.name].default)]
  return '\n'.join([
      START,
      '<!-- Written by `python -m experiments.config_docs --write` from '
      'the comments of the configs; edit those, not this table. -->',
      '`experiments/configs/train.py` (training; also the base of the '
      'search config):', '', markdown_table(list(trained.values())), '',
      '`experiments/configs/search.py` adds:', '', markdown_table(added),
      END])


def replace_tables(readme: str, tables: str) -> str:
  """`readme` with the text from `START` to `END` replaced by `tables`."""
  if readme.count(START) != 1 or readme.count(END) != 1:
    raise ValueError(f'{README} needs one {START} and one {END} line.')
  before, rest = readme.split(START)
  return before + tables + rest.split(END)[1]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  tables = config_tables()
  if not _WRITE.value:
    print(tables)
    return
  with open(README) as f:
    readme = f.read()
  with open(README, 'w') as f:
    f.write(replace_tables(readme, tables))


if __name__ == '__main__':
  app.run(main)
