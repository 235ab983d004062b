r"""Prints the search space: its decisions, their choices, and its size.

  python -m experiments.space
  python -m experiments.space --arch=ngcf   # also show one architecture
"""

from absl import app
from absl import flags

from gnas_jax import space

_ARCH = flags.DEFINE_string(
    'arch', None, 'A preset or architecture string to show in canonical '
    'form with its encoding.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  width = max(len(d.name) for d in space.DECISIONS)
  for decision in space.DECISIONS:
    scope = f'per layer (up to {space.MAX_LAYERS})' if decision.per_layer \
        else 'global'
    choices = ', '.join(str(c) for c in decision.choices)
    print(f'{decision.name:<{width}}  {scope:<22}  {choices}')
  print(f'\nencoded length: {space.NUM_DECISIONS} ints')
  print(f'distinct canonical architectures: {space.count_canonical():,}')
  print(f'presets: {", ".join(sorted(space.PRESETS))}')
  if _ARCH.value:
    arch = space.from_string(_ARCH.value)
    print(f'\n{_ARCH.value}:\n  {arch.canonical().to_string()}\n  '
          f'{arch.canonical().encode().tolist()}')


if __name__ == '__main__':
  app.run(main)
