"""The error of training: the bottom of ``waveglow.train``, importing nothing of ours."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot start or go on; the message says why and what to do."""
