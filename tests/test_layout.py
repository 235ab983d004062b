"""Tests of the package's shape: modules import in layers, without cycles."""

import ast
import pathlib

from conftest import ROOT

# The training stack, lowest first: each may import only those before it.
STACK = ('gnas_jax.space', 'gnas_jax.graph', 'gnas_jax.metrics',
         'gnas_jax.models', 'gnas_jax.train', 'gnas_jax.population',
         'gnas_jax.recommend', 'gnas_jax.driver',
         'gnas_jax.search.evaluation', 'gnas_jax.search.loop')


def _module_imports() -> dict[str, set[str]]:
  """Module name -> the package modules it imports at module level."""
  found = {}
  for path in (ROOT / 'gnas_jax').rglob('*.py'):
    name = '.'.join(path.relative_to(ROOT).with_suffix('').parts)
    name = name.removesuffix('.__init__')
    imported = set()
    for node in ast.parse(path.read_text()).body:
      if isinstance(node, ast.ImportFrom) and node.module.startswith(
          'gnas_jax'):
        imported |= {f'{node.module}.{alias.name}' for alias in node.names}
      elif isinstance(node, ast.Import):
        imported |= {a.name for a in node.names
                     if a.name.startswith('gnas_jax')}
    found[name] = imported
  # `from gnas_jax import train` names a module; `from m import f`, m.
  return {name: {_module_of(i, found) for i in imported} - {name}
          for name, imported in found.items()}


def _module_of(name: str, modules) -> str:
  while name not in modules:
    name = name.rsplit('.', 1)[0]
  return name


def test_the_training_stack_imports_only_downwards():
  imports = _module_imports()
  for position, module in enumerate(STACK):
    above = set(STACK[position + 1:])
    assert not imports[module] & above, (module, imports[module] & above)
  # Serving reads exported models: it needs no training code.
  assert not imports['gnas_jax.recommend'] & {'gnas_jax.train',
                                              'gnas_jax.population'}


def test_no_module_imports_itself_through_others():
  imports = _module_imports()
  done, path = set(), []

  def visit(module):
    assert module not in path, ' -> '.join(path + [module])
    if module in done:
      return
    path.append(module)
    for imported in sorted(imports[module]):
      # A package's __init__ importing its own modules is no cycle.
      if not imported.startswith(module + '.'):
        visit(imported)
    path.pop()
    done.add(module)

  for module in sorted(imports):
    visit(module)


def test_no_private_jit_internals_nor_module_level_optimizer():
  for path in [*(ROOT / 'gnas_jax').rglob('*.py'),
               *(ROOT / 'experiments').rglob('*.py')]:
    source = path.read_text()
    assert '__wrapped__' not in source, path
    for node in ast.parse(source).body:
      if isinstance(node, ast.Assign):
        assert 'optax.' not in ast.unparse(node.value), (path, node.lineno)
