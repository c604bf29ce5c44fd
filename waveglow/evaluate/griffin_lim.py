"""The classical baseline: a log-mel turned back into audio by librosa's mel inversion and Griffin-Lim.

The mel settings come from the model's ``AudioConfig`` (the one owner of STFT size, hop, window, mel
filters and log convention), so the baseline inverts exactly the mels the model is given.
"""

from __future__ import annotations

import numpy as np
import torch

from waveglow.config import AudioConfig

DEFAULT_ITERATIONS = 32


def mel_to_linear(mel: torch.Tensor | np.ndarray, audio_cfg: AudioConfig) -> np.ndarray:
    """log-mel (n_mel, F) in ``audio_cfg``'s convention -> linear mel (magnitude or power, as configured)."""
    values = np.asarray(
        mel.detach().cpu().double() if isinstance(mel, torch.Tensor) else mel, dtype=np.float64
    )
    if audio_cfg.mel_log == "ln":
        return np.exp(values)
    if audio_cfg.mel_log == "log10":
        return 10.0**values
    return 10.0 ** (values * audio_cfg.mel_power / 20.0)  # dB: 20*log10 of magnitude, 10*log10 of power


def griffin_lim(
    mel: torch.Tensor | np.ndarray,
    audio_cfg: AudioConfig,
    n_iter: int = DEFAULT_ITERATIONS,
    length: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """log-mel (n_mel, F) -> audio (T,) float32 in [-1, 1], T = ``length`` or (F - 1) * hop_length.

    librosa's mel inversion (non-negative least squares through the same Slaney/HTK filters) to an STFT
    magnitude, then ``n_iter`` iterations of fast Griffin-Lim (momentum 0.99, librosa's default) from a
    random phase drawn with ``seed``; periodic Hann window and centred frames, as ``MelSpectrogram``.
    """
    import librosa

    cfg = audio_cfg
    if n_iter < 1:
        raise ValueError(f"Griffin-Lim needs at least one iteration, got {n_iter}")
    linear = mel_to_linear(mel, cfg)  # (n_mel, F)
    if linear.ndim != 2 or linear.shape[0] != cfg.n_mel_channels:
        raise ValueError(f"expected a mel of shape ({cfg.n_mel_channels}, frames), got {tuple(linear.shape)}")
    magnitude = librosa.feature.inverse.mel_to_stft(
        linear,
        sr=cfg.sampling_rate,
        n_fft=cfg.filter_length,
        power=cfg.mel_power,
        fmin=cfg.mel_fmin,
        fmax=cfg.fmax,
        htk=cfg.mel_scale == "htk",
        norm="slaney" if cfg.mel_norm == "slaney" else None,
    )  # (n_fft // 2 + 1, F)
    audio = librosa.griffinlim(
        magnitude,
        n_iter=n_iter,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        n_fft=cfg.filter_length,
        window="hann",
        center=True,
        length=length,
        pad_mode="reflect",
        random_state=np.random.default_rng(seed),
    )
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
