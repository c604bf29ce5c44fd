"""The one place that maps ``model.architecture`` to a flow class (``WaveGlow`` or ``LightWaveGlow``)."""

from __future__ import annotations

from waveglow.config import AudioConfig, ModelConfig
from waveglow.model.flow import WaveGlow
from waveglow.model.light import LightWaveGlow

Flow = WaveGlow | LightWaveGlow


def build_flow(model_cfg: ModelConfig, audio_cfg: AudioConfig) -> Flow:
    """A freshly initialised flow of the architecture ``model_cfg`` names."""
    if model_cfg.architecture == "light":
        return LightWaveGlow(model_cfg, audio_cfg)
    return WaveGlow(model_cfg, audio_cfg)
