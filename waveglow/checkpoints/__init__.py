"""Checkpoints: our format, the NVIDIA import, the restricted unpickler, the shipped models, and ``load_model``
above them all (``errors`` is the bottom, ``load`` the top)."""

from waveglow.checkpoints.errors import CheckpointError, UnsafeCheckpointError
from waveglow.checkpoints.format import (
    FORMAT_VERSION,
    atomic_save,
    export_weights,
    is_truncated,
    load_checkpoint,
    model_from_payload,
    model_payload,
    save_model,
    unwrap,
)
from waveglow.checkpoints.load import load_model
from waveglow.checkpoints.nvidia import (
    convert,
    is_nvidia_checkpoint,
    load_nvidia_checkpoint,
    read_nvidia_checkpoint,
    sniff,
)
from waveglow.checkpoints.pretrained import list_pretrained, pretrained_path

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "UnsafeCheckpointError",
    "atomic_save",
    "convert",
    "export_weights",
    "is_nvidia_checkpoint",
    "is_truncated",
    "list_pretrained",
    "load_checkpoint",
    "load_model",
    "load_nvidia_checkpoint",
    "model_from_payload",
    "model_payload",
    "pretrained_path",
    "read_nvidia_checkpoint",
    "save_model",
    "sniff",
    "unwrap",
]
