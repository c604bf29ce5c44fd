"""The exact log-likelihood of audio given its mel under a WaveGlow (``Vocoder.score``): minus the training
loss, per example."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from waveglow.model.flow import FlowOutput, WaveGlow
from waveglow.model.loss import WaveGlowLoss


@dataclass
class LogLikelihood:
    """Exact log-likelihood of audio given its mel, per example (higher is more likely).

    nats_per_sample: (B,) log p(audio | mel) / T in nats, with the prior N(0, sigma^2) at the training
    sigma; this is minus the training loss. bits_per_sample: (B,) the same in bits. Densities are of float
    samples in [-1, 1]. n_samples: the samples scored per example (T cut to a multiple of n_group).
    """

    nats_per_sample: torch.Tensor
    bits_per_sample: torch.Tensor
    n_samples: int
    sigma: float


@torch.inference_mode()
def log_likelihood(model: WaveGlow, audio: torch.Tensor, mel: torch.Tensor, sigma: float) -> LogLikelihood:
    """audio (B, T), T a multiple of n_group, and its mel (B, n_mel, F) -> the log-likelihood of each item.

    Runs ``model.forward`` in float32 (autocast off) with the prior N(0, sigma^2), one loss term per item.
    """
    loss = WaveGlowLoss(sigma)
    nats = []
    with torch.autocast(audio.device.type, enabled=False):
        out = model(audio, mel)
        for b in range(audio.shape[0]):
            item = FlowOutput(
                z=out.z[b : b + 1],
                log_det=out.log_det[b : b + 1],
                log_det_s=out.log_det_s[b : b + 1],
                log_det_w=out.log_det_w[b : b + 1],
                log_det_s_per_flow=out.log_det_s_per_flow[:, b : b + 1],
            )
            nats.append(-loss.terms(item).nll)
    nats_per_sample = torch.stack(nats).float().cpu()
    return LogLikelihood(
        nats_per_sample=nats_per_sample,
        bits_per_sample=nats_per_sample / math.log(2),
        n_samples=audio.shape[1],
        sigma=loss.sigma,
    )
