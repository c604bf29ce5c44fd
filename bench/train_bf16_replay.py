"""Training variants on the CPU (bf16 autocast against fp32, eager against torch.compile): samples per second
side by side, the training curves on identical batches (``waveglow.train.replay``), and the data-wait share of
short real runs.

For each config: record its first ``--steps`` batches once (the configured data, seeded), then train the
seed's initial weights on them in each of ``--variants`` (a precision, optionally ``+compile``), taking turns
every ``--chunk-steps`` steps so that the load of other processes falls on all alike. Reported: samples per
wall second and per CPU second of each (after ``--skip`` warm-up steps; a compiled variant compiles in its
first step), the ratios to the first variant, and the median over ``--window``-step windows of (mean NLL of
the variant - mean NLL of the first). Then, for the first config, two short ``train()`` runs in bf16 with
``data.num_workers`` 0 and 1, without validation: ``train/data_wait_share`` of each logged interval.

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_bf16_replay.py --threads 1 \
        --config allison_light:configs/allison_light.yaml --config demo:configs/demo.yaml \
        --variants fp32,bf16,fp32+compile,bf16+compile \
        --set data.training_files=data/allison/train.txt --steps 200 \
        --output bench/results/cpu-DATE-train-variants
"""

from __future__ import annotations

import argparse  # noqa: TID251 (a script: argument parsing and printing are its job)
import json
import logging
import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from waveglow.bench.machine import environment
from waveglow.config import Config, load_config, resolve_data_paths
from waveglow.files import atomic_write_text
from waveglow.train import train
from waveglow.train.log import read_metrics
from waveglow.train.replay import median_window_gap, parse_variant, record_batches, replay, window_means

log = logging.getLogger("train_bf16_replay")
TARGET_RATIO, TARGET_GAP = 1.7, 0.05  # issue 19: bf16 >= 1.7x fp32 samples/s, median gap <= +0.05 nats


def objective_label(row: dict[str, Any]) -> str:
    """What the replayed steps optimised: the MR-STFT term only counts from its start step on."""
    weight, start = row["stft_loss_weight"], row.get("stft_loss_start_step", 0)
    if not weight:
        return "NLL"
    if start >= row["steps"]:
        return f"NLL (the {weight:g} MR-STFT term starts at step {start:,}: not reached)"
    return f"NLL + {weight:g} MR-STFT" + (f" from step {start}" if start else "")


