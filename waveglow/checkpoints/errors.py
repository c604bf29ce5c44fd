"""The errors of checkpoint reading: the bottom of ``waveglow.checkpoints``, importing nothing of ours."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, of an unsupported version, or does not fit the model."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint's pickle references a global that a WaveGlow checkpoint does not need (it could run code);
    the file was refused and nothing in it was executed."""
