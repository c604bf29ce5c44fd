"""The copy-synthesis metric, the evaluation report, and `python -m waveglow.evaluate`."""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import REPO, TINY_AUDIO, make_clips, make_tiny_model, write_list

from waveglow.audio import MelSpectrogram, load_audio
from waveglow.checkpoints import save_model
from waveglow.config import Config, DataConfig
from waveglow.evaluate.__main__ import main
from waveglow.evaluate.report import (
    _grouped_notes,
    clip_nll,
    copy_synthesis,
    evaluate_model,
    mean_metrics,
    vocoder_synthesis,
)
from waveglow.metrics import FULL_REFERENCE, log_mel_distance
from waveglow.model.loss import WaveGlowLoss
from waveglow.synth import Vocoder
from waveglow.synth.inputs import draw_seeds


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
    # the command synthesises with a Vocoder (engine "auto": chosen for this machine, fp32): the same figures
    vocoder = Vocoder(make_tiny_model(), cfg, device="cpu")
    assert report["synthesis"] == f"{vocoder.engine} engine, fp32" and report["synthesis"] in printed
    direct = evaluate_model(
        vocoder.model, clips, sigma=0.6, nll_sigma=1.0, dither=1.0, synthesize=vocoder_synthesis(vocoder)
    )
    assert report["nll"] == pytest.approx(direct.nll, rel=1e-5)
    assert report["log_mel_distance"] == pytest.approx(direct.log_mel_distance, rel=1e-4)


def test_the_evaluate_command_takes_the_engine_and_precision_of_infer(tmp_path, capsys):
    clips = make_clips(tmp_path / "clips", 2)
    filelist = write_list(tmp_path / "clips/list.txt", clips)
    cfg = Config(model=make_tiny_model().model_cfg, audio=TINY_AUDIO)
    save_model(make_tiny_model(), cfg, tmp_path / "tiny.pt")
    reports = {}
    for engine, precision in (("eager", "fp32"), ("fast", "fp32"), ("fast", "bf16")):
        out = tmp_path / f"{engine}-{precision}"
        args = [
            str(filelist),
            "--checkpoint",
            str(tmp_path / "tiny.pt"),
            "--output",
            str(out),
            "--report-only",
        ]
        assert main([*args, "--engine", engine, "--precision", precision, "--metrics", "stoi"]) == 0
        reports[engine, precision] = json.loads((out / "report.json").read_text())
        assert reports[engine, precision]["synthesis"] == f"{engine} engine, {precision}"
        assert f"({engine} engine, {precision})" in (out / "report.md").read_text()
    eager, fast, bf16 = (reports[k]["log_mel_distance"] for k in reports)
    assert fast == pytest.approx(eager, rel=1e-4)  # the engines agree within float32 rounding, same noise
    assert bf16 == pytest.approx(eager, rel=0.05) and bf16 != eager  # bf16 is near, not exact
    assert all(r["nll"] == reports["eager", "fp32"]["nll"] for r in reports.values())  # NLL in float32
    with pytest.raises(SystemExit) as exited:
        main([*args, "--engine", "warp"])
    assert exited.value.code == 2 and "invalid choice: 'warp'" in capsys.readouterr().err


