"""Validation during training: held-out NLL and copy synthesis on rank 0, every train.validation_interval.

The figures themselves (``clip_nll``, ``copy_synthesis``, ``log_mel_distance``) are ``evaluation``'s, shared
with ``python -m waveglow.evaluate``; this module runs them over the held-out clips with the run's settings.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio import MelSpectrogram
from .config import Config
from .data import AudioClipDataset
from .evaluation import clip_nll, copy_synthesis, log_mel_distance
from .loss import WaveGlowLoss
from .model import WaveGlow


@dataclass
class ValidationResult:
    """Held-out NLL (nats/sample, weighted by length), copy-synthesis log-mel distance, logged examples."""

    nll: float
    log_mel_distance: float
    n_files: int
    seconds: float
    examples: list[dict[str, Any]] = field(default_factory=list)


@torch.no_grad()
def validate(model: WaveGlow, clips: AudioClipDataset, cfg: Config, device: torch.device) -> ValidationResult:
    """NLL of every held-out clip in float32 (dequantised with data.dither, as in training); copy synthesis at
    train.validation_sigma for the first data.validation_clips clips (noise from a generator seeded with
    train.seed, so validations compare)."""
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    mel_fn = MelSpectrogram(cfg.audio).to(device)
    loss_fn = WaveGlowLoss(cfg.train.sigma)
    generator = torch.Generator(device=device).manual_seed(cfg.train.seed)
    weighted = samples = 0.0
    distances, examples = [], []
    for index in range(len(clips)):
        audio, path = clips[index]
        audio = audio.to(device)  # (T,)
        if audio.shape[0] < cfg.audio.win_length:
            continue
        length = audio.shape[0] - audio.shape[0] % cfg.model.n_group
        weighted += clip_nll(model, loss_fn, mel_fn, audio, cfg.data.dither, cfg.train.seed + index) * length
        samples += length
        if len(examples) < cfg.data.validation_clips:
            synth, mel, mel_synth = copy_synthesis(
                model, mel_fn, audio, cfg.train.validation_sigma, generator
            )
            distances.append(log_mel_distance(mel, mel_synth))
            example = {"name": Path(path).stem, "audio": audio.cpu(), "synthesis": synth.cpu()}
            examples.append(example | {"mel": mel.cpu(), "mel_synthesis": mel_synth.cpu()})
    model.train(was_training)
    return ValidationResult(
        nll=weighted / samples if samples else math.nan,
        log_mel_distance=float(np.mean(distances)) if distances else math.nan,
        n_files=len(clips),
        seconds=time.perf_counter() - start,
        examples=examples,
    )
