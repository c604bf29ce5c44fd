"""Typed configuration: dataclasses, validation, and load/save of YAML or JSON files.

Imports nothing of ours but the atomic writes, and no torch. Every checkpoint carries ``Config.to_dict()``, so a model
can be rebuilt from the file alone.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from waveglow.files import atomic_write_text

# The precision names: training's (train.precision; tf32 lets CUDA matrix products and convolutions use
# TF32) and synthesis' (Vocoder, infer.py). Their dtypes and autocast are in waveglow.device.
TRAIN_PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
SYNTH_PRECISIONS = ("fp32", "bf16", "fp16")

CONFIG_VERSION = 1
ARCHITECTURES = (
    "waveglow",
    "light",
)  # model.architecture: waveglow.model.flow.WaveGlow, waveglow.model.light.LightWaveGlow
SQUEEZES = ("blocks", "mdct")  # model.squeeze: consecutive samples, or waveglow.model.lapped.MDCTSqueeze


class ConfigError(ValueError):
    """A configuration value is missing, unknown or inconsistent."""


@dataclass
class AudioConfig:
    """Audio and mel front end settings (the Tacotron 2 convention by default)."""

    sampling_rate: int = 22050  # Hz; files at other rates are resampled on load
    filter_length: int = 1024  # STFT size (n_fft)
    hop_length: int = 256  # samples between mel frames; also the upsampler's stride
    win_length: int = 1024  # Hann window length (<= filter_length); also the upsampler's kernel
    n_mel_channels: int = 80  # mel bins
    mel_fmin: float = 0.0  # lowest mel filter edge, Hz
    mel_fmax: float | None = 8000.0  # highest mel filter edge, Hz (None: sampling_rate / 2)
    # The mel convention. The defaults are Tacotron 2's, which the published WaveGlow weights expect; change
    # them only to train a model on mels from another front end (it then expects those mels).
    mel_log: str = "ln"  # ln (natural log) | log10 | db (20*log10 for magnitude, 10*log10 for power)
    mel_clip: float = 1e-5  # floor applied to the mel before the log
    mel_power: float = 1.0  # 1: STFT magnitude (Tacotron 2), 2: power
    mel_scale: str = "slaney"  # mel scale of the filters: slaney (Tacotron 2, librosa default) | htk
    mel_norm: str = "slaney"  # filter normalisation: slaney (unit area, Tacotron 2) | none (peak 1)

    def validate(self) -> None:
        _positive(self, "sampling_rate", "filter_length", "hop_length", "win_length", "n_mel_channels")
        for name, value, allowed in (
            ("mel_log", self.mel_log, ("ln", "log10", "db")),
            ("mel_scale", self.mel_scale, ("slaney", "htk")),
            ("mel_norm", self.mel_norm, ("slaney", "none")),
        ):
            if value not in allowed:
                raise ConfigError(f"audio.{name} must be one of {', '.join(allowed)}, got {value!r}")
        if not (self.mel_clip > 0 and math.isfinite(self.mel_clip)):
            raise ConfigError(f"audio.mel_clip must be positive, got {self.mel_clip}")
        if self.mel_power not in (1, 2):
            raise ConfigError(f"audio.mel_power must be 1 (magnitude) or 2 (power), got {self.mel_power}")
        if self.win_length > self.filter_length:
            raise ConfigError(
                f"audio.win_length ({self.win_length}) must not exceed audio.filter_length "
                f"({self.filter_length})"
            )
        if self.hop_length > self.win_length:
            raise ConfigError(
                f"audio.hop_length ({self.hop_length}) must not exceed audio.win_length ({self.win_length})"
            )
        fmax = self.fmax
        if not 0 <= self.mel_fmin < fmax <= self.sampling_rate / 2:
            raise ConfigError(
                f"audio: need 0 <= mel_fmin < mel_fmax <= sampling_rate/2, got mel_fmin={self.mel_fmin}, "
                f"mel_fmax={self.mel_fmax}, sampling_rate={self.sampling_rate}"
            )

    @property
    def fmax(self) -> float:
        """The upper mel edge in Hz, with ``None`` resolved to the Nyquist frequency."""
        return float(self.sampling_rate) / 2 if self.mel_fmax is None else float(self.mel_fmax)


@dataclass
class ModelConfig:
    """Flow architecture. Defaults are the published NVIDIA model (87,879,272 parameters).

    ``architecture`` "light" is the SqueezeWave-style flow of ``waveglow.model.light`` (``configs/light.yaml``):
    the same keys, with kernel_size the depthwise kernel and n_group a divisor of audio.hop_length.
    """

    architecture: str = "waveglow"  # waveglow (the published model) | light (SqueezeWave-style, for CPUs)
    n_mel_channels: int = 80  # must equal audio.n_mel_channels
    n_flows: int = 12  # flow steps (1x1 conv + affine coupling)
    n_group: int = 8  # audio samples squeezed into one vector (even)
    n_early_every: int = 4  # an early output leaves before every n_early_every-th flow
    n_early_size: int = 2  # channels per early output (even)
    n_layers: int = 8  # dilated conv layers per coupling network (WN)
    n_channels: int = 256  # residual channels in WN
    kernel_size: int = 3  # dilated conv kernel size (odd)
    squeeze: str = "blocks"  # audio -> vectors of n_group: blocks (WaveGlow's) | mdct (light flow only)

    def validate(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"model.architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}"
            )
        _positive(self, *[f.name for f in fields(self) if f.name not in ("architecture", "squeeze")])
        if self.squeeze not in SQUEEZES:
            raise ConfigError(f"model.squeeze must be one of {', '.join(SQUEEZES)}, got {self.squeeze!r}")
        if self.squeeze != "blocks" and self.architecture != "light":
            raise ConfigError(f"model.squeeze {self.squeeze!r} needs model.architecture light")
        if self.n_group % 2:
            raise ConfigError(f"model.n_group must be even, got {self.n_group}")
        if self.n_early_size % 2:
            raise ConfigError(f"model.n_early_size must be even, got {self.n_early_size}")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"model.kernel_size must be odd, got {self.kernel_size}")
        remaining = self.remaining_channels()
        if remaining < 2:
            raise ConfigError(
                f"model: {self.n_flows} flows with an early output of {self.n_early_size} channels every "
                f"{self.n_early_every} flows leave {remaining} of n_group={self.n_group} channels; need >= 2"
            )

    def early_before(self, k: int) -> bool:
        """Whether an early output leaves the flow before flow ``k`` (k = n_early_every, 2*n_early_every, ...)."""
        return k > 0 and k % self.n_early_every == 0

    def flow_channels(self) -> list[int]:
        """The channels entering each flow (its 1x1 convolution), flow 0 first; its WN sees half of them."""
        channels, remaining = [], self.n_group
        for k in range(self.n_flows):
            if self.early_before(k):
                remaining -= self.n_early_size
            channels.append(remaining)
        return channels

    def n_early_outputs(self) -> int:
        """How many early outputs leave the flow (before flows n_early_every, 2*n_early_every, ...)."""
        return (self.n_flows - 1) // self.n_early_every

    def remaining_channels(self) -> int:
        """Channels still in the flow after the last early output."""
        return self.n_group - self.n_early_size * self.n_early_outputs()


@dataclass
class DataConfig:
    """Where the training data is and how segments are drawn."""

    training_files: str = ""  # filelist, LJSpeech folder (metadata.csv + wavs/) or directory of audio
    validation_files: str = ""  # held-out filelist ("" with an LJSpeech folder: its validation split)
    data_root: str = ""  # relative paths in filelists are resolved against this ("": the list's folder)
    segment_length: int = 16000  # audio samples per training example (multiple of n_group)
    num_workers: int = 2  # DataLoader worker processes
    cache_dir: str = ""  # cache of decoded, resampled audio ("": no cache)
    skip_bad_files: bool = False  # train on the good files when the data check finds bad ones
    validation_clips: int = 4  # held-out clips synthesised and logged at each validation
    validation_max_seconds: float = 0.0  # validate on at most this much of each held-out clip (0: all of it)
    short_clips: str = "pad"  # clips shorter than segment_length: pad (mirror padding, never zeros) | drop
    dither: float = 1.0  # uniform noise added to training segments, in 16-bit steps peak to peak (0: none)
    # paired mels (filelist lines audio|mel.npy): the most frames a mel file may differ from 1 + samples //
    # hop_length; within it frames are cut, or the last repeated, to agree; beyond it the pair is bad
    mel_frame_tolerance: int = 2


@dataclass
class TrainConfig:
    """Optimisation, precision, checkpointing and logging."""

    seed: int = 1234  # makes a run reproducible
    batch_size: int = 12  # examples per device per step
    learning_rate: float = 1e-4  # Adam
    sigma: float = 1.0  # std of the Gaussian prior during training
    # Extra objective (0: none, the published maximum likelihood): weight of the multi-resolution STFT
    # distance between the recording and a synthesis from the same mel through the reverse pass
    stft_loss_weight: float = 0.0
    stft_loss_sigma: float = 0.6  # std of z for that synthesis
    stft_loss_start_step: int = 0  # the extra term counts from this optimiser step on (0: from the first)
    grad_clip_thresh: float = 0.0  # max gradient norm (0: no clipping)
    lr_schedule: str = "constant"  # constant | cosine | step
    lr_warmup_steps: int = 0  # linear warm-up steps
    lr_decay_steps: int = 0  # step schedule: decay every N steps; cosine: total steps (0: max_steps)
    lr_decay_gamma: float = 0.5  # step schedule: multiply the rate by this at each decay
    epochs: int = 100000  # upper bound on epochs
    max_steps: int = 0  # stop after this many optimiser steps (0: no limit)
    max_minutes: float = 0.0  # stop after this much wall time, with a checkpoint (0: no limit)
    precision: str = "fp32"  # fp32 | tf32 | bf16 | fp16
    # torch.compile the training step's model (forward, reverse pass for the sample loss, and their
    # backward): minutes of compiling at the start of every process, then fewer seconds per step
    compile: bool = False
    checkpoint_interval: int = 2000  # steps between checkpoints
    keep_last: int = 3  # checkpoints kept besides the best one
    validation_interval: int = 2000  # steps between validations
    log_interval: int = 50  # steps between TensorBoard scalars
    max_nonfinite_steps: int = 10  # stop after this many non-finite steps in a row
    validation_sigma: float = 0.6  # sigma of the synthesis logged at validation
    device: str = "auto"  # auto (cuda when available, else cpu) | cpu | cuda | cuda:N (torchrun: local rank)
    validate_at_start: bool = True  # validate once before the first step (the baseline for the held-out NLL)
    # torchrun: seconds a process waits for its peers in one collective (all-reduce, barrier) before the run
    # stops with an error naming a hung or lost peer; above the longest rank-0-only pause (validation, save)
    collective_timeout_s: float = 1800.0


@dataclass
class Config:
    """Everything a run needs; stored inside every checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    version: int = CONFIG_VERSION

    def validate(self) -> Config:
        """Check every section and their consistency; returns self, raises ConfigError."""
        validate_model_audio(self.model, self.audio)
        seg = self.data.segment_length
        if seg <= 0 or seg % self.model.n_group:
            raise ConfigError(
                f"data.segment_length ({seg}) must be a positive multiple of model.n_group "
                f"({self.model.n_group})"
            )
        if seg < self.audio.win_length:
            raise ConfigError(
                f"data.segment_length ({seg}) must be at least audio.win_length ({self.audio.win_length})"
            )
        if self.data.short_clips not in ("pad", "drop"):
            raise ConfigError(f"data.short_clips must be pad or drop, got {self.data.short_clips!r}")
        if not (self.data.dither >= 0 and math.isfinite(self.data.dither)):
            raise ConfigError(f"data.dither must be >= 0, got {self.data.dither}")
        tolerance = self.data.mel_frame_tolerance
        if not isinstance(tolerance, int) or isinstance(tolerance, bool) or tolerance < 0:
            raise ConfigError(
                f"data.mel_frame_tolerance must be a whole number of frames >= 0, got {tolerance!r}"
            )
        if self.train.precision not in TRAIN_PRECISIONS:
            raise ConfigError(
                f"train.precision must be fp32, tf32, bf16 or fp16, got {self.train.precision!r}"
            )
        if self.train.lr_schedule not in ("constant", "cosine", "step"):
            raise ConfigError(
                f"train.lr_schedule must be constant, cosine or step, got {self.train.lr_schedule!r}"
            )
        if self.train.lr_schedule == "cosine" and (self.train.lr_decay_steps or self.train.max_steps) <= 0:
            raise ConfigError("train.lr_schedule cosine needs train.lr_decay_steps or train.max_steps")
        if not (self.train.stft_loss_weight >= 0 and math.isfinite(self.train.stft_loss_weight)):
            raise ConfigError(f"train.stft_loss_weight must be >= 0, got {self.train.stft_loss_weight}")
        if not (self.train.stft_loss_sigma >= 0 and math.isfinite(self.train.stft_loss_sigma)):
            raise ConfigError(f"train.stft_loss_sigma must be >= 0, got {self.train.stft_loss_sigma}")
        if self.train.stft_loss_start_step < 0:
            raise ConfigError(
                f"train.stft_loss_start_step must be >= 0, got {self.train.stft_loss_start_step}"
            )
        if not (self.train.sigma > 0 and math.isfinite(self.train.sigma)):
            raise ConfigError(f"train.sigma must be positive, got {self.train.sigma}")
        if not (self.train.collective_timeout_s > 0 and math.isfinite(self.train.collective_timeout_s)):
            raise ConfigError(
                "train.collective_timeout_s must be a positive number of seconds, got "
                f"{self.train.collective_timeout_s}"
            )
        if self.train.batch_size <= 0:
            raise ConfigError(f"train.batch_size must be positive, got {self.train.batch_size}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of primitives (safe for ``torch.load(weights_only=True)``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build from a dict in our layout or the original NVIDIA ``config.json`` layout."""
        data = copy.deepcopy(data)
        if "waveglow_config" in data or "data_config" in data or "train_config" in data:
            data = _from_nvidia_layout(data)
        version = data.pop("version", CONFIG_VERSION)
        if version > CONFIG_VERSION:
            raise ConfigError(f"config version {version} is newer than this code supports ({CONFIG_VERSION})")
        unknown = set(data) - {"model", "audio", "data", "train"}
        if unknown:
            raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
        cfg = cls(
            model=_section(ModelConfig, data.get("model", {}), "model"),
            audio=_section(AudioConfig, data.get("audio", {}), "audio"),
            data=_section(DataConfig, data.get("data", {}), "data"),
            train=_section(TrainConfig, data.get("train", {}), "train"),
        )
        return cfg

    def override(self, assignments: list[str]) -> Config:
        """Apply ``section.key=value`` strings (values parsed as YAML scalars); returns a new Config."""
        data = self.to_dict()
        for item in assignments:
            if "=" not in item or "." not in item.split("=", 1)[0]:
                raise ConfigError(f"--set expects section.key=value, got {item!r}")
            dotted, raw = item.split("=", 1)
            section, key = dotted.split(".", 1)
            if section not in data or not isinstance(data[section], dict) or key not in data[section]:
                raise ConfigError(f"--set {dotted}: no such config key")
            data[section][key] = _parse_scalar(raw)
        return Config.from_dict(data)


def validate_model_audio(model: ModelConfig, audio: AudioConfig) -> None:
    """Check both sections and that the model fits the audio settings (the mel bins; for the light flow,
    n_group dividing the hop). Config.validate and both flows' constructors call it; raises ConfigError."""
    model.validate()
    audio.validate()
    if model.n_mel_channels != audio.n_mel_channels:
        raise ConfigError(
            f"model.n_mel_channels ({model.n_mel_channels}) must equal audio.n_mel_channels "
            f"({audio.n_mel_channels})"
        )
    if model.architecture == "light" and audio.hop_length % model.n_group:
        raise ConfigError(
            f"model.architecture light needs audio.hop_length ({audio.hop_length}) to be a multiple "
            f"of model.n_group ({model.n_group})"
        )


def load_config(path: str | Path) -> Config:
    """Read a YAML or JSON config file (ours or the original NVIDIA config.json)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parse error becomes one clear message
        raise ConfigError(f"{path}: cannot parse config: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of sections")
    try:
        cfg = Config.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return resolve_data_paths(cfg, path.parent)


def resolve_data_paths(cfg: Config, config_dir: str | Path | None = None) -> Config:
    """Make the relative ``data.*`` paths absolute, once, so that the run's saved config.yaml (and
    ``--resume``) works from any working directory. Changes ``cfg`` in place and returns it.

    A relative path is looked up in the working directory first (as it always was), then, for the file
    specs, under ``data.data_root`` (where it stays relative: resolved there at use), then in
    ``config_dir`` (the config file's folder); the first place where it exists wins. A path found nowhere
    is left as written (the data check names it). ``cache_dir``, which need not exist yet, is taken in the
    working directory unless it exists in ``config_dir``.
    """
    data = cfg.data
    folders = [Path.cwd()] + ([Path(config_dir)] if config_dir is not None else [])
    data.data_root = _resolved(data.data_root, folders)
    for key in ("training_files", "validation_files"):
        value = getattr(data, key)
        if value and not Path(value).is_absolute() and not Path(value).exists():
            if data.data_root and (Path(data.data_root) / value).exists():
                continue  # under data_root: resolve_files finds it there
        setattr(data, key, _resolved(value, folders))
    if data.cache_dir and not Path(data.cache_dir).is_absolute():
        found = _resolved(data.cache_dir, folders)
        data.cache_dir = found if Path(found).is_absolute() else os.path.abspath(data.cache_dir)
    return cfg


def _resolved(value: str, folders: list[Path]) -> str:
    """``value`` made absolute in the first of ``folders`` where it exists; unchanged if absolute, empty or
    found nowhere."""
    if not value or Path(value).is_absolute():
        return value
    for folder in folders:
        candidate = folder / value
        if candidate.exists():
            return os.path.abspath(candidate)  # not resolve(): keep the user's symlinks
    return value


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (or JSON when the suffix is .json)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(cfg.to_dict(), indent=2)
    else:
        import yaml

        text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    atomic_write_text(path, text)


def _section(cls: type, values: Any, name: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config section {name!r} must be a mapping, got {type(values).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {name}: {', '.join(sorted(unknown))} (known: {', '.join(known)})"
        )
    hints = typing.get_type_hints(cls)
    return cls(**{key: _typed(value, hints[key], f"{name}.{key}") for key, value in values.items()})


def _typed(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the field's type where YAML read a number as something else: PyYAML (YAML 1.1) reads
    ``1e-4`` (no dot) as a string and ``1`` as an int, so a float field accepts ints and numeric strings and
    an int field an integral float (``1e4``). Anything that is not a number there is a ConfigError."""
    if isinstance(value, bool) or value is None:
        return value
    options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(options) == 1:
        hint = options[0]  # float | None
    if hint is bool:
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if hint is float and isinstance(value, (int, str)):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
    if hint is int and isinstance(value, (float, str)):
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
        if not number.is_integer():
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return int(number)
    return value


def _parse_scalar(raw: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(raw)
    except Exception:  # noqa: BLE001
        return raw


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            section = "model" if isinstance(obj, ModelConfig) else "audio"
            raise ConfigError(f"{section}.{name} must be a positive integer, got {value!r}")


_NVIDIA_MODEL_KEYS = {f.name for f in fields(ModelConfig)} - {"n_mel_channels", "architecture"}


def _from_nvidia_layout(data: dict[str, Any]) -> dict[str, Any]:
    """Translate the original repository's config.json (train_config / data_config / dist_config /
    waveglow_config) into our sections. Keys that only matter to that code (fp16_run, output_directory,
    dist_config) are dropped."""
    wg = dict(data.get("waveglow_config", {}))
    wn = dict(wg.pop("WN_config", {}))
    model = {k: v for k, v in wg.items() if k in _NVIDIA_MODEL_KEYS or k == "n_mel_channels"}
    model.update({k: v for k, v in wn.items() if k in ("n_layers", "n_channels", "kernel_size")})
    dc = data.get("data_config", {})
    audio = {
        k: dc[k]
        for k in ("sampling_rate", "filter_length", "hop_length", "win_length", "mel_fmin", "mel_fmax")
        if k in dc
    }
    if "n_mel_channels" in model:
        audio["n_mel_channels"] = model["n_mel_channels"]
    data_section = {}
    if "training_files" in dc:
        data_section["training_files"] = dc["training_files"]
    if "segment_length" in dc:
        data_section["segment_length"] = dc["segment_length"]
    tc = data.get("train_config", {})
    train = {}
    for ours, theirs in (
        ("learning_rate", "learning_rate"),
        ("sigma", "sigma"),
        ("batch_size", "batch_size"),
        ("seed", "seed"),
        ("epochs", "epochs"),
        ("checkpoint_interval", "iters_per_checkpoint"),
    ):
        if theirs in tc:
            train[ours] = tc[theirs]
    if tc.get("fp16_run"):
        train["precision"] = "fp16"
    return {"model": model, "audio": audio, "data": data_section, "train": train}
