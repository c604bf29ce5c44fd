"""What the command-line scripts (train.py, infer.py, python -m waveglow.evaluate) share: how a failure is
told and the exit codes.

A failure the user can act on (a missing or unsafe checkpoint, a bad config, option, file or device, a full
disk) is one line on stderr, ``error: <file or option>: <problem>``, and exit code 2 (``EXIT_ERROR``); a
traceback means a bug. Exit codes: 0 done; 1 done, but some input files were bad (each one listed);
2 the command could not run; 130 / 143 stopped by SIGINT / SIGTERM (see ``interrupts``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from waveglow.audio import AudioFileError
from waveglow.checkpoints import CheckpointError
from waveglow.config import ConfigError
from waveglow.device import DeviceError
from waveglow.filelists import DataError
from waveglow.synth.inputs import InputError

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


def add_audio_override_args(parser: argparse.ArgumentParser, note: str = "") -> None:
    """The flags that set a published NVIDIA file's audio settings (``note`` is added to each help)."""
    parser.add_argument("--sampling-rate", type=int, help=f"Hz (default 22050){note}")
    parser.add_argument("--hop-length", type=int, help=f"upsampler stride in samples (default 256){note}")
    parser.add_argument("--filter-length", type=int, help=f"STFT size (default 1024){note}")
    parser.add_argument("--mel-fmin", type=float, help=f"Hz (default 0){note}")
    parser.add_argument("--mel-fmax", type=float, help=f"Hz (default 8000){note}")


def audio_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The AudioConfig fields given by ``add_audio_override_args`` flags."""
    names = ("sampling_rate", "hop_length", "filter_length", "mel_fmin", "mel_fmax")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}
