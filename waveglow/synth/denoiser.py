"""Bias removal: subtract the model's own output for a silent input from the magnitude spectrum.

A trained WaveGlow leaves a faint, nearly stationary hiss or hum even where the mel says silence. Like the
original NVIDIA ``Denoiser``, we synthesise a bias signal once (mel of zeros, sigma 0), take its STFT
magnitude, and at denoising time subtract ``strength`` times that magnitude from every frame's magnitude,
clamp at zero and resynthesise with the original phase.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from waveglow.audio import MelSpectrogram, stft_args
from waveglow.config import AudioConfig
from waveglow.model.flow import WaveGlow

BIAS_FRAMES = 88  # mel frames of the bias signal, as in the original (88 * 256 samples ~ 1 s at 22.05 kHz)
BIAS_MODES = ("zeros", "silence")


def bias_mel(
    n_mel_channels: int, frames: int = BIAS_FRAMES, mode: str = "zeros", floor: float = math.log(1e-5)
) -> torch.Tensor:
    """The mel (1, n_mel, frames) whose synthesis is the bias.

    mode "zeros": a mel of 0 everywhere, the original's default (log-magnitude 0: a flat, quiet input);
    mode "silence": ``floor`` everywhere, the front end's log floor (log(1e-5) for Tacotron 2 mels), i.e.
    digital silence.
    """
    if mode == "zeros":
        return torch.zeros(1, n_mel_channels, frames)
    if mode == "silence":
        return torch.full((1, n_mel_channels, frames), float(floor))
    raise ValueError(f"denoiser mode must be one of {BIAS_MODES}, got {mode!r}")


class Denoiser(nn.Module):
    """audio (B, T) or (T,) -> audio of the same shape with the bias spectrum removed.

    ``bias_spec`` (n_freqs, 1) is a buffer, so ``.to(device)`` moves it. The STFT uses the audio config's
    filter_length, hop_length and win_length with a periodic Hann window (the original's settings for the
    published config).
    """

    def __init__(self, bias_audio: torch.Tensor, audio_cfg: AudioConfig):
        super().__init__()
        self.audio_cfg = audio_cfg
        self.register_buffer(
            "window", torch.hann_window(audio_cfg.win_length, periodic=True), persistent=False
        )
        magnitude = self._stft(bias_audio.reshape(1, -1).float()).abs()  # (1, n_freqs, F)
        # The mean over frames of a (near) stationary signal; the original took the first frame only.
        self.register_buffer("bias_spec", magnitude[0].mean(dim=1, keepdim=True), persistent=False)

    @classmethod
    @torch.no_grad()
    def from_model(
        cls,
        model: WaveGlow,
        mode: str = "zeros",
        frames: int = BIAS_FRAMES,
        synthesize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> Denoiser:
        """Build from the model's output for ``bias_mel(mode)`` at sigma 0.

        ``synthesize`` (mel (1, n_mel, F) -> audio (1, T)) lets a caller run the model its own way (device,
        precision); by default ``model.infer(mel, sigma=0)`` on the model's device.
        """
        device = next(model.parameters()).device
        floor = MelSpectrogram(model.audio_cfg).value_range()[0]
        mel = bias_mel(model.model_cfg.n_mel_channels, frames, mode, floor).to(device)
        if synthesize is None:
            bias_audio = model.infer(mel, sigma=0.0)
        else:
            bias_audio = synthesize(mel)
        return cls(bias_audio.float(), model.audio_cfg).to(device)

    def _stft(self, audio: torch.Tensor) -> torch.Tensor:
        cfg = self.audio_cfg
        return torch.stft(
            audio,
            **stft_args(cfg),
            window=self.window.to(audio.device),
            pad_mode="reflect",
            return_complex=True,
        )  # (B, n_freqs, F)

    @torch.no_grad()
    def forward(self, audio: torch.Tensor, strength: float = 0.1) -> torch.Tensor:
        """Subtract ``strength`` x bias magnitude, clamp at 0, resynthesise with the original phase.

        audio (B, T) or (T,), any float dtype (computed in float32) -> same shape, float32.
        Clips too short for the STFT's reflect padding are returned unchanged.
        """
        if strength < 0:
            raise ValueError(f"denoise strength must be >= 0, got {strength}")
        squeeze = audio.dim() == 1
        batch = audio.reshape(1, -1) if squeeze else audio
        batch = batch.float()
        length = batch.shape[-1]
        if strength == 0 or length <= self.audio_cfg.filter_length // 2:
            return batch[0] if squeeze else batch
        with torch.autocast(batch.device.type, enabled=False):
            spec = self._stft(batch)
            magnitude = (spec.abs() - strength * self.bias_spec.to(batch.device)).clamp(min=0.0)
            spec = torch.polar(magnitude, spec.angle())
            cfg = self.audio_cfg
            out = torch.istft(
                spec,
                **stft_args(cfg),
                window=self.window.to(batch.device),
                length=length,
            )  # (B, T)
        return out[0] if squeeze else out
