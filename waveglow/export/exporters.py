"""Write a ``SynthesisGraph`` as TorchScript or ONNX (atomically), and run the written files back.

TorchScript: ``torch.jit.script`` (every shape dynamic; ``torch.jit`` is deprecated, and torch 2.11 and 2.14
warn, but it scripts and loads). ONNX: ``torch.onnx.export(dynamo=True)`` (``torch.export`` then onnxscript),
with dynamic batch and frames; the z length is tied to the frames (L = F*hop/g) when g divides the hop and a
dimension of its own otherwise. Needs the ``export`` extra (onnx, onnxscript); onnxruntime runs the file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from waveglow.export.graph import SynthesisGraph
from waveglow.files import atomic_write

log = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}
MAX_BATCH = 4096  # the dynamic dimensions' declared upper bounds (torch.export needs finite ones to reason)
MAX_FRAMES = 10_000_000


class ExportError(RuntimeError):
    """An export cannot be done here (a missing package, an exporter failure); the message says why."""


def output_paths(stem: str | Path, formats: tuple[str, ...]) -> dict[str, Path]:
    """The file of each format: ``STEM.torchscript.pt`` and ``STEM.onnx``."""
    stem = Path(stem)
    return {name: stem.with_name(stem.name + SUFFIXES[name]) for name in formats}


def example_inputs(graph: SynthesisGraph, batch: int = 2, frames: int = 3, seed: int = 0) -> tuple:
    """(mel (batch, n_mel, frames), z (batch, g, columns(frames))) float32 for tracing and checks; batch and
    frames other than 0 and 1, which torch.export would take for constants."""
    gen = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, graph.n_mel_channels, frames, generator=gen) - 5.0
    z = 0.6 * torch.randn(batch, graph.n_group, graph.columns(frames), generator=gen)
    return mel, z


def dynamic_shapes(graph: SynthesisGraph) -> dict[str, dict[int, Any]]:
    """torch.export's dynamic dimensions of ``forward(mel, z)``: batch, frames, and z's columns."""
    from torch.export import Dim

    batch = Dim("batch", min=1, max=MAX_BATCH)
    frames = Dim("frames", min=1, max=MAX_FRAMES)
    if graph.hop_length % graph.n_group == 0:
        steps = graph.hop_length // graph.n_group
        columns = frames * steps if steps > 1 else frames
    else:
        columns = Dim("columns", min=1, max=MAX_FRAMES * graph.hop_length)
    return {"mel": {0: batch, 2: frames}, "z": {0: batch, 2: columns}}


# ------------------------------------------------------------------------------------------ TorchScript
def export_torchscript(graph: SynthesisGraph, path: str | Path) -> Path:
    """Script ``graph`` and save it to ``path`` (written atomically); ``torch.jit.load(path)`` gives a module
    with the same ``forward(mel, z) -> audio``."""
    scripted = torch.jit.script(graph)
    atomic_write(path, lambda handle: torch.jit.save(scripted, handle))
    return Path(path)


# ------------------------------------------------------------------------------------------ ONNX
def export_onnx(graph: SynthesisGraph, path: str | Path, opset: int | None = None) -> Path:
    """Export ``graph`` to ONNX at ``path`` (written atomically): inputs ``mel``, ``z``, output ``audio``,
    dynamic batch and length; ``opset`` None: the exporter's default. Weights are stored in the file
    (a model over 2 GB, which ONNX cannot hold in one file, raises ExportError)."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError(
            f"ONNX export needs the onnx and onnxscript packages ({exc.name} is missing): "
            "pip install 'waveglow[export]'"
        ) from exc
    mel, z = example_inputs(graph)
    program = torch.onnx.export(
        graph,
        (mel, z),
        dynamo=True,
        dynamic_shapes=dynamic_shapes(graph),
        input_names=["mel", "z"],
        output_names=["audio"],
        opset_version=opset,
        external_data=False,
        verbose=False,
    )
    proto = program.model_proto
    written = next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
    if opset is not None and written != opset:
        # the exporter logs a failed down-conversion and keeps its own opset
        raise ExportError(
            f"{path}: cannot write opset {opset}; the exporter gives opset {written} (18 and up)"
        )
    proto.doc_string = (
        f"waveglow synthesis ({graph.architecture}): mel (B, {graph.n_mel_channels}, F), "
        f"z (B, {graph.n_group}, ceil(F*{graph.hop_length}/{graph.n_group})) -> audio (B, L*{graph.n_group}) "
        f"in [-1, 1] at {graph.sampling_rate} Hz"
    )
    for key, value in graph_metadata(graph).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    if proto.ByteSize() >= 2**31:
        raise ExportError(
            f"{path}: the model is {proto.ByteSize() / 2**30:.1f} GiB, over ONNX's 2 GiB file limit"
        )
    data = proto.SerializeToString()
    atomic_write(path, lambda handle: handle.write(data))
    return Path(path)


def graph_metadata(graph: SynthesisGraph) -> dict[str, int | str]:
    """What a server needs to draw z and cut the audio, stored in the ONNX file's metadata_props."""
    return {
        "architecture": graph.architecture,
        "sampling_rate": graph.sampling_rate,
        "hop_length": graph.hop_length,
        "n_group": graph.n_group,
        "n_mel_channels": graph.n_mel_channels,
    }


def onnx_session(path: str | Path, threads: int = 0) -> Any:
    """An onnxruntime CPU session on the file (``threads`` intra-op threads; 0: onnxruntime's default)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ExportError("running an ONNX file needs onnxruntime: pip install 'waveglow[export]'") from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, mel: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """audio (B, L*g) from an onnxruntime session, for CPU float32 tensors mel and z."""
    feeds = {"mel": np.ascontiguousarray(mel.numpy()), "z": np.ascontiguousarray(z.numpy())}
    return torch.from_numpy(session.run(["audio"], feeds)[0])


# ------------------------------------------------------------------------------------------ check
def check_exported(graph: SynthesisGraph, paths: dict[str, Path], frames: tuple[int, ...] = (7, 20)) -> dict:
    """Run each written file back on random inputs of other lengths than the traced ones (batch 1 and 2)
    and return the largest |exported - graph| per format; onnxruntime absent: that format is not run."""
    diffs: dict[str, float] = {}
    for batch, n_frames in zip((1, 2), frames):
        mel, z = example_inputs(graph, batch, n_frames, seed=n_frames)
        with torch.no_grad():
            want = graph(mel, z)
        for name, path in paths.items():
            if name == "torchscript":
                got = torch.jit.load(str(path))(mel, z)
            else:
                try:
                    got = run_onnx(onnx_session(path), mel, z)
                except ExportError as exc:
                    log.warning("%s: not run (%s)", path, exc)
                    continue
            diffs[name] = max(diffs.get(name, 0.0), (got - want).abs().max().item())
    return diffs
