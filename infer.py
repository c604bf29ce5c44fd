"""Synthesise wav files from mels or audio with a WaveGlow checkpoint.

python infer.py --checkpoint CKPT --output DIR INPUT... [--sigma 0.6] [--denoise 0.1] ...
torchrun --nproc_per_node N infer.py ...   # shards the inputs across N processes (GPUs)
"""

from __future__ import annotations

import argparse
import logging
import sys

from waveglow.cli import (
    EXIT_BAD_FILES,
    EXIT_ERROR,
    EXIT_OK,
    USER_ERRORS,
    add_audio_override_args,
    audio_overrides,
    error_exit,
)
from waveglow.interrupts import StopSignals, signal_exit_code
from waveglow.synth.batch import JobOptions, synthesize_files
from waveglow.synth.vocoder import DEFAULT_MAX_FRAMES, DEFAULT_OVERLAP_FRAMES, ENGINES, PRECISION_CHOICES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="mel files (.npy/.pt, (n_mel, F) or (1, n_mel, F)), audio files (copy synthesis), "
        "directories (searched recursively) or .txt filelists (path or path|text per line)",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="our checkpoint, a published NVIDIA one, or the name of a shipped model (e.g. allison-light)",
    )
    parser.add_argument(
        "--output", required=True, help="folder for the wav files (one per input, named after it)"
    )
    parser.add_argument("--sigma", type=float, default=0.6, help="std of the noise z (default 0.6)")
    parser.add_argument(
        "--denoise",
        type=float,
        default=0.0,
        metavar="STRENGTH",
        help="bias-removal strength, e.g. 0.1 (default 0: off)",
    )
    parser.add_argument(
        "--precision",
        choices=list(PRECISION_CHOICES),
        default="fp32",
        help="default fp32 (exact); auto: the faster of fp32 and bf16 where the CPU has bf16 natively, "
        "measured once and cached (not exact), fp32 on other CPUs, bf16 or fp16 on CUDA",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="inputs per pass, grouped by length (default 8)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="noise seed; each file's noise depends on it and the file's output name only (default 0)",
    )
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument(
        "--max-frames",
        type=int,
        default=DEFAULT_MAX_FRAMES,
        help=f"longer mels are synthesised in crossfaded chunks (default {DEFAULT_MAX_FRAMES})",
    )
    parser.add_argument(
        "--overlap-frames",
        type=int,
        default=DEFAULT_OVERLAP_FRAMES,
        help=f"overlap of those chunks (default {DEFAULT_OVERLAP_FRAMES})",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (default: skip them)"
    )
    parser.add_argument(
        "--engine",
        choices=list(ENGINES),
        default="auto",
        help="auto: the faster of fast and eager for this model on this machine, timed once and cached "
        "(~/.cache/waveglow/engine-choice.json); fast: weights folded for synthesis, same audio within "
        "float32 rounding; eager: the model as trained, as the original code runs it (default auto)",
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the fast engine (recompiles per batch shape)"
    )
    parser.add_argument(
        "--cuda-graphs", action="store_true", help="replay one CUDA graph per batch shape (CUDA, fast engine)"
    )
    parser.add_argument(
        "--threads",
        default="auto",
        help="CPU threads: auto (default) uses the cores other processes leave free, checked between batches "
        "(two jobs on the same cores then take one core each instead of slowing each other down); N fixes "
        "them at N",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_audio_override_args(parser, "; published NVIDIA files only, which do not store it")
    return parser


def _count(text: str) -> int:
    """--threads N as a number (JobOptions says what is allowed)."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--threads must be auto or a number, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stop = StopSignals("finishing the current batch, then stopping; rerun the command to continue")
    try:
        with stop:
            options = JobOptions(
                sigma=args.sigma,
                denoise=args.denoise,
                batch_size=args.batch_size,
                seed=args.seed,
                max_frames=args.max_frames,
                overwrite=args.overwrite,
                progress=not args.no_progress,
                threads=args.threads if args.threads == "auto" else _count(args.threads),
            )
            summary = synthesize_files(
                args.checkpoint,
                args.inputs,
                args.output,
                options,
                stop=stop,
                device=args.device,
                precision=args.precision,
                overlap_frames=args.overlap_frames,
                engine=args.engine,
                compile=args.compile,
                cuda_graphs=args.cuda_graphs,
                audio_overrides=audio_overrides(args),
            )
    except (*USER_ERRORS, ValueError) as exc:
        return error_exit(exc)
    except KeyboardInterrupt:  # a second Ctrl-C: the file being written was not renamed into place
        print("error: interrupted; every finished wav is whole, rerun to continue", file=sys.stderr)
        return signal_exit_code("SIGINT")
    print(summary.report())
    if summary.write_error:
        print(f"error: cannot write {summary.write_error}", file=sys.stderr)
        return EXIT_ERROR
    if summary.interrupted:
        return signal_exit_code(summary.interrupted)
    return EXIT_BAD_FILES if summary.failures else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
