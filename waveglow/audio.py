"""Audio file I/O, resampling, and the one mel front end used for training and synthesis.

The mel convention is Tacotron 2's (what TTS front ends produce and the
published WaveGlow weights expect); ``AudioConfig.mel_*`` fields select another one for models trained on
it, and :func:`check_mel` recognises mels in a convention other than the configured one.
"""

from __future__ import annotations

import io
import logging
import math
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from waveglow.config import AudioConfig
from waveglow.files import atomic_write

log = logging.getLogger(__name__)

SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")


class AudioFileError(ValueError):
    """A file cannot be used as audio; the message names the file and the problem."""


# ---------------------------------------------------------------------------------------------- file I/O


class ArrayReadError(ValueError):
    """``read_array_file`` could not read the file. ``detail`` says why without the path; ``from_reader``
    is True when numpy or torch raised (the detail is then "ExceptionType: first line")."""

    def __init__(self, detail: str, from_reader: bool):
        super().__init__(detail)
        self.detail, self.from_reader = detail, from_reader


def read_array_file(path: Path) -> object:
    """What a .npy (``np.load(allow_pickle=False)``) or .pt (``torch.load(weights_only=True)``) file holds,
    read without running pickled code; the caller checks the type and shape. Raises ArrayReadError.

    A file named .npy without the NumPy header is refused before numpy sees it (numpy would guess a pickle
    and blame "object data"); a pickle that is not plain tensors is "not a file of tensors".
    """
    if path.suffix.lower() == ".npy":
        with open(path, "rb") as handle:
            if handle.read(6) != b"\x93NUMPY":
                raise ArrayReadError("not a NumPy .npy file (no .npy header)", from_reader=False)
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt files raise many types
        detail = "not a file of tensors" if isinstance(exc, pickle.UnpicklingError) else str(exc)
        detail = (detail.splitlines() or [""])[0][:200]
        raise ArrayReadError(f"{type(exc).__name__}: {detail}", from_reader=True) from exc


SILENCE_PEAK = 1e-4  # a clip whose peak is below this (-80 dBFS) is silent: nothing to learn or score


def min_clip_samples(audio_cfg: AudioConfig) -> int:
    """The shortest usable clip: one full analysis window (``win_length`` samples)."""
    return audio_cfg.win_length


def clip_problem(peak: float, n_samples: int, audio_cfg: AudioConfig) -> str | None:
    """Why a readable, finite clip is unusable for training or evaluation (silent, or shorter than one
    window at the config's rate), or None. ``n_samples`` counts samples at ``audio_cfg.sampling_rate``.
    The one rule of the data check (``waveglow.data.check``) and ``python -m waveglow.evaluate``."""
    if peak < SILENCE_PEAK:
        return f"silent (peak {peak:.2g}, below {SILENCE_PEAK:g})"
    minimum = min_clip_samples(audio_cfg)
    if n_samples < minimum:
        return f"too short ({n_samples} samples at {audio_cfg.sampling_rate} Hz; need at least {minimum}, one window)"
    return None


