"""The benchmark's records and how they are written: one row per measured case, markdown tables, JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waveglow.files import atomic_write_text


@dataclass
class SynthesisRow:
    """One synthesis variant at one batch size and length."""

    model: str
    variant: str
    precision: str
    batch_size: int
    seconds_of_audio: float  # per utterance
    time_s: float  # median over rounds
    samples_per_s: float
    real_time_factor: float  # seconds of audio per second of compute
    model_gflops: float  # the plain model's work per second (GFLOP/s)
    executed_gflops: float  # the work this variant actually does per second
    peak_gflops: float | None
    utilisation: float | None  # executed_gflops / peak_gflops
    ratio_vs_eager: float  # median over rounds
    ratio_min: float
    ratio_max: float
    ratio_of_best: float  # eager's fastest round / this variant's fastest (contention only adds time)
    max_abs_diff_sigma0: float  # vs eager, same mel, sigma 0
    max_abs_diff: float  # vs eager, same generator, the benchmark's sigma
    log_mel_l1: float  # mean |log-mel(variant) - log-mel(eager)|
    prepare_s: float  # time to build the variant from the model
    first_call_s: float  # the first synthesis: compilation and CUDA-graph recording happen here
    times_s: list[float] = field(default_factory=list)


@dataclass
class TrainingRow:
    """One training configuration: a full step (forward, loss, backward, Adam) at one batch size."""

    model: str
    precision: str
    batch_size: int
    segment_length: int
    step_s: float
    samples_per_s: float
    approx_gflops: float  # 3x the forward work (forward + backward) per second
    utilisation: float | None
    peak_memory_mb: float  # CUDA: max allocated; CPU: process peak resident set
    peak_memory_kind: str


SYNTHESIS_COLUMNS = (
    "model", "variant", "batch", "audio s", "samples/s", "x real time", "model GFLOP/s", "executed GFLOP/s",
    "of peak", "vs eager (min-max)", "best vs best", "max diff σ=0", "log-mel L1", "first call s",
)  # fmt: skip
MODEL_COLUMNS = ("model", "architecture", "parameters", "GMAC per second of audio")
TRAINING_COLUMNS = (
    "model", "training precision", "batch", "segment", "step s", "samples/s", "vs fp32", "~GFLOP/s", "of peak",
    "peak memory",
)  # fmt: skip


def format_table(result: dict[str, Any]) -> str:
    """Markdown tables of a ``run_benchmark`` result (a table only for what was measured)."""
    env = result["environment"]
    lines = [
        f"{env['date']} · {env['device_name']} ({env['device']}, {env['threads']} threads) · torch {env['torch']}"
    ]
    models = [
        [
            name,
            info.get("architecture", "waveglow"),
            f"{info['parameters']:,}",
            f"{info['gmac_per_second_of_audio']:.2f}",
        ]
        for name, info in result.get("flops_per_sample", {}).items()
        if "gmac_per_second_of_audio" in info
    ]
    if models:
        lines += ["", _markdown_row(MODEL_COLUMNS), _markdown_row(["---"] * len(MODEL_COLUMNS))]
        lines += [_markdown_row(row) for row in models]
    synthesis = [_synthesis_cells(row) for row in result["synthesis"]]
    training = [_training_cells(row, result["training"]) for row in result["training"]]
    for columns, cells in ((SYNTHESIS_COLUMNS, synthesis), (TRAINING_COLUMNS, training)):
        if cells:
            lines += ["", _markdown_row(columns), _markdown_row(["---"] * len(columns))]
            lines += [_markdown_row(row) for row in cells]
    return "\n".join(lines)


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _synthesis_cells(row: dict[str, Any]) -> list[str]:
    return [
        row["model"], row["variant"], str(row["batch_size"]), f"{row['seconds_of_audio']:.2f}",
        f"{row['samples_per_s']:,.0f}", f"{row['real_time_factor']:.3f}", f"{row['model_gflops']:.1f}",
        f"{row['executed_gflops']:.1f}", _percent(row["utilisation"]),
        f"{row['ratio_vs_eager']:.2f}x ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})",
        f"{row['ratio_of_best']:.2f}x", f"{row['max_abs_diff_sigma0']:.1e}", f"{row['log_mel_l1']:.1e}",
        f"{row['first_call_s']:.1f}" if "first_call_s" in row else "n/a",
    ]  # fmt: skip


def _training_cells(row: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    return [
        row["model"], row["precision"], str(row["batch_size"]), str(row["segment_length"]),
        f"{row['step_s']:.2f}", f"{row['samples_per_s']:,.0f}", _training_ratio(row, rows),
        f"{row['approx_gflops']:.1f}", _percent(row["utilisation"]),
        f"{row['peak_memory_mb']:,.0f} MB ({row['peak_memory_kind']})",
    ]  # fmt: skip


def _training_ratio(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """samples/s of ``row`` over the fp32 row of the same model, batch and segment ("n/a" without one)."""
    same = ("model", "batch_size", "segment_length")
    for other in rows:
        if other["precision"] == "fp32" and all(other[key] == row[key] for key in same):
            return f"{row['samples_per_s'] / other['samples_per_s']:.2f}x"
    return "n/a"


def _percent(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "n/a"


def write_json(result: dict[str, Any], path: str | Path) -> None:
    """Write the result as JSON, atomically."""
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