def test_python_dash_m_entry_point(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "waveglow.evaluate.__main__", raising=False)  # runpy runs a fresh copy
    monkeypatch.setattr(sys, "argv", ["python -m waveglow.evaluate", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("waveglow.evaluate", run_name="__main__")
    assert exited.value.code == 0 and "--checkpoint" in capsys.readouterr().out


# ------------------------------------------------------------------- metrics, baselines and the report

SPEECH = sorted((REPO / "demo" / "clips").glob("real_en_allison__vm-*.flac"))
QUICK = (*(m for m in FULL_REFERENCE if m != "log_mel_distance"), "voiced_share")  # all but DNSMOS


def speech_clips(folder: Path, count: int, rate: int, seconds: float = 1.2) -> list[Path]:
    """The first ``seconds`` of ``count`` demo recordings, resampled to ``rate``, as 16-bit wavs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in SPEECH[:count]:
        audio, _ = load_audio(source, rate)
        path = folder / f"{source.stem}.wav"
        sf.write(path, audio[: int(seconds * rate)], rate, subtype="PCM_16")
        paths.append(path)
    return paths


class OtherFlow(torch.nn.Module):
    """A flow that is not a WaveGlow: only infer, forward, model_cfg and audio_cfg, as evaluation may use."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.model_cfg, self.audio_cfg = inner.model_cfg, inner.audio_cfg

    def forward(self, audio: torch.Tensor, mel: torch.Tensor):
        return self.inner(audio, mel)

    def infer(self, mel: torch.Tensor, sigma: float = 0.6, generator: torch.Generator | None = None):
        return self.inner.infer(mel, sigma=sigma, generator=generator)


def test_evaluate_model_reports_metrics_beside_griffin_lim_and_the_recordings(tmp_path):
    clips = speech_clips(tmp_path / "clips", 2, TINY_AUDIO.sampling_rate)
    report = evaluate_model(
        OtherFlow(make_tiny_model()), clips, output_dir=tmp_path / "out", griffin_lim_iters=4, metrics=QUICK
    )
    saved = json.loads((tmp_path / "out/report.json").read_text())
    assert set(saved) >= {"files", "mean", "baselines", "absent", "clips", "nll", "metric_cost_ms_per_second"}
    assert set(saved["mean"]) >= {"nll", "log_mel_distance", *QUICK} - {"f0_rmse_cents", "gross_pitch_error"}
    assert saved["mean"]["nll"] == pytest.approx(report.nll) and saved["nll"] == pytest.approx(report.nll)
    assert saved["mean"]["log_mel_distance"] == pytest.approx(report.log_mel_distance)
    assert 0 <= saved["mean"]["stoi"] <= 1 and 1 <= saved["mean"]["pesq"] <= 4.65
    griffin = saved["baselines"]["griffin_lim"]
    assert griffin["iterations"] == 4 and griffin["absent"]["nll"] == "Griffin-Lim has no likelihood"
    assert {"stoi", "mcd_db", "log_mel_distance", "voiced_share"} <= set(griffin["mean"])
    truth = saved["baselines"]["ground_truth"]["mean"]
    assert set(truth) == {"voiced_share"} and 0.3 < truth["voiced_share"] < 1  # recordings: no-reference only
    assert len(saved["files"]) == 2 and saved["files"][0]["metrics"]["stoi"] == pytest.approx(
        report.files[0]["metrics"]["stoi"]
    )
    first = saved["files"][0]["baselines"]
    assert first["griffin_lim"]["metrics"]["stoi"] != saved["files"][0]["metrics"]["stoi"]
    table = (tmp_path / "out/report.md").read_text()
    assert "| metric | better | model | Griffin-Lim | recording |" in table and "| stoi | higher |" in table
    for name in ("metrics.png", "mels.png", f"{clips[0].stem}.wav", f"griffin_lim/{clips[0].stem}.wav"):
        assert (tmp_path / "out" / name).is_file(), name


def test_baseline_only_command_without_a_checkpoint(tmp_path, capsys):
    clips = speech_clips(tmp_path / "clips", 1, 22050, seconds=1.0)
    filelist = write_list(tmp_path / "clips/list.txt", clips)
    out = tmp_path / "out"
    args = [str(filelist), "--baseline", "griffin-lim", "--griffin-lim-iters", "2", "--output", str(out)]
    assert main(args + ["--metrics", "stoi,voiced_share,dnsmos_ovrl", "--report-only"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["mean"] == {} and "no checkpoint" in report["absent"]["all"] and report["nll"] is None
    assert set(report["baselines"]["griffin_lim"]["mean"]) >= {"stoi", "log_mel_distance", "voiced_share"}
    truth = report["baselines"]["ground_truth"]
    assert "voiced_share" in truth["mean"] and (
        "dnsmos_ovrl" in truth["mean"] or "speechmos" in truth["absent"]["dnsmos_ovrl"]
    )
    assert sorted(p.name for p in out.rglob("*")) == ["mels.png", "metrics.png", "report.json", "report.md"]
    assert "baselines only" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main([str(filelist)])  # neither a model nor a baseline
    assert refused.value.code == 2
    with pytest.raises(SystemExit):
        main(args + ["--metrics", "stoi,utmos"])


def test_validation_during_training_scores_the_cheap_metrics(tmp_path):
    from waveglow.data.datasets import AudioClipDataset
    from waveglow.train.log import RunLogger, read_metrics
    from waveglow.train.validation import validate

    clips = speech_clips(tmp_path / "clips", 2, TINY_AUDIO.sampling_rate)
    cfg = Config(model=make_tiny_model().model_cfg, audio=TINY_AUDIO, data=DataConfig(segment_length=256))
    cfg.data.validation_clips = 2
    result = validate(make_tiny_model(), AudioClipDataset(clips, TINY_AUDIO), cfg, torch.device("cpu"))
    assert math.isfinite(result.nll) and len(result.examples) == 2
    for name in ("stoi", "mrstft", "vuv_f1", "voiced_share", "voiced_share_reference"):
        assert math.isfinite(getattr(result, name)), name
    assert 0.3 < result.voiced_share_reference < 1 and 0 <= result.stoi <= 1
    assert 0 < result.metric_seconds < result.seconds
    scalars = result.scalars()
    assert set(scalars) == {
        "nll",
        "log_mel_distance",
        "stoi",
        "mrstft",
        "vuv_f1",
        "voiced_share",
        "voiced_share_reference",
    }
    logger = RunLogger(tmp_path / "run", enabled=True)
    logger.validation(5, result, TINY_AUDIO.sampling_rate)
    logger.close()
    record = read_metrics(tmp_path / "run/metrics.jsonl")[-1]
    assert record["kind"] == "validation" and record["stoi"] == pytest.approx(result.stoi)
    assert (tmp_path / "run/loss.png").is_file()


@pytest.mark.gpu
def test_evaluate_model_on_cuda(tmp_path):
    """Synthesis on the GPU, metrics and Griffin-Lim on the CPU: the NLL and the baseline match a CPU run."""
    clips = speech_clips(tmp_path / "clips", 1, TINY_AUDIO.sampling_rate)
    options = dict(griffin_lim_iters=2, metrics=("stoi", "mcd_db", "voiced_share"))
    cpu = evaluate_model(make_tiny_model(), clips, **options)
    gpu = evaluate_model(make_tiny_model(), clips, device="cuda", output_dir=tmp_path / "out", **options)
    assert gpu.nll == pytest.approx(cpu.nll, rel=1e-3) and math.isfinite(gpu.mean["stoi"])
    assert gpu.baselines["griffin_lim"]["mean"]["mcd_db"] == pytest.approx(
        cpu.baselines["griffin_lim"]["mean"]["mcd_db"], rel=1e-2
    )  # the same inversion of mels that differ by float rounding
    assert (tmp_path / "out/report.json").is_file()


def test_evaluate_follows_the_data_check_and_the_exit_codes_of_infer(tmp_path, capsys):
    """A silent clip is bad as the data check says (never in the means), each bad clip is listed once with
    its path and reason, and bad files give exit code 1; a missing or unsafe checkpoint and a device this
    machine lacks give one line and exit code 2."""
    clips = make_clips(tmp_path / "clips", 2)
    silent = tmp_path / "clips/silent.wav"
    sf.write(silent, torch.zeros(800).numpy(), TINY_AUDIO.sampling_rate, subtype="PCM_16")
    broken = tmp_path / "clips/broken.wav"
    broken.write_bytes(b"not audio")
    filelist = write_list(tmp_path / "clips/list.txt", clips + [silent, broken])
    cfg = Config(model=make_tiny_model().model_cfg, audio=TINY_AUDIO, data=DataConfig(segment_length=256))
    save_model(make_tiny_model(), cfg, tmp_path / "tiny.pt")
    code = main(["--checkpoint", str(tmp_path / "tiny.pt"), str(filelist), "--metrics", "stoi"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "2 files (2 bad)" in printed
    bad_lines = [line for line in printed.splitlines() if line.strip().startswith("bad:")]
    assert len(bad_lines) == 2 and all(line.count(str(tmp_path)) == 1 for line in bad_lines)
    assert any("silent.wav: silent (peak 0" in line for line in bad_lines)
    alone = evaluate_model(make_tiny_model(), clips, sigma=0.6, nll_sigma=1.0, dither=1.0)
    assert f"held-out NLL {alone.nll:.4f}" in printed  # the silent clip is not in the mean
    for args, message in (
        ([str(tmp_path / "missing.pt")], "missing.pt: checkpoint not found"),
        (
            [str(tmp_path / "tiny.pt"), "--device", "cuda:7"] if not torch.cuda.is_available() else [],
            "--device",
        ),
    ):
        if not args:
            continue
        assert main(["--checkpoint", *args, str(filelist)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_partial_metrics_are_counted_and_each_reason_is_written_once():
    short = {
        "metrics": {"stoi": 0.8},
        "absent": {"dnsmos_sig": "clip shorter than 1 s", "dnsmos_p808": "clip shorter than 1 s"},
    }
    full = {"metrics": {"stoi": 0.9, "dnsmos_sig": 2.0, "dnsmos_p808": 3.0}, "absent": {}}
    means, absent = mean_metrics([short, short, short, full], [1.0] * 4)
    assert means["stoi"] == pytest.approx(0.825) and means["dnsmos_p808"] == pytest.approx(3.0)
    assert absent["dnsmos_p808"] == "mean over 1 of 4 files; others: clip shorter than 1 s (3 files)"
    notes = {(system, k): v for system in ("model", "Griffin-Lim") for k, v in absent.items()}
    notes[("Griffin-Lim", "nll")] = "Griffin-Lim has no likelihood"
    assert _grouped_notes(notes) == [
        "- model, Griffin-Lim: dnsmos_sig, dnsmos_p808: mean over 1 of 4 files; others: clip shorter than 1 s (3 files)",
        "- Griffin-Lim: nll: Griffin-Lim has no likelihood",
    ]


def test_validation_synthesises_with_the_vocoder_engine_and_leaves_the_training_model_alone():
    from waveglow.train.validation import synthesis_for_validation

    model = make_tiny_model(seed=3).train()  # as in training: weight norm on, gradients on
    cfg = Config(model=model.model_cfg, audio=TINY_AUDIO)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(7)
    rng = torch.get_rng_state()
    synthesize = synthesis_for_validation(model, cfg, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), rng)  # building the twin drew nothing from the global stream
    assert model.has_weight_norm and model.training and all(p.requires_grad for p in model.parameters())
    mel = torch.randn(1, 8, 30, generator=torch.Generator().manual_seed(1)) - 4
    audio = synthesize(mel, 0.6, torch.Generator().manual_seed(5))
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # the same audio as a Vocoder of the model's weights gives for the same seed (engine fast or eager)
    reference = Vocoder(make_tiny_model(seed=3), cfg, device="cpu", engine="eager")
    expected = reference(mel[0], sigma=0.6, seeds=draw_seeds(1, torch.Generator().manual_seed(5)))
    assert audio.shape == expected.shape == (1, 30 * TINY_AUDIO.hop_length)
    assert torch.allclose(audio, expected, atol=1e-5) and audio.abs().max() > 1e-3
    # training goes on with the weights it had: the model still trains
    loss = WaveGlowLoss(1.0)(model(torch.randn(1, 256) * 0.1, torch.randn(1, 8, 17)))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