def load_audio(path: str | Path, sampling_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read any file soundfile reads (wav, flac, ogg; 16/24-bit PCM or float) as mono float32 in [-1, 1].

    Channels are averaged; float samples beyond full scale are clipped. When ``sampling_rate`` is given and
    differs from the file's, the audio is resampled (:func:`resample`); callers that load many files log
    that once themselves. Returns (audio (T,), rate). Raises AudioFileError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioFileError(f"{path}: file is empty (0 bytes)")
    data, rate = read_samples(path)
    if data.size == 0:
        raise AudioFileError(f"{path}: no audio samples")
    audio = to_mono(data, path)
    if sampling_rate is not None and rate != sampling_rate:
        audio = resample(audio, rate, sampling_rate)
        rate = sampling_rate
    return np.ascontiguousarray(audio, dtype=np.float32), int(rate)


def read_samples(path: str | Path, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
    """(data (T, C) float32 as decoded, native rate) of ``frames`` samples from ``start`` (-1: to the end).

    The one place audio files are decoded (``load_audio``, the training segments, the data check). Raises
    AudioFileError "<path>: cannot read audio (<why>)" naming the file once; its ``__cause__`` is
    soundfile's own error.
    """
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - soundfile raises several types for corrupt files
        # soundfile's message quotes the path again ("Error opening '<path>': ..."): name the file once
        detail = str(exc).replace(f"Error opening {str(path)!r}: ", "").replace(str(path), "the file")
        raise AudioFileError(f"{path}: cannot read audio ({detail})") from exc
    return data, int(rate)


def to_mono(data: np.ndarray, path: str | Path, clip: bool = True) -> np.ndarray:
    """data (T, C) -> (T,) float32: channels averaged, clipped to [-1, 1] (float files may hold samples beyond
    full scale; clipping keeps levels comparable; ``clip`` False leaves them, for the data check to report).
    AudioFileError naming ``path`` for NaN or infinite samples."""
    if not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise AudioFileError(f"{path}: contains {bad} NaN or infinite samples")
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.clip(audio, -1.0, 1.0) if clip else audio


def resample(audio: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling of a 1-D float array, clipped to [-1, 1].

    torchaudio's windowed sinc with a Kaiser window (64 zero crossings, roll-off 0.9475, beta 14.77: the
    parameters of resampy's "kaiser_best"), so the band below ~0.47 of the lower rate passes unchanged.
    Output length: ceil(T * new_rate / orig_rate).
    """
    import torchaudio.functional as AF

    if orig_rate == new_rate:
        return np.asarray(audio, dtype=np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    with torch.no_grad():
        out = AF.resample(
            tensor,
            int(orig_rate),
            int(new_rate),
            lowpass_filter_width=64,
            rolloff=0.9475,
            resampling_method="sinc_interp_kaiser",
            beta=14.769656459379492,
        )
    return np.clip(out.numpy(), -1.0, 1.0)


def save_audio(
    path: str | Path, audio: np.ndarray | torch.Tensor, sampling_rate: int, subtype: str = "PCM_16"
) -> None:
    """Write mono audio (T,) atomically as wav; samples are clipped to [-1, 1] (never wrapped), NaN -> 0.

    subtype: "PCM_16" (default), "PCM_24" or "FLOAT" (32-bit float wav).
    """
    import soundfile as sf

    if subtype not in SUBTYPES:
        raise ValueError(f"{path}: subtype must be one of {', '.join(SUBTYPES)}, got {subtype!r}")
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    audio = np.clip(np.nan_to_num(audio, nan=0.0), -1.0, 1.0)
    # Encoded in memory first: soundfile writes to a file object through callbacks that swallow write errors
    # (a full disk) with noise on stderr; one plain write of the bytes fails cleanly instead.
    encoded = io.BytesIO()
    sf.write(encoded, audio, sampling_rate, subtype=subtype, format="WAV")
    atomic_write(path, lambda handle: handle.write(encoded.getbuffer()))


# ------------------------------------------------------------------------------------------ mel filterbank


def hz_to_mel(freq: torch.Tensor, scale: str = "slaney") -> torch.Tensor:
    """Hz -> mel. Slaney: linear below 1 kHz (3 mel per 200 Hz), logarithmic above; HTK: 2595 log10(1 + f/700)."""
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + freq / 700.0)
    linear = freq / (200.0 / 3)
    log_part = 15.0 + torch.log(torch.clamp(freq, min=1e-10) / 1000.0) / (math.log(6.4) / 27.0)
    return torch.where(freq >= 1000.0, log_part, linear)


def mel_to_hz(mel: torch.Tensor, scale: str = "slaney") -> torch.Tensor:
    """The inverse of :func:`hz_to_mel`."""
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * torch.exp((math.log(6.4) / 27.0) * (mel - 15.0))
    return torch.where(mel >= 15.0, log_part, linear)


def mel_filterbank(audio_cfg: AudioConfig) -> torch.Tensor:
    """Triangular mel filters (n_mel, filter_length // 2 + 1), float64.

    Filter edges are equally spaced on the mel scale between mel_fmin and mel_fmax; with Slaney
    normalisation each filter is scaled by 2 / (its width in Hz), so all have unit area in Hz.
    """
    cfg = audio_cfg
    n_freqs = cfg.filter_length // 2 + 1
    fft_freqs = torch.linspace(0.0, cfg.sampling_rate / 2, n_freqs, dtype=torch.float64)
    edges_mel = torch.linspace(
        float(hz_to_mel(torch.tensor(float(cfg.mel_fmin), dtype=torch.float64), cfg.mel_scale)),
        float(hz_to_mel(torch.tensor(cfg.fmax, dtype=torch.float64), cfg.mel_scale)),
        cfg.n_mel_channels + 2,
        dtype=torch.float64,
    )
    edges = mel_to_hz(edges_mel, cfg.mel_scale)  # (n_mel + 2,)
    widths = edges[1:] - edges[:-1]  # (n_mel + 1,)
    ramps = edges[:, None] - fft_freqs[None, :]  # (n_mel + 2, n_freqs)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    filters = torch.clamp(torch.minimum(rising, falling), min=0.0)  # (n_mel, n_freqs)
    if cfg.mel_norm == "slaney":
        filters = filters * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    empty = int((filters.max(dim=1).values == 0).sum())
    if empty:
        log.warning(
            "%d of %d mel filters are empty (filter_length %d is too small for %d mel channels)",
            empty,
            cfg.n_mel_channels,
            cfg.filter_length,
            cfg.n_mel_channels,
        )
    return filters


# ------------------------------------------------------------------------------------------- mel front end


def stft_args(cfg: AudioConfig) -> dict[str, int | bool]:
    """The STFT settings of the mel front end, for ``torch.stft`` and ``torch.istft`` (the denoiser uses the
    same): ``n_fft`` = filter_length, hop_length, win_length, centred frames. The window is the caller's."""
    return {
        "n_fft": cfg.filter_length,
        "hop_length": cfg.hop_length,
        "win_length": cfg.win_length,
        "center": True,
    }


class MelSpectrogram(nn.Module):
    """audio (B, T), (B, 1, T) or (T,) -> log-mel (B, n_mel, F) with F = 1 + T // hop_length.

    The Tacotron 2 convention by default: STFT magnitude (not power) with a periodic Hann window, centred
    frames with reflect padding of filter_length/2, Slaney-scale mel filters with Slaney area normalisation,
    natural log of max(x, 1e-5). ``AudioConfig.mel_log / mel_clip / mel_power / mel_scale / mel_norm``
    select other conventions. Window and filterbank are buffers, so ``.to(device)`` just works. Computation
    runs in float32 (float64 for float64 input), also under autocast; the result has the input's dtype.
    The same module serves training (batches of segments) and synthesis (whole clips).
    """

    def __init__(self, audio_cfg: AudioConfig | None = None, clip_val: float | None = None):
        super().__init__()
        cfg = audio_cfg if audio_cfg is not None else AudioConfig()
        cfg.validate()
        self.audio_cfg = cfg
        self.clip_val = float(cfg.mel_clip if clip_val is None else clip_val)
        window = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
        self.register_buffer("window", window.float(), persistent=False)
        filters = mel_filterbank(cfg)
        self.register_buffer("mel_basis", filters.float(), persistent=False)  # (n_mel, n_freqs)
        # The largest mel value audio in [-1, 1] can give: the full window sum in the widest-summing filter.
        self.max_linear = float(filters.sum(dim=1).max() * window.sum() ** cfg.mel_power)

    def n_frames(self, num_samples: int) -> int:
        """Mel frames for ``num_samples`` audio samples: 1 + T // hop_length."""
        return 1 + num_samples // self.audio_cfg.hop_length

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, T) -> linear STFT magnitude (power when mel_power is 2), (B, n_freqs, F)."""
        cfg = self.audio_cfg
        compute = torch.float64 if audio.dtype == torch.float64 else torch.float32
        with torch.autocast(audio.device.type, enabled=False):
            spec = torch.stft(
                audio.to(compute),
                **stft_args(cfg),
                window=self.window.to(compute),
                pad_mode="reflect",
                return_complex=True,
            )
            if cfg.mel_power == 2:
                return spec.real.square() + spec.imag.square()
            return spec.abs()

    def log(self, mel_linear: torch.Tensor) -> torch.Tensor:
        """Linear mel -> the configured log of max(x, clip)."""
        clipped = torch.clamp(mel_linear, min=self.clip_val)
        kind = self.audio_cfg.mel_log
        if kind == "ln":
            return torch.log(clipped)
        if kind == "log10":
            return torch.log10(clipped)
        return (20.0 / self.audio_cfg.mel_power) * torch.log10(clipped)  # dB

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, T), (B, 1, T) or (T,) -> log-mel (B, n_mel, 1 + T // hop_length)."""
        if not audio.is_floating_point():
            raise TypeError(f"audio must be a floating point tensor in [-1, 1], got {audio.dtype}")
        if audio.dim() == 3 and audio.shape[1] == 1:
            audio = audio[:, 0]
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        if audio.dim() != 2:
            raise ValueError(f"audio must be (T,), (B, T) or (B, 1, T), got {tuple(audio.shape)}")
        if audio.shape[1] <= self.audio_cfg.filter_length // 2:
            raise ValueError(
                f"audio of {audio.shape[1]} samples is too short for filter_length "
                f"{self.audio_cfg.filter_length} (reflect padding needs more than half of it)"
            )
        magnitude = self.magnitude(audio)  # (B, n_freqs, F)
        with torch.autocast(audio.device.type, enabled=False):
            mel = torch.matmul(self.mel_basis.to(magnitude.dtype), magnitude)  # (B, n_mel, F)
            mel = self.log(mel)
        return mel.to(audio.dtype)

    def value_range(self) -> tuple[float, float]:
        """(floor, ceiling) of this front end's values for audio in [-1, 1]."""
        floor = self.log(torch.tensor(self.clip_val, dtype=torch.float64))
        ceiling = self.log(torch.tensor(self.max_linear, dtype=torch.float64))
        return float(floor), float(ceiling)


# ----------------------------------------------------------------------------------- other mel conventions


def _to_nats(audio_cfg: AudioConfig) -> float:
    """Factor from the configured log unit to natural-log units of the same magnitude mel."""
    return {"ln": 1.0, "log10": math.log(10), "db": math.log(10) * audio_cfg.mel_power / 20}[
        audio_cfg.mel_log
    ]


def convert_mel(mel: torch.Tensor, source: str, audio_cfg: AudioConfig | None = None) -> torch.Tensor:
    """Convert a log-mel (any shape) in log unit ``source`` ("ln", "log10" or "db": 20*log10 of a magnitude
    mel) to the configured one, re-applying the configured floor.

    Only the log base is converted: the mel must otherwise match the config (magnitude, Slaney filters,
    fmin/fmax, no mean/variance normalisation). A dB mel with reference level or offset added, or a mel
    normalised to [0, 1] or to zero mean, must be de-normalised by its own front end's inverse first.
    """
    cfg = audio_cfg if audio_cfg is not None else AudioConfig()
    factors = {"ln": 1.0, "log10": math.log(10), "db": math.log(10) / 20}
    if source not in factors:
        raise ValueError(f"mel source convention must be one of {', '.join(factors)}, got {source!r}")
    nats = mel * factors[source]
    floor = math.log(cfg.mel_clip) / _to_nats(cfg)
    return torch.clamp(nats / _to_nats(cfg), min=floor)


def check_mel(mel: torch.Tensor, audio_cfg: AudioConfig | None = None) -> list[str]:
    """Reasons why ``mel`` (n_mel, F) or (B, n_mel, F) cannot be, or looks unlike, a mel of this front end.

    An empty list means plausible. Checked: channel count, finite values, values below the configured
    floor (log(mel_clip)) or above the largest value audio in [-1, 1] can give, a floor other than the
    configured one (e.g. -5 = log10(1e-5), -100 dB), and value statistics that a log mel of audio cannot
    have (all values near or above 0, as in mels normalised to [0, 1] or to zero mean).
    A different fmax cannot be seen in the values and is not detected.
    """
    cfg = audio_cfg if audio_cfg is not None else AudioConfig()
    issues = []
    if mel.dim() not in (2, 3) or mel.shape[-2] != cfg.n_mel_channels:
        return [f"shape {tuple(mel.shape)} is not (n_mel={cfg.n_mel_channels}, frames) or (B, n_mel, frames)"]
    values = mel.detach().double()
    if not torch.isfinite(values).all():
        return ["contains NaN or infinite values"]
    floor, ceiling = MelSpectrogram(cfg).value_range()
    nats = _to_nats(cfg)
    low, high = float(values.min()), float(values.max())
    tolerance = 1e-3 * max(1.0, abs(floor))
    kind = {"ln": "natural-log", "log10": "log10", "db": "dB"}[cfg.mel_log]
    described = (
        f"a {kind} mel (floor {floor:.4g} = log(mel_clip), at most {ceiling:.4g} for audio in [-1, 1])"
    )
    guess = _guess(low, high, cfg)
    if low < floor - tolerance:
        issues.append(f"values go down to {low:.4g}, below the floor of {described}{guess}")
    if high > ceiling + 0.7 / nats:
        if issues:  # the convention and the guess were said with the floor: not twice
            issues.append(f"values reach {high:.4g}, above its ceiling")
        else:
            issues.append(f"values reach {high:.4g}, above the ceiling of {described}{guess}")
    at_low = values <= low + 1e-6 * max(1.0, abs(low))
    floor_hits = float(at_low.double().mean())
    # A floor needs repeated values: the minimum of a short mel is always "hit" once.
    if not issues and low > floor + tolerance and int(at_low.sum()) >= 2 and floor_hits > 0.01:
        issues.append(
            f"{100 * floor_hits:.0f}% of values sit at a floor of {low:.4g}, not at {floor:.4g}: not {described}"
            f"{_guess(low, high, cfg)}"
        )
    if not issues and values.shape[-1] >= 8 and low * nats > -6.0:
        # Speech mels reach -8 to -11.5 nats in pauses and high bands; only loud noise or music stays above.
        if low * nats > -1.5:
            likely = "a normalised mel (e.g. to [0, 1] or zero mean)"
        elif low >= math.log10(cfg.mel_clip) / nats - tolerance and high <= ceiling / math.log(10) + 0.3:
            likely = "a log10 mel (convert_mel(mel, 'log10')) or a normalised one"
        else:
            likely = "a normalised mel"
        issues.append(
            f"the smallest value is {low:.4g} ({low * nats:.2f} in natural-log units), while a log mel of speech "
            f"has quiet bins near the floor (-8 to -11.5 nats); unless this is loud noise or music, it looks like "
            f"{likely}"
        )
    return issues


def far_outside_convention(mel: torch.Tensor, audio_cfg: AudioConfig) -> bool:
    """Whether the mel's value range is far from the front end's [floor, ceiling], not just near its edges.

    ``check_mel`` also flags mild deviations (a predicted mel undershooting the floor a little, a short mel
    whose minimum is not the floor); those are warnings. Far means: minimum a quarter of the range below the
    floor (dB), maximum a quarter above the ceiling (power, linear), or a minimum that never comes within
    40% of the range of the floor (log10, normalised).
    """
    floor, ceiling = MelSpectrogram(audio_cfg).value_range()
    span = ceiling - floor
    low, high = float(mel.min()), float(mel.max())
    return low < floor - 0.25 * span or high > ceiling + 0.25 * span or low > floor + 0.4 * span


def _guess(low: float, high: float, cfg: AudioConfig) -> str:
    if low < -30:
        return "; it looks like a dB mel (try convert_mel(mel, 'db') after undoing any offset/normalisation)"
    if abs(low - math.log10(cfg.mel_clip)) < 1e-3 and cfg.mel_log != "log10":
        return "; it looks like a log10 mel (convert_mel(mel, 'log10'))"
    if abs(low - math.log(cfg.mel_clip)) < 1e-3 and cfg.mel_log != "ln":
        return "; it looks like a natural-log mel (convert_mel(mel, 'ln'))"
    if low >= -1e-6 and high <= 1 + 1e-6:
        return "; it looks normalised to [0, 1]"
    return ""


def warn_if_unusual_mel(mel: torch.Tensor, audio_cfg: AudioConfig | None = None, name: str = "mel") -> bool:
    """Log a warning for each :func:`check_mel` issue, naming ``name`` (e.g. the file). True when any."""
    issues = check_mel(mel, audio_cfg)
    for issue in issues:
        log.warning("%s: %s", name, issue)
    return bool(issues)
