"""Shared fixtures: tiny configs and models whose couplings are not identities."""

from __future__ import annotations

import pytest
import torch

from waveglow import AudioConfig, Config, ModelConfig, WaveGlow
from waveglow.checkpoint import save_model

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


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A checkpoint of ``make_tiny_model()`` with its config, written once per test module."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_model(make_tiny_model(), Config(model=TINY_MODEL, audio=TINY_AUDIO), path)
    return str(path)
