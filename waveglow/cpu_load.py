"""torch's CPU threads kept to the cores that other processes leave free (``LoadAwareThreads``).

Two processes that each run one torch thread per core on the same cores slow each other far more than
sharing the cores would: torch's OpenMP threads spin-wait for each other at every parallel region while
the other process holds the core they wait for. Measured on the 2-core ``xeon-amx`` machine (2026-12-04):
two ``infer.py`` jobs of the bundled voice side by side, 60 clips each, took 48-78 s with 2 threads each and
12-15 s with 1 thread each; one synthesis of 10 s of audio beside a 2-thread training run took 10 s on 2
threads and 0.22 s on 1.

``LoadAwareThreads.update`` measures how many cores other processes kept busy since its last call (the busy
time in /proc/stat of the CPUs this process may run on, less this process's own CPU time) and sets torch's intra-op threads to the
cores left: at least 1, at most the count it started with. The batch job (infer.py) calls it between
batches, so a job takes the whole machine when it is alone and one core when another job holds the other.
Where /proc/stat cannot be read it leaves the threads alone.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

PROC_STAT = "/proc/stat"
# the /proc/stat "cpu" columns that are work (idle and iowait are not; guest time is inside user already)
BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal


@dataclass(frozen=True)
class CpuSample:
    """One reading: wall time (s), busy CPU time of all CPUs (s), this process's CPU time (s)."""

    wall: float
    busy: float
    own: float


def read_cpu_sample(stat_path: str = PROC_STAT, cpus: set[int] | None = None) -> CpuSample | None:
    """Now's ``CpuSample`` over the CPUs ``cpus`` (default: those this process may run on, ``allowed_cpus``),
    or None where ``stat_path`` cannot be read or parsed (not Linux)."""
    cpus = allowed_cpus() if cpus is None else cpus
    try:
        with open(stat_path) as f:
            lines = [line.split() for line in f if line.startswith("cpu")]
        rows = [row for row in lines[1:] if row[0][3:].isdigit() and int(row[0][3:]) in cpus] if cpus else []
        if not rows:  # no per-CPU lines for them (or no set known): the whole machine's line
            rows = lines[:1]
        ticks = [[int(v) for v in row[1:]] for row in rows]
        busy = sum(t[i] for t in ticks for i in BUSY_COLUMNS if i < len(t)) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    own = os.times()
    return CpuSample(time.monotonic(), busy, own.user + own.system)


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on (its affinity; empty where the OS does not tell)."""
    return set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it, else the machine's)."""
    return max(1, len(allowed_cpus()) or os.cpu_count() or 1)


def others_busy(before: CpuSample, after: CpuSample) -> float:
    """Cores kept busy by other processes between two samples (0 when the interval is empty)."""
    wall = after.wall - before.wall
    if wall <= 0:
        return 0.0
    return max(0.0, ((after.busy - before.busy) - (after.own - before.own)) / wall)


def threads_for(free_cores: float, max_threads: int) -> int:
    """The thread count for ``free_cores`` cores left free: rounded half down, at least 1, at most max."""
    return max(1, min(max_threads, math.ceil(free_cores - 0.5)))


class LoadAwareThreads:
    """Sets torch's intra-op threads to the cores other processes leave free (module docstring).

    max_threads: the most it sets (default: torch's count now); min_interval: seconds of history an update
    needs (shorter calls keep the current count); sample: the reading function (tests give their own).
    ``restore()`` puts back the count found at construction.
    """

    def __init__(
        self,
        max_threads: int | None = None,
        min_interval: float = 1.0,
        sample: Callable[[], CpuSample | None] = read_cpu_sample,
        cores: int | None = None,
    ):
        self.initial = torch.get_num_threads()
        self.max_threads = max(1, max_threads or self.initial)
        self.cores = cores or available_cores()
        self.min_interval = min_interval
        self._sample = sample
        self._last = sample()
        self.threads = torch.get_num_threads()

    @property
    def active(self) -> bool:
        """Whether the load can be read here (else ``update`` changes nothing)."""
        return self._last is not None

    def settle(self, seconds: float = 0.25) -> int:
        """Wait ``seconds`` doing nothing, then ``update``: the first reading, with this process idle."""
        if self.active:
            time.sleep(seconds)
            return self.update(force=True)
        return self.threads

    def update(self, force: bool = False) -> int:
        """Measure the other processes' load since the last update and set the threads; returns them."""
        if not self.active:
            return self.threads
        now = self._sample()
        if now is None or (not force and now.wall - self._last.wall < self.min_interval):
            return self.threads
        busy = others_busy(self._last, now)
        self._last = now
        threads = threads_for(self.cores - busy, self.max_threads)
        if threads != self.threads:
            log.info(
                "other processes keep %.1f of %d cores busy: synthesising on %d thread%s",
                busy,
                self.cores,
                threads,
                "" if threads == 1 else "s",
            )
            torch.set_num_threads(threads)
            self.threads = threads
        return threads

    def restore(self) -> None:
        """Put back the thread count found at construction."""
        if torch.get_num_threads() != self.initial:
            torch.set_num_threads(self.initial)
        self.threads = self.initial
