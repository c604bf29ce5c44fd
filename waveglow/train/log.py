"""What a training run shows: TensorBoard (rank 0), metrics.jsonl, a loss-curve PNG, the progress bar.

Separate from ``loop.py`` so the loop reads as build / step / validate / log / save.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from waveglow.evaluate.report import mel_figure, save_figure
from waveglow.files import atomic_write_text

if TYPE_CHECKING:
    from waveglow.train.validation import ValidationResult

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "loss.png"
Batch = TypeVar("Batch")


class RunLogger:
    """Rank 0 writes: TensorBoard scalars/audio/images in ``run_dir/tensorboard``, one JSON line per logged
    step or validation in ``run_dir/metrics.jsonl``, and ``run_dir/loss.png``. Other ranks get a logger
    with ``enabled=False`` that does nothing.
    """

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int = 0, total_steps: int = 0):
        self.run_dir = run_dir
        self.enabled = enabled
        self.writer = None
        self.progress = None
        self._logged_ground_truth: set[str] = set()
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        _truncate_metrics(run_dir / METRICS_FILE, resume_step)
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=resume_step or None)
        self.progress = tqdm(
            total=total_steps or None, initial=resume_step, unit="step", dynamic_ncols=True, desc="training"
        )

    def step(
        self, step: int, loss: float, samples_per_second: float, data_wait_share: float | None = None
    ) -> None:
        """Move the progress bar to ``step`` (applied optimiser steps: a skipped batch does not advance it);
        ``data_wait_share``: that of the last logged interval (None: none logged yet)."""
        if self.progress is not None:
            self.progress.update(step - self.progress.n)
            postfix = {"loss": f"{loss:.4f}", "audio_samples_s": f"{samples_per_second:,.0f}"}
            if data_wait_share is not None:
                postfix["data_wait"] = f"{data_wait_share:.0%}"
            self.progress.set_postfix(postfix, refresh=False)

    def scalars(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
        """Scalars to TensorBoard under ``prefix/`` and one line to metrics.jsonl."""
        if not self.enabled:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, step)
        record = {"kind": prefix, "step": step, **{k: _jsonable(v) for k, v in values.items()}}
        with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def examples(self, step: int, examples: list[dict[str, Any]], sampling_rate: int) -> None:
        """Audio (ground truth once per clip, synthesis every time) and a mel figure per clip."""
        if not self.enabled:
            return
        for example in examples:
            name = example["name"]
            if name not in self._logged_ground_truth:
                self.writer.add_audio(f"ground_truth/{name}", _audio(example["audio"]), 0, sampling_rate)
                self._logged_ground_truth.add(name)
            self.writer.add_audio(f"synthesis/{name}", _audio(example["synthesis"]), step, sampling_rate)
            fig = mel_figure([(name, example["mel"], example["mel_synthesis"])])
            self.writer.add_figure(f"mel/{name}", fig, step)
        self.writer.flush()

    def validation(self, step: int, result: ValidationResult, sampling_rate: int) -> None:
        """Everything a validation shows: ``result.scalars()`` under ``validation/`` (TensorBoard and
        metrics.jsonl), the audio and mel examples, and the redrawn loss.png."""
        self.scalars(step, result.scalars(), "validation")
        self.examples(step, result.examples, sampling_rate)
        self.plot_curves()

    def plot_curves(self) -> Path | None:
        """Redraw ``loss.png`` from metrics.jsonl: NLL, distances and quality metrics of the validations."""
        if not self.enabled:
            return None
        path = self.run_dir / CURVE_FILE
        plot_loss_curves(read_metrics(self.run_dir / METRICS_FILE), path)
        return path

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.writer is not None:
            self.writer.close()


class DataWaitMeter:
    """Where a training process's time goes between logs: waiting for the next batch from the DataLoader, or
    in the step (moving the batch to the device, forward, backward, update). Logging, validation and
    checkpoints count in neither. ``take()`` gives the interval's ``data_wait_s``, ``step_s`` and
    ``data_wait_share`` = wait / (wait + step) and starts the next interval: a share near 0 means the loader
    keeps up; near 1, the model waits for data (more ``data.num_workers``, or a cache).

    ``clock``: seconds, ``time.perf_counter`` unless a test gives its own.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.wait_s = self.step_s = 0.0

    def batches(self, loader: Iterable[Batch]) -> Iterator[Batch]:
        """The loader's batches, counting the time spent inside its iterator (starting it included)."""
        start = self.clock()
        for batch in loader:
            self.wait_s += self.clock() - start
            yield batch
            start = self.clock()

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """Count the block as step time."""
        start = self.clock()
        try:
            yield
        finally:
            self.step_s += self.clock() - start

    def take(self) -> dict[str, float]:
        """The interval's seconds and data-wait share (0 for an empty interval); resets both counts."""
        total = self.wait_s + self.step_s
        values = {
            "data_wait_s": self.wait_s,
            "step_s": self.step_s,
            "data_wait_share": self.wait_s / total if total > 0 else 0.0,
        }
        self.wait_s = self.step_s = 0.0
        return values


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl (a torn last line, from a killed run, is ignored)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_loss_curves(records: list[dict[str, Any]], path: Path) -> None:
    """Write a PNG: NLL (nats/sample) of training and validation against step; the validations' log-mel and
    MR-STFT distances (lower is better); their STOI, V/UV F1 and voiced share (synthesis and recordings)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    train = _series(records, "train", "nll")
    fig = Figure(figsize=(15, 4), layout="constrained")
    ax_nll, ax_dist, ax_quality = fig.subplots(1, 3)
    if train:
        ax_nll.plot(*zip(*train), label="training (batch)", lw=0.8)
    val = _series(records, "validation", "nll")
    if val:
        ax_nll.plot(*zip(*val), "o-", label="held-out", ms=3)
    ax_nll.set_ylabel("NLL, nats per sample")
    ax_nll.set_title("negative log-likelihood (lower is better)")
    for ax, title, ylabel, lines in (
        (
            ax_dist,
            "copy-synthesis distances (lower is better)",
            "distance",
            (("log_mel_distance", "log-mel distance", "-"), ("mrstft", "MR-STFT distance", "-")),
        ),
        (
            ax_quality,
            "copy-synthesis quality",
            "score",
            (
                ("stoi", "STOI (higher is better)", "-"),
                ("vuv_f1", "V/UV F1 (higher is better)", "-"),
                ("voiced_share", "voiced share, synthesis", "-"),
                ("voiced_share_reference", "voiced share, recordings", "--"),
            ),
        ),
    ):
        for key, label, style in lines:
            points = _series(records, "validation", key)
            if points:
                ax.plot(*zip(*points), style, marker="o", ms=3, label=label)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
    for ax in (ax_nll, ax_dist, ax_quality):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    save_figure(fig, path)


def _series(records: list[dict[str, Any]], kind: str, key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in records if r.get("kind") == kind and _finite(r.get(key))]


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop records written after the checkpoint we resume from (the killed run's tail)."""
    if not path.is_file():
        return
    kept = [r for r in read_metrics(path) if r.get("step", 0) <= step] if step else []
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def _audio(audio: torch.Tensor) -> torch.Tensor:
    return audio.detach().float().cpu().clamp(-1, 1).reshape(1, -1)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
