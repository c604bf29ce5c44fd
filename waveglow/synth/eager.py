"""The eager engine of the ``Vocoder``: ``WaveGlow.reverse`` as the original code runs it, under autocast
for bf16/fp16, on padded batches of mixed lengths made exact by masking (the fast engine is ``fast.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from waveglow.model.flow import WaveGlow
from waveglow.model.light import LightWaveGlow


@contextlib.contextmanager
def masked_dilations(model: WaveGlow, mask: torch.Tensor) -> Iterator[None]:
    """Zero the input of every time-mixing layer (``model.masked_layers()``) beyond each item's length;
    mask (B, 1, L) bool, transposed for time-major models.

    A conv's zero padding does exactly this for an item that runs alone, so a padded batch computes what
    each item computes on its own. ``torch.where`` (not a product) keeps NaN or inf in the padded tail out.
    """

    if model.time_major:
        mask = mask.transpose(1, 2)  # (B, L, 1)

    def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (torch.where(mask, args[0], torch.zeros((), dtype=args[0].dtype, device=args[0].device)),)

    handles = [layer.register_forward_pre_hook(hook) for layer in model.masked_layers()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def eager_reverse(
    model: WaveGlow, z: torch.Tensor, mel: torch.Tensor, lengths: Sequence[int] | None, dtype: torch.dtype
) -> torch.Tensor:
    """z (B, n_group, L) and zero-padded mel (B, n_mel, F) -> audio (B, n_group*L) via ``model.reverse``.

    ``lengths`` (B,): each item's z columns (None: all L); where one is shorter than L, the dilated
    convolutions see zeros beyond each item's length. ``dtype`` other than float32 runs under autocast in
    that dtype.
    """
    autocast = torch.autocast(z.device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.inference_mode(), autocast:
        if lengths is None or min(lengths) >= z.shape[2]:
            return model.reverse(z, mel)
        steps = torch.arange(z.shape[2], device=z.device)
        mask = steps[None, None, :] < torch.tensor(lengths, device=z.device)[:, None, None]  # (B, 1, L)
        with masked_dilations(model, mask):
            if isinstance(model, LightWaveGlow):  # its MDCT squeeze, if any, ends each item at its length
                return model.reverse(z, mel, torch.tensor(lengths, device=z.device))
            return model.reverse(z, mel)
