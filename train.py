"""Train WaveGlow: ``python train.py -c configs/ljspeech.yaml --data-root /data/LJSpeech-1.1 --run-dir runs/ljs``.

Many GPUs or machines: ``torchrun --nproc_per_node 8 train.py ...`` (the same arguments). See README.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from waveglow.training_cli import run_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train a WaveGlow vocoder by maximum likelihood.")
    parser.add_argument(
        "-c", "--config", help="YAML/JSON config (ours or NVIDIA's config.json); optional with --resume"
    )
    parser.add_argument(
        "--run-dir", help="checkpoints, logs and TensorBoard go here (default: runs/<config name>)"
    )
    parser.add_argument("--data-root", help="sets data.data_root: relative filelist paths start here")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config key (repeatable), e.g. --set train.batch_size=8",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --run-dir"
    )
    parser.add_argument(
        "--init-from", metavar="CKPT", help="start from these weights (ours or NVIDIA's); fine-tuning"
    )
    parser.add_argument("--precision", choices=["fp32", "tf32", "bf16", "fp16"], help="sets train.precision")
    parser.add_argument("--device", help="sets train.device: auto | cpu | cuda | cuda:N")
    parser.add_argument("--max-steps", type=int, help="sets train.max_steps")
    parser.add_argument("--max-minutes", type=float, help="sets train.max_minutes")
    parser.add_argument(
        "--skip-bad-files", action="store_true", help="sets data.skip_bad_files: train on the good files"
    )
    parser.add_argument("--check-data", action="store_true", help="only check the data and print the report")
    args = parser.parse_args(argv)  # fmt: skip
    rank = int(os.environ.get("RANK", 0))  # under torchrun, rank 0 reports; the others only warn
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
