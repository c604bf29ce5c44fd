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


@dataclass
class MemoryRow:
    """Synthesis of one length, with or without chunking: its peak memory and time (``bench.memory``)."""

    model: str
    precision: str
    seconds_of_audio: float
    frames: int
    max_frames: int | None  # None: one pass, no chunking
    chunks: int
    peak_mb: float  # CUDA: max allocated; CPU: the process's peak resident set, since just before the call
    before_mb: float  # in use just before the call (model, mel, torch itself)
    synthesis_mb: float  # peak_mb - before_mb: what synthesis adds
    output_mb: float  # the audio returned
    time_s: float
    real_time_factor: float
    memory_kind: str
    threads: int


SYNTHESIS_COLUMNS = (
    "model", "variant", "batch", "audio s", "samples/s", "x real time", "model GFLOP/s", "executed GFLOP/s",
    "of peak", "vs eager (min-max)", "best vs best", "max diff σ=0", "log-mel L1", "first call s",
)  # fmt: skip
MODEL_COLUMNS = ("model", "architecture", "parameters", "GMAC per second of audio")
TRAINING_COLUMNS = (
    "model", "training precision", "batch", "segment", "step s", "samples/s", "vs fp32", "~GFLOP/s", "of peak",
    "peak memory",
)  # fmt: skip
MEMORY_COLUMNS = (
    "model", "precision", "audio s", "frames", "max_frames", "chunks", "peak MiB", "before MiB",
    "synthesis MiB", "output MiB", "time s", "x real time",
)  # fmt: skip


def format_table(result: dict[str, Any]) -> str:
    """Markdown of a ``run_benchmark`` or ``run_memory_benchmark`` result: the machine record and the
    measured peaks first, then a table for each thing measured."""
    env = result["environment"]
    lines = [
        f"{env['date']} · {env['device_name']} ({env['device']}, {env['threads']} threads) · torch {env['torch']}"
    ]
    lines += format_machine(env, result.get("peaks"))
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
        lines += ["", *_markdown_table(MODEL_COLUMNS, models)]
    synthesis = [_synthesis_cells(row) for row in result.get("synthesis", [])]
    training = [_training_cells(row, result["training"]) for row in result.get("training", [])]
    for columns, cells in ((SYNTHESIS_COLUMNS, synthesis), (TRAINING_COLUMNS, training)):
        if cells:
            lines += ["", *_markdown_table(columns, cells)]
    if result.get("memory"):
        method, settings = result.get("memory_method", ""), result.get("max_frames")
        lines += ["", *format_memory(result["memory"], method, settings)]
    return "\n".join(lines)


def format_machine(env: dict[str, Any], peaks: dict[str, Any] | None = None) -> list[str]:
    """Lines of markdown: the CPU (model, flags, kind), the libraries, the load, the GPU where one was used,
    and the matrix-product peaks of the run with the one each "of peak" figure divides by."""
    cpu, libraries = env.get("cpu"), env.get("libraries")
    lines = []
    if cpu:
        details = ", ".join(f"{key} {cpu[key]}" for key in ("family", "model") if cpu.get(key) is not None)
        lines.append(
            f"Machine `{cpu['kind']}`: {cpu['model_name']}"
            + (f" ({cpu['vendor']}, {details})" if cpu.get("vendor") else "")
            + f", {cpu['logical_cpus']} logical CPUs, torch CPU capability {cpu['torch_capability']}."
        )
        flags = cpu["flags"]
        if flags is None:
            lines.append("CPU flags: unknown (no /proc/cpuinfo).")
        else:
            present = ", ".join(name for name, on in flags.items() if on) or "none"
            absent = ", ".join(name for name, on in flags.items() if not on) or "none"
            lines.append(f"CPU flags: {present} present; {absent} absent.")
    if libraries:
        names = (
            ("oneDNN", "onednn"),
            ("MKL", "mkl"),
            ("OpenMP", "openmp"),
            ("CUDA", "cuda"),
            ("cuDNN", "cudnn"),
        )
        found = ", ".join(f"{label} {libraries[key]}" for label, key in names if libraries.get(key))
        lines.append(f"Libraries: torch {libraries['torch']}, {found}.")
    if env.get("load_average"):
        load = ", ".join(f"{value:.2f}" for value in env["load_average"])
        lines.append(
            f"Load average when the run started: {load} (1, 5, 15 min; {env['cpu_count']} logical CPUs)."
        )
    if env.get("capability"):
        lines.append(f"GPU: {env['device_name']}, compute capability {env['capability']}.")
    lines = [line + "  " for line in lines[:-1]] + lines[-1:]  # markdown line breaks within one paragraph
    if peaks:
        size = f"{peaks['size']}x{peaks['size']} @ {peaks['size']}x{peaks['size']}"
        measured = f"measured GFLOP/s ({size}, best of {peaks['repeats']}, {peaks['threads']} threads)"
        columns = ("precision", measured, "stated GFLOP/s", '"of peak" divides by')
        rows = [
            [precision, _number(info["measured"]), _number(info["stated"]), info["source"] or "n/a"]
            for precision, info in peaks["by_precision"].items()
        ]
        lines += ["", *_markdown_table(columns, rows)]
    return ["", *lines] if lines else []


