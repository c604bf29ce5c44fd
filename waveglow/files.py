"""Atomic file writes: every file the package writes (checkpoints, audio, configs, lists, caches, reports,
plots) goes through a temporary file in the same folder that is renamed over the target, so a reader (or a
job resumed after a crash) sees either the old file or the complete new one, never a partial file.

The new file gets the permissions an ordinary ``open(path, "w")`` would give it: those of the file it
replaces, or for a new file 0o666 less the process umask. A failed write (a full disk, a read-only
folder) raises ``OSError`` naming the target, not the temporary file, and leaves no temporary file behind.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMPORARY_SUFFIX = ".tmp"


def temporary_files(path: str | Path) -> list[Path]:
    """Temporary files that ``atomic_write(path, ...)`` leaves only when its process is killed mid-write."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{_glob_escape(path.name)}.*{TEMPORARY_SUFFIX}"))


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], durable: bool = True) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``.

    The folder is created if needed; on any error (or interrupt) the temporary file is removed and the old
    file, if any, is left as it was. ``durable``: fsync the file before the rename and the folder after it,
    so the new file also survives a power loss (off for caches, which can be rebuilt).
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(path)
        with os.fdopen(fd, "wb") as raw:
            handle = _Recorder(raw)
            try:
                write(handle)  # type: ignore[arg-type]
            except Exception as exc:
                # torch.save and others report a failed write as their own error ("unexpected pos ..."):
                # the OSError underneath (a full disk, say) is what the user needs to hear
                if handle.error is not None and not isinstance(exc, OSError):
                    raise handle.error from exc
                raise
            if durable:
                raw.flush()
                os.fsync(raw.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        _remove(tmp)
        if exc.errno is None or exc.filename == str(path):
            raise
        # name the file the caller asked for, not our temporary file; keeps the errno (and the subclass)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        _remove(tmp)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str, durable: bool = True) -> None:
    """Write ``text`` as UTF-8, atomically (see ``atomic_write``)."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")), durable=durable)


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Open a new, uniquely named temporary file beside ``path`` for writing: (descriptor, its path).

    Created with mode 0o666 so the kernel applies the umask (and any default ACL) as it does for ``open``;
    ``tempfile.mkstemp`` would make it 0o600 whatever the umask. A replaced file's mode is kept.
    """
    try:
        keep_mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        keep_mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        if keep_mode is not None:
            try:
                os.chmod(tmp, keep_mode)
            except OSError:
                pass  # e.g. a file system without modes: the umask's mode is the next best
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path))


class _Recorder:
    """A binary file handle that remembers the first OSError its ``write`` raised (and raises it too)."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._raw.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self._raw, name)


def _remove(tmp: Path | None) -> None:
    if tmp is not None:
        try:
            tmp.unlink()
        except OSError:
            pass


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


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
