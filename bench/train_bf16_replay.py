"""bf16 autocast training against fp32 on the CPU: samples per second side by side, the training curves on
identical batches (``waveglow.train.replay``), and the data-wait share of short real runs.

For each config: record its first ``--steps`` batches once (the configured data, seeded), then train the
seed's initial weights on them in fp32 and in bf16, the two taking turns every ``--chunk-steps`` steps so that
the load of other processes falls on both alike. Reported: samples per wall second and per CPU second of each
(after ``--skip`` warm-up steps), the bf16/fp32 ratios, and the median over ``--window``-step windows of
(mean bf16 NLL - mean fp32 NLL). Then, for the first config, two short ``train()`` runs in bf16 with
``data.num_workers`` 0 and 1, without validation: ``train/data_wait_share`` of each logged interval.

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_bf16_replay.py --threads 1 \
        --config allison_light:configs/allison_light.yaml --config demo:configs/demo.yaml \
        --set data.training_files=data/allison/train.txt --steps 200 \
        --output bench/results/cpu-DATE-train-bf16-replay
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
from waveglow.train.replay import median_window_gap, record_batches, replay, window_means

log = logging.getLogger("train_bf16_replay")
TARGET_RATIO, TARGET_GAP = 1.7, 0.05  # issue 19: bf16 >= 1.7x fp32 samples/s, median gap <= +0.05 nats


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


def measure_replay(name: str, cfg: Config, steps: int, chunk_steps: int, skip: int, window: int) -> dict:
    started = time.perf_counter()
    batches = record_batches(cfg, steps)
    record_s = time.perf_counter() - started
    result = replay(cfg, batches, ("fp32", "bf16"), chunk_steps)
    fp32, bf16 = result.runs["fp32"], result.runs["bf16"]
    row: dict[str, Any] = {
        "config": name,
        "architecture": cfg.model.architecture,
        "batch_size": cfg.train.batch_size,
        "segment_length": cfg.data.segment_length,
        "stft_loss_weight": cfg.train.stft_loss_weight,
        "learning_rate": cfg.train.learning_rate,
        "steps": steps,
        "chunk_steps": chunk_steps,
        "timing_skips_steps": skip,
        "record_s": record_s,
    }
    for run in (fp32, bf16):
        row[run.precision] = {
            "samples_per_s": run.samples_per_second(skip),
            "samples_per_cpu_s": run.samples_per_cpu_second(skip),
            "median_step_s": run.median_step_s(skip),
            "wall_s": sum(run.wall_s),
            "cpu_s": sum(run.cpu_s),
            "skipped_steps": run.applied.count(False),
            "nll_windows": window_means(run.nll, window),
            "nll": run.nll,
            "wall_s_per_step": run.wall_s,
            "cpu_s_per_step": run.cpu_s,
        }
    row["ratio_samples_per_s"] = bf16.samples_per_second(skip) / fp32.samples_per_second(skip)
    row["ratio_samples_per_cpu_s"] = bf16.samples_per_cpu_second(skip) / fp32.samples_per_cpu_second(skip)
    row["ratio_median_step"] = fp32.median_step_s(skip) / bf16.median_step_s(skip)
    row["window"] = window
    row["window_gaps"] = [b - a for a, b in zip(row["fp32"]["nll_windows"], row["bf16"]["nll_windows"])]
    row["median_window_gap"] = median_window_gap(fp32.nll, bf16.nll, window)
    log.info(
        "%s: bf16/fp32 samples/s %.2fx (per CPU second %.2fx), median %d-step gap %+.4f nats/sample",
        name, row["ratio_samples_per_s"], row["ratio_samples_per_cpu_s"], window, row["median_window_gap"],
    )  # fmt: skip
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
    lines = [
        "# bf16 autocast training against fp32 on the CPU: speed, curves on replayed batches, data wait",
        "",
        f"Command: `{result['command']}`",
        "",
        f"{env['date']} · {env['cpu']['model_name']} (flags: {', '.join(result['cpu_flags']) or 'none'}) · "
        f"{env['cpu_count']} logical CPUs · {result['threads']} torch thread(s) · torch {env['torch']} · "
        f"load average at the start {', '.join(f'{v:.2f}' for v in env['load_average'])}",
        "",
        "Batches: each config's first steps recorded once from its data (seeded order, segments, dither), then "
        "replayed in fp32 and bf16 from the same initial weights; the precisions take turns every "
        f"{result['replay'][0]['chunk_steps']} steps. samples/s: audio samples per wall second of the step "
        "(data excluded), after the first steps; per CPU s: per CPU second of this process.",
        "",
        "| config | model | batch x segment | objective | steps | fp32 samples/s | bf16 samples/s | bf16/fp32 "
        "| per CPU s: fp32 / bf16 / ratio | median step s: fp32 / bf16 | median gap of the "
        f"{result['replay'][0]['window']}-step means (bf16 - fp32) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["replay"]:
        fp32, bf16 = row["fp32"], row["bf16"]
        objective = "NLL" + (f" + {row['stft_loss_weight']:g} MR-STFT" if row["stft_loss_weight"] else "")
        lines.append(
            f"| {row['config']} | {row['architecture']} | {row['batch_size']} x {row['segment_length']} | "
            f"{objective} | {row['steps']} | {fp32['samples_per_s']:,.0f} | {bf16['samples_per_s']:,.0f} | "
            f"{row['ratio_samples_per_s']:.2f}x | {fp32['samples_per_cpu_s']:,.0f} / "
            f"{bf16['samples_per_cpu_s']:,.0f} / {row['ratio_samples_per_cpu_s']:.2f}x | "
            f"{fp32['median_step_s']:.2f} / {bf16['median_step_s']:.2f} | "
            f"{row['median_window_gap']:+.4f} nats/sample |"
        )
    targets = result["targets"]
    lines += [
        "",
        f"Targets: bf16 >= {targets['ratio_samples_per_s']}x fp32 samples/s, median gap <= "
        f"+{targets['median_window_gap']} nats/sample.",
    ]
    for row in result["replay"]:
        fast = row["ratio_samples_per_s"] >= targets["ratio_samples_per_s"]
        close = row["median_window_gap"] <= targets["median_window_gap"]
        lines.append(
            f"- {row['config']}: speed {'met' if fast else 'not met'} ({row['ratio_samples_per_s']:.2f}x), "
            f"curve {'met' if close else 'not met'} ({row['median_window_gap']:+.4f})"
        )
    lines += ["", "Mean NLL (nats/sample) of each window of steps, fp32 / bf16:", ""]
    for row in result["replay"]:
        pairs = zip(row["fp32"]["nll_windows"], row["bf16"]["nll_windows"])
        windows = "; ".join(f"{a:.4f} / {b:.4f}" for a, b in pairs)
        lines.append(f"- {row['config']} ({row['window']}-step windows): {windows}")
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
    configs = [item.partition(":")[::2] for item in args.config]  # (name, path)
    for name, path in configs:
        cfg = configure(path, args.set)
        result["replay"].append(
            measure_replay(name, cfg, args.steps, args.chunk_steps, args.skip, args.window)
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
