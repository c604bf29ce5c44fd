"""The flows and their objective, in pure torch: no file I/O, no data sets (the ``model`` import contract)."""

from waveglow.model.architectures import Flow, build_flow
from waveglow.model.flow import FlowOutput, WaveGlow
from waveglow.model.light import LightWaveGlow
from waveglow.model.likelihood import LogLikelihood, log_likelihood
from waveglow.model.loss import LossTerms, WaveGlowLoss

__all__ = [
    "Flow",
    "FlowOutput",
    "LightWaveGlow",
    "LogLikelihood",
    "LossTerms",
    "WaveGlow",
    "WaveGlowLoss",
    "build_flow",
    "log_likelihood",
]
