"""Synthesis: the Vocoder, its inputs, the engines (eager, fast), the denoiser and the batch job. Imports no
training, data, evaluation or benchmark code (the ``synth`` import contract)."""

from waveglow.synth.inputs import InputError
from waveglow.synth.vocoder import Vocoder

__all__ = ["InputError", "Vocoder"]
