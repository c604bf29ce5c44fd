"""What training minimises: the exact NLL, plus (optionally) a spectral distance on samples of the flow.

The published objective is the NLL alone (``train.stft_loss_weight`` 0, the default). With a weight w > 0,
each step also draws z ~ N(0, stft_loss_sigma^2), runs the flow backwards from the same mel (the
differentiable reverse pass) and adds w times the multi-resolution STFT distance between that synthesis
and the recording, magnitudes only. The model stays an invertible flow with an exact likelihood; the extra
term only makes its samples follow the mel sooner, which pure likelihood learns slowly.
"""

from __future__ import annotations

import torch
from torch import nn

from waveglow.config import TrainConfig
from waveglow.model.flow import FlowOutput
from waveglow.stft_loss import MultiResolutionSTFTLoss, STFTDistance


class FlowObjective(nn.Module):
    """Wraps a flow so that one call (and so one DDP forward) gives both the likelihood terms and a sample.

    ``forward(audio (B, T), mel (B, n_mel, F), z (B, g, T // g) or None) -> (FlowOutput, synthesis (B, T)
    or None)``.
    """

    def __init__(self, flow: nn.Module):
        super().__init__()
        self.flow = flow

    def forward(
        self, audio: torch.Tensor, mel: torch.Tensor, z: torch.Tensor | None = None
    ) -> tuple[FlowOutput, torch.Tensor | None]:
        out = self.flow(audio, mel)
        synthesis = self.flow.reverse(z, mel) if z is not None else None
        return out, synthesis


class SampleLoss(nn.Module):
    """The weighted MR-STFT distance of a synthesis from the same mel; noise derived from (seed, step, rank).

    It counts from optimiser step ``start_step`` on: before it, ``noise`` gives None (no synthesis)."""

    def __init__(self, weight: float, sigma: float, seed: int, start_step: int = 0):
        super().__init__()
        self.weight, self.sigma, self.seed, self.start_step = weight, sigma, seed, start_step
        self.stft = MultiResolutionSTFTLoss()

    @classmethod
    def from_config(cls, tcfg: TrainConfig) -> SampleLoss | None:
        """``train.stft_loss_*`` as a SampleLoss, or None where the weight is 0 (the published objective)."""
        if tcfg.stft_loss_weight <= 0:
            return None
        return cls(tcfg.stft_loss_weight, tcfg.stft_loss_sigma, tcfg.seed, tcfg.stft_loss_start_step)

    def noise(self, audio: torch.Tensor, n_group: int, step: int, rank: int) -> torch.Tensor | None:
        """z (B, n_group, T // n_group) ~ N(0, sigma^2), the same on a resumed run as on an uninterrupted one;
        None before ``start_step``."""
        if step < self.start_step:
            return None
        generator = torch.Generator(device=audio.device).manual_seed(
            (self.seed * 1_000_003 + step) * 1_009 + rank
        )
        batch, length = audio.shape
        shape = (batch, n_group, length // n_group)
        return torch.randn(shape, generator=generator, device=audio.device) * self.sigma

    def forward(self, synthesis: torch.Tensor, audio: torch.Tensor) -> STFTDistance:
        return self.stft(synthesis, audio)
