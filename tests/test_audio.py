"""Audio I/O, resampling and the mel front end (against librosa), on signals the tests make."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY_AUDIO, speech_like

import waveglow
from waveglow.audio import (
    AudioFileError,
    MelSpectrogram,
    check_mel,
    convert_mel,
    load_audio,
    mel_filterbank,
    resample,
    save_audio,
)
from waveglow.config import AudioConfig, ConfigError
from waveglow.data import datasets as data_module

DEFAULT = AudioConfig()


def librosa_mel(audio: np.ndarray, cfg: AudioConfig, power: float = 1.0) -> np.ndarray:
    """The Tacotron 2 mel computed independently in float64 with librosa."""
    spec = np.abs(
        librosa.stft(
            audio.astype(np.float64),
            n_fft=cfg.filter_length,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window="hann",
            center=True,
            pad_mode="reflect",
        )
    )
    basis = librosa.filters.mel(
        sr=cfg.sampling_rate,
        n_fft=cfg.filter_length,
        n_mels=cfg.n_mel_channels,
        fmin=cfg.mel_fmin,
        fmax=cfg.fmax,
        htk=False,
        norm="slaney",
        dtype=np.float64,
    )
    return np.log(np.maximum(basis @ spec**power, 1e-5))


def test_mel_shapes_dtypes_and_batching():
    mel_fn = MelSpectrogram(TINY_AUDIO)
    for length in (33, 64, 1000, 1023, 1024):
        audio = torch.randn(3, length) * 0.1
        mel = mel_fn(audio)
        assert mel.shape == (3, 8, 1 + length // 16) and mel_fn.n_frames(length) == mel.shape[-1]
        singles = torch.cat([mel_fn(audio[i]) for i in range(3)])
        assert torch.allclose(mel, singles, atol=1e-5)
        assert torch.equal(mel_fn(audio.unsqueeze(1)), mel)
    audio = torch.randn(2, 800, dtype=torch.float64) * 0.1
    assert mel_fn(audio).dtype == torch.float64
    low = mel_fn(audio.to(torch.bfloat16))
    assert low.dtype == torch.bfloat16
    assert (low.double() - mel_fn(audio)).abs().max() < 0.1
    assert {name for name, _ in mel_fn.named_buffers()} == {"window", "mel_basis"}
    assert mel_fn.state_dict() == {}  # buffers are derived from the config, not stored in checkpoints
    with pytest.raises(ValueError, match="too short"):
        mel_fn(torch.zeros(1, 32))
    with pytest.raises(TypeError):
        mel_fn(torch.zeros(1, 100, dtype=torch.int16))


@pytest.mark.parametrize("cfg", [DEFAULT, TINY_AUDIO], ids=["tacotron2", "tiny"])
def test_mel_matches_librosa(cfg):
    rate = cfg.sampling_rate
    t = np.arange(rate // 2) / rate
    noise = np.random.default_rng(0).standard_normal(len(t))
    signals = [
        speech_like(0.7, rate=rate, seed=0),
        speech_like(0.5, rate=rate, seed=1, f0=210.0),
        (0.3 * np.sin(2 * np.pi * 440 * t) + 0.001 * noise).astype(np.float32),  # a tone over a noise floor
        (0.05 * noise).astype(np.float32),
    ]
    mel_fn = MelSpectrogram(cfg)
    worst = 0.0
    for audio in signals:
        ours = mel_fn(torch.from_numpy(audio)).squeeze(0).numpy()  # float32, as in training
        reference = librosa_mel(audio, cfg)
        assert ours.shape == reference.shape == (cfg.n_mel_channels, 1 + len(audio) // cfg.hop_length)
        worst = max(worst, float(np.abs(ours - reference).max()))
    assert worst < 1e-4
    # A pure tone leaves most bins near the 1e-5 floor, where float32 STFT rounding shows in the log;
    # in float64 the definitions agree there too.
    pure = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    ours = mel_fn(torch.from_numpy(pure).double()).squeeze(0).numpy()
    assert np.abs(ours - librosa_mel(pure, cfg)).max() < 1e-4


def test_filterbank_matches_librosa_for_every_option():
    for cfg in (
        DEFAULT,
        AudioConfig(sampling_rate=11025, filter_length=512, win_length=512, hop_length=128, mel_fmax=None),
        AudioConfig(mel_scale="htk", mel_norm="none", mel_fmin=55.0, mel_fmax=7600.0),
    ):
        reference = librosa.filters.mel(
            sr=cfg.sampling_rate,
            n_fft=cfg.filter_length,
            n_mels=cfg.n_mel_channels,
            fmin=cfg.mel_fmin,
            fmax=cfg.fmax,
            htk=cfg.mel_scale == "htk",
            norm="slaney" if cfg.mel_norm == "slaney" else None,
            dtype=np.float64,
        )
        assert np.abs(mel_filterbank(cfg).numpy() - reference).max() < 1e-12


def test_training_and_inference_mel_are_the_same_function(tmp_path):
    """The mel of a hop-aligned training segment equals the whole-clip mel at synthesis wherever the
    analysis window lies inside the segment, through the same module the dataset uses."""
    cfg = TINY_AUDIO
    clip = torch.from_numpy(speech_like(0.5, rate=cfg.sampling_rate, seed=3))  # 4000 samples
    mel_fn = MelSpectrogram(cfg)
    whole = mel_fn(clip)[0]  # inference: the whole clip
    start_frame, length = 37, 1024
    segment = clip[start_frame * cfg.hop_length :][:length]
    part = mel_fn(segment.unsqueeze(0))[0]  # training: a batch of segments
    half = cfg.filter_length // 2
    inner = [
        j
        for j in range(part.shape[-1])
        if j * cfg.hop_length - half >= 0 and j * cfg.hop_length + half <= length
    ]
    assert len(inner) >= 55
    assert torch.allclose(part[:, inner], whole[:, [start_frame + j for j in inner]], atol=1e-5)
    assert data_module.MelSpectrogram is waveglow.MelSpectrogram is MelSpectrogram
    path = tmp_path / "clip.wav"
    sf.write(str(path), clip.numpy(), cfg.sampling_rate, subtype="FLOAT")
    dataset = data_module.AudioSegmentDataset([path], cfg, length, return_mel=True)
    audio, mel = dataset[0]
    assert torch.equal(mel, mel_fn(audio)[0])


def test_mel_conventions_by_config_and_conversion():
    audio = torch.from_numpy(speech_like(0.5, rate=8000, seed=2))
    natural = MelSpectrogram(TINY_AUDIO)(audio)
    log10 = MelSpectrogram(AudioConfig(**{**vars(TINY_AUDIO), "mel_log": "log10"}))(audio)
    decibel = MelSpectrogram(AudioConfig(**{**vars(TINY_AUDIO), "mel_log": "db"}))(audio)
    assert torch.allclose(log10, natural / math.log(10), atol=1e-5)
    assert torch.allclose(decibel, 20 * natural / math.log(10), atol=1e-3)
    assert torch.allclose(convert_mel(log10, "log10", TINY_AUDIO), natural, atol=1e-5)
    assert torch.allclose(convert_mel(decibel, "db", TINY_AUDIO), natural, atol=1e-5)
    power_cfg = AudioConfig(**{**vars(TINY_AUDIO), "mel_power": 2.0})
    power = MelSpectrogram(power_cfg)(audio)[0].numpy()
    assert np.abs(power - librosa_mel(audio.numpy(), power_cfg, power=2.0)).max() < 1e-4
    with pytest.raises(ConfigError, match="mel_log"):
        AudioConfig(mel_log="log2").validate()


def test_check_mel_accepts_ours_and_recognises_other_conventions():
    audio = torch.from_numpy(speech_like(1.0, rate=22050, seed=4))
    mel = MelSpectrogram(DEFAULT)(audio)
    assert check_mel(mel, DEFAULT) == []
    assert check_mel(MelSpectrogram(DEFAULT)(torch.zeros(1, 4096)), DEFAULT) == []  # silence: the floor
    log10 = mel / math.log(10)
    assert any("log10" in issue for issue in check_mel(log10, DEFAULT))
    decibel = 20 * mel / math.log(10)
    assert any("dB" in issue for issue in check_mel(decibel, DEFAULT))
    unit = (mel - mel.min()) / (mel.max() - mel.min())
    assert any("normalised" in issue for issue in check_mel(unit, DEFAULT))
    standard = (mel - mel.mean()) / mel.std()
    assert check_mel(standard, DEFAULT) != []
    assert any("ceiling" in issue for issue in check_mel(mel + 5.0, DEFAULT))
    assert "n_mel=80" in check_mel(mel[:, :40], DEFAULT)[0]
    assert "NaN" in check_mel(mel * float("nan"), DEFAULT)[0]


# --------------------------------------------------------------------------------------------- resampling


def dominant_frequency(audio: np.ndarray, rate: int) -> float:
    """Peak of a zero-padded Hann-windowed spectrum, refined by parabolic interpolation."""
    size = 1 << 18
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)), n=size))
    k = int(np.argmax(spectrum))
    left, mid, right = np.log(spectrum[k - 1 : k + 2])
    offset = 0.5 * (left - right) / (left - 2 * mid + right)
    return (k + offset) * rate / size


@pytest.mark.parametrize("orig_rate", [16000, 44100, 48000])
def test_resampling_keeps_frequency_and_level(orig_rate):
    frequency, seconds = 1234.5, 0.5
    t = np.arange(int(orig_rate * seconds)) / orig_rate
    sine = (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    out = resample(sine, orig_rate, 22050)
    assert out.dtype == np.float32 and len(out) == math.ceil(len(sine) * 22050 / orig_rate)
    assert abs(dominant_frequency(out, 22050) - frequency) < 0.5
    middle = out[len(out) // 4 : 3 * len(out) // 4]
    assert abs(np.sqrt(np.mean(middle**2)) - 0.5 / math.sqrt(2)) < 0.005
    assert np.array_equal(resample(sine, orig_rate, orig_rate), sine)


def test_resampling_removes_content_above_the_new_nyquist():
    rate = 44100
    t = np.arange(rate // 2) / rate
    alias = (0.5 * np.sin(2 * np.pi * 15000 * t)).astype(np.float32)  # above 11025 Hz
    out = resample(alias, rate, 22050)
    assert np.sqrt(np.mean(out[1000:-1000] ** 2)) < 1e-3


# ------------------------------------------------------------------------------------------------ file I/O


def test_load_formats_mixdown_and_resampling(tmp_path):
    rate = 22050
    mono = speech_like(0.3, rate=rate, seed=5)
    for name, subtype, tolerance in (
        ("pcm16.wav", "PCM_16", 1.0 / 32768),
        ("pcm24.flac", "PCM_24", 1.0 / 2**23),
        ("float.wav", "FLOAT", 0.0),
        ("vorbis.ogg", "VORBIS", 0.05),
    ):
        sf.write(str(tmp_path / name), mono, rate, subtype=subtype)
        audio, got_rate = load_audio(tmp_path / name)
        assert got_rate == rate and audio.dtype == np.float32 and audio.ndim == 1
        assert len(audio) == len(mono) and np.abs(audio - mono).max() <= tolerance, name
    stereo = np.stack([mono, -0.5 * mono], axis=1)
    sf.write(str(tmp_path / "stereo.wav"), stereo, rate, subtype="FLOAT")
    audio, _ = load_audio(tmp_path / "stereo.wav")
    assert np.allclose(audio, 0.25 * mono, atol=1e-7)
    loud = np.array([0.5, 2.0, -3.0, 0.25], dtype=np.float32)
    sf.write(str(tmp_path / "loud.wav"), loud, rate, subtype="FLOAT")
    assert np.array_equal(load_audio(tmp_path / "loud.wav")[0], [0.5, 1.0, -1.0, 0.25])
    sf.write(str(tmp_path / "low.wav"), speech_like(0.3, rate=16000), 16000, subtype="FLOAT")
    audio, got_rate = load_audio(tmp_path / "low.wav", sampling_rate=rate)
    assert got_rate == rate and len(audio) == math.ceil(4800 * rate / 16000)


def test_load_errors_name_the_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 20)
    with_nan = speech_like(0.1)
    with_nan[5] = np.nan
    sf.write(str(tmp_path / "nan.wav"), with_nan, 8000, subtype="FLOAT")
    for name, problem in (
        ("missing.wav", "not found"),
        ("empty.wav", "empty"),
        ("junk.wav", "cannot read"),
        ("nan.wav", "NaN"),
    ):
        with pytest.raises(AudioFileError, match=problem) as err:
            load_audio(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)


def test_int16_round_trip_clips_instead_of_wrapping(tmp_path):
    audio = speech_like(0.2, seed=6)
    path = tmp_path / "out" / "speech.wav"
    save_audio(path, torch.from_numpy(audio), 8000)
    info = sf.info(str(path))
    assert (info.subtype, info.samplerate, info.channels) == ("PCM_16", 8000, 1)
    back, _ = load_audio(path)
    assert np.abs(back - audio).max() <= 1.0 / 32768
    extreme = np.array([1.5, -1.5, 1.0, -1.0, 0.5, float("nan"), 40000.0], dtype=np.float32)
    save_audio(path, extreme, 8000)
    ints, _ = sf.read(str(path), dtype="int16")
    assert ints[0] >= 32766 and ints[1] <= -32767  # clipped to full scale; wrapping would flip the sign
    assert ints[2] >= 32766 and ints[3] <= -32767 and abs(int(ints[4]) - 16384) <= 1
    assert ints[5] == 0 and ints[6] >= 32766
    save_audio(path, extreme, 8000, subtype="FLOAT")
    floats, _ = sf.read(str(path), dtype="float32")
    assert np.array_equal(floats, [1.0, -1.0, 1.0, -1.0, 0.5, 0.0, 1.0])
    assert sorted(p.name for p in path.parent.iterdir()) == ["speech.wav"]  # no temp files left
    with pytest.raises(ValueError, match="subtype"):
        save_audio(path, extreme, 8000, subtype="PCM_8")


@pytest.mark.gpu
def test_mel_on_gpu_matches_cpu():
    audio = torch.from_numpy(np.stack([speech_like(0.5, rate=22050, seed=s) for s in range(4)]))
    mel_fn = MelSpectrogram(DEFAULT)
    cpu = mel_fn(audio)
    gpu = mel_fn.to("cuda")(audio.cuda())
    assert gpu.device.type == "cuda" and (gpu.cpu() - cpu).abs().max() < 1e-4
    with torch.autocast("cuda", dtype=torch.bfloat16):
        under_autocast = mel_fn(audio.cuda())
    assert under_autocast.dtype == torch.float32 and (under_autocast.cpu() - cpu).abs().max() < 1e-4
