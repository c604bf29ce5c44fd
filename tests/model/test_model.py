"""The flow: invertibility, exact log-determinants, layout, shapes, parameter count."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY_AUDIO, TINY_MODEL, make_tiny_model, randomize_end

from waveglow import AudioConfig, ConfigError, ModelConfig, WaveGlow
from waveglow.model.flow import squeeze, unsqueeze
from waveglow.model.layers import Invertible1x1Conv


def _inputs(model: WaveGlow, batch: int = 2, frames: int = 6, dtype=torch.float32, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    hop = model.audio_cfg.hop_length
    audio = 0.3 * torch.randn(batch, frames * hop, generator=gen, dtype=dtype)
    mel = torch.randn(batch, model.model_cfg.n_mel_channels, frames, generator=gen, dtype=dtype)
    return audio, mel


def test_default_parameter_count_matches_published_model():
    model = WaveGlow()
    assert sum(p.numel() for p in model.parameters()) == 87_879_272


def test_reverse_inverts_forward_float32(tiny_model):
    audio, mel = _inputs(tiny_model)
    with torch.no_grad():
        out = tiny_model(audio, mel)
        back = tiny_model.reverse(out.z, mel)
    assert (out.z - squeeze(audio, 8)).abs().max() > 1e-2  # the flow is not the identity
    assert (back - audio).abs().max().item() < 1e-5


def test_reverse_inverts_forward_float64(tiny_model):
    model = tiny_model.double()
    audio, mel = _inputs(model, dtype=torch.float64)
    with torch.no_grad():
        back = model.reverse(model(audio, mel).z, mel)
    assert (back - audio).abs().max().item() < 1e-10


def test_log_det_equals_autograd_jacobian():
    cfg = ModelConfig(
        n_mel_channels=4,
        n_flows=3,
        n_group=4,
        n_early_every=2,
        n_early_size=2,
        n_layers=2,
        n_channels=8,
        kernel_size=3,
    )
    audio_cfg = AudioConfig(
        sampling_rate=8000, filter_length=16, hop_length=4, win_length=16, n_mel_channels=4, mel_fmax=4000.0
    )
    torch.manual_seed(0)
    model = randomize_end(WaveGlow(cfg, audio_cfg), scale=0.3).double().eval()
    gen = torch.Generator().manual_seed(3)
    audio = 0.5 * torch.randn(1, 32, generator=gen, dtype=torch.float64)
    mel = torch.randn(1, 4, 8, generator=gen, dtype=torch.float64)

    def flat_z(x):
        return model(x.unsqueeze(0), mel).z.reshape(-1)

    jac = torch.autograd.functional.jacobian(flat_z, audio[0])  # (T, T)
    expected = torch.linalg.slogdet(jac)[1].item()
    got = model(audio, mel).log_det.item()
    assert abs(torch.linalg.slogdet(jac)[0].item()) == 1.0
    assert abs(got - expected) < 1e-8
    assert abs(expected) > 0.1  # a real test: the transform changes volume


def test_invertible_1x1_conv_log_det_and_inverse():
    torch.manual_seed(0)
    conv = Invertible1x1Conv(6)
    with torch.no_grad():
        conv.conv.weight.mul_(1.7).add_(0.1 * torch.randn_like(conv.conv.weight))
    w = conv.conv.weight.squeeze(-1)
    assert torch.allclose(conv.log_det(), torch.linalg.slogdet(w)[1], atol=1e-6)
    x = torch.randn(3, 6, 10, dtype=torch.float64)
    conv = conv.double()
    y, _ = conv(x)
    assert (conv.reverse(y) - x).abs().max().item() < 1e-12


def test_fresh_1x1_conv_is_rotation_with_positive_det():
    torch.manual_seed(5)
    for channels in (2, 4, 6, 8):
        w = Invertible1x1Conv(channels).conv.weight.squeeze(-1)
        assert torch.det(w).item() == pytest.approx(1.0, abs=1e-5)
        assert torch.allclose(w @ w.T, torch.eye(channels), atol=1e-5)


def test_squeeze_layout():
    audio = torch.arange(24.0).reshape(1, 24)
    x = squeeze(audio, 8)
    assert x.shape == (1, 8, 3)
    for j in range(8):
        for t in range(3):
            assert x[0, j, t].item() == audio[0, 8 * t + j].item()
    assert torch.equal(unsqueeze(x), audio)


def test_conditioning_layout(tiny_model):
    mel = torch.randn(1, 8, 4)
    cond = tiny_model.condition(mel, 4 * 16)
    up = tiny_model.upsample(mel)[:, :, : 4 * 16]
    g = 8
    assert cond.shape == (1, 8 * g, 8)
    for m in (0, 3, 7):
        for j in (0, 5):
            assert torch.equal(cond[0, m * g + j], up[0, m, j::g])


def test_z_layout_early_outputs_leave_in_order(tiny_model):
    """z's first channels are the early outputs: changing the last flow must not touch them."""
    audio, mel = _inputs(tiny_model)
    with torch.no_grad():
        z1 = tiny_model(audio, mel).z
        tiny_model.WN[3].end.bias.add_(1.0)  # affects the flow after the last early output only
        z2 = tiny_model(audio, mel).z
    cfg = tiny_model.model_cfg
    n_early = cfg.n_early_outputs() * cfg.n_early_size
    assert n_early == 2
    assert torch.equal(z1[:, :n_early], z2[:, :n_early])
    assert (z1[:, n_early:] - z2[:, n_early:]).abs().max() > 0.1
    # The first early output is taken before flow 2: only flows 0 and 1 shape it.
    with torch.no_grad():
        tiny_model.WN[2].end.bias.add_(1.0)
        z3 = tiny_model(audio, mel).z
    assert torch.equal(z3[:, :2], z1[:, :2])


