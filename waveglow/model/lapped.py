"""The MDCT as an orthogonal squeeze: audio (B, T) <-> coefficients (B, T // N, N).

WaveGlow squeezes audio into blocks of ``n_group`` consecutive samples. With ``model.squeeze: mdct`` the
light flow instead takes a modified discrete cosine transform of the audio (the lapped transform with a
sine window, Malvar's MLT): N = n_group coefficients per block of N samples, each block's basis functions
reaching N/2 samples into both neighbours. It is orthogonal, so it is an invertible squeeze of the same
shape whose log-determinant is exactly 0, and the flow's likelihood stays exact. What it changes is what a
channel means: coefficient k of a block is the band around (k + 1/2) * sr / (2N) Hz, seen through a window
of 2N samples with low leakage, so a coupling that scales a channel shapes the spectrum of that band.

Computed as folding, then a DCT-IV per block. At each boundary b = l*N between two blocks, the sample
pairs p = x[b-1-j], q = x[b+j] (j < N/2) are rotated by the sine window's values A_j = sin(pi/4 + a_j),
B_j = sin(pi/4 - a_j), a_j = pi (j + 1/2) / (2N) (A^2 + B^2 = 1):
    u_{l-1}[j] = -A_j p - B_j q,    u_l[N-1-j] = B_j p - A_j q,
and each block's N folded values u_l go through the orthonormal DCT-IV. Inside a signal this is exactly the
MDCT of the 2N samples centred on the block (frame start l*N - N/2, sine window). The signal's two ends
have no neighbour and are not folded (u_0[N-1-j] = -x[j], u_{L-1}[j] = -x[T-1-j]), so the transform
reaches nothing beyond the signal: no wrap-around, and a block depends on the samples within N/2 of it.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def dct4_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-IV (n, n), symmetric and its own inverse: sqrt(2/n) cos(pi/n (i+1/2)(k+1/2))."""
    i = torch.arange(n, dtype=torch.float64)
    return math.sqrt(2.0 / n) * torch.cos(math.pi / n * torch.outer(i + 0.5, i + 0.5))


def fold_weights(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B), each (n // 2,) float64: the sine window's values at the folds, j = 0 nearest the boundary."""
    a = math.pi * (torch.arange(n // 2, dtype=torch.float64) + 0.5) / (2 * n)
    return torch.sin(math.pi / 4 + a), torch.sin(math.pi / 4 - a)


class MDCTSqueeze(nn.Module):
    """audio (B, T), T a multiple of N -> coefficients (B, T // N, N) and back, orthogonal (module docstring).

    ``inverse(coefficients, blocks)`` takes each item's length in blocks for padded batches: an item's last
    block is then treated as the signal's end, as when the item runs alone. Both directions run outside
    autocast in the input's dtype (float64 inputs get float64 matrices, computed anew).
    """

    def __init__(self, n: int):
        super().__init__()
        if n % 2 or n < 2:
            raise ValueError(f"the MDCT squeeze needs an even n_group, got {n}")
        self.n = n
        fold_a, fold_b = fold_weights(n)
        self.register_buffer("dct", dct4_matrix(n).float(), persistent=False)
        self.register_buffer("fold_a", fold_a.float(), persistent=False)
        self.register_buffer("fold_b", fold_b.float(), persistent=False)

    def _tables(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(DCT-IV, A, B) in ``like``'s dtype: the buffers when both are float32, else computed anew in
        float64 and cast (``.double()`` would give the buffers only float32 precision)."""
        if like.dtype == self.dct.dtype == torch.float32:
            return self.dct, self.fold_a, self.fold_b
        fold_a, fold_b = fold_weights(self.n)
        cast = {"device": like.device, "dtype": like.dtype}
        return dct4_matrix(self.n).to(**cast), fold_a.to(**cast), fold_b.to(**cast)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, T) -> coefficients (B, T // N, N)."""
        n, half = self.n, self.n // 2
        batch, length = audio.shape
        if length % n:
            raise ValueError(f"audio length {length} is not a multiple of n_group={n}")
        with torch.autocast(audio.device.type, enabled=False):
            dct, fold_a, fold_b = self._tables(audio)
            blocks = audio.reshape(batch, length // n, n)
            left = blocks[..., :half]  # q of the fold at each block's start, j = 0 first
            right = blocks[..., half:].flip(-1)  # p of the fold at each block's end, j = 0 first
            first = torch.cat([-fold_a * right[:, :-1] - fold_b * left[:, 1:], -right[:, -1:]], dim=1)
            upper = torch.cat([-left[:, :1], fold_b * right[:, :-1] - fold_a * left[:, 1:]], dim=1)
            folded = torch.cat([first, upper.flip(-1)], dim=-1)  # (B, L, N)
            return folded @ dct

    def inverse(self, coefficients: torch.Tensor, blocks: torch.Tensor | None = None) -> torch.Tensor:
        """coefficients (B, L, N) -> audio (B, L * N); ``blocks`` (B,) int: item b's signal ends after its
        first blocks[b] blocks (None: all L), whatever the coefficients after it hold."""
        ends = None
        if blocks is not None:
            index = torch.arange(coefficients.shape[1], device=coefficients.device)
            ends = (index[None, :] == blocks.to(index.device)[:, None] - 1)[..., None]  # (B, L, 1)
        with torch.autocast(coefficients.device.type, enabled=False):
            return mdct_inverse(coefficients, *self._tables(coefficients), ends)


def mdct_inverse(
    coefficients: torch.Tensor,
    dct: torch.Tensor,
    fold_a: torch.Tensor,
    fold_b: torch.Tensor,
    ends: torch.Tensor | None = None,
) -> torch.Tensor:
    """coefficients (B, L, N) -> audio (B, L * N): the DCT-IV of each block (its own inverse), then the
    folds undone; ``ends`` (B, L, 1) bool marks blocks after which an item's signal ends (no fold there).
    Scriptable, for the exported synthesis graph."""
    half = coefficients.shape[2] // 2
    folded = coefficients @ dct
    first, upper = folded[..., :half], folded[..., half:].flip(-1)
    inner = -fold_a * first[:, :-1] + fold_b * upper[:, 1:]
    right = torch.cat([inner, -first[:, -1:]], dim=1)
    if ends is not None:
        right = torch.where(ends, -first, right)
    left = torch.cat([-upper[:, :1], -fold_b * first[:, :-1] - fold_a * upper[:, 1:]], dim=1)
    samples = torch.cat([left, right.flip(-1)], dim=-1)  # (B, L, N)
    return samples.reshape(coefficients.shape[0], -1)
