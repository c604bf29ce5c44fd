"""``python -m waveglow.pretrained``: list the shipped models, or export a training checkpoint as one.

python -m waveglow.pretrained list
python -m waveglow.pretrained export RUN/checkpoints/step_XXXXXXXX.pt allison-light --cpu-hours 1.9
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from waveglow.checkpoints import CheckpointError, export_weights, load_checkpoint
from waveglow.checkpoints.pretrained import FOLDER, list_pretrained, pretrained_path
from waveglow.cli import error_exit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m waveglow.pretrained", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the shipped models and their training record")
    export = sub.add_parser("export", help="write a checkpoint's weights (float16) as a shipped model")
    export.add_argument("checkpoint", help="a training checkpoint of ours")
    export.add_argument("name", help="the model's name (the file is waveglow/pretrained/NAME.pt)")
    export.add_argument("--cpu-hours", type=float, required=True, help="CPU hours of training so far")
    export.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimizer steps of training so far (default: the checkpoint's own step; give the total when the "
        "run was started from earlier weights with --init-from, which restarts the count)",
    )
    export.add_argument("--data", default="", help="what it was trained on, one line")
    export.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in list_pretrained():
            record = torch.load(pretrained_path(name), weights_only=True).get("pretrained", {})
            print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in record.items()))
        return 0
    try:
        data = load_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        return error_exit(exc)
    steps = int(data.get("step", 0)) if args.steps is None else args.steps
    if steps < int(data.get("step", 0)):
        return error_exit(
            ValueError(f"--steps {steps} is fewer than the checkpoint's own step {data.get('step')}")
        )
    record = {"step": steps, "cpu_hours": round(args.cpu_hours, 3), "data": args.data}
    path = Path(FOLDER) / f"{args.name}.pt"
    export_weights(data, path, record, getattr(torch, args.dtype))
    print(f"wrote {path} ({Path(path).stat().st_size / 1e6:.1f} MB): {record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
