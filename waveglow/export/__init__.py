"""Export for serving: the synthesis graph (mel, z) -> audio of either flow, written as TorchScript or ONNX
(``python -m waveglow.export``). Imports the model, checkpoint and file layers; nothing imports it (the
``export`` import contract)."""

from waveglow.export.exporters import (
    FORMATS,
    ExportError,
    check_exported,
    export_onnx,
    export_torchscript,
    onnx_session,
    output_paths,
    run_onnx,
)
from waveglow.export.graph import SynthesisGraph

__all__ = [
    "FORMATS",
    "ExportError",
    "SynthesisGraph",
    "check_exported",
    "export_onnx",
    "export_torchscript",
    "onnx_session",
    "output_paths",
    "run_onnx",
]
