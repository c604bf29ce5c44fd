"""The copy-synthesis metric, the evaluation report, and `python -m waveglow.evaluate`."""

from __future__ import annotations

import json
import math
import runpy
import sys

import pytest
import torch
from conftest import TINY_AUDIO, make_tiny_model
from test_training import make_clips, write_list

from waveglow.audio import MelSpectrogram, load_audio
from waveglow.checkpoint import save_model
from waveglow.config import Config, DataConfig
from waveglow.evaluation import clip_nll, copy_synthesis, evaluate_model, log_mel_distance, main
from waveglow.loss import WaveGlowLoss


def test_log_mel_distance_is_the_mean_absolute_difference():
    mel = torch.randn(8, 20, generator=torch.Generator().manual_seed(0))
    assert log_mel_distance(mel, mel) == 0.0
    assert log_mel_distance(mel, mel + 0.5) == pytest.approx(0.5)
    shifted = mel.clone()
    shifted[:4] += 2.0  # half the bins off by 2
    assert log_mel_distance(mel, shifted) == pytest.approx(1.0)
    longer = torch.cat([mel + 1.0, torch.zeros(8, 3)], dim=1)  # extra frames are cut
    assert log_mel_distance(mel, longer) == pytest.approx(1.0)
    assert log_mel_distance(mel.unsqueeze(0), (mel + 0.25).unsqueeze(0)) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="mel bins differ"):
        log_mel_distance(mel, mel[:4])


def test_copy_synthesis_and_nll_on_a_tiny_model(tmp_path):
    model = make_tiny_model()
    mel_fn = MelSpectrogram(TINY_AUDIO)
    audio = torch.from_numpy(load_audio(make_clips(tmp_path, 1)[0])[0])  # (800,)
    synth, mel, mel_synth = copy_synthesis(model, mel_fn, audio, 0.6, torch.Generator().manual_seed(0))
    assert synth.shape == audio.shape and mel.shape == mel_synth.shape == (8, 1 + 800 // 16)
    assert 0 < log_mel_distance(mel, mel_synth) < 20
    nll = clip_nll(model, WaveGlowLoss(1.0), mel_fn, audio)
    with torch.no_grad():
        expected = WaveGlowLoss(1.0)(model(audio[None], mel_fn(audio[None]))).item()
    assert nll == pytest.approx(expected, rel=1e-6)


def test_evaluate_model_writes_a_report_and_survives_a_bad_file(tmp_path):
    clips = make_clips(tmp_path / "clips", 3)
    bad = tmp_path / "clips/broken.wav"
    bad.write_bytes(b"not audio")
    report = evaluate_model(make_tiny_model(), clips + [bad], sigma=0.6, output_dir=tmp_path / "out")
    assert (report.n_files, report.n_bad) == (3, 1)
    assert math.isfinite(report.nll) and report.log_mel_distance > 0
    assert "broken.wav" in report.clips[-1].path and "cannot read audio" in report.clips[-1].error
    saved = json.loads((tmp_path / "out/report.json").read_text())
    assert saved["nll"] == pytest.approx(report.nll) and len(saved["clips"]) == 4
    for name in ("mels.png", "clip0.wav", "clip0.png", "clip2.wav"):
        assert (tmp_path / "out" / name).is_file(), name
    synth, rate = load_audio(tmp_path / "out/clip0.wav")
    assert rate == TINY_AUDIO.sampling_rate and len(synth) == 800


def test_the_evaluate_command(tmp_path, capsys):
    clips = make_clips(tmp_path / "clips", 2)
    filelist = write_list(tmp_path / "clips/list.txt", clips)
    cfg = Config(model=make_tiny_model().model_cfg, audio=TINY_AUDIO, data=DataConfig(segment_length=256))
    save_model(make_tiny_model(), cfg, tmp_path / "tiny.pt")
    code = main(["--checkpoint", str(tmp_path / "tiny.pt"), str(filelist), "--output", str(tmp_path / "out")])
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert report["n_files"] == 2 and f"held-out NLL {report['nll']:.4f}" in printed
    direct = evaluate_model(make_tiny_model(), clips, sigma=0.6, nll_sigma=1.0, dither=1.0)
    assert report["nll"] == pytest.approx(direct.nll, rel=1e-5)
    assert report["log_mel_distance"] == pytest.approx(direct.log_mel_distance, rel=1e-4)


def test_python_dash_m_entry_point(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["python -m waveglow.evaluate", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("waveglow.evaluate", run_name="__main__")
    assert exited.value.code == 0 and "--checkpoint" in capsys.readouterr().out
