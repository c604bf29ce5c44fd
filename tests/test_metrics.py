"""The objective metrics (waveglow.metrics) and the Griffin-Lim baseline, on real speech from demo/clips.

Reference implementations: SPTK's mel-cepstrum (pysptk 1.0.1: sp2mc, freqt, mcepalpha) for MCD, librosa's
YIN and pYIN for the pitch tracker.
"""

from __future__ import annotations

import math
import sys
import types

import librosa
import numpy as np
import pytest
import torch
from conftest import REPO

from waveglow.audio import MelSpectrogram, load_audio, mel_filterbank
from waveglow.config import AudioConfig
from waveglow.evaluate.griffin_lim import griffin_lim, mel_to_linear
from waveglow.metrics import (
    ALL_METRICS,
    DNSMOS,
    FULL_REFERENCE,
    MCD_DYNAMIC_RANGE_DB,
    PITCH_FMAX_HZ,
    PITCH_FMIN_HZ,
    MelCepstrum,
    MetricSuite,
    PitchTrack,
    compute_metrics,
    frequency_warp_matrix,
    mel_cepstral_distortion,
    pitch_metrics,
    track_pitch,
    warping_alpha,
)

CLIPS = REPO / "demo" / "clips"
SPEECH = CLIPS / "real_en_allison__vm-savemessage.flac"  # 2.5 s, in demo/train.txt
OTHER_SPEECH = CLIPS / "real_en_allison__tt-weasels.flac"  # 2.9 s, in demo/train.txt
NO_DNSMOS = tuple(name for name in ALL_METRICS if name not in DNSMOS)


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    return load_audio(SPEECH)


@pytest.fixture(scope="module")
def pysptk():
    """pysptk 1.0.1 imports pkg_resources at import time (only for its example file); setuptools >= 81 no
    longer has it, so an empty stand-in is registered first when it is missing."""
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        sys.modules.setdefault("pkg_resources", types.ModuleType("pkg_resources"))
    import pysptk

    return pysptk


