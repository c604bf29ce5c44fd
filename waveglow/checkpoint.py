"""Checkpoints: plain dicts of tensors and primitives, written atomically, loaded with weights_only=True.

Layout (format_version 1)::

    {"format_version": 1, "config": Config.to_dict(), "model": state_dict, "weight_norm": bool,
     ...training state (optimizer, scaler, step, epoch, rng) where present}

``load_model`` also recognises the published NVIDIA files and converts them (see ``nvidia.py``).
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from .config import Config, ConfigError
from .files import atomic_write
from .model import WaveGlow

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, of an unsupported version, or does not fit the model."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint's pickle references a global that a WaveGlow checkpoint does not need (it could run code);
    the file was refused and nothing in it was executed."""


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
    from .architectures import build_flow

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


def load_model(
    path: str | Path, map_location: str | torch.device = "cpu", **nvidia_overrides: Any
) -> tuple[WaveGlow, Config]:
    """Rebuild a flow from any checkpoint we accept: ours, a published NVIDIA file, or the name of a model
    that ships with the package (``waveglow.list_pretrained()``).

    Returns (model in float32 on ``map_location``, its Config); the file is read on the CPU and the built
    model moved. ``nvidia_overrides`` (e.g. sampling_rate, hop_length) apply only to NVIDIA files, whose
    audio settings are not stored in the file.
    """
    path = Path(path)
    if not path.exists():
        from .pretrained import pretrained_path

        path = pretrained_path(str(path)) or path  # a shipped model's name
    try:
        data = load_checkpoint(path, map_location="cpu")
    except CheckpointError as ours_error:
        try:
            from . import nvidia
        except ImportError:  # the importer is optional in a stripped install
            raise ours_error from None
        if not nvidia.is_nvidia_checkpoint(path):
            raise
        model = nvidia.load_nvidia_checkpoint(path, map_location="cpu", **nvidia_overrides)
        config = Config(model=model.model_cfg, audio=model.audio_cfg)
        return model.to(map_location), config
    model, config = model_from_payload(data, source=str(path))
    return model.to(map_location), config
