"""WaveGlow: a mel-conditioned normalising flow vocoder, compatible with the published NVIDIA model."""

from waveglow.audio import AudioFileError, MelSpectrogram, load_audio, save_audio
from waveglow.checkpoints import (
    CheckpointError,
    UnsafeCheckpointError,
    list_pretrained,
    load_model,
    load_nvidia_checkpoint,
    save_model,
)
from waveglow.config import (
    AudioConfig,
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    TrainConfig,
    load_config,
    save_config,
)
from waveglow.model import (
    FlowOutput,
    LightWaveGlow,
    LogLikelihood,
    LossTerms,
    WaveGlow,
    WaveGlowLoss,
    build_flow,
)
from waveglow.synth import InputError, Vocoder

__all__ = [
    "AudioConfig",
    "AudioFileError",
    "CheckpointError",
    "Config",
    "ConfigError",
    "DataConfig",
    "FlowOutput",
    "InputError",
    "LightWaveGlow",
    "LogLikelihood",
    "LossTerms",
    "MelSpectrogram",
    "ModelConfig",
    "TrainConfig",
    "UnsafeCheckpointError",
    "Vocoder",
    "WaveGlow",
    "WaveGlowLoss",
    "build_flow",
    "list_pretrained",
    "load_audio",
    "load_config",
    "load_model",
    "load_nvidia_checkpoint",
    "save_audio",
    "save_config",
    "save_model",
]

__version__ = "0.1.0"
