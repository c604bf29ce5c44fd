"""Audio file I/O, resampling, and the one mel front end used for training and synthesis."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import AudioConfig

log = logging.getLogger(__name__)


class AudioFileError(ValueError):
    """A file cannot be used as audio; the message names the file and the problem."""


def load_audio(path: str | Path, sampling_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read any file soundfile reads as mono float32 in [-1, 1].

    Stereo is mixed down; when ``sampling_rate`` is given and differs from the file's, the audio is
    resampled with torchaudio. Returns (audio (T,), rate). Raises AudioFileError naming the file.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioFileError(f"{path}: file is empty")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - soundfile raises several types for corrupt files
        raise AudioFileError(f"{path}: cannot read audio ({exc})") from exc
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if audio.size == 0:
        raise AudioFileError(f"{path}: no audio samples")
    if not np.all(np.isfinite(audio)):
        raise AudioFileError(f"{path}: contains NaN or infinite samples")
    if sampling_rate is not None and rate != sampling_rate:
        audio = resample(audio, rate, sampling_rate)
        rate = sampling_rate
    return np.ascontiguousarray(audio, dtype=np.float32), int(rate)


def resample(audio: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's windowed sinc) of a 1-D float array."""
    import torchaudio.functional as AF

    tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return AF.resample(tensor, orig_rate, new_rate).numpy()


def save_audio(
    path: str | Path, audio: np.ndarray | torch.Tensor, sampling_rate: int, subtype: str = "PCM_16"
) -> None:
    """Write mono audio (T,) atomically as wav; samples are clipped to [-1, 1] (never wrapped).

    subtype: "PCM_16" (default), "PCM_24" or "FLOAT".
    """
    import soundfile as sf

    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    audio = np.clip(np.nan_to_num(audio, nan=0.0), -1.0, 1.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            sf.write(handle, audio, sampling_rate, subtype=subtype, format="WAV")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class MelSpectrogram(nn.Module):
    """audio (B, T) or (T,) -> log-mel (B, n_mel, F) with F = 1 + T // hop_length.

    The Tacotron 2 convention: STFT magnitude (not power) with a periodic Hann window, centred frames with
    reflect padding of filter_length/2, Slaney-scale mel filters with Slaney area normalisation, natural
    log of max(x, 1e-5). Window and filterbank are buffers, so ``.to(device)`` just works. Computation
    runs in float32 (float64 for float64 input) and the result has the input's dtype.
    """

    def __init__(self, audio_cfg: AudioConfig | None = None, clip_val: float = 1e-5):
        super().__init__()
        import torchaudio.functional as AF

        cfg = audio_cfg if audio_cfg is not None else AudioConfig()
        cfg.validate()
        self.audio_cfg = cfg
        self.clip_val = clip_val
        self.register_buffer("window", torch.hann_window(cfg.win_length, periodic=True), persistent=False)
        fbank = AF.melscale_fbanks(
            n_freqs=cfg.filter_length // 2 + 1,
            f_min=float(cfg.mel_fmin),
            f_max=cfg.fmax,
            n_mels=cfg.n_mel_channels,
            sample_rate=cfg.sampling_rate,
            norm="slaney",
            mel_scale="slaney",
        )  # (n_freqs, n_mel)
        self.register_buffer("mel_basis", fbank.T.contiguous(), persistent=False)  # (n_mel, n_freqs)

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, T) -> linear STFT magnitude (B, n_freqs, F)."""
        cfg = self.audio_cfg
        compute = torch.float64 if audio.dtype == torch.float64 else torch.float32
        with torch.autocast(audio.device.type, enabled=False):
            spec = torch.stft(
                audio.to(compute),
                n_fft=cfg.filter_length,
                hop_length=cfg.hop_length,
                win_length=cfg.win_length,
                window=self.window.to(compute),
                center=True,
                pad_mode="reflect",
                return_complex=True,
            )
        return spec.abs()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, T) or (T,) -> log-mel (B, n_mel, 1 + T // hop_length)."""
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        if audio.dim() != 2:
            raise ValueError(f"audio must be (T,) or (B, T), got {tuple(audio.shape)}")
        if audio.shape[1] <= self.audio_cfg.filter_length // 2:
            raise ValueError(
                f"audio of {audio.shape[1]} samples is too short for filter_length "
                f"{self.audio_cfg.filter_length} (reflect padding needs more than half of it)"
            )
        magnitude = self.magnitude(audio)
        with torch.autocast(audio.device.type, enabled=False):
            mel = torch.matmul(self.mel_basis.to(magnitude.dtype), magnitude)  # (B, n_mel, F)
            mel = torch.log(torch.clamp(mel, min=self.clip_val))
        return mel.to(audio.dtype if audio.is_floating_point() else torch.float32)
