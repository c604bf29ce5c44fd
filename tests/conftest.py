"""Shared fixtures and helpers: tiny configs and models whose couplings are not identities, generated clips and
filelists, and the rule that skips GPU tests (``@pytest.mark.gpu``, ``@pytest.mark.gpu(count=2)``) where the
CUDA devices they need are missing. Test files import helpers from here, never from each other."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from waveglow import AudioConfig, Config, ModelConfig, WaveGlow
from waveglow.checkpoints import save_model
from waveglow.config import DataConfig, TrainConfig
from waveglow.train.log import read_metrics

REPO = Path(__file__).resolve().parents[1]  # the repository root

TINY_AUDIO = AudioConfig(
    sampling_rate=8000, filter_length=64, hop_length=16, win_length=64, n_mel_channels=8, mel_fmax=4000.0
)
TINY_MODEL = ModelConfig(
    n_mel_channels=8,
    n_flows=4,
    n_group=8,
    n_early_every=2,
    n_early_size=2,
    n_layers=2,
    n_channels=16,
    kernel_size=3,
)


RATE = TINY_AUDIO.sampling_rate  # 8000 Hz


def randomize_end(model: WaveGlow, scale: float = 0.05, seed: int = 0) -> WaveGlow:
    """Give every coupling's zero-initialised `end` conv random weights, so couplings are not identities."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for wn in model.WN:
            wn.end.weight.copy_(torch.randn(wn.end.weight.shape, generator=gen) * scale)
            wn.end.bias.copy_(torch.randn(wn.end.bias.shape, generator=gen) * scale)
    return model


def make_tiny_model(seed: int = 0, model_cfg: ModelConfig = TINY_MODEL, audio_cfg: AudioConfig = TINY_AUDIO):
    torch.manual_seed(seed)
    return randomize_end(WaveGlow(model_cfg, audio_cfg), seed=seed).eval()


@pytest.fixture
def tiny_model() -> WaveGlow:
    return make_tiny_model()


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: tiny convolutions on the shared 2-core CPU run far slower on two (thread
    start-up and spin-waiting dominate)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def _engine_cache(tmp_path_factory):
    """engine="auto" caches its choice per machine (in ~/.cache): the tests, and the processes they start,
    keep theirs in a file of their own."""
    path = tmp_path_factory.mktemp("engine-cache") / "engine-choice.json"
    before = os.environ.get("WAVEGLOW_ENGINE_CACHE")
    os.environ["WAVEGLOW_ENGINE_CACHE"] = str(path)
    yield path
    if before is None:
        os.environ.pop("WAVEGLOW_ENGINE_CACHE", None)
    else:
        os.environ["WAVEGLOW_ENGINE_CACHE"] = before


@pytest.fixture(autouse=True)
def _engine_choice_ignores_the_load(monkeypatch):
    """An engine choice timed on a loaded CPU is not cached; the tests' choices are cached whatever else the
    machine runs (the test of that rule gives its own load readings)."""
    import waveglow.synth.engine_choice

    monkeypatch.setattr(waveglow.synth.engine_choice, "read_cpu_sample", lambda: None)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A checkpoint of ``make_tiny_model()`` with its config, written once per test module."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_model(make_tiny_model(), Config(model=TINY_MODEL, audio=TINY_AUDIO), path)
    return str(path)


def pytest_collection_modifyitems(config, items):
    """The one GPU rule: a test marked ``gpu`` (``gpu(count=N)``: N devices) is skipped without them."""
    for item in items:
        marker = item.get_closest_marker("gpu")
        need = marker.kwargs.get("count", 1) if marker else 0
        if need and torch.cuda.device_count() < need:
            item.add_marker(pytest.mark.skip(reason=f"needs {need} CUDA device(s)"))


# ------------------------------------------------------------------------------- generated clips and lists
def make_clips(folder: Path, count: int, seconds: float = 0.1, seed: int = 0) -> list[Path]:
    """Harmonic tones with noise, different pitch per clip, as 16-bit wavs at TINY_AUDIO's rate."""
    rng = np.random.default_rng(seed)
    rate = TINY_AUDIO.sampling_rate
    time_axis = np.arange(int(seconds * rate)) / rate
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        pitch = 150 + 40 * index
        audio = sum(0.3 / k * np.sin(2 * np.pi * k * pitch * time_axis) for k in (1, 2, 3))
        audio = audio + 0.01 * rng.standard_normal(len(time_axis))
        path = folder / f"clip{index}.wav"
        sf.write(path, audio.astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def write_list(path: Path, files: list[Path]) -> Path:
    path.write_text("".join(f"{f.name}\n" for f in files))
    return path


def tiny_config(data_dir: Path, n_train: int = 6, **train_overrides) -> Config:
    """6 training clips (3 batches of 2 per epoch), 2 held-out clips, the tiny model."""
    if not (data_dir / "train.txt").is_file():
        clips = make_clips(data_dir, n_train + 2)
        write_list(data_dir / "train.txt", clips[:n_train])
        write_list(data_dir / "validation.txt", clips[n_train:])
    settings = dict(
        batch_size=2, learning_rate=1e-3, max_steps=4, checkpoint_interval=2, validation_interval=2,
        log_interval=1, device="cpu", keep_last=2,
    )  # fmt: skip
    settings.update(train_overrides)
    return Config(
        model=TINY_MODEL,
        audio=TINY_AUDIO,
        data=DataConfig(
            training_files=str(data_dir / "train.txt"),
            validation_files=str(data_dir / "validation.txt"),
            segment_length=256,
            num_workers=0,
            validation_clips=1,
        ),
        train=TrainConfig(**settings),
    ).validate()


def train_losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["nll"] for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "train"}


def speech_like(seconds: float, rate: int = RATE, seed: int = 0, f0: float = 120.0) -> np.ndarray:
    """A harmonic signal with a moving formant-like envelope and a syllable-rate amplitude contour."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))) / rate
    formant = 500 + 300 * np.sin(2 * np.pi * 1.5 * t)
    audio = np.zeros_like(t)
    for k in range(1, int(rate / 2 / f0)):
        gain = np.exp(-(((k * f0 - formant) / 400) ** 2)) + 0.1 / k
        audio += gain * np.sin(k * phase)
    audio *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    audio += 0.003 * rng.standard_normal(len(t))
    return (0.5 * audio / np.max(np.abs(audio))).astype(np.float32)
