"""Ctrl-C (SIGINT) and SIGTERM as a wish to stop at the next safe point, instead of an exception anywhere.

Training stops after the current step and writes a final checkpoint; the ``infer.py`` batch job stops
after the current batch, its finished files written whole. A second Ctrl-C stops at once (the usual
KeyboardInterrupt). Commands that stop this way exit with 128 + the signal number (130 for SIGINT, 143
for SIGTERM), as a shell reports a process killed by it, so a scheduler can tell "stopped" from "done".
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """While entered (``with StopSignals("...") as stop:``), SIGINT and SIGTERM set ``stop.received`` (the
    signal's name, e.g. "SIGTERM") instead of ending the process; the caller checks it at safe points.

    ``after``: what happens next, for the log line (e.g. "stopping after this step"). Handlers are installed
    only from the main thread of the process that entered (a forked DataLoader worker that inherits them
    ignores the signal and keeps serving the main process until it is told to stop); the previous handlers
    come back on exit.
    """

    def __init__(self, after: str = "stopping at the next safe point"):
        self.after = after
        self.received: str | None = None
        self.signum: int | None = None
        self._pid = os.getpid()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._pid = os.getpid()
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    @property
    def exit_code(self) -> int:
        """128 + the signal number once a signal arrived, else 0."""
        return 128 + self.signum if self.signum is not None else 0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:
            return  # a forked child (DataLoader worker): the main process decides
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        if self.received is None:
            self.received = signal.Signals(signum).name
            self.signum = signum
            log.warning("%s received: %s (Ctrl-C again to stop at once)", self.received, self.after)


def signal_exit_code(name: str | None) -> int:
    """128 + the number of the signal called ``name`` ("SIGINT" -> 130), or 0 for None / another name."""
    if name is None or name not in signal.Signals.__members__:
        return 0
    return 128 + int(signal.Signals[name])
