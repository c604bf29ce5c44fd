"""Train WaveGlow: ``python train.py -c configs/ljspeech.yaml --data-root /data/LJSpeech-1.1 --run-dir runs/ljs``.

Many GPUs or machines: ``torchrun --nproc_per_node 8 train.py ...`` (the same arguments). See README.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from waveglow.cli import USER_ERRORS, error_exit
from waveglow.config import Config, load_config, resolve_data_paths
from waveglow.interrupts import signal_exit_code
from waveglow.train.errors import TrainingError
from waveglow.train.loop import TrainResult, train
from waveglow.train.setup import check_data


def config_from_args(args: Any) -> tuple[Config, Path]:
    """The run's Config and run dir from train.py's arguments (flags and --set override the file)."""
    run_dir = Path(args.run_dir) if args.run_dir else None
    if args.config:
        cfg = load_config(args.config)
        run_dir = run_dir or Path("runs") / Path(args.config).stem
    elif args.resume and run_dir is not None and (run_dir / "config.yaml").is_file():
        cfg = load_config(run_dir / "config.yaml")
    else:
        raise TrainingError("give a config (-c FILE), or --resume with a --run-dir that holds config.yaml")
    cfg = cfg.override(list(args.set))
    if args.data_root is not None:
        cfg.data.data_root = os.path.abspath(args.data_root) if args.data_root else ""
    resolve_data_paths(cfg)  # paths given by --set are relative to the working directory
    if args.skip_bad_files:
        cfg.data.skip_bad_files = True
    for flag in ("precision", "device", "max_steps", "max_minutes", "compile"):
        if getattr(args, flag) is not None:
            setattr(cfg.train, flag, getattr(args, flag))
    return cfg.validate(), run_dir


def summary(result: TrainResult) -> str:
    """Lines for the end of a run: where it stopped, the checkpoints, held-out figures first vs last."""
    lines = [f"stopped at step {result.step} ({result.stopped_by}); last checkpoint {result.checkpoint}"]
    if result.best_checkpoint:
        lines.append(f"best checkpoint (held-out NLL) {result.best_checkpoint}")
    if result.validations:
        first, last = result.validations[0], result.validations[-1]
        nll, dist = "nll", "log_mel_distance"
        lines.append(
            f"held-out NLL {_number(first[nll])} (step {first['step']}) -> {_number(last[nll])} (step "
            f"{last['step']}) nats/sample; copy-synthesis log-mel distance {_number(first[dist], 3)} -> "
            f"{_number(last[dist], 3)}"
        )
    return "\n".join(lines)


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def run_cli(args: Any) -> int:
    """The body of train.py: --check-data, or train and print a summary (rank 0). Returns the exit code:
    0 done, 1 --check-data found bad files, 2 the run could not start or go on (one line says why),
    130 / 143 stopped by SIGINT / SIGTERM (after writing a checkpoint when training had begun)."""
    try:
        cfg, run_dir = config_from_args(args)
        if args.check_data:
            reports = check_data(cfg)
            for name, report in reports:
                print(f"{name} files:\n{report.format(max_listed=None)}\n")  # every bad file
            return 0 if all(report.ok for _, report in reports) else 1
        result = train(cfg, run_dir, resume=args.resume, init_from=args.init_from)
    except (TrainingError, *USER_ERRORS) as exc:
        return error_exit(exc)
    except KeyboardInterrupt:
        print("error: interrupted before training began; nothing to save", file=sys.stderr)
        return signal_exit_code("SIGINT")
    if int(os.environ.get("RANK", "0")) == 0:
        print(summary(result))
    return signal_exit_code(result.stopped_by)


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
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sets train.compile: torch.compile the training step (--no-compile: eager)",
    )
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