def format_memory(
    rows: list[dict[str, Any]], method: str = "", settings: list[int | None] | None = None
) -> list[str]:
    """Markdown: peak memory by length, one column per max_frames setting (None: no chunking; default: those
    in the rows), then every figure."""
    settings = settings or list(dict.fromkeys(row["max_frames"] for row in rows))
    names = ["no chunking" if value is None else f"max_frames {value}" for value in settings]
    cases = list(dict.fromkeys((row["model"], row["precision"], row["frames"]) for row in rows))
    pivot = []
    for model, precision, frames in cases:
        same = {
            row["max_frames"]: row
            for row in rows
            if (row["model"], row["precision"], row["frames"]) == (model, precision, frames)
        }
        first = next(iter(same.values()))
        cells = [_memory_cell(same, value, frames) for value in settings]
        pivot.append(
            [model, precision, f"{first['seconds_of_audio']:,.0f}", *cells, f"{first['output_mb']:,.1f}"]
        )
    kind = rows[0]["memory_kind"]
    lines = [
        f"Peak memory, MiB ({kind}; in brackets what synthesis adds to the memory in use before the call)"
        + (f", {method}:" if method else ":"),
        "",
    ]
    lines += _markdown_table(("model", "precision", "audio s", *names, "output audio MiB"), pivot)
    lines += ["", *_markdown_table(MEMORY_COLUMNS, [_memory_cells(row) for row in rows])]
    return lines


def _memory_cell(same: dict[int | None, dict[str, Any]], max_frames: int | None, frames: int) -> str:
    """The peak with what synthesis adds in brackets; "one pass" for a chunk size the length fits in (that
    case is the one without chunking)."""
    if max_frames in same:
        return f"{same[max_frames]['peak_mb']:,.0f} (+{same[max_frames]['synthesis_mb']:,.0f})"
    return "one pass" if max_frames is not None and frames <= max_frames and None in same else ""


def _memory_cells(row: dict[str, Any]) -> list[str]:
    return [
        row["model"], row["precision"], f"{row['seconds_of_audio']:,.1f}", str(row["frames"]),
        "none" if row["max_frames"] is None else str(row["max_frames"]), str(row["chunks"]),
        f"{row['peak_mb']:,.0f}", f"{row['before_mb']:,.0f}", f"{row['synthesis_mb']:,.0f}",
        f"{row['output_mb']:,.1f}", f"{row['time_s']:.2f}", f"{row['real_time_factor']:.2f}",
    ]  # fmt: skip


def _markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [_markdown_row(columns), _markdown_row(["---"] * len(columns)), *(_markdown_row(r) for r in rows)]


def _number(value: float | None) -> str:
    return f"{value:,.1f}" if value is not None else "n/a"


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
