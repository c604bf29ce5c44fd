"""The exact negative log-likelihood of WaveGlow, in nats per audio sample."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from waveglow.model.flow import FlowOutput


@dataclass
class LossTerms:
    """Scalar terms of the loss, all per audio sample and averaged over the batch.

    nll = z_term - log_det_s - log_det_w + constant, where constant = 0.5*log(2*pi*sigma^2).
    ``nll_no_const`` is what the original NVIDIA code logs (its curves end near -6 on LJSpeech).
    """

    nll: torch.Tensor
    nll_no_const: torch.Tensor
    z_term: torch.Tensor
    log_det_s: torch.Tensor
    log_det_w: torch.Tensor
    constant: float


class WaveGlowLoss(nn.Module):
    """Negative log-likelihood under a N(0, sigma^2) prior, in nats per audio sample.

    ``loss(out)`` returns the scalar NLL including the Gaussian normaliser; ``loss.terms(out)`` returns
    every term (``LossTerms``). The reduction runs in float32 (or float64) even under autocast.
    """

    def __init__(self, sigma: float = 1.0):
        super().__init__()
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)
        self.constant = 0.5 * math.log(2 * math.pi * self.sigma**2)

    def terms(self, out: FlowOutput) -> LossTerms:
        z = out.z
        acc = torch.promote_types(z.dtype, torch.float32)
        with torch.autocast(z.device.type, enabled=False):
            z = z.to(acc)
            batch = z.shape[0]
            n_samples = z.shape[1] * z.shape[2]  # audio samples per example
            denom = batch * n_samples
            z_term = (z * z).sum() / (2 * self.sigma**2) / denom
            log_det_s = out.log_det_s.to(acc).sum() / denom
            log_det_w = out.log_det_w.to(acc).sum() / denom
            nll_no_const = z_term - log_det_s - log_det_w
        return LossTerms(
            nll=nll_no_const + self.constant,
            nll_no_const=nll_no_const,
            z_term=z_term,
            log_det_s=log_det_s,
            log_det_w=log_det_w,
            constant=self.constant,
        )

    def forward(self, out: FlowOutput) -> torch.Tensor:
        """FlowOutput -> scalar NLL in nats per sample (with the normaliser)."""
        return self.terms(out).nll
