"""Benchmarks: synthesis and training throughput, FLOP utilisation, and every fast path against the plain one.

``python -m waveglow.bench --device cpu --model default --lengths 1.0 --batch-sizes 1 --json out.json``; the
measurements are ``waveglow.bench.run``'s. With ``--memory``: peak memory of synthesis against audio length,
with and without chunking (``waveglow.bench.memory``). Both record the machine and measure its
matrix-product peak first (``waveglow.bench.machine``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

import torch

from waveglow.bench.memory import run_memory_benchmark
from waveglow.bench.report import format_table, write_json
from waveglow.bench.run import run_benchmark
from waveglow.bench.variants import MODELS
from waveglow.files import atomic_write_text
from waveglow.synth.vocoder import DEFAULT_MAX_FRAMES

SYNTHESIS_LENGTHS = [1.0]  # seconds, when --lengths is not given
MEMORY_LENGTHS = [10.0, 60.0, 300.0, 600.0]


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda text: [kind(item) for item in text.split(",") if item]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m waveglow.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--model", type=_csv(str), default=["default"], help=f"comma list of {','.join(MODELS)}"
    )
    parser.add_argument("--precision", type=_csv(str), default=["fp32"], help="fp32,bf16,fp16")
    parser.add_argument("--batch-sizes", type=_csv(int), default=[1])
    parser.add_argument(
        "--lengths",
        type=_csv(float),
        default=None,
        help="seconds of audio per utterance (default 1; --memory: 10,60,300,600)",
    )
    parser.add_argument("--variants", type=_csv(str), default=None, help="default: see default_variants")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each variant (alternated)")
    parser.add_argument("--train", action="store_true", help="also measure training steps")
    parser.add_argument("--train-only", action="store_true", help="measure training steps only")
    parser.add_argument("--train-segment", type=int, default=16000, help="training segment, samples")
    parser.add_argument("--train-steps", type=int, default=2, help="timed training steps")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--gemm-size",
        type=int,
        default=None,
        help="side of the square product timed for the peak (0: stated peaks)",
    )
    parser.add_argument(
        "--memory", action="store_true", help="measure peak memory of synthesis against length"
    )
    parser.add_argument(
        "--max-frames",
        type=_csv(int),
        default=[0, DEFAULT_MAX_FRAMES],
        help=f"--memory: comma list of chunk sizes in mel frames, 0 for none (default 0,{DEFAULT_MAX_FRAMES})",
    )
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument("--markdown", default=None, help="write the table here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python -m waveglow.bench " + " ".join(argv if argv is not None else sys.argv[1:])

    def write(result: dict[str, Any]) -> None:  # after every measured case, the last one included
        table = format_table(result)
        if args.json:
            write_json(result, args.json)
        if args.markdown:
            atomic_write_text(args.markdown, f"Command: `{command}`\n\n{table}\n")

    if args.memory:
        result = run_memory_benchmark(
            device=args.device,
            models=args.model,
            precisions=args.precision,
            lengths=args.lengths or MEMORY_LENGTHS,
            max_frames=args.max_frames,
            threads=args.threads,
            gemm_size=args.gemm_size,
            command=command,
            on_progress=write,
        )
        print(format_table(result))
        return
    result = run_benchmark(
        device=args.device,
        models=args.model,
        precisions=args.precision,
        batch_sizes=args.batch_sizes,
        lengths=args.lengths or SYNTHESIS_LENGTHS,
        variants=args.variants,
        rounds=args.rounds,
        train=args.train or args.train_only,
        synthesis=not args.train_only,
        train_segment=args.train_segment,
        train_steps=args.train_steps,
        gemm_size=args.gemm_size,
        command=command,
        on_progress=write,
    )
    print(format_table(result))


if __name__ == "__main__":
    main()
