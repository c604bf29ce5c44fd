"""The data-wait share (train/data_wait_share): the meter on a fake clock, and a run whose data is slow."""

from __future__ import annotations

import time

from conftest import tiny_config

from waveglow.data.datasets import AudioSegmentDataset
from waveglow.train.log import DataWaitMeter, RunLogger, read_metrics
from waveglow.train.loop import train


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_splits_time_between_waiting_for_batches_and_steps():
    clock = FakeClock()
    meter = DataWaitMeter(clock)

    def loader():
        clock.now += 5.0  # starting the iterator
        for batch in range(3):
            clock.now += 3.0  # loading a batch
            yield batch

    seen = []
    for batch in meter.batches(loader()):
        with meter.step():
            clock.now += 1.0
        clock.now += 100.0  # logging, validation, checkpoints: neither
        seen.append(batch)
        if batch == 1:
            assert meter.take() == {"data_wait_s": 11.0, "step_s": 2.0, "data_wait_share": 11.0 / 13.0}
    assert seen == [0, 1, 2]
    assert meter.take() == {"data_wait_s": 3.0, "step_s": 1.0, "data_wait_share": 0.75}
    assert meter.take() == {"data_wait_s": 0.0, "step_s": 0.0, "data_wait_share": 0.0}


def test_a_run_with_slow_data_logs_a_high_data_wait_share(tmp_path, monkeypatch):
    """Each clip takes at least 0.1 s to load (a sleep): 0.2 s per batch of 2, against a tiny model's
    step of a few ms, so the share is near 1 (a generous bound: > 0.5 while the step takes under 0.2 s)."""
    getitem = AudioSegmentDataset.__getitem__

    def slow_getitem(self, index):
        time.sleep(0.1)
        return getitem(self, index)

    monkeypatch.setattr(AudioSegmentDataset, "__getitem__", slow_getitem)
    cfg = tiny_config(
        tmp_path / "data", max_steps=4, log_interval=2, validate_at_start=False, validation_interval=100
    )
    train(cfg, tmp_path / "run")
    records = [r for r in read_metrics(tmp_path / "run/metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in records] == [2, 4]
    for record in records:
        wait, step = record["data_wait_s"], record["step_s"]
        assert wait >= 2 * 2 * 0.1  # two batches of two clips since the last log: at least their sleeps
        assert 0 < step and record["data_wait_share"] == wait / (wait + step)
        assert record["data_wait_share"] > 0.5


def test_the_progress_bar_shows_the_data_wait_share(tmp_path):
    logger = RunLogger(tmp_path, enabled=True, total_steps=5)
    try:
        logger.step(1, loss=1.0, samples_per_second=10.0)
        assert "data_wait" not in logger.progress.postfix
        logger.step(2, loss=1.0, samples_per_second=10.0, data_wait_share=0.25)
        assert "data_wait=25%" in logger.progress.postfix
    finally:
        logger.close()
