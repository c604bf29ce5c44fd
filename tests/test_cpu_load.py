"""waveglow.cpu_load: torch's threads kept to the cores other processes leave free."""

from __future__ import annotations

import pytest
import torch

from waveglow.cpu_load import (
    CpuSample,
    LoadAwareThreads,
    available_cores,
    others_busy,
    read_cpu_sample,
    threads_for,
)


def test_others_busy_is_the_machines_busy_time_less_this_process():
    before = CpuSample(wall=10.0, busy=100.0, own=5.0)
    # 2 s: the machine's CPUs were busy 3.5 s, 1.5 s of it this process's
    assert others_busy(before, CpuSample(12.0, 103.5, 6.5)) == pytest.approx(1.0)
    assert others_busy(before, CpuSample(12.0, 101.0, 6.0)) == 0.0  # only us
    assert others_busy(before, CpuSample(12.0, 100.9, 6.0)) == 0.0  # tick rounding never goes negative
    assert others_busy(before, before) == 0.0  # no interval


def test_threads_for_rounds_half_down_within_one_and_the_maximum():
    assert [threads_for(free, 2) for free in (2.0, 1.6, 1.5, 1.0, 0.4, -0.5)] == [2, 2, 1, 1, 1, 1]
    assert threads_for(7.9, 4) == 4 and threads_for(3.2, 8) == 3


class FakeClock:
    """/proc/stat readings of a 2-core machine where the other processes keep ``others`` cores busy and this
    process ``own`` cores, advancing ``step`` seconds per reading."""

    def __init__(self, step: float = 2.0):
        self.wall = self.busy = self.own = 0.0
        self.step, self.others, self.ours = step, 0.0, 0.0

    def __call__(self) -> CpuSample:
        """The reading now, after ``step`` seconds at the load set since the previous one."""
        self.wall += self.step
        self.busy += (self.others + self.ours) * self.step
        self.own += self.ours * self.step
        return CpuSample(self.wall, self.busy, self.own)


def test_load_aware_threads_follow_the_other_processes_and_restore():
    torch.set_num_threads(2)
    clock = FakeClock()
    control = LoadAwareThreads(max_threads=2, min_interval=1.0, sample=clock, cores=2)
    assert control.active and control.update() == 2  # idle machine: both cores
    clock.others, clock.ours = 1.0, 1.0  # another job holds one core
    assert control.update() == 1 and torch.get_num_threads() == 1
    assert control.update() == 1  # it still does: one thread stays
    clock.others = 0.0  # it ended
    assert control.update() == 2 and torch.get_num_threads() == 2
    clock.others = 1.9  # a 2-thread job beside us: one thread all the same
    assert control.update() == 1
    control.restore()
    assert torch.get_num_threads() == 2 == control.threads


def test_updates_closer_than_the_interval_keep_the_count():
    torch.set_num_threads(2)
    clock = FakeClock(step=0.5)
    control = LoadAwareThreads(max_threads=2, min_interval=1.0, sample=clock, cores=2)
    clock.others = 2.0
    assert control.update() == 2  # 0.5 s of history is not enough
    assert control.update(force=True) == 1


def test_without_proc_stat_nothing_changes(tmp_path):
    assert read_cpu_sample(str(tmp_path / "missing")) is None
    (tmp_path / "stat").write_text("cpu  nonsense\n")
    assert read_cpu_sample(str(tmp_path / "stat")) is None
    torch.set_num_threads(2)
    control = LoadAwareThreads(sample=lambda: None)
    assert not control.active and control.update(force=True) == 2 and control.settle(0.0) == 2


def test_read_cpu_sample_parses_proc_stat(tmp_path):
    import os

    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal: busy = 100+5+20+1+2+3 ticks
    (tmp_path / "stat").write_text(f"cpu  100 5 20 {9 * hz} 7 1 2 3 0 0\ncpu0 1 2 3\n")
    sample = read_cpu_sample(str(tmp_path / "stat"), cpus=set())
    assert sample is not None and sample.busy == pytest.approx(131 / hz) and sample.own > 0
    assert available_cores() >= 1


def test_only_the_cpus_this_process_may_use_count(tmp_path):
    import os

    hz = os.sysconf("SC_CLK_TCK")
    # 4 CPUs; the process may run on 2 and 3: CPU 0's work (another job's, on other cores) does not count
    (tmp_path / "stat").write_text(
        "cpu  1000 0 0 400 0 0 0 0\ncpu0 1000 0 0 0 0 0 0 0\ncpu1 0 0 0 100 0 0 0 0\n"
        "cpu2 0 0 30 100 0 0 0 0\ncpu3 20 0 0 100 0 0 0 0\nintr 5\n"
    )
    assert read_cpu_sample(str(tmp_path / "stat"), cpus={2, 3}).busy == pytest.approx(50 / hz)
    assert read_cpu_sample(str(tmp_path / "stat"), cpus={7}).busy == pytest.approx(1000 / hz)  # unknown: all
    assert read_cpu_sample(str(tmp_path / "stat"), cpus=set()).busy == pytest.approx(1000 / hz)
