"""A workdir used by one process at a time, and resumed past damage.

    with workdir.lock(path):
      ...

`lock` makes a workdir one process's at a time: two runs writing the same
checkpoints and trial store would each resume from the other's half-written
state. `restore_newest_intact` restores the newest checkpoint of an orbax
manager that reads back, so that one damaged checkpoint (a full disk, a
file lost in a copy) costs a step of work rather than the run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from typing import Any, Callable, Iterator

from absl import logging

LOCK_FILE = '.lock'


class CheckpointMismatch(ValueError):
  """An intact checkpoint that does not fit the run restoring it: not
  damage, so it is never set aside for an older one."""


@contextlib.contextmanager
def lock(workdir: str) -> Iterator[None]:
  """Holds `workdir` (created if needed) for this process.

  An exclusive `flock` of `workdir/.lock`, which holds the holder's pid for
  the message of whoever finds it taken. The kernel releases the lock when
  its process ends however it ends, so the file a killed process leaves
  blocks nobody.

  Raises:
    ValueError: another process (or another `lock` of this one) holds it.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as error:
    holder = os.pread(descriptor, 64, 0).decode(errors='replace').strip()
    os.close(descriptor)
    if error.errno not in (errno.EAGAIN, errno.EACCES):
      raise
    raise ValueError(
        f'workdir {workdir} is in use by process {holder or "(unknown)"}; '
        'wait for it to end or choose another workdir.') from None
  try:
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f'{os.getpid()}\n'.encode(), 0)
    yield
  finally:
    # An empty file reads as nobody's, to people as to `lock`.
    os.ftruncate(descriptor, 0)
    fcntl.flock(descriptor, fcntl.LOCK_UN)
    os.close(descriptor)


def describe(error: BaseException) -> str:
  """The gist of an exception in one line: its type and the first line of
  its message, without the JSON specs that tensorstore appends (nor
  orbax's advice to pad or truncate arrays that do not fit)."""
  lines = str(error).strip().splitlines()
  text = lines[0] if lines else ''
  for marker in (' [tensorstore_spec=', ' See full TensorStore details',
                 ' [source locations=', ' Truncating/padding is disabled'):
    text = text.split(marker)[0]
  if len(text) > 300:
    text = text[:297] + '...'
  return f'{type(error).__name__}: {text}' if text else type(error).__name__


def step_path(manager, step: int) -> str:
  """The directory of an orbax manager's step (default step names)."""
  return os.path.join(str(manager.directory), str(step))


def _set_aside(manager, step: int) -> str:
  """Moves a step out of its manager's directory, to `<directory>.damaged`,
  so that the manager can save that step again; returns where it went."""
  folder = f'{manager.directory}.damaged'
  os.makedirs(folder, exist_ok=True)
  target = os.path.join(folder, str(step))
  copy = 1
  while os.path.exists(target):
    copy += 1
    target = os.path.join(folder, f'{step}-{copy}')
  os.rename(step_path(manager, step), target)
  return target


def restore_newest_intact(manager, read: Callable[[int], Any]
                          ) -> tuple[int, Any] | None:
  """`(step, read(step))` for the newest step of `manager` that reads back.

  Any error of `read` but `CheckpointMismatch` marks a step damaged. Once an
  older step reads back, each newer damaged one is logged with a warning
  naming it and moved to `<directory>.damaged/<step>` (kept, for whoever
  wants to look, but out of the way of the steps the run saves again).

  Args:
    manager: an `orbax.checkpoint.CheckpointManager`.
    read: restores one step; raises when it cannot.

  Returns:
    The step and what `read` returned, or None when there is no step.

  Raises:
    ValueError: no step reads back (nothing is moved then), naming the
      directory and each step's error.
    CheckpointMismatch: from `read`, as is.
  """
  damaged = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      restored = read(step)
    except CheckpointMismatch:
      raise
    except Exception as error:  # pylint: disable=broad-except
      # Damage shows as anything from a JSON error to a tensorstore one.
      damaged.append((step, describe(error)))
      continue
    for bad_step, reason in damaged:
      path = step_path(manager, bad_step)
      aside = _set_aside(manager, bad_step)
      logging.warning(
          'Checkpoint %s is damaged (%s); resuming from %s, the newest '
          'intact one. The damaged one is now in %s.', path, reason,
          step_path(manager, step), aside)
    if damaged:
      manager.reload()
    return step, restored
  if damaged:
    details = '; '.join(f'{step_path(manager, step)}: {reason}'
                        for step, reason in damaged)
    raise ValueError(
        f'No checkpoint in {manager.directory} is intact ({details}); '
        'restore them from a backup or start a new workdir.')
  return None
