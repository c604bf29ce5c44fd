"""Import of the published NVIDIA WaveGlow checkpoints, without running any pickled code.

``python -m waveglow.checkpoints convert|inspect``: convert or describe a published NVIDIA WaveGlow file::

    python -m waveglow.checkpoints convert waveglow_256channels_universal_v5.pt waveglow_v5.pt
    python -m waveglow.checkpoints inspect waveglow_256channels_universal_v5.pt
"""

from __future__ import annotations

import argparse
import logging
import sys

from waveglow.checkpoints.errors import CheckpointError
from waveglow.checkpoints.nvidia import convert, read_nvidia_checkpoint
from waveglow.cli import add_audio_override_args, audio_overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m waveglow.checkpoints", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    conv = commands.add_parser("convert", help="write a published NVIDIA file as our checkpoint")
    conv.add_argument("src")
    conv.add_argument("dst")
    conv.add_argument("--remove-weight-norm", action="store_true", help="fold weight norm (inference only)")
    add_audio_override_args(conv)
    insp = commands.add_parser("inspect", help="describe a published NVIDIA file without converting it")
    insp.add_argument("src")
    add_audio_override_args(insp)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "convert":
            config = convert(args.src, args.dst, args.remove_weight_norm, **audio_overrides(args))
            print(f"wrote {args.dst}: {config.model} {config.audio}")
        else:
            imported = read_nvidia_checkpoint(args.src, **audio_overrides(args))
            n_params = sum(t.numel() for t in imported.state.values())
            print(f"{args.src}:")
            for key, value in imported.info.items():
                print(f"  {key}: {value}")
            print(
                f"  weight_norm: {imported.weight_norm}\n  tensors: {len(imported.state)} ({n_params:,} values)"
            )
            print(f"  model: {imported.model_cfg}\n  audio: {imported.audio_cfg}")
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
