"""WaveGlow: a mel-conditioned normalising flow vocoder, compatible with the published NVIDIA model."""

from .audio import AudioFileError, MelSpectrogram, load_audio, save_audio
from .config import AudioConfig, Config, ConfigError, DataConfig, ModelConfig, TrainConfig, load_config
from .light import LightWaveGlow
from .loss import LossTerms, WaveGlowLoss
from .model import FlowOutput, WaveGlow
from .pretrained import list_pretrained

__all__ = [
    "AudioConfig",
    "AudioFileError",
    "Config",
    "ConfigError",
    "DataConfig",
    "FlowOutput",
    "LightWaveGlow",
    "LossTerms",
    "MelSpectrogram",
    "ModelConfig",
    "TrainConfig",
    "Vocoder",
    "WaveGlow",
    "WaveGlowLoss",
    "load_audio",
    "load_config",
    "list_pretrained",
    "load_nvidia_checkpoint",
    "save_audio",
]

__version__ = "0.1.0"

# Imported on first use, so that `python -m waveglow.nvidia` (and the other module CLIs) do not find their
# module already imported by the package, and `import waveglow` stays light.
_LAZY = {"Vocoder": "inference", "load_nvidia_checkpoint": "nvidia"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
