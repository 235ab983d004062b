"""Helpers shared by the experiment entry points."""

import logging

from absl import logging as absl_logging

# Libraries whose INFO records (one per checkpoint step, per file) drown
# the training log; their warnings and errors still show.
_QUIET_PACKAGES = ('/orbax/', '/tensorboardX/')


class _DropLibraryInfo(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno > logging.INFO or not any(
        package in record.pathname for package in _QUIET_PACKAGES)


def quiet_library_logs() -> None:
  """Hides INFO logs from checkpointing and summary libraries."""
  absl_logging.get_absl_handler().addFilter(_DropLibraryInfo())
