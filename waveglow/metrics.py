"""Objective quality of a synthesis against its reference recording, as vocoder papers report it.

Full-reference metrics of (synthesis, reference) at one sampling rate: ``pesq`` (wideband, both signals
resampled to 16 kHz), ``stoi``, ``mcd_db`` (mel-cepstral distortion), ``mrstft`` (multi-resolution STFT
distance, ``stft_loss``'s), ``vuv_f1``, ``f0_rmse_cents``, ``gross_pitch_error`` and ``periodicity`` (from
one YIN pitch tracker, :func:`track_pitch`) and ``log_mel_distance`` (the project's mel). No-reference
figures of one signal: ``voiced_share`` (frames the tracker calls voiced) and DNSMOS P.835
``dnsmos_sig/bak/ovrl`` plus P.808 ``dnsmos_p808`` (optional: needs the ``speechmos`` and ``onnxruntime``
packages). A metric that cannot run is absent from the values, never zero, and ``MetricValues.absent`` says
why.

:class:`MetricSuite` holds what is built once (filters, windows, the DNSMOS sessions) and times each metric;
:func:`compute_metrics` is the one-call form.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from waveglow.audio import MelSpectrogram, resample
from waveglow.config import AudioConfig
from waveglow.stft_loss import MultiResolutionSTFTLoss

FULL_REFERENCE = (
    "pesq",
    "stoi",
    "mcd_db",
    "mrstft",
    "vuv_f1",
    "f0_rmse_cents",
    "gross_pitch_error",
    "periodicity",
    "log_mel_distance",
)
DNSMOS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808")
NO_REFERENCE = ("voiced_share", *DNSMOS)
ALL_METRICS = FULL_REFERENCE + NO_REFERENCE
CHEAP_METRICS = ("stoi", "mrstft", "vuv_f1", "voiced_share")  # what validation during training computes
HIGHER_IS_BETTER = frozenset(
    {"pesq", "stoi", "vuv_f1", *DNSMOS}
)  # voiced_share: closest to the recording's is best

PITCH_FMIN_HZ = 50.0  # the search range of the pitch tracker (speech; torchcrepe's default range too)
PITCH_FMAX_HZ = 550.0
PITCH_HOP_SECONDS = 0.01
GROSS_PITCH_ERROR = 0.2  # an F0 more than 20 % off the recording's is a gross error (octave slips count)
YIN_THRESHOLD = 0.1  # first dip of the normalised difference below this is the period (the YIN paper's value)
VOICING_THRESHOLD = 0.35  # voiced below this at the period (matches pYIN voicing on 92 % of corpus frames)
SILENCE_DB = -60.0  # frames quieter than this (RMS, dB re full scale) are unvoiced with periodicity 0
MCD_ORDER = 24  # mel-cepstral coefficients c1..c24 enter the distortion (c0, the level, does not)
MCD_DYNAMIC_RANGE_DB = 80.0  # the power spectrum is floored this far below the clip's largest bin
PESQ_RATE = 16000  # wideband PESQ and DNSMOS work at 16 kHz
DNSMOS_WINDOW_SECONDS = 9.01  # DNSMOS scores windows of this length (a shorter clip is repeated to fill one)
DNSMOS_MIN_SECONDS = 1.0  # no DNSMOS for clips shorter than this


@dataclass
class MetricValues:
    """``values``: metric name -> float; ``absent``: metric name -> why it could not run."""

    values: dict[str, float] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- pitch


@dataclass
class PitchTrack:
    """One value per 10 ms frame: f0_hz (0 where unvoiced), voiced (bool), periodicity in [0, 1]."""

    f0_hz: np.ndarray
    voiced: np.ndarray
    periodicity: np.ndarray

    @property
    def voiced_share(self) -> float:
        """Fraction of frames called voiced."""
        return float(self.voiced.mean()) if self.voiced.size else math.nan


def track_pitch(
    audio: np.ndarray | torch.Tensor,
    sampling_rate: int,
    fmin: float = PITCH_FMIN_HZ,
    fmax: float = PITCH_FMAX_HZ,
    voicing_threshold: float = VOICING_THRESHOLD,
) -> PitchTrack:
    """YIN (de Cheveigné & Kawahara 2002) on audio (T,): frames every 10 ms, centred (1 + T // hop frames).

    The difference function over frames of two longest periods (every lag compares all the pairs inside the
    frame, so every lag's estimate is centred on the frame), cumulative-mean normalised; the period is the
    first dip below ``YIN_THRESHOLD`` (else the deepest), refined by a parabola. Periodicity is
    1 - the normalised difference there (0 in frames below ``SILENCE_DB``); a frame is voiced when that
    difference is below ``voicing_threshold`` and the frame is not silent. Vectorised with FFTs in float64.
    """
    x = torch.as_tensor(np.asarray(audio, dtype=np.float64)).reshape(-1)
    max_lag = int(math.ceil(sampling_rate / fmin))
    min_lag = max(2, int(math.floor(sampling_rate / fmax)))
    frame = 2 * max_lag + 1  # the pairs (x_j, x_j+lag) of every lag span the whole frame, centred on it
    hop = max(1, round(sampling_rate * PITCH_HOP_SECONDS))
    padded = torch.nn.functional.pad(x, (frame // 2, frame // 2 + hop))
    frames = padded.unfold(0, frame, hop)[: 1 + x.shape[0] // hop]  # (F, frame)
    period, best = _yin_period(_normalised_difference(frames, max_lag), min_lag)
    silent = 10 * torch.log10(frames.square().mean(1) + 1e-20) < SILENCE_DB
    voiced = (best < voicing_threshold) & ~silent
    periodicity = torch.where(silent, torch.zeros_like(best), (1 - best).clamp(0, 1))
    f0 = torch.where(voiced, sampling_rate / period, torch.zeros_like(period))
    return PitchTrack(f0.numpy(), voiced.numpy(), periodicity.numpy())


def _normalised_difference(frames: torch.Tensor, max_lag: int) -> torch.Tensor:
    """frames (F, N) -> YIN's cumulative-mean normalised difference d'(lag) for lag 0..max_lag, (F, max_lag + 1),
    from the autocorrelation (one FFT per frame) and running energies."""
    size = frames.shape[1]
    n_fft = 1 << (size + max_lag - 1).bit_length()  # no circular wrap up to max_lag
    spectrum = torch.fft.rfft(frames, n_fft)
    autocorr = torch.fft.irfft(spectrum.real.square() + spectrum.imag.square(), n_fft)[:, : max_lag + 1]
    energy = torch.nn.functional.pad(frames.square().cumsum(1), (1, 0))  # (F, N + 1)
    lags = torch.arange(max_lag + 1)
    # d(lag) = sum_{j < N - lag} (x_j - x_{j+lag})^2 = E[0, N - lag) + E[lag, N) - 2 r(lag)
    diff = (energy[:, size - lags] + energy[:, -1:] - energy[:, lags] - 2 * autocorr).clamp_min(0)
    running = diff[:, 1:].cumsum(1) / lags[1:]
    normalised = torch.ones_like(diff)
    normalised[:, 1:] = torch.where(running > 0, diff[:, 1:] / running.clamp_min(1e-300), 1.0)
    return normalised


def _yin_period(normalised: torch.Tensor, min_lag: int) -> tuple[torch.Tensor, torch.Tensor]:
    """d' (F, max_lag + 1) -> (period in samples, parabola-refined (F,); d' at the chosen lag (F,)): the first
    local minimum below YIN_THRESHOLD, else the deepest lag in min_lag..max_lag."""
    search = normalised[:, min_lag:]  # (F, L)
    rising_next = torch.cat(
        [search[:, 1:] >= search[:, :-1], torch.ones_like(search[:, :1], dtype=torch.bool)], 1
    )
    dips = (search < YIN_THRESHOLD) & rising_next
    index = torch.where(dips.any(1), dips.to(torch.int8).argmax(1), search.argmin(1))  # (F,)
    rows = torch.arange(search.shape[0])
    best = search[rows, index]
    left = search[rows, (index - 1).clamp_min(0)]
    right = search[rows, (index + 1).clamp_max(search.shape[1] - 1)]
    curve = left + right - 2 * best
    shift = torch.where(curve > 0, 0.5 * (left - right) / curve.clamp_min(1e-12), torch.zeros_like(curve))
    return min_lag + index + shift.clamp(-1, 1), best


def pitch_metrics(synthesis: PitchTrack, reference: PitchTrack) -> MetricValues:
    """V/UV F1 (the reference's voicing is the truth); on frames voiced in both, the F0 RMSE in cents and
    the gross pitch error (share of those frames whose F0 is more than 20 % off: octave slips, which
    dominate the RMSE, counted apart); and the periodicity error (RMS difference over all frames)."""
    frames = min(synthesis.voiced.size, reference.voiced.size)
    ours, truth = synthesis.voiced[:frames], reference.voiced[:frames]
    true_pos = int((ours & truth).sum())
    wrong = int((ours ^ truth).sum())
    out = MetricValues()
    out.values["vuv_f1"] = 2 * true_pos / (2 * true_pos + wrong) if true_pos + wrong else 1.0
    gap = synthesis.periodicity[:frames] - reference.periodicity[:frames]
    out.values["periodicity"] = float(np.sqrt(np.mean(gap**2))) if frames else math.nan
    both = ours & truth
    if both.any():
        ratio = synthesis.f0_hz[:frames][both] / reference.f0_hz[:frames][both]
        cents = 1200 * np.log2(ratio)
        out.values["f0_rmse_cents"] = float(np.sqrt(np.mean(cents**2)))
        out.values["gross_pitch_error"] = float(np.mean(np.abs(ratio - 1.0) > GROSS_PITCH_ERROR))
    else:
        out.absent.update(
            dict.fromkeys(("f0_rmse_cents", "gross_pitch_error"), "no frame is voiced in both signals")
        )
    return out


# ------------------------------------------------------------------------------ mel-cepstral distortion


def warping_alpha(sampling_rate: float) -> float:
    """The all-pass constant whose frequency warping best fits the mel scale at this rate (least squares on
    1000 points, steps of 0.001): 0.41 at 16 kHz, 0.455 at 22.05 kHz, 0.544 at 44.1 kHz (SPTK's table)."""
    omega = np.linspace(0, np.pi, 1000)
    hz = omega / np.pi * sampling_rate / 2
    mel = np.log1p(hz / 1000)  # Fant's mel scale, normalised below
    mel = mel / mel[-1] * np.pi
    alphas = np.arange(0.0, 1.0, 0.001)[:, None]
    warped = omega + 2 * np.arctan(alphas * np.sin(omega) / (1 - alphas * np.cos(omega)))
    return float(alphas[np.argmin(((warped - mel) ** 2).mean(1)), 0])


def frequency_warp_matrix(n_in: int, order: int, alpha: float) -> np.ndarray:
    """(order + 1, n_in): cepstrum c[0..n_in) -> mel-cepstrum (all-pass warping by ``alpha``).

    The recursive frequency transformation (Oppenheim & Johnson 1972) run on every unit vector at once: the
    map is linear, so its matrix is the transform of the identity.
    """
    out = np.zeros((order + 1, n_in))
    unit = np.eye(n_in)
    for index in range(n_in - 1, -1, -1):
        prev = out.copy()
        out[0] = unit[index] + alpha * prev[0]
        if order >= 1:
            out[1] = (1 - alpha * alpha) * prev[0] + alpha * prev[1]
        for m in range(2, order + 1):
            out[m] = prev[m - 1] + alpha * (prev[m] - out[m - 1])
    return out


class MelCepstrum:
    """audio (T,) -> mel-cepstrum (frames, order + 1): frames of ~46 ms (1024 samples at 22.05 kHz, hop a
    quarter of that, centred) under a unit-energy Blackman window; the power spectrum plus a floor
    ``MCD_DYNAMIC_RANGE_DB`` below the clip's largest bin; real cepstrum of its log with c0 halved, all-pass
    warped with ``warping_alpha`` (SPTK's sp2mc on the periodogram).

    The relative floor makes the distortion independent of level (c0 is left out) and keeps bands a source
    left empty (above 8 kHz in audio recorded at 16 kHz) at the floor instead of at the quantisation noise,
    whose log would dominate the figure."""

    def __init__(self, sampling_rate: int, order: int = MCD_ORDER):
        self.n_fft = 1 << round(math.log2(sampling_rate * 1024 / 22050))
        self.hop = self.n_fft // 4
        self.alpha = warping_alpha(sampling_rate)
        window = torch.blackman_window(self.n_fft, periodic=False, dtype=torch.float64)
        self.window = (
            window / window.square().sum().sqrt()
        )  # unit energy, as SPTK's: the floor is ~16-bit noise
        warp = frequency_warp_matrix(self.n_fft // 2 + 1, order, self.alpha)
        self.warp = torch.from_numpy(warp)  # (order + 1, n_fft // 2 + 1)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(audio, dtype=np.float64))
        if x.shape[0] <= self.n_fft // 2:
            x = torch.nn.functional.pad(x, (0, self.n_fft // 2 + 1 - x.shape[0]))
        spec = torch.stft(x, self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)  # fmt: skip
        power = spec.real.square() + spec.imag.square()  # (n_fft // 2 + 1, F)
        power = power + power.max().clamp_min(1e-20) * 10 ** (-MCD_DYNAMIC_RANGE_DB / 10)
        cepstrum = torch.fft.irfft(power.log(), self.n_fft, dim=0)[: self.n_fft // 2 + 1]
        cepstrum[0] /= 2
        return (self.warp @ cepstrum).T.numpy()  # (F, order + 1)


def mel_cepstral_distortion(synthesis: np.ndarray, reference: np.ndarray) -> float:
    """MCD in dB of two mel-cepstra (frames, order + 1), time-aligned (no DTW), c0 excluded:
    mean over frames of (10 / ln 10) * sqrt(2 * sum_{m>=1} (c_m - c'_m)^2)."""
    frames = min(len(synthesis), len(reference))
    diff = synthesis[:frames, 1:] - reference[:frames, 1:]
    return float(10 / math.log(10) * math.sqrt(2) * np.sqrt((diff**2).sum(1)).mean())


# ------------------------------------------------------------------------------------- the suite


@dataclass
class Analysis:
    """One signal and what the metrics derive from it (computed on first use, by ``MetricSuite``)."""

    audio: np.ndarray  # (T,) float32
    cache: dict[str, object] = field(default_factory=dict)


class MetricSuite:
    """Computes the named metrics at ``sampling_rate``; builds filters and sessions once and adds up, per
    metric, the wall time (``seconds``) and the seconds of audio it scored (``audio_seconds``).

    ``audio_cfg`` sets the mel of ``log_mel_distance`` (the model's own); default ``AudioConfig`` at this
    rate. Use: ``ref = suite.analyse(reference)``, then ``suite.compare(synthesis, ref)`` per synthesis and
    ``suite.no_reference(ref)`` for the recording's own scores.
    """

    def __init__(
        self, sampling_rate: int, audio_cfg: AudioConfig | None = None, names: Iterable[str] = ALL_METRICS
    ):
        self.sampling_rate = int(sampling_rate)
        self.names = tuple(names)
        unknown = sorted(set(self.names) - set(ALL_METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {', '.join(ALL_METRICS)}")
        if audio_cfg is None:
            audio_cfg = AudioConfig(sampling_rate=self.sampling_rate, mel_fmax=min(8000.0, sampling_rate / 2))
        if audio_cfg.sampling_rate != self.sampling_rate:
            raise ValueError(
                f"audio_cfg is at {audio_cfg.sampling_rate} Hz, the metrics at {sampling_rate} Hz"
            )
        self.audio_cfg = audio_cfg
        self.seconds: dict[str, float] = {}
        self.audio_seconds: dict[str, float] = {}

    @cached_property
    def _mel(self) -> MelSpectrogram:
        return MelSpectrogram(self.audio_cfg)

    @cached_property
    def _mrstft(self) -> MultiResolutionSTFTLoss:
        return MultiResolutionSTFTLoss()

    @cached_property
    def _mel_cepstrum(self) -> MelCepstrum:
        return MelCepstrum(self.sampling_rate)

    @cached_property
    def _dnsmos(self):  # a speechmos DNSMOS, or the reason it cannot run (str)
        return load_dnsmos(torch.get_num_threads())

    def analyse(self, audio: np.ndarray | torch.Tensor) -> Analysis:
        """Wrap a signal (T,) in [-1, 1] for ``compare`` / ``no_reference``."""
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().float().cpu().numpy()
        return Analysis(np.ascontiguousarray(np.asarray(audio, dtype=np.float32).reshape(-1)))

    def compare(self, synthesis: np.ndarray | torch.Tensor | Analysis, reference: Analysis) -> MetricValues:
        """Full-reference metrics of ``synthesis`` (cut or zero-padded to the reference's length, so missing
        audio counts as silence) plus its no-reference ones."""
        if not isinstance(synthesis, Analysis):
            synthesis = self.analyse(synthesis)
        length = reference.audio.shape[0]
        if synthesis.audio.shape[0] != length:
            synthesis = self.analyse(
                np.pad(synthesis.audio[:length], (0, max(0, length - synthesis.audio.shape[0])))
            )
        out = MetricValues()
        for name, compute in (
            ("pesq", lambda: {"pesq": self._pesq(synthesis, reference)}),
            ("stoi", lambda: {"stoi": self._stoi(synthesis, reference)}),
            ("mcd_db", lambda: {"mcd_db": self._mcd(synthesis, reference)}),
            ("mrstft", lambda: {"mrstft": self._mrstft_value(synthesis, reference)}),
            ("pitch", lambda: self._pitch_values(synthesis, reference)),
            ("log_mel_distance", lambda: {"log_mel_distance": self._log_mel(synthesis, reference)}),
        ):
            wanted = (
                ("vuv_f1", "f0_rmse_cents", "gross_pitch_error", "periodicity")
                if name == "pitch"
                else (name,)
            )
            if any(metric in self.names for metric in wanted):
                self._run(name, compute, wanted, out, length)
        own = self.no_reference(synthesis)
        out.values.update(own.values)
        out.absent.update(own.absent)
        return out

    def no_reference(self, audio: Analysis) -> MetricValues:
        """``voiced_share`` and DNSMOS of one signal (the ones in ``names``)."""
        out = MetricValues()
        if "voiced_share" in self.names:
            self._run(
                "voiced_share",
                lambda: {"voiced_share": self._pitch(audio).voiced_share},
                ("voiced_share",),
                out,
                audio.audio.shape[0],
            )
        if any(name in self.names for name in DNSMOS):
            self._run("dnsmos", lambda: self._dnsmos_values(audio), DNSMOS, out, audio.audio.shape[0])
        return out

    def cost_ms_per_second(self) -> dict[str, float]:
        """Wall time of each metric so far, in ms per second of scored audio (``pitch`` covers vuv_f1,
        f0_rmse_cents, gross_pitch_error and periodicity; ``dnsmos`` all four DNSMOS figures)."""
        order = ("pesq", "stoi", "mcd_db", "mrstft", "pitch", "log_mel_distance", "voiced_share", "dnsmos")
        return {
            name: 1000 * self.seconds[name] / max(self.audio_seconds[name], 1e-9)
            for name in order
            if name in self.seconds
        }

    def _run(self, name: str, compute, wanted: tuple[str, ...], out: MetricValues, samples: int) -> None:
        start = time.perf_counter()
        try:
            values = compute()
        except Exception as exc:  # noqa: BLE001 - each metric's library raises its own types
            message = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            values = {metric: f"{type(exc).__name__}: {message}" for metric in wanted}  # pesq's are bytes
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        self.audio_seconds[name] = self.audio_seconds.get(name, 0.0) + samples / self.sampling_rate
        for metric in wanted:
            if metric not in self.names:
                continue
            value = values.get(metric, "not computed")
            if isinstance(value, str):
                out.absent[metric] = value
            elif not math.isfinite(value):
                out.absent[metric] = "not finite"
            else:
                out.values[metric] = float(value)

    def _cached(self, signal: Analysis, key: str, make):
        if key not in signal.cache:
            signal.cache[key] = make()
        return signal.cache[key]

    def _at_16k(self, signal: Analysis) -> np.ndarray:
        return self._cached(signal, "16k", lambda: resample(signal.audio, self.sampling_rate, PESQ_RATE))

    def _pitch(self, signal: Analysis) -> PitchTrack:
        return self._cached(signal, "pitch", lambda: track_pitch(signal.audio, self.sampling_rate))

    def _pesq(self, synthesis: Analysis, reference: Analysis) -> float | str:
        try:
            from pesq import pesq
        except ImportError as exc:
            return f"needs the pesq package ({exc})"
        return pesq(PESQ_RATE, self._at_16k(reference), self._at_16k(synthesis), "wb")

    def _stoi(self, synthesis: Analysis, reference: Analysis) -> float | str:
        try:
            from pystoi import stoi
        except ImportError as exc:
            return f"needs the pystoi package ({exc})"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = stoi(
                reference.audio.astype(np.float64), synthesis.audio.astype(np.float64), self.sampling_rate
            )
        if any("Not enough STFT frames" in str(w.message) for w in caught):
            return "too little speech: STOI needs 30 frames (384 ms) above its silence threshold"
        return float(value)

    def _mcd(self, synthesis: Analysis, reference: Analysis) -> float:
        ours = self._cached(synthesis, "mcep", lambda: self._mel_cepstrum(synthesis.audio))
        theirs = self._cached(reference, "mcep", lambda: self._mel_cepstrum(reference.audio))
        return mel_cepstral_distortion(ours, theirs)

    @torch.no_grad()
    def _mrstft_value(self, synthesis: Analysis, reference: Analysis) -> float | str:
        longest = max(n_fft for n_fft, _, _ in self._mrstft.resolutions)
        if reference.audio.shape[0] <= longest // 2:
            return f"signal shorter than half the largest STFT ({longest // 2 + 1} samples needed)"
        distance = self._mrstft(
            torch.from_numpy(synthesis.audio)[None], torch.from_numpy(reference.audio)[None]
        )
        return distance.total.item()

    def _pitch_values(self, synthesis: Analysis, reference: Analysis) -> dict[str, float | str]:
        values = pitch_metrics(self._pitch(synthesis), self._pitch(reference))
        return {**values.values, **values.absent}

    @torch.no_grad()
    def _log_mel(self, synthesis: Analysis, reference: Analysis) -> float:
        mel_ref = self._cached(reference, "mel", lambda: self._mel(torch.from_numpy(reference.audio)[None]))
        mel_syn = self._mel(torch.from_numpy(synthesis.audio)[None])
        return log_mel_distance(mel_ref, mel_syn)

    def _dnsmos_values(self, signal: Analysis) -> dict[str, float | str]:
        seconds = signal.audio.shape[0] / self.sampling_rate
        if seconds < DNSMOS_MIN_SECONDS:
            return dict.fromkeys(DNSMOS, f"clip shorter than {DNSMOS_MIN_SECONDS:g} s")
        model = self._dnsmos
        if isinstance(model, str):
            return dict.fromkeys(DNSMOS, model)
        audio = self._at_16k(signal)
        window = math.ceil(DNSMOS_WINDOW_SECONDS * PESQ_RATE)
        if audio.shape[0] < window:
            # speechmos (like the original script) doubles a short clip until it fills a window and averages
            # every 1 s shift of that, up to 9 windows; the first one alone costs one model run
            audio = np.resize(audio, window)
        scores = model(audio, PESQ_RATE, False)
        keys = {
            "dnsmos_sig": "sig_mos",
            "dnsmos_bak": "bak_mos",
            "dnsmos_ovrl": "ovrl_mos",
            "dnsmos_p808": "p808_mos",
        }
        return {name: float(scores[key]) for name, key in keys.items()}


def load_dnsmos(threads: int = 1):
    """speechmos's DNSMOS (P.835 model sig_bak_ovr.onnx and P.808 model_v8.onnx, shipped in the package) with
    onnxruntime sessions on ``threads`` CPU threads; or, when it cannot load, the reason as a string."""
    try:
        import onnxruntime
        from speechmos import dnsmos
    except ImportError as exc:
        return (
            f"DNSMOS needs the optional packages speechmos and onnxruntime (pip install -e .[metrics]): {exc}"
        )
    from pathlib import Path

    folder = Path(dnsmos.__file__).parent / "dnsmos_models"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1

    class _Dnsmos(dnsmos.DNSMOS):
        # speechmos opens its sessions on every core; the same models on our thread budget instead
        def __init__(self) -> None:
            providers = ["CPUExecutionProvider"]
            self.primary_model_path = str(folder / "sig_bak_ovr.onnx")
            self.onnx_sess = onnxruntime.InferenceSession(
                self.primary_model_path, options, providers=providers
            )
            self.p808_onnx_sess = onnxruntime.InferenceSession(
                str(folder / "model_v8.onnx"), options, providers=providers
            )

    try:
        return _Dnsmos()
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for bad model files
        return f"DNSMOS models could not load from {folder}: {exc}"


def log_mel_distance(mel: torch.Tensor, mel_synth: torch.Tensor) -> float:
    """Mean absolute difference of two log-mels (n_mel, F) or (B, n_mel, F), over all bins (0..fmax).

    Our filterbank spans mel_fmin..mel_fmax, so every bin is inside the band. Frames are cut to the shorter
    of the two. In nats of log-magnitude (0 = identical).
    """
    if mel.shape[-2] != mel_synth.shape[-2]:
        raise ValueError(f"mel bins differ: {tuple(mel.shape)} vs {tuple(mel_synth.shape)}")
    frames = min(mel.shape[-1], mel_synth.shape[-1])
    diff = mel[..., :frames].float() - mel_synth[..., :frames].float()
    return diff.abs().mean().item()


def compute_metrics(
    synthesis: np.ndarray | torch.Tensor,
    reference: np.ndarray | torch.Tensor,
    sampling_rate: int,
    names: Iterable[str] = ALL_METRICS,
    audio_cfg: AudioConfig | None = None,
) -> MetricValues:
    """All ``names`` metrics of synthesis (T,) against reference (T,) at ``sampling_rate``, in one call."""
    suite = MetricSuite(sampling_rate, audio_cfg, names)
    return suite.compare(synthesis, suite.analyse(reference))
