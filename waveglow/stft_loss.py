"""Multi-resolution STFT distance: spectral convergence plus log-magnitude L1, at several STFT sizes.

Differentiable (a training objective for samples drawn through the flow's reverse pass) and the metric of
the same name (``waveglow.metrics``). Magnitudes only, so the phase of the synthesis noise does not matter.
Computed in float32 (or float64) even under autocast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# (n_fft, hop_length, win_length): the three resolutions of Parallel WaveGAN's and most vocoders' STFT loss
DEFAULT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))


@dataclass
class STFTDistance:
    """Both terms averaged over the resolutions (scalars, differentiable)."""

    spectral_convergence: torch.Tensor
    log_magnitude: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.spectral_convergence + self.log_magnitude


class MultiResolutionSTFTLoss(nn.Module):
    """``loss(synthesis (B, T), reference (B, T)) -> STFTDistance``; both signals cut to the shorter one.

    Spectral convergence: ||(|S| - |R|)||_F / ||R||_F per example, averaged; log-magnitude: mean
    |log|S| - log|R||, with magnitudes floored at ``eps`` (1e-5 by default, -100 dB).
    Windows are registered buffers, so ``.to(device)`` moves them.
    """

    def __init__(
        self, resolutions: tuple[tuple[int, int, int], ...] = DEFAULT_RESOLUTIONS, eps: float = 1e-5
    ):
        super().__init__()
        for n_fft, hop, win in resolutions:
            if not 0 < hop <= win <= n_fft:
                raise ValueError(f"STFT resolution needs 0 < hop <= win <= n_fft, got {(n_fft, hop, win)}")
        self.resolutions = tuple(tuple(r) for r in resolutions)
        self.eps = eps
        for index, (_, _, win) in enumerate(self.resolutions):
            self.register_buffer(f"window_{index}", torch.hann_window(win), persistent=False)

    def magnitude(self, audio: torch.Tensor, index: int) -> torch.Tensor:
        """audio (B, T) -> |STFT| (B, n_fft // 2 + 1, frames) at resolution ``index``, floored at eps."""
        n_fft, hop, win = self.resolutions[index]
        window = getattr(self, f"window_{index}").to(audio.dtype)
        spec = torch.stft(
            audio, n_fft, hop, win, window, center=True, pad_mode="reflect", return_complex=True
        )
        return spec.abs().clamp_min(self.eps)

    def forward(self, synthesis: torch.Tensor, reference: torch.Tensor) -> STFTDistance:
        length = min(synthesis.shape[-1], reference.shape[-1])
        acc = torch.promote_types(synthesis.dtype, torch.float32)
        with torch.autocast(synthesis.device.type, enabled=False):
            synthesis = synthesis[..., :length].to(acc)
            reference = reference[..., :length].to(acc)
            convergence, log_mag = [], []
            for index in range(len(self.resolutions)):
                mag_s, mag_r = self.magnitude(synthesis, index), self.magnitude(reference, index)
                norm = torch.linalg.vector_norm(mag_r, dim=(1, 2)).clamp_min(self.eps)
                convergence.append((torch.linalg.vector_norm(mag_s - mag_r, dim=(1, 2)) / norm).mean())
                log_mag.append((mag_s.log() - mag_r.log()).abs().mean())
        count = len(self.resolutions)
        return STFTDistance(sum(convergence) / count, sum(log_mag) / count)