def cpu_flags() -> list[str]:
    """The bf16/AMX flags of /proc/cpuinfo (grep -o 'avx512_bf16\\|amx[a-z_]*'), each once."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return sorted(set(re.findall(r"avx512_bf16|amx[a-z_]*", text)))


def configure(path: str, overrides: list[str]) -> Config:
    cfg = load_config(path).override(overrides)
    cfg.train.device = "cpu"
    return resolve_data_paths(cfg).validate()


def measure_replay(
    name: str, cfg: Config, variants: list[str], steps: int, chunk_steps: int, skip: int, window: int
) -> dict:
    """Replay ``steps`` recorded batches in each variant; each later variant is compared with the first."""
    started = time.perf_counter()
    batches = record_batches(cfg, steps)
    record_s = time.perf_counter() - started
    result = replay(cfg, batches, variants, chunk_steps)
    row: dict[str, Any] = {
        "config": name,
        "architecture": cfg.model.architecture,
        "batch_size": cfg.train.batch_size,
        "segment_length": cfg.data.segment_length,
        "stft_loss_weight": cfg.train.stft_loss_weight,
        "stft_loss_start_step": cfg.train.stft_loss_start_step,
        "learning_rate": cfg.train.learning_rate,
        "steps": steps,
        "chunk_steps": chunk_steps,
        "timing_skips_steps": skip,
        "record_s": record_s,
        "window": window,
        "reference": variants[0],
        "variants": {},
    }
    reference = result.runs[variants[0]]
    for variant in variants:
        run = result.runs[variant]
        entry = {
            "samples_per_s": run.samples_per_second(skip),
            "samples_per_cpu_s": run.samples_per_cpu_second(skip),
            "median_step_s": run.median_step_s(skip),
            "first_step_s": run.wall_s[0],
            "wall_s": sum(run.wall_s),
            "cpu_s": sum(run.cpu_s),
            "skipped_steps": run.applied.count(False),
            "nll_windows": window_means(run.nll, window),
            "nll": run.nll,
            "wall_s_per_step": run.wall_s,
            "cpu_s_per_step": run.cpu_s,
            "ratio_samples_per_s": run.samples_per_second(skip) / reference.samples_per_second(skip),
            "ratio_samples_per_cpu_s": run.samples_per_cpu_second(skip)
            / reference.samples_per_cpu_second(skip),
        }
        if variant != variants[0]:
            entry["window_gaps"] = [
                b - a for a, b in zip(window_means(reference.nll, window), window_means(run.nll, window))
            ]
            entry["median_window_gap"] = median_window_gap(reference.nll, run.nll, window)
            log.info(
                "%s: %s / %s samples/s %.2fx (per CPU second %.2fx), median %d-step gap %+.4f nats/sample",
                name, variant, variants[0], entry["ratio_samples_per_s"], entry["ratio_samples_per_cpu_s"],
                window, entry["median_window_gap"],
            )  # fmt: skip
        row["variants"][variant] = entry
    return row


def measure_data_wait(name: str, cfg: Config, workers: int, steps: int, interval: int) -> dict:
    """A bf16 train() run of ``steps`` steps with ``workers`` DataLoader workers, no validation (changes
    ``cfg``)."""
    cfg.data.num_workers = workers
    cfg.data.validation_files = ""  # a filelist without held-out clips: no validation
    cfg.train.precision = "bf16"
    cfg.train.max_steps = steps
    cfg.train.max_minutes = 0.0
    cfg.train.log_interval = interval
    cfg.train.checkpoint_interval = cfg.train.validation_interval = 10 * steps
    cfg.train.validate_at_start = False
    with tempfile.TemporaryDirectory() as run_dir:
        train(cfg, run_dir)
        records = [r for r in read_metrics(Path(run_dir) / "metrics.jsonl") if r["kind"] == "train"]
    later = records[1:]  # the first interval holds the loader's start and the first step's warm-up
    wait, step = sum(r["data_wait_s"] for r in later), sum(r["step_s"] for r in later)
    return {
        "config": name,
        "num_workers": workers,
        "steps": steps,
        "log_interval": interval,
        "intervals": [
            {k: r[k] for k in ("step", "data_wait_s", "step_s", "data_wait_share", "samples_per_second")}
            for r in records
        ],
        "data_wait_share_after_first_interval": wait / (wait + step),
    }


def markdown(result: dict) -> str:
    env = result["environment"]
    first = result["replay"][0]
    lines = [
        "# Training variants on the CPU (precision, torch.compile): speed, curves on replayed batches, data wait",
        "",
        f"Command: `{result['command']}`",
        "",
        f"{env['date']} · {env['cpu']['model_name']} (flags: {', '.join(result['cpu_flags']) or 'none'}) · "
        f"{env['cpu_count']} logical CPUs · {result['threads']} torch thread(s) · torch {env['torch']} · "
        f"load average at the start {', '.join(f'{v:.2f}' for v in env['load_average'])}",
        "",
        "Batches: each config's first steps recorded once from its data (seeded order, segments, dither), then "
        "replayed in each variant from the same initial weights; the variants take turns every "
        f"{first['chunk_steps']} steps. samples/s: audio samples per wall second of the step (data excluded), "
        f"after the first {first['timing_skips_steps']} steps (a compiled variant compiles in its first step); "
        "per CPU s: per CPU second of this process. Ratios and gaps are against each config's first variant.",
        "",
        "| config | model | batch x segment | objective | steps | variant | samples/s | ratio | per CPU s (ratio) "
        f"| median step s | first step s | median gap of the {first['window']}-step means |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["replay"]:
        objective = objective_label(row)
        for variant, entry in row["variants"].items():
            gap = entry.get("median_window_gap")
            lines.append(
                f"| {row['config']} | {row['architecture']} | {row['batch_size']} x {row['segment_length']} | "
                f"{objective} | {row['steps']} | {variant} | {entry['samples_per_s']:,.0f} | "
                f"{entry['ratio_samples_per_s']:.2f}x | {entry['samples_per_cpu_s']:,.0f} "
                f"({entry['ratio_samples_per_cpu_s']:.2f}x) | {entry['median_step_s']:.2f} | "
                f"{entry['first_step_s']:.1f} | "
                + ("reference |" if gap is None else f"{gap:+.4f} nats/sample |")
            )
    targets = result["targets"]
    lines += [
        "",
        f"Targets (issue 19): bf16 >= {targets['ratio_samples_per_s']}x fp32 samples/s, median gap <= "
        f"+{targets['median_window_gap']} nats/sample; each variant against the first:",
    ]
    for row in result["replay"]:
        for variant, entry in list(row["variants"].items())[1:]:
            fast = entry["ratio_samples_per_s"] >= targets["ratio_samples_per_s"]
            close = entry["median_window_gap"] <= targets["median_window_gap"]
            lines.append(
                f"- {row['config']}, {variant} vs {row['reference']}: speed {'met' if fast else 'not met'} "
                f"({entry['ratio_samples_per_s']:.2f}x), curve {'met' if close else 'not met'} "
                f"({entry['median_window_gap']:+.4f})"
            )
    lines += ["", "Mean NLL (nats/sample) of each window of steps:", ""]
    for row in result["replay"]:
        for variant, entry in row["variants"].items():
            windows = "; ".join(f"{v:.4f}" for v in entry["nll_windows"])
            lines.append(f"- {row['config']}, {variant} ({row['window']}-step windows): {windows}")
    if result["data_wait"]:
        lines += [
            "",
            "Data wait: short bf16 `train()` runs on the first config (no validation); the share of each "
            "logged interval is data wait / (data wait + step).",
            "",
            "| config | data.num_workers | steps | share per interval | share after the first interval |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in result["data_wait"]:
            shares = ", ".join(f"{r['data_wait_share']:.3f}" for r in row["intervals"])
            lines.append(
                f"| {row['config']} | {row['num_workers']} | {row['steps']} | {shares} | "
                f"{row['data_wait_share_after_first_interval']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True, help="NAME:PATH, repeatable")
    parser.add_argument("--set", action="append", default=[], help="SECTION.KEY=VALUE for every config")
    parser.add_argument(
        "--variants",
        default="fp32,bf16",
        help="comma list of training precisions, each optionally +compile (the first is the reference)",
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--chunk-steps", type=int, default=10)
    parser.add_argument("--skip", type=int, default=5, help="warm-up steps left out of the timing")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-wait-steps", type=int, default=30, help="0: no data-wait runs")
    parser.add_argument("--data-wait-interval", type=int, default=10)
    parser.add_argument("--output", required=True, help="writes OUTPUT.json and OUTPUT.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "command": shlex.join(["python", *sys.argv]),
        "environment": environment(torch.device("cpu")),
        "cpu_flags": cpu_flags(),
        "threads": args.threads,
        "targets": {"ratio_samples_per_s": TARGET_RATIO, "median_window_gap": TARGET_GAP},
        "replay": [],
        "data_wait": [],
    }
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for variant in variants:
        parse_variant(variant)  # a misspelt variant fails before minutes of recording
    configs = [item.partition(":")[::2] for item in args.config]  # (name, path)
    for name, path in configs:
        cfg = configure(path, args.set)
        result["replay"].append(
            measure_replay(name, cfg, variants, args.steps, args.chunk_steps, args.skip, args.window)
        )
    if args.data_wait_steps:
        name, path = configs[0]
        for workers in (0, 1):
            result["data_wait"].append(
                measure_data_wait(
                    name, configure(path, args.set), workers, args.data_wait_steps, args.data_wait_interval
                )
            )
    result["load_average_at_end"] = list(os.getloadavg())
    atomic_write_text(Path(args.output + ".json"), json.dumps(result, indent=1) + "\n")
    atomic_write_text(Path(args.output + ".md"), markdown(result))
    sys.stdout.write(markdown(result))


if __name__ == "__main__":
    main()
