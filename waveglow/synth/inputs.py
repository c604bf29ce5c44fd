"""What a caller hands the ``Vocoder``: mels (checked against the checkpoint's mel convention), audio, and
the per-item noise seeds.

``validate_mel`` is the one check of a mel, for the ``Vocoder`` and for the files of the ``infer.py`` batch
job; an input that cannot be synthesised raises ``InputError`` naming the input and the problem.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np
import torch

from waveglow.audio import check_mel, far_outside_convention
from waveglow.config import AudioConfig

log = logging.getLogger(__name__)

MelInput = torch.Tensor | np.ndarray


class InputError(ValueError):
    """An input cannot be synthesised; the message names the input and the problem."""


# ---------------------------------------------------------------------------------------------- mels
def validate_mel(
    mel: MelInput, audio_cfg: AudioConfig, source: str = "mel", strict_convention: bool = True
) -> torch.Tensor:
    """Check a mel of shape (n_mel, F) or (1, n_mel, F); returns it as float32 (n_mel, F) on its device.

    Raises InputError naming ``source`` for a wrong shape or bin count, no frames, NaN or inf, or (when
    ``strict_convention``) values unlike the config's mel convention (``audio.check_mel``: e.g. a dB, log10
    or normalised mel for a natural-log model); without ``strict_convention`` those are warnings.
    """
    n_mel_channels = audio_cfg.n_mel_channels
    if isinstance(mel, np.ndarray):
        if not (np.issubdtype(mel.dtype, np.floating) or np.issubdtype(mel.dtype, np.integer)):
            raise InputError(f"{source}: array of dtype {mel.dtype} is not a real-valued mel")
        mel = torch.from_numpy(np.ascontiguousarray(mel))
    if not isinstance(mel, torch.Tensor):
        raise InputError(f"{source}: holds {type(mel).__name__}, expected an array or tensor")
    if mel.is_complex() or mel.dtype == torch.bool:
        raise InputError(f"{source}: tensor of dtype {mel.dtype} is not a real-valued mel")
    if mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.dim() != 2:
        raise InputError(f"{source}: shape {tuple(mel.shape)} is not (n_mel, F) or (1, n_mel, F)")
    if mel.shape[0] != n_mel_channels:
        hint = " (transposed? expected (n_mel, F))" if mel.shape[1] == n_mel_channels else ""
        raise InputError(
            f"{source}: has {mel.shape[0]} mel bins, the checkpoint expects {n_mel_channels}{hint}"
        )
    if mel.shape[1] == 0:
        raise InputError(f"{source}: has no frames")
    mel = mel.float()
    bad = int((~torch.isfinite(mel)).sum())
    if bad:
        raise InputError(f"{source}: contains {bad} NaN or infinite values")
    issues = check_mel(mel, audio_cfg)
    if issues and strict_convention and far_outside_convention(mel, audio_cfg):
        raise InputError(f"{source}: {'; '.join(issues)}")
    for issue in issues:
        log.warning("%s: %s", source, issue)
    return mel


def split_mels(
    mel: MelInput | Sequence[MelInput], lengths: Sequence[int] | torch.Tensor | None, audio_cfg: AudioConfig
) -> tuple[list[torch.Tensor], bool]:
    """Any mel input the ``Vocoder`` accepts -> (checked float32 mels (n_mel, F_i), whether it was a list).

    mel: a list of (n_mel, F_i) or (1, n_mel, F_i), or one (n_mel, F) or (B, n_mel, F) tensor or array, in
    which item i is mel[i, :, :lengths[i]] when ``lengths`` (B,) is given. Mel conventions only warn here.
    """
    if isinstance(mel, (list, tuple)):
        if lengths is not None:
            raise ValueError("lengths is for a padded batch, not for a list of mels")
        mels = [validate_mel(m, audio_cfg, f"mel[{i}]", strict_convention=False) for i, m in enumerate(mel)]
        return mels, True
    if isinstance(mel, np.ndarray):
        mel = torch.from_numpy(np.ascontiguousarray(mel))
    if not isinstance(mel, torch.Tensor) or mel.dim() not in (2, 3):
        raise ValueError(f"mel must be (n_mel, F) or (B, n_mel, F), got {getattr(mel, 'shape', type(mel))}")
    batch = mel.unsqueeze(0) if mel.dim() == 2 else mel
    frames = [batch.shape[2]] * batch.shape[0]
    if lengths is not None:
        frames = [int(n) for n in (lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths)]
        if len(frames) != batch.shape[0] or not all(1 <= n <= batch.shape[2] for n in frames):
            raise ValueError(f"lengths {frames} do not fit a mel batch of shape {tuple(batch.shape)}")
    mels = [
        validate_mel(batch[i, :, :n], audio_cfg, f"mel[{i}]", strict_convention=False)
        for i, n in enumerate(frames)
    ]
    return mels, False


def as_mel_batch(mel: MelInput, device: torch.device, source: str = "mel") -> torch.Tensor:
    """mel (n_mel, F) or (B, n_mel, F), tensor or array -> float32 (B, n_mel, F) on ``device``; InputError
    naming ``source`` for another shape or NaN/inf values."""
    if isinstance(mel, np.ndarray):
        mel = torch.from_numpy(np.ascontiguousarray(mel))
    mel = mel.unsqueeze(0) if mel.dim() == 2 else mel
    if mel.dim() != 3:
        raise InputError(f"{source}: shape {tuple(mel.shape)} is not (n_mel, F) or (B, n_mel, F)")
    mel = mel.to(device, torch.float32)
    _check_finite(mel, source, "values")
    return mel


# ---------------------------------------------------------------------------------------------- audio
def as_audio_batch(audio: MelInput, device: torch.device, source: str = "audio") -> torch.Tensor:
    """audio (T,) or (B, T), tensor or array -> float32 (B, T) on ``device``; InputError naming ``source``
    for another shape, no samples, or NaN/inf samples (which would give a NaN mel, score or synthesis)."""
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(np.ascontiguousarray(audio))
    if audio.dim() == 1:
        audio = audio.unsqueeze(0)
    if audio.dim() != 2:
        raise InputError(f"{source}: shape {tuple(audio.shape)} is not (T,) or (B, T)")
    if audio.shape[1] == 0:
        raise InputError(f"{source}: has no samples")
    audio = audio.to(device, torch.float32)
    _check_finite(audio, source, "samples")
    return audio


def _check_finite(values: torch.Tensor, source: str, what: str) -> None:
    bad = int((~torch.isfinite(values)).sum())
    if bad:
        raise InputError(f"{source}: contains {bad} NaN or infinite {what}")


# ---------------------------------------------------------------------------------------------- seeds
def draw_seeds(count: int, generator: torch.Generator | None = None) -> list[int]:
    """``count`` int64 seeds drawn from ``generator`` (the global RNG when None), one call per seed.

    One call each, so that drawing for a batch equals drawing for its items one by one on any device.
    """
    device = generator.device if generator is not None else "cpu"
    return [
        int(torch.randint(0, 2**63 - 1, (1,), generator=generator, device=device, dtype=torch.int64))
        for _ in range(count)
    ]


def item_seed(seed: int, key: str) -> int:
    """A stable 63-bit seed for one file from the job seed and the file's output name."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


BUCKET_STEP_FRAMES = 16  # the smallest bucket, and the granularity of all of them
BUCKET_GROWTH = 1.25  # each bucket at most this much longer than the one below: <= 25% padded work


def bucket_frames(frames: int, align: int = 1) -> int:
    """The padded length, in mel frames, of a batch whose longest mel has ``frames``: the smallest of a fixed
    series of sizes (16, 32, 48, ... growing by at most 25% each), each a multiple of ``align``.

    Compiled synthesis and CUDA graphs specialise on shapes; padding to a few fixed sizes lets a long batch
    job reuse a handful of them instead of compiling or recording one per batch.
    """
    if frames < 1 or align < 1:
        raise ValueError(f"frames and align must be >= 1, got {frames} and {align}")
    step = -(-BUCKET_STEP_FRAMES // align) * align
    size = step
    while size < frames:
        size = max(size + step, -(-int(size * BUCKET_GROWTH) // step) * step)
    return size
