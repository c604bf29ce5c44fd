"""``load_model``: one entry point above both readers (ours and NVIDIA's), for a path or a shipped model's name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from waveglow.checkpoints.format import load_checkpoint, model_from_payload
from waveglow.checkpoints.nvidia import load_nvidia_checkpoint, sniff
from waveglow.checkpoints.pretrained import pretrained_path
from waveglow.config import Config
from waveglow.model.flow import WaveGlow


def load_model(
    path: str | Path, map_location: str | torch.device = "cpu", **nvidia_overrides: Any
) -> tuple[WaveGlow, Config]:
    """Rebuild a flow from any checkpoint we accept: ours, a published NVIDIA file, or the name of a model
    that ships with the package (``waveglow.list_pretrained()``).

    Returns (model in float32 on ``map_location``, its Config); the file is read on the CPU and the built
    model moved. ``nvidia_overrides`` (e.g. sampling_rate, hop_length) apply only to NVIDIA files, whose
    audio settings are not stored in the file.

    The file is classified once (``nvidia.sniff``: its pickle's opcodes, nothing executed); what is not an
    NVIDIA file goes to our reader, whose errors say what is wrong with it (missing, empty, truncated,
    unsafe, not ours).
    """
    path = Path(path)
    if not path.exists():
        path = pretrained_path(str(path)) or path  # a shipped model's name
    sniffed = sniff(path) if path.is_file() else None
    if sniffed is not None and sniffed.kind == "nvidia":
        model = load_nvidia_checkpoint(path, "cpu", sniffed.file_format, **nvidia_overrides)
        return model.to(map_location), Config(model=model.model_cfg, audio=model.audio_cfg)
    data = load_checkpoint(path, map_location="cpu")
    model, config = model_from_payload(data, source=str(path))
    return model.to(map_location), config
