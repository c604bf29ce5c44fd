"""Checkpoints: plain dicts of tensors and primitives, written atomically, loaded with weights_only=True.

Layout (format_version 1)::

    {"format_version": 1, "config": Config.to_dict(), "model": state_dict, "weight_norm": bool,
     ...training state (optimizer, scaler, step, epoch, rng) where present}

``waveglow.checkpoints.load.load_model`` reads these and also the published NVIDIA files (``nvidia.py``).
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from waveglow.checkpoints.errors import CheckpointError, UnsafeCheckpointError
from waveglow.config import Config, ConfigError
from waveglow.files import atomic_write
from waveglow.model.architectures import build_flow
from waveglow.model.flow import WaveGlow

FORMAT_VERSION = 1


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over ``path``.

    A reader never sees a partial file: either the old one or the complete new one.
    """
    atomic_write(path, lambda handle: torch.save(obj, handle))


def model_payload(model: WaveGlow, config: Config) -> dict[str, Any]:
    """The part of a checkpoint that rebuilds the model: format version, config, weights."""
    model = unwrap(model)
    return {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "weight_norm": model.has_weight_norm,
        "architecture": config.model.architecture,
    }


def unwrap(model: torch.nn.Module) -> WaveGlow:
    """The WaveGlow inside DDP or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model  # type: ignore[return-value]


def save_model(model: WaveGlow, config: Config, path: str | Path) -> None:
    """Write a weights-only checkpoint (for inference or fine-tuning) atomically."""
    atomic_save(model_payload(model, config), path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one of our checkpoints safely (weights_only=True) and check its format version."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    if is_truncated(path):
        raise CheckpointError(
            f"{path}: truncated or damaged (its zip archive has no readable end); was the copy, download or "
            "write complete?"
        )
    try:
        with (
            warnings.catch_warnings()
        ):  # a foreign (e.g. NVIDIA protocol-4) file: we explain failures ourselves
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refusal(path, exc) from None
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(
            f"{path}: not a loadable checkpoint of ours ({type(exc).__name__}: {_first_line(exc)})"
        ) from exc
    if not isinstance(data, dict) or "format_version" not in data:
        raise CheckpointError(f"{path}: not a checkpoint of ours (no format_version)")
    version = data["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is not supported (this code reads 1..{FORMAT_VERSION})"
        )
    return data


def is_truncated(path: str | Path) -> bool:
    """Whether ``path`` starts as torch.save's zip archive but has no readable central directory (the zip's
    end): a file cut short. Cheap: reads the file's head and its end, not the tensors."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"PK\x03\x04":
                return False  # not a zip (a legacy torch.save file, or not ours at all)
        with zipfile.ZipFile(path) as archive:
            return not archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return True


def _refusal(path: Path, exc: pickle.UnpicklingError) -> CheckpointError:
    """The error for a file that ``torch.load(weights_only=True)`` refused: unsafe (its pickle names a global
    that could run code) or corrupt. torch's own message advises retrying with ``weights_only=False``, which
    would run whatever the file holds: that advice is never passed on."""
    message = str(exc)
    detail = message.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation", 1)[0]
    found = re.search(r"GLOBAL (\S+)", detail)
    name = found.group(1).rstrip(".,") if found else ""
    if found and all(part.isidentifier() for part in found.group(1).split(".")):
        return UnsafeCheckpointError(
            f"{path}: refused: its pickle references {name!r}, which a checkpoint does not need and which "
            "could run code; nothing was executed"
        )
    lines = [
        line.strip()
        for line in detail.splitlines()
        if line.strip() and "weights_only" not in line and "Weights only load failed" not in line
    ]
    reason = "damaged pickle" if found else lines[0][:200] if lines else "unreadable pickle"
    return CheckpointError(f"{path}: not a loadable checkpoint (corrupt, or not a torch.save file: {reason})")


def _first_line(exc: BaseException) -> str:
    """The first sentence of an error message (torch's go on for lines); for an empty EOFError, what it means."""
    text = (str(exc).strip().splitlines() or [""])[0].split(". ", 1)[0][:300]
    return text or ("the file ends early (truncated?)" if isinstance(exc, EOFError) else "no detail")


def model_from_payload(data: dict[str, Any], source: str = "checkpoint") -> tuple[WaveGlow, Config]:
    """Rebuild the model (on CPU) from a checkpoint dict; strict key and shape checking."""
    try:
        config = Config.from_dict(data["config"])
    except (KeyError, ConfigError, TypeError) as exc:
        raise CheckpointError(f"{source}: bad or missing config ({exc})") from exc
    stored = data.get("architecture", config.model.architecture)
    if stored != config.model.architecture:
        raise CheckpointError(
            f"{source}: the file says it holds a {stored!r} flow but its config says "
            f"{config.model.architecture!r}"
        )
    model = build_flow(config.model, config.audio)
    state = data["model"]
    if not any(".parametrizations." in key for key in state):
        model.remove_weight_norm()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())  # torch's message spans lines
        raise CheckpointError(f"{source}: weights do not fit the model in its config ({detail})") from exc
    return model, config


def export_weights(
    data: dict[str, Any], path: str | Path, record: dict[str, Any], dtype: torch.dtype = torch.float16
) -> None:
    """Write the model part of a checkpoint ``data`` (ours) as a shipped model: ``model_payload`` of the
    model it holds (rebuilt, so the weights are checked against the config), weights cast to ``dtype``, and
    ``record`` (steps, CPU hours, data) under ``pretrained``. No optimizer state."""
    payload = model_payload(*model_from_payload(data))
    payload["model"] = {k: v.to(dtype) if v.is_floating_point() else v for k, v in payload["model"].items()}
    payload["pretrained"] = record
    atomic_save(payload, path)
