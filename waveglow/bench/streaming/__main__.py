"""Measure streaming synthesis (``Vocoder.stream``): latency to the first audio chunk and real-time factor for
the published WaveGlow (random weights) and the shipped light flow, and the look-ahead's effect on real speech.

    python -m waveglow.bench.streaming --json bench/results/cpu-DATE-stream.json \\
        --markdown bench/results/cpu-DATE-stream.md

The measurement is ``waveglow.bench.streaming.measure.run_stream_benchmark``; this module parses, records the
machine and writes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from waveglow.bench.machine import cpu_record, environment
from waveglow.bench.report import write_json
from waveglow.bench.streaming.measure import format_stream_report, run_stream_benchmark
from waveglow.files import atomic_write_text

REPO = Path(__file__).resolve().parents[3]  # the repository root (the demo clips live there)
CLIP = REPO / "demo" / "clips" / "real_en_allison__conf-noempty.flac"  # a held-out demo clip (2.8 s)


def cpu_model() -> str:
    """The CPU's model name (``waveglow.bench.machine.cpu_record``)."""
    return cpu_record()["model_name"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--clip", default=str(CLIP), help="speech for the look-ahead comparison and the timing"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per timed stream")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--models", default="light,default", help="light (the shipped light flow), default")
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument("--markdown", default=None, help="write the tables here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    command = "python -m waveglow.bench.streaming " + " ".join(argv if argv is not None else sys.argv[1:])
    models = tuple(name for name in args.models.split(",") if name)
    result = run_stream_benchmark(args.clip, seconds=args.seconds, models=models)
    result["command"] = command
    result["environment"] = {**environment(torch.device("cpu")), "cpu_model": cpu_model()}
    env = result["environment"]
    report = (
        f"Command: `{command}`\n\n{env['date']} · {env['cpu_model']} ({env['cpu_count']} cores, "
        f"{env['threads']} torch threads, load average {env['load_average']}) · torch {env['torch']}\n\n"
        f"{format_stream_report(result)}\n"
    )
    if args.json:
        write_json(result, args.json)
    if args.markdown:
        atomic_write_text(args.markdown, report)
    print(report)


if __name__ == "__main__":
    main()
