"""One configuration per table of `experiments.reproduce`.

Each file's `get_config(scale)` takes one of `SCALES`, which a command
gives after the path: `--config=experiments/configs/paper/accuracy.py:full`.
"""

SCALES = ('small', 'full')


def check_scale(scale: str) -> None:
  """Raises ValueError unless `scale` is one of `SCALES`."""
  if scale not in SCALES:
    raise ValueError(f'Unknown scale {scale!r}; choose from '
                     f'{", ".join(SCALES)}.')
