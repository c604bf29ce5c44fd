"""WaveGlow: a mel-conditioned normalising flow vocoder, compatible with the published NVIDIA model."""

from .audio import AudioFileError, MelSpectrogram, load_audio, save_audio
from .config import AudioConfig, Config, ConfigError, DataConfig, ModelConfig, TrainConfig, load_config
from .loss import LossTerms, WaveGlowLoss
from .model import FlowOutput, WaveGlow

__all__ = [
    "AudioConfig",
    "AudioFileError",
    "Config",
    "ConfigError",
    "DataConfig",
    "FlowOutput",
    "LossTerms",
    "MelSpectrogram",
    "ModelConfig",
    "TrainConfig",
    "WaveGlow",
    "WaveGlowLoss",
    "load_audio",
    "load_config",
    "save_audio",
]

__version__ = "0.1.0"