def test_infer_shapes_and_generator(tiny_model):
    mel = torch.randn(3, 8, 7)
    a = tiny_model.infer(mel, sigma=0.6, generator=torch.Generator().manual_seed(4))
    b = tiny_model.infer(mel, sigma=0.6, generator=torch.Generator().manual_seed(4))
    c = tiny_model.infer(mel, sigma=0.6, generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 7 * 16)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    silent = tiny_model.infer(mel, sigma=0.0)
    assert torch.isfinite(silent).all()


def test_remove_weight_norm_keeps_outputs(tiny_model):
    audio, mel = _inputs(tiny_model)
    with torch.no_grad():
        before = tiny_model(audio, mel)
        n_params = sum(p.numel() for p in tiny_model.parameters())
        tiny_model.remove_weight_norm()
        after = tiny_model(audio, mel)
    assert not tiny_model.has_weight_norm
    assert sum(p.numel() for p in tiny_model.parameters()) < n_params
    assert (before.z - after.z).abs().max().item() < 1e-5
    assert abs(before.log_det - after.log_det).max().item() < 1e-3


@pytest.mark.parametrize(
    "model_kw,audio_kw",
    [
        (dict(n_group=4, n_early_size=2, n_early_every=4, n_flows=4), {}),
        (dict(n_group=16, n_early_size=4, n_early_every=2, n_flows=6), {}),
        (
            dict(n_mel_channels=100),
            dict(
                n_mel_channels=100,
                sampling_rate=24000,
                hop_length=300,
                win_length=1200,
                filter_length=2048,
                mel_fmax=12000.0,
            ),
        ),
    ],
)
def test_other_configurations_invert(model_kw, audio_kw):
    base_model = dict(
        n_mel_channels=80,
        n_flows=4,
        n_group=8,
        n_early_every=2,
        n_early_size=2,
        n_layers=2,
        n_channels=8,
        kernel_size=3,
    )
    base_model.update(model_kw)
    model_cfg = ModelConfig(**base_model)
    audio_cfg = AudioConfig(**audio_kw)
    model = make_tiny_model(model_cfg=model_cfg, audio_cfg=audio_cfg)
    frames = 5
    n = frames * audio_cfg.hop_length
    n -= n % model_cfg.n_group
    audio = 0.2 * torch.randn(2, n)
    mel = torch.randn(2, model_cfg.n_mel_channels, frames)
    with torch.no_grad():
        out = model(audio, mel)
        assert out.z.shape == (2, model_cfg.n_group, n // model_cfg.n_group)
        assert (model.reverse(out.z, mel) - audio).abs().max() < 1e-5
        assert model.infer(mel).shape == (2, frames * audio_cfg.hop_length)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(n_group=7), "n_group must be even"),
        (dict(n_early_size=3), "n_early_size must be even"),
        (dict(kernel_size=4), "kernel_size must be odd"),
        (dict(n_flows=12, n_early_every=1), "need >= 2"),
        (dict(n_channels=0), "positive integer"),
    ],
)
def test_model_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        WaveGlow(ModelConfig(**kwargs))


def test_mel_bins_must_match():
    with pytest.raises(ValueError, match="n_mel_channels"):
        WaveGlow(ModelConfig(n_mel_channels=100), AudioConfig())


def test_wrong_mel_shape_is_reported(tiny_model):
    with pytest.raises(ValueError, match=r"mel must be \(B, 8, F\)"):
        tiny_model.infer(torch.randn(1, 9, 5))


def test_bf16_autocast_forward_keeps_float32_numerics(tiny_model):
    audio, mel = _inputs(tiny_model)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny_model(audio, mel)
    assert out.z.dtype == torch.float32
    assert out.log_det.dtype == torch.float32
    with torch.no_grad():
        ref = tiny_model(audio, mel)
    assert (out.z - ref.z).abs().max() < 0.05
    assert math.isfinite(out.log_det.sum().item())


def test_tiny_config_constants():
    assert TINY_MODEL.n_early_outputs() == 1 and TINY_AUDIO.hop_length == 16