def noisy(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """audio plus white Gaussian noise at ``snr_db`` (signal power over the whole clip)."""
    noise = np.random.default_rng(seed).standard_normal(audio.shape[0])
    power = np.mean(audio.astype(np.float64) ** 2)
    return (audio + noise * math.sqrt(power / 10 ** (snr_db / 10))).astype(np.float32)


def low_passed(audio: np.ndarray, rate: int, cutoff_hz: float) -> np.ndarray:
    """audio with every FFT bin above ``cutoff_hz`` removed."""
    spectrum = np.fft.rfft(audio)
    spectrum[np.fft.rfftfreq(audio.shape[0], 1 / rate) > cutoff_hz] = 0
    return np.fft.irfft(spectrum, audio.shape[0]).astype(np.float32)


def test_identical_signals_score_the_ideal_values(speech):
    audio, rate = speech
    result = compute_metrics(audio.copy(), audio, rate, NO_DNSMOS)
    assert result.absent == {}
    values = result.values
    assert values["pesq"] == pytest.approx(4.644, abs=0.01)  # the top of the wideband PESQ scale
    assert values["stoi"] == pytest.approx(1.0, abs=1e-6)
    for name in ("mcd_db", "mrstft", "f0_rmse_cents", "gross_pitch_error", "periodicity", "log_mel_distance"):
        assert values[name] == pytest.approx(0.0, abs=1e-6), name
    assert values["vuv_f1"] == 1.0
    assert 0.5 < values["voiced_share"] < 0.9  # speech: voiced most of the time, not all of it


def test_white_noise_against_speech_scores_poorly(speech):
    audio, rate = speech
    noise = (0.1 * np.random.default_rng(0).standard_normal(audio.shape[0])).astype(np.float32)
    result = compute_metrics(noise, audio, rate, NO_DNSMOS)
    values = result.values
    assert values["pesq"] < 1.2 and values["stoi"] < 0.5
    assert values["mcd_db"] > 8 and values["mrstft"] > 4 and values["log_mel_distance"] > 2
    assert values["vuv_f1"] == 0.0 and values["voiced_share"] == 0.0 and values["periodicity"] > 0.4
    assert result.absent == dict.fromkeys(
        ("f0_rmse_cents", "gross_pitch_error"), "no frame is voiced in both signals"
    )  # absent, not zero


def test_added_noise_and_low_pass_give_values_in_the_expected_ranges(speech):
    audio, rate = speech
    suite = MetricSuite(rate, names=("pesq", "stoi", "mcd_db", "mrstft", "vuv_f1", "log_mel_distance"))
    reference = suite.analyse(audio)
    by_snr = {snr: suite.compare(noisy(audio, snr), reference).values for snr in (0, 10, 20)}
    ten = by_snr[10]
    # White noise at 10 dB SNR: intelligible (STOI ~0.9) but of bad quality (wideband PESQ near its floor)
    assert 0.85 < ten["stoi"] < 0.93 and 1.0 < ten["pesq"] < 1.3
    assert 7 < ten["mcd_db"] < 11 and 4 < ten["mrstft"] < 5.5 and 0.85 < ten["vuv_f1"] < 0.96
    for name in ("pesq", "stoi", "vuv_f1"):  # more noise, worse
        assert by_snr[0][name] < by_snr[10][name] < by_snr[20][name], name
    for name in ("mcd_db", "mrstft", "log_mel_distance"):
        assert by_snr[0][name] > by_snr[10][name] > by_snr[20][name], name
    lowpass = {cut: suite.compare(low_passed(audio, rate, cut), reference).values for cut in (1000, 4000)}
    # Band-limiting at 4 kHz keeps the words (STOI ~1) and most of the quality; at 1 kHz it muffles them
    assert (
        lowpass[4000]["stoi"] > 0.99 and 3.0 < lowpass[4000]["pesq"] < 4.0 and 4 < lowpass[4000]["mcd_db"] < 7
    )
    assert 0.8 < lowpass[1000]["stoi"] < 0.9 and 2.0 < lowpass[1000]["pesq"] < 2.7
    assert lowpass[1000]["mcd_db"] > lowpass[4000]["mcd_db"] + 2
    assert set(suite.cost_ms_per_second()) == {
        "pesq",
        "stoi",
        "mcd_db",
        "mrstft",
        "pitch",
        "log_mel_distance",
    }


def test_mcd_matches_sptk_on_real_speech(speech, pysptk):
    audio, rate = speech
    for sampling_rate in (8000, 16000, 22050, 24000, 44100, 48000):
        assert warping_alpha(sampling_rate) == pytest.approx(pysptk.util.mcepalpha(sampling_rate), abs=1e-9)
    cepstrum = np.random.default_rng(0).standard_normal(513)
    warped = frequency_warp_matrix(513, 24, 0.455) @ cepstrum
    np.testing.assert_allclose(warped, pysptk.sptk.freqt(cepstrum, 24, 0.455), atol=1e-12)

    def sptk_mcep(signal: np.ndarray) -> np.ndarray:  # librosa framing, SPTK window and sp2mc
        frames = librosa.util.frame(np.pad(signal.astype(np.float64), 512, mode="reflect"), frame_length=1024,
                                    hop_length=256, axis=0)  # fmt: skip
        power = np.abs(np.fft.rfft(frames * pysptk.blackman(1024), axis=1)) ** 2
        power += power.max() * 10 ** (-MCD_DYNAMIC_RANGE_DB / 10)
        return pysptk.sp2mc(power, 24, pysptk.util.mcepalpha(rate))

    def sptk_mcd(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean(10 / np.log(10) * np.sqrt(2 * ((a[:, 1:] - b[:, 1:]) ** 2).sum(1))))

    ours = MelCepstrum(rate)
    degraded = noisy(audio, 20)
    np.testing.assert_allclose(ours(audio), sptk_mcep(audio), atol=1e-9)
    expected = sptk_mcd(sptk_mcep(degraded), sptk_mcep(audio))
    assert mel_cepstral_distortion(ours(degraded), ours(audio)) == pytest.approx(expected, rel=1e-9)
    assert 5 < expected < 9
    # c0 is left out and the floor is relative, so the level does not matter
    assert mel_cepstral_distortion(ours(0.25 * audio), ours(audio)) == pytest.approx(0.0, abs=1e-9)


def test_pitch_tracker_agrees_with_librosa_yin_and_pyin_on_real_speech():
    audio, rate = load_audio(OTHER_SPEECH)
    track = track_pitch(audio, rate)
    hop = round(rate * 0.01)
    frame = 2 * math.ceil(rate / PITCH_FMIN_HZ) + 2  # librosa's frame of the same span (even length)
    assert track.f0_hz.shape == (1 + audio.shape[0] // hop,)
    yin = librosa.yin(
        audio, fmin=PITCH_FMIN_HZ, fmax=PITCH_FMAX_HZ, sr=rate, frame_length=frame, hop_length=hop
    )
    voiced = track.voiced
    cents = 1200 * np.abs(np.log2(track.f0_hz[voiced] / yin[: voiced.size][voiced]))
    # The same algorithm (librosa drops one energy term of the difference function): ~2 cents apart
    assert np.median(cents) < 5 and np.mean(cents < 50) > 0.95
    head = audio[: 2 * rate]  # pYIN is slow (~0.3 s per second of audio): its voicing on the first 2 s
    f0_pyin, voiced_pyin, _ = librosa.pyin(
        head, fmin=PITCH_FMIN_HZ, fmax=PITCH_FMAX_HZ, sr=rate, frame_length=frame, hop_length=hop
    )
    ours = track_pitch(head, rate)
    assert np.mean(ours.voiced == voiced_pyin) > 0.85  # pYIN calls a few % more frames voiced
    both = ours.voiced & voiced_pyin
    assert np.median(1200 * np.abs(np.log2(ours.f0_hz[both] / f0_pyin[both]))) < 10


def test_pitch_tracker_on_tones_and_noise():
    rate = 16000
    time_s = np.arange(rate) / rate
    for f0 in (80.0, 220.0, 500.0):
        track = track_pitch(0.5 * np.sin(2 * np.pi * f0 * time_s), rate)
        inner = track.voiced[3:-3]  # the edge frames hold half a window of padding
        assert inner.all() and np.allclose(track.f0_hz[3:-3], f0, rtol=0.002)
        assert track.periodicity[3:-3].min() > 0.95
    noise = np.random.default_rng(0).standard_normal(rate) * 0.1
    assert track_pitch(noise, rate).voiced_share < 0.02
    silence = track_pitch(np.zeros(rate), rate)
    assert silence.voiced_share == 0.0 and silence.periodicity.max() == 0.0


def test_pitch_metric_definitions():
    truth = PitchTrack(
        f0_hz=np.array([100.0, 100.0, 200.0, 0.0, 0.0, 150.0]),
        voiced=np.array([True, True, True, False, False, True]),
        periodicity=np.array([0.9, 0.9, 0.9, 0.1, 0.1, 0.9]),
    )
    synthesis = PitchTrack(
        f0_hz=np.array([200.0, 100.0, 200.0, 120.0, 0.0, 0.0]),  # one octave error, one false voiced frame
        voiced=np.array([True, True, True, True, False, False]),
        periodicity=np.array([0.9, 0.9, 0.9, 0.5, 0.1, 0.5]),
    )
    result = pitch_metrics(synthesis, truth)
    assert result.values["vuv_f1"] == pytest.approx(2 * 3 / (2 * 3 + 2))  # 3 true positives, 1 FP, 1 FN
    assert result.values["f0_rmse_cents"] == pytest.approx(
        1200 / math.sqrt(3)
    )  # over the 3 frames voiced in both
    assert result.values["gross_pitch_error"] == pytest.approx(1 / 3)  # the octave slip, of 3 frames
    assert result.values["periodicity"] == pytest.approx(math.sqrt((0.4**2 + 0.4**2) / 6))
    near = PitchTrack(truth.f0_hz * np.array([1.19, 0.85, 1.0, 1, 1, 1.21]), truth.voiced, truth.periodicity)
    assert pitch_metrics(near, truth).values["gross_pitch_error"] == pytest.approx(
        1 / 4
    )  # only 21 % is gross
    unvoiced = PitchTrack(np.zeros(6), np.zeros(6, bool), np.zeros(6))
    assert pitch_metrics(unvoiced, unvoiced).values["vuv_f1"] == 1.0  # nothing voiced, nothing missed


def test_metrics_that_cannot_run_are_absent_with_a_reason():
    rate = 8000
    tone = (0.3 * np.sin(2 * np.pi * 200 * np.arange(800) / rate)).astype(np.float32)  # 0.1 s
    result = compute_metrics(tone, tone, rate)
    assert set(result.values) | set(result.absent) == set(ALL_METRICS)
    assert not set(result.values) & set(result.absent)
    assert (
        "30 frames" in result.absent["stoi"]
        and "shorter than half the largest STFT" in result.absent["mrstft"]
    )
    assert result.absent["pesq"] == "BufferTooShortError: Buffer needs to be at least 1/4 of a second long"
    assert all("shorter than 1 s" in result.absent[name] for name in DNSMOS)
    assert result.values["mcd_db"] == 0.0 and result.values["vuv_f1"] == 1.0
    with pytest.raises(ValueError, match="unknown metrics"):
        MetricSuite(rate, names=("pesq", "mos"))


def test_dnsmos_is_absent_with_the_reason_when_speechmos_is_missing(speech, monkeypatch):
    audio, rate = speech
    monkeypatch.setitem(sys.modules, "speechmos", None)  # import speechmos now raises ImportError
    result = compute_metrics(audio, audio, rate, ("stoi", *DNSMOS))
    assert set(result.values) == {"stoi"}
    assert all("pip install -e .[metrics]" in result.absent[name] for name in DNSMOS)


def test_dnsmos_scores_clean_speech_above_noisy_speech(speech):
    audio, rate = speech
    suite = MetricSuite(rate, names=DNSMOS)
    clean = suite.no_reference(suite.analyse(audio))
    try:
        import onnxruntime  # noqa: F401
        import speechmos  # noqa: F401
    except ImportError:  # the optional extra is not installed: every DNSMOS figure says so
        assert clean.values == {} and all("speechmos" in clean.absent[name] for name in DNSMOS)
        return
    noisy_scores = suite.no_reference(suite.analyse(noisy(audio, 5))).values
    assert clean.absent == {} and all(1.0 <= clean.values[name] <= 5.0 for name in DNSMOS)
    assert clean.values["dnsmos_bak"] > noisy_scores["dnsmos_bak"] + 1.0  # background noise is what BAK rates
    assert clean.values["dnsmos_ovrl"] > noisy_scores["dnsmos_ovrl"] + 0.5


def test_griffin_lim_inverts_the_project_mel(speech):
    audio, rate = speech
    cfg = AudioConfig()
    filters = librosa.filters.mel(sr=rate, n_fft=cfg.filter_length, n_mels=cfg.n_mel_channels, fmin=cfg.mel_fmin,
                                  fmax=cfg.fmax, htk=False, norm="slaney")  # fmt: skip
    np.testing.assert_allclose(filters, mel_filterbank(cfg).numpy(), atol=1e-7)  # the same filters
    head = audio[:rate]  # 1 s
    mel = MelSpectrogram(cfg)(torch.from_numpy(head))[0]  # (80, 87)
    few = griffin_lim(mel, cfg, n_iter=2, length=head.shape[0])
    many = griffin_lim(mel, cfg, n_iter=32, length=head.shape[0])
    assert many.shape == head.shape and many.dtype == np.float32 and np.abs(many).max() <= 1.0
    suite = MetricSuite(rate, cfg, ("mrstft", "log_mel_distance"))
    reference = suite.analyse(head)
    scores_few, scores_many = suite.compare(few, reference).values, suite.compare(many, reference).values
    assert scores_many["mrstft"] < scores_few["mrstft"] and scores_many["log_mel_distance"] < 0.4
    np.testing.assert_array_equal(griffin_lim(mel, cfg, n_iter=2, length=head.shape[0]), few)  # seeded
    with pytest.raises(ValueError, match="at least one iteration"):
        griffin_lim(mel, cfg, n_iter=0)


@pytest.mark.parametrize("convention", [{"mel_log": "log10"}, {"mel_log": "db", "mel_power": 2.0}])
def test_mel_to_linear_undoes_every_log_convention(convention):
    cfg = AudioConfig(**convention)
    linear = torch.rand(80, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 1e-3
    mel = MelSpectrogram(cfg).log(linear)
    np.testing.assert_allclose(mel_to_linear(mel, cfg), linear.numpy(), rtol=1e-9)


def test_every_full_reference_metric_has_a_direction():
    from waveglow.metrics import HIGHER_IS_BETTER

    assert HIGHER_IS_BETTER <= set(ALL_METRICS)
    assert {"pesq", "stoi", "vuv_f1"} <= HIGHER_IS_BETTER and not {"mcd_db", "mrstft"} & HIGHER_IS_BETTER
    assert set(FULL_REFERENCE) < set(ALL_METRICS)
