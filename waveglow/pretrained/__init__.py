"""Models that ship inside the package, loaded by name, offline.

Each one is ``<name>.pt`` (a weights-only checkpoint of ours: config, float16 weights, and a ``pretrained``
record of its training) with a model card ``<name>.md`` beside it. ``load_model``, ``Vocoder.from_checkpoint``
and ``infer.py --checkpoint`` accept a name wherever they accept a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

FOLDER = Path(__file__).resolve().parent


def list_pretrained() -> list[str]:
    """The names of the models that ship with this package, e.g. ``["allison-light"]``."""
    return sorted(path.stem for path in FOLDER.glob("*.pt"))


def pretrained_path(name: str) -> Path | None:
    """The file of the shipped model ``name``, or None when no shipped model has that name."""
    if "/" in name or "\\" in name or name.endswith(".pt"):
        return None
    path = FOLDER / f"{name}.pt"
    return path if path.is_file() else None


def export_weights(
    data: dict[str, Any], path: str | Path, record: dict[str, Any], dtype: torch.dtype = torch.float16
) -> None:
    """Write the model part of a checkpoint ``data`` (ours) as a shipped model: weights in ``dtype``, the
    config, and ``record`` (steps, CPU hours, data) under ``pretrained``. No optimizer state."""
    from ..checkpoint import FORMAT_VERSION, atomic_save

    payload = {
        "format_version": FORMAT_VERSION,
        "config": data["config"],
        "model": {k: v.to(dtype) if v.is_floating_point() else v for k, v in data["model"].items()},
        "weight_norm": data.get("weight_norm", False),
        "architecture": data["config"]["model"].get("architecture", "waveglow"),
        "pretrained": record,
    }
    atomic_save(payload, path)
