"""What the command-line scripts (train.py, infer.py, python -m waveglow.evaluate) share: how a failure is
told and the exit codes.

A failure the user can act on (a missing or unsafe checkpoint, a bad config, option, file or device, a full
disk) is one line on stderr, ``error: <file or option>: <problem>``, and exit code 2 (``EXIT_ERROR``); a
traceback means a bug. Exit codes: 0 done; 1 done, but some input files were bad (each one listed);
2 the command could not run; 130 / 143 stopped by SIGINT / SIGTERM (see ``interrupts``).
"""

from __future__ import annotations

import sys

from .audio import AudioFileError
from .checkpoint import CheckpointError
from .config import ConfigError
from .device import DeviceError
from .filelists import DataError
from .inputs import InputError

EXIT_OK = 0
EXIT_BAD_FILES = 1  # the job finished; the inputs it lists as failed were not written
EXIT_ERROR = 2  # the command could not run; the one line on stderr says why

# Errors whose message already names the file or option and the problem: told in one line, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    CheckpointError,  # includes UnsafeCheckpointError
    ConfigError,
    DataError,
    AudioFileError,
    InputError,
    DeviceError,
    OSError,  # a full disk, a read-only or missing folder: "<path>: <reason>"
)


def error_line(exc: BaseException) -> str:
    """The error for the user: its message, or ``<file>: <reason>`` for an OSError. One line, except where
    the message itself is a listing (the data check's bad files)."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        return f"{where}: {exc.strerror}" if where else exc.strerror
    return str(exc).strip() or type(exc).__name__


def error_exit(exc: BaseException) -> int:
    """Print ``error: ...`` to stderr and return ``EXIT_ERROR``, for a script's ``main``."""
    print(f"error: {error_line(exc)}", file=sys.stderr)
    return EXIT_ERROR
