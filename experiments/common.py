"""Helpers shared by the experiment entry points."""

import ast
import difflib
import logging
import re
import sys
from typing import Callable, Sequence

from absl import app
from absl import flags
from absl import logging as absl_logging
import ml_collections

# Libraries whose INFO records (one per checkpoint step, per file) drown
# the training log; their warnings and errors still show.
_QUIET_PACKAGES = ('/orbax/', '/clu/')

# What a user can get wrong in a command: a value out of range, a missing
# file. Anything else is a bug, and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError)


class _DropLibraryInfo(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno > logging.INFO or not any(
        package in record.pathname for package in _QUIET_PACKAGES)


def table_cell(record: dict, key: str, fmt: str) -> str:
  """`record[key]` formatted with `fmt`, or a dash where it is missing or
  None (a figure that run did not measure)."""
  value = record.get(key)
  return '—' if value is None else format(value, fmt)


class _IntegerListParser(flags.ListParser):
  """Comma-separated integers, refused with the value as given."""

  def parse(self, argument):
    items = super().parse(argument)
    try:
      return [int(item) for item in items]
    except (TypeError, ValueError):
      raise ValueError(
          f'expected comma-separated integers, got {argument!r}') from None

  def flag_type(self) -> str:
    return 'comma separated list of integers'


def define_integer_list(name: str, default: Sequence[int], help_text: str):
  """A flag of comma-separated integers (`--seeds=0,1,2`); a value that is
  not one is a one-line error naming the flag (`run`)."""
  return flags.DEFINE(_IntegerListParser(), name, list(default), help_text,
                      serializer=flags.CsvListSerializer(','))


def quiet_library_logs() -> None:
  """Hides INFO logs from checkpointing and summary libraries."""
  absl_logging.get_absl_handler().addFilter(_DropLibraryInfo())


def run(main: Callable[[list[str]], None],
        user_errors: tuple[type[Exception], ...] = USER_ERRORS) -> None:
  """`app.run(main)` that answers a user's mistake with one line.

  A bad flag (an unknown `--config.*` option among them, with the closest
  names it has) or an error of `user_errors` raised by `main` prints
  `Error: <message>` to stderr and exits with status 1, without the
  traceback, which only says where the check is. `--debug` (defined here)
  raises the error instead, traceback and all.

  Args:
    main: The entry point's main function, as for `app.run`.
    user_errors: The exceptions that are the user's mistakes.
  """
  flags.DEFINE_bool('debug', False, 'Show the traceback of an error '
                    'instead of its one-line message.')

  def parse(argv):
    if any(arg in _HELP for arg in argv[1:]):
      print(usage(argv))
      raise SystemExit(0)
    try:
      return flags.FLAGS(argv)
    except (flags.Error, AttributeError, KeyError) as e:
      # --debug itself may not be parsed yet.
      if _debug_requested(argv):
        raise
      if isinstance(e, flags.Error):
        _fail(str(e))
      # ml_collections raises these for an option the config lacks.
      message = unknown_config_option(argv)
      if message is None:
        raise
      _fail(message)

  def checked_main(argv):
    try:
      return main(argv)
    except user_errors as e:
      if flags.FLAGS.debug:
        raise
      _fail(_message(e))

  app.run(checked_main, flags_parser=parse)


# absl's own help flags exit with status 1 and list no config option.
_HELP = ('--help', '-h', '-?', '--helpshort')


def usage(argv: Sequence[str],
          flag_values: flags.FlagValues = flags.FLAGS) -> str:
  """The entry point's `--help`: its docstring, its flags, and every option
  of each config flag (of the file `argv` names, else the default one)
  with its default and meaning."""
  from experiments import config_docs  # pylint: disable=g-import-not-at-top
  main = sys.modules['__main__']
  parts = [(main.__doc__ or '').strip(), '', flag_values.main_module_help()]
  files = dict(match.groups() for match in (
      re.fullmatch(r'--([A-Za-z_]\w*)=(.*)', arg) for arg in argv[1:])
      if match)
  for name in sorted(flag_values):
    flag = flag_values[name]
    if flag.flag_type() != 'config object':  # Not a config file flag.
      continue
    path = files.get(name) or ast.literal_eval(flag.default_as_str)
    config = flag.parser.parse(path)
    parts += ['', f'Options of --{name}={path} (set one with '
              f'--{name}.<option>=<value>):',
              config_docs.flag_help(name, path, config)]
  return '\n'.join(parts)


def _fail(message: str) -> None:
  raise SystemExit(f'Error: {message}')


def _message(error: Exception) -> str:
  # str() of a KeyError is the repr of its message, quotes and all.
  if isinstance(error, KeyError) and len(error.args) == 1:
    return str(error.args[0])
  return str(error)


def _debug_requested(argv: Sequence[str]) -> bool:
  debug = False
  for arg in argv[1:]:
    if arg in ('--debug', '--debug=true', '--debug=True', '--debug=1'):
      debug = True
    elif arg in ('--nodebug', '--debug=false', '--debug=False', '--debug=0'):
      debug = False
  return debug


def unknown_config_option(argv: Sequence[str],
                          flag_values: flags.FlagValues = flags.FLAGS
                          ) -> str | None:
  """The message for the first `--<config flag>.<path>` of `argv` whose
  path the config lacks, with the closest names it has; None if all exist.

  The config is the one `argv` names (`--config=FILE`), else the flag's
  default.
  """
  files = {}
  overrides = []
  for arg in argv[1:]:
    match = re.fullmatch(r'--([A-Za-z_]\w*)(\.[^=]+)?(=.*)?', arg)
    if not match or match[1] not in flag_values:
      continue
    if match[2]:
      overrides.append((match[1], match[2][1:]))
    elif match[3]:
      files[match[1]] = match[3][1:]
  for name, path in overrides:
    flag = flag_values[name]
    config = (flag.parser.parse(files[name]) if name in files
              else flag.value)
    if not isinstance(config, ml_collections.ConfigDict):
      continue
    node, parents = config, [name]
    for part in path.split('.'):
      if not isinstance(node, ml_collections.ConfigDict):
        return (f'unknown option --{name}.{path}: --{".".join(parents)} '
                'is a value, not a group of options.')
      if part not in node:
        option = '.'.join(parents)
        close = difflib.get_close_matches(part, list(node.keys()), n=3)
        if close:
          return (f'unknown option --{name}.{path}; did you mean '
                  + ' or '.join(f'--{option}.{c}' for c in close) + '?')
        return (f'unknown option --{name}.{path}; the options of {option} '
                f'are {", ".join(sorted(node.keys()))}.')
      node = node[part]
      parents.append(part)
  return None
