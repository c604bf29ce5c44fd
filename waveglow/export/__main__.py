"""``python -m waveglow.export``: write a checkpoint's synthesis as TorchScript and/or ONNX for serving.

python -m waveglow.export allison-light --format both --output exported/allison-light
python -m waveglow.export runs/demo/checkpoints/best.pt --format onnx --output exported/demo --opset 18
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from waveglow.checkpoints import load_model
from waveglow.cli import USER_ERRORS, add_audio_override_args, audio_overrides, error_exit
from waveglow.export.exporters import (
    FORMATS,
    ExportError,
    check_exported,
    export_onnx,
    export_torchscript,
    output_paths,
)
from waveglow.export.graph import SynthesisGraph


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m waveglow.export", description=__doc__.split("\n")[0])
    parser.add_argument(
        "checkpoint", help="a checkpoint of ours, a published NVIDIA file or a shipped model's name"
    )
    parser.add_argument(
        "--format", choices=[*FORMATS, "both"], default="both", help="what to write (default: both)"
    )
    parser.add_argument(
        "--output",
        required=True,
        help="path without extension: writes OUTPUT.torchscript.pt and/or OUTPUT.onnx",
    )
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's, 20 with torch 2.14)")
    parser.add_argument(
        "--precision",
        choices=["fp32"],
        default="fp32",
        help="weights and activations of the exported graph (fp32 only; TensorRT builds fp16 from it)",
    )
    parser.add_argument(
        "--no-check", action="store_true", help="do not run the written files back against the model"
    )
    add_audio_override_args(parser, note="; NVIDIA files only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # torch.jit is deprecated (2.11 and 2.14 warn) but scripts and loads; the ONNX exporter's notes do not concern
    # this graph: optional torchvision ops it skips, a renaming it declines as mel and z share the batch
    warnings.filterwarnings("ignore", message="`torch.jit.*` is deprecated")  # Future- or DeprecationWarning
    warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    formats = FORMATS if args.format == "both" else (args.format,)
    paths = output_paths(args.output, formats)
    try:
        model, _config = load_model(args.checkpoint, map_location="cpu", **audio_overrides(args))
        graph = SynthesisGraph.from_model(model)
        for name, path in paths.items():
            if name == "torchscript":
                export_torchscript(graph, path)
            else:
                export_onnx(graph, path, opset=args.opset)
            print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        if not args.no_check:
            diffs = check_exported(graph, paths)
            for name, diff in diffs.items():
                print(
                    f"checked {paths[name]}: max |exported - model| {diff:.2e} (batch 1 and 2, 7 and 20 frames)"
                )
    except (*USER_ERRORS, ExportError) as exc:
        return error_exit(exc)
    print(
        f"inputs: mel (B, {graph.n_mel_channels}, F) float32, z (B, {graph.n_group}, L) float32 with "
        f"L = ceil(F*{graph.hop_length}/{graph.n_group}), z ~ N(0, sigma^2); "
        f"output: audio (B, L*{graph.n_group}) float32 in [-1, 1] at {graph.sampling_rate} Hz"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
