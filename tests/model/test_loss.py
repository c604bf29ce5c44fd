"""The likelihood: constants, float32 reduction, and a sanity check against the prior's entropy."""

from __future__ import annotations

import math

import torch
from conftest import make_tiny_model

from waveglow import WaveGlowLoss
from waveglow.model.flow import FlowOutput


def _fake_out(z, log_det_s, log_det_w):
    return FlowOutput(
        z=z,
        log_det=log_det_s + log_det_w,
        log_det_s=log_det_s,
        log_det_w=log_det_w,
        log_det_s_per_flow=log_det_s.unsqueeze(0),
    )


def test_loss_terms_by_hand():
    z = torch.full((2, 4, 5), 2.0)
    out = _fake_out(z, torch.tensor([10.0, 30.0]), torch.tensor([-4.0, 4.0]))
    loss = WaveGlowLoss(sigma=0.5)
    terms = loss.terms(out)
    n = 2 * 20
    assert math.isclose(terms.z_term.item(), (4.0 / (2 * 0.25)) * n / n, rel_tol=1e-6)
    assert math.isclose(terms.log_det_s.item(), 40.0 / n, rel_tol=1e-6)
    assert math.isclose(terms.log_det_w.item(), 0.0, abs_tol=1e-7)
    assert math.isclose(terms.constant, 0.5 * math.log(2 * math.pi * 0.25))
    assert math.isclose(terms.nll.item(), terms.nll_no_const.item() + terms.constant, rel_tol=1e-6)
    assert torch.equal(loss(out), terms.nll)


def test_loss_near_entropy_on_samples_from_the_model():
    """Audio drawn from the model itself has expected NLL equal to the model's entropy, which for a
    flow is 0.5*log(2*pi*e*sigma^2) - E[log|det dz/dx|]/T. Checked on 16 draws of 4096 samples."""
    model = make_tiny_model(seed=2).double()
    sigma = 0.7
    gen = torch.Generator().manual_seed(0)
    mel = torch.randn(16, 8, 256, generator=gen, dtype=torch.float64)
    z = sigma * torch.randn(16, 8, 512, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        audio = model.reverse(z, mel)
        out = model(audio, mel)
    loss = WaveGlowLoss(sigma).terms(out)
    n = audio.shape[1]
    expected = 0.5 * math.log(2 * math.pi * math.e * sigma**2) - out.log_det.mean().item() / n
    # The z-term averages 65536 squared Gaussians: relative std ~0.55%, i.e. ~0.003 nats.
    assert abs(loss.nll.item() - expected) < 0.02
    assert abs(loss.z_term.item() - 0.5) < 0.02


def test_loss_is_float32_under_autocast():
    model = make_tiny_model()
    audio = 0.1 * torch.randn(2, 256)
    mel = torch.randn(2, 8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = WaveGlowLoss()(model(audio, mel))
    assert value.dtype == torch.float32
    assert torch.isfinite(value)
