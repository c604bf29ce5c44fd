"""Atomic file writes: every file the package writes (checkpoints, audio, configs, lists, caches, reports,
plots) goes through a temporary file in the same folder that is renamed over the target, so a reader (or a
job resumed after a crash) sees either the old file or the complete new one, never a partial file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], durable: bool = True) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``.

    The folder is created if needed; on any error (or interrupt) the temporary file is removed and the old
    file, if any, is left as it was. ``durable``: fsync the file before the rename and the folder after it,
    so the new file also survives a power loss (off for caches, which can be rebuilt).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str, durable: bool = True) -> None:
    """Write ``text`` as UTF-8, atomically (see ``atomic_write``)."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")), durable=durable)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
