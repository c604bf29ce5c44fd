"""``python -m waveglow.evaluate [--checkpoint CKPT] FILELIST [--baseline griffin-lim] [--output DIR]``.

Copy synthesis of every file with the model and/or the Griffin-Lim baseline; prints the means and writes
report.json, report.md, metrics.png and mel plots (see ``waveglow.evaluate.report.evaluate_model``).
"""

from __future__ import annotations

import argparse
import logging
import math

import torch

from waveglow.checkpoints import load_model
from waveglow.cli import (
    EXIT_BAD_FILES,
    EXIT_OK,
    USER_ERRORS,
    add_audio_override_args,
    audio_overrides,
    error_exit,
)
from waveglow.config import AudioConfig
from waveglow.cpu_load import LoadAwareThreads
from waveglow.device import check_device
from waveglow.evaluate.griffin_lim import DEFAULT_ITERATIONS
from waveglow.evaluate.report import EvaluationReport, evaluate_model, vocoder_synthesis
from waveglow.filelists import resolve_files
from waveglow.metrics import ALL_METRICS
from waveglow.synth import Vocoder
from waveglow.synth.vocoder import ENGINES, PRECISION_CHOICES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m waveglow.evaluate",
        description="Copy-synthesis evaluation: held-out NLL, PESQ, STOI, MCD, MR-STFT, pitch and voicing, "
        "log-mel distance and DNSMOS per file, beside a Griffin-Lim baseline and the recordings' own scores.",
    )
    parser.add_argument("files", help="filelist, LJSpeech folder (its test split) or directory of audio")
    parser.add_argument(
        "--checkpoint",
        help="our checkpoint or a published NVIDIA file; omit with --baseline to score the baseline",
    )
    parser.add_argument(
        "--baseline", choices=["griffin-lim"], help="also score this classical inverse of the mels"
    )
    parser.add_argument(
        "--griffin-lim-iters", type=int, default=DEFAULT_ITERATIONS, help=f"default {DEFAULT_ITERATIONS}"
    )
    parser.add_argument(
        "--metrics", default="all", help=f"comma-separated subset of {','.join(ALL_METRICS)} (default all)"
    )
    parser.add_argument(
        "--output", default=None, help="write report.json, report.md, metrics.png, mel plots here"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="with --output: write report.json, report.md, metrics.png and mels.png only (no per-file wavs and plots)",
    )
    parser.add_argument("--data-root", default="", help="resolve relative filelist paths against this")
    parser.add_argument("--sigma", type=float, default=0.6, help="std of z at synthesis (default 0.6)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--engine",
        choices=list(ENGINES),
        default="auto",
        help="synthesis engine, as infer.py's: auto (default) the faster of fast and eager for this model on "
        "this machine, timed once and cached; fast; eager (the model's own reverse pass)",
    )
    parser.add_argument(
        "--precision",
        choices=list(PRECISION_CHOICES),
        default="fp32",
        help="synthesis precision, as infer.py's: fp32 (default, exact), bf16, fp16, or auto (bf16 where "
        "it is faster and the CPU has it natively; not exact). The NLL is always computed in float32",
    )
    parser.add_argument("--max-files", type=int, default=0, help="evaluate only the first N files (0: all)")
    parser.add_argument(
        "--seed", type=int, default=1234, help="seed of the synthesis noise and Griffin-Lim phase"
    )
    add_audio_override_args(parser, "; NVIDIA files and baseline-only runs, which have no stored config")
    args = parser.parse_args(argv)
    if args.checkpoint is None and args.baseline is None:
        parser.error("give --checkpoint, --baseline griffin-lim, or both")
    if args.griffin_lim_iters < 1:
        parser.error(f"--griffin-lim-iters must be at least 1, got {args.griffin_lim_iters}")
    args.metric_names = (
        ALL_METRICS if args.metrics == "all" else tuple(m for m in args.metrics.split(",") if m)
    )
    unknown = sorted(set(args.metric_names) - set(ALL_METRICS))
    if unknown:
        parser.error(f"unknown metrics {unknown}; known: {', '.join(ALL_METRICS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Exit codes as train.py's and infer.py's: 0 all files scored, 1 some were bad (each listed with its
    reason, the others scored), 2 the command could not run (one line on stderr)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return run(args)
    except (*USER_ERRORS, ValueError) as exc:  # ValueError: an engine or precision this device cannot run
        return error_exit(exc)


def run(args: argparse.Namespace) -> int:
    device = check_device(args.device)
    model, nll_sigma, dither, audio_cfg = None, 1.0, 0.0, None
    synthesize, synthesis = None, ""
    if args.checkpoint:
        model, cfg = load_model(args.checkpoint, **audio_overrides(args))
        # weight norm folded (same outputs, faster), engine and precision chosen for this machine
        vocoder = Vocoder(model, cfg, device=device, engine=args.engine, precision=args.precision)
        model, synthesize = vocoder.model, vocoder_synthesis(vocoder)
        synthesis = f"{vocoder.engine} engine, {vocoder.precision}"
        nll_sigma, dither = cfg.train.sigma, cfg.data.dither
    else:
        audio_cfg = AudioConfig(**audio_overrides(args))
        audio_cfg.validate()
    paths = resolve_files(args.files, data_root=args.data_root, split="test")
    if args.max_files > 0:
        paths = paths[: args.max_files]
    # on a CPU, torch's threads kept to the cores other processes leave free, checked file by file
    threads = LoadAwareThreads(min_interval=2.0) if device.type == "cpu" else None
    if threads is not None and threads.max_threads > 1:
        threads.settle()
    try:
        report = evaluate_model(
            model,
            paths,
            args.sigma,
            device,
            args.output,
            seed=args.seed,
            checkpoint=args.checkpoint or "",
            nll_sigma=nll_sigma,
            dither=dither,
            audio_cfg=audio_cfg,
            griffin_lim_iters=args.griffin_lim_iters if args.baseline else None,
            metrics=args.metric_names,
            per_file_outputs=not args.report_only,
            synthesize=synthesize,
            synthesis=synthesis,
            threads=threads,
        )
    finally:
        if threads is not None:
            threads.restore()
    _print_summary(args, report, device)
    return EXIT_BAD_FILES if report.n_bad or not report.n_files else EXIT_OK


def _print_summary(args: argparse.Namespace, report: EvaluationReport, device: torch.device) -> None:
    """The means of every system, the bad files, and where the report went."""
    plural = "s" if report.n_files != 1 else ""
    if args.checkpoint:
        print(
            f"{report.n_files} file{plural} ({report.n_bad} bad): held-out NLL {report.nll:.4f} nats/sample, "
            f"copy-synthesis log-mel distance {report.log_mel_distance:.3f} (sigma {args.sigma}), "
            f"synthesis {report.seconds_per_second:.2f} s per second of audio on {device} ({report.synthesis})"
        )
    else:
        print(f"{report.n_files} file{plural} ({report.n_bad} bad), no model: baselines only")
    for name, means in [("model", report.mean)] + [(k, v["mean"]) for k, v in report.baselines.items()]:
        if means:
            print(f"  {name:12s} " + "  ".join(f"{k} {_short(v)}" for k, v in means.items()))
    for clip in report.clips:
        if clip.error:
            print(f"  bad: {clip.path}: {clip.error}")
    if args.output:
        print(
            f"report.json, report.md, metrics.png and mel plots (ground truth | synthesis) in {args.output}/"
        )


def _short(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) and abs(value) < 100 else f"{value:.1f}"


if __name__ == "__main__":
    raise SystemExit(main())
