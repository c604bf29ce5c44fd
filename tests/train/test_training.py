"""Training on CPU with a tiny config: steps, checkpoints, exact resume, kill -9, the non-finite guard,
bf16 autocast, the NVIDIA config.json layout, --init-from. Audio is generated here (8 kHz, 0.1 s clips)."""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    REPO,
    TINY_AUDIO,
    make_tiny_model,
    tiny_config,
    train_losses,
)

import train as train_script
import waveglow.train.loop as training
from waveglow.audio import MelSpectrogram
from waveglow.checkpoints import load_checkpoint, load_model, save_model
from waveglow.config import Config, ConfigError, TrainConfig, load_config, save_config
from waveglow.model.loss import WaveGlowLoss
from waveglow.train.log import RunLogger, read_metrics
from waveglow.train.loop import TrainingError, learning_rate_at, train
from waveglow.train.objective import FlowObjective


def test_a_few_steps_train_and_write_a_complete_run_dir(tmp_path):
    cfg = tiny_config(tmp_path / "data", max_steps=8, checkpoint_interval=4, validation_interval=4)
    result = train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    assert result.step == 8 and result.stopped_by == "max_steps"
    losses = train_losses(run)
    assert sorted(losses) == list(range(1, 9))
    assert all(math.isfinite(v) for v in losses.values())
    assert np.mean([losses[7], losses[8]]) < np.mean([losses[1], losses[2]])  # it learns
    assert [v["step"] for v in result.validations] == [0, 4, 8]
    assert result.validations[-1]["nll"] < result.validations[0]["nll"]
    for name in ("config.yaml", "loss.png", "checkpoints/step_00000004.pt", "checkpoints/step_00000008.pt"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints/best.pt").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    data = torch.load(run / "checkpoints/step_00000008.pt", weights_only=True)
    assert data["step"] == 8 and data["state"]["epoch"] == 2 and data["state"]["batch_in_epoch"] == 2
    assert {"optimizer", "scaler", "rng", "config", "model", "format_version"} <= set(data)
    model, saved_cfg = load_model(run / "checkpoints/step_00000008.pt")
    assert saved_cfg.model == cfg.model and model.has_weight_norm
    assert load_config(run / "config.yaml").train == cfg.train


def test_keep_last_prunes_old_checkpoints(tmp_path):
    cfg = tiny_config(tmp_path / "data", max_steps=6, checkpoint_interval=1, validation_interval=100)
    train(cfg, tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run/checkpoints").glob("step_*.pt"))
    assert names == ["step_00000005.pt", "step_00000006.pt"]


@pytest.mark.parametrize("workers", [0, 1])
def test_resume_is_exact_on_cpu(tmp_path, workers):
    """5 steps straight vs 2 steps + resume: step 2 is mid-epoch (3 batches per epoch). With a DataLoader
    worker too: segments come from (seed, epoch, index), not from the worker's RNG."""
    cfg = tiny_config(tmp_path / "data", max_steps=5, validate_at_start=False, validation_interval=100)
    cfg.data.num_workers = workers
    train(cfg, tmp_path / "straight")
    cfg_short = tiny_config(tmp_path / "data", max_steps=2, validate_at_start=False, validation_interval=100)
    cfg_short.data.num_workers = workers
    train(cfg_short, tmp_path / "resumed")
    torch.manual_seed(999)  # disturb the global RNG: the resumed run must not depend on it
    result = train(cfg, tmp_path / "resumed", resume=True)
    assert result.step == 5
    straight, resumed = train_losses(tmp_path / "straight"), train_losses(tmp_path / "resumed")
    assert sorted(resumed) == [1, 2, 3, 4, 5]
    assert [resumed[s] for s in (3, 4, 5)] == [straight[s] for s in (3, 4, 5)]  # bit-exact
    a = torch.load(tmp_path / "straight/checkpoints/step_00000005.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed/checkpoints/step_00000005.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_dir_with_checkpoints_needs_resume(tmp_path):
    cfg = tiny_config(tmp_path / "data", max_steps=2, validate_at_start=False)
    train(cfg, tmp_path / "run")
    with pytest.raises(TrainingError, match="--resume"):
        train(cfg, tmp_path / "run")


def _poison(monkeypatch, bad_calls: set[int]) -> list[int]:
    """Make the audio of the given train_step calls (0-based) NaN; returns the call counter."""
    calls = [0]
    real = training.train_step

    def poisoned(model, audio, *args, **kwargs):
        if calls[0] in bad_calls:
            audio = audio.clone()
            audio[0, 5] = float("nan")
        calls[0] += 1
        return real(model, audio, *args, **kwargs)

    monkeypatch.setattr(training, "train_step", poisoned)
    return calls


def test_a_nan_batch_is_skipped_and_counted(tmp_path, monkeypatch):
    _poison(monkeypatch, {1})
    cfg = tiny_config(tmp_path / "data", max_steps=3, validate_at_start=False, validation_interval=100)
    result = train(cfg, tmp_path / "run")
    assert result.step == 3  # 4 batches: one skipped
    data = load_checkpoint(tmp_path / "run/checkpoints/step_00000003.pt")
    assert data["state"]["skipped_steps"] == 1 and data["state"]["batch_in_epoch"] == 1
    assert all(torch.isfinite(v).all() for v in data["model"].values())
    records = [r for r in read_metrics(tmp_path / "run/metrics.jsonl") if r["kind"] == "train"]
    assert [r["skipped_steps"] for r in records] == [0, 1, 1]


def test_nonfinite_steps_in_a_row_stop_training_and_leave_no_bad_checkpoint(tmp_path, monkeypatch):
    _poison(monkeypatch, set(range(2, 100)))
    cfg = tiny_config(tmp_path / "data", max_steps=20, checkpoint_interval=1, max_nonfinite_steps=3)
    with pytest.raises(TrainingError, match="3 non-finite steps in a row"):
        train(cfg, tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run/checkpoints").glob("step_*.pt"))
    assert names == ["step_00000001.pt", "step_00000002.pt"]


def test_bf16_autocast_on_cpu_trains_close_to_fp32(tmp_path):
    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = tiny_config(tmp_path / "data", max_steps=3, precision=precision, validate_at_start=False)
        train(cfg, tmp_path / precision)
        runs[precision] = train_losses(tmp_path / precision)
    assert runs["bf16"][1] == runs["fp32"][1]  # the couplings start as identities: no bf16 op matters yet
    for step in (2, 3):
        assert runs["bf16"][step] != runs["fp32"][step]  # the WN ran in bfloat16
        assert abs(runs["bf16"][step] - runs["fp32"][step]) < 0.02


def test_fp16_grad_scaler_skips_an_overflow_and_shrinks_the_scale():
    """The fp16 path (autocast + GradScaler) runs on CPU too: an overflowing scale skips the update without
    touching the weights and halves the scale; a workable scale updates them with finite values."""
    model = make_tiny_model(seed=3)
    mel_fn, loss_fn = MelSpectrogram(TINY_AUDIO), WaveGlowLoss(sigma=1.0)
    audio = 0.1 * torch.randn(2, 256, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    step = training.StepContext(FlowObjective(model), mel_fn, loss_fn, optimizer, scaler, "fp16")
    result = training.train_step(step, audio)
    assert result.loss_finite and not result.applied and not math.isfinite(result.grad_norm)
    assert scaler.get_scale() == 2.0**39
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))
    step.scaler = scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    result = training.train_step(step, audio)
    assert result.applied and math.isfinite(result.grad_norm) and result.grad_norm > 0
    assert scaler.get_scale() == 1.0  # no overflow: kept (it grows only after growth_interval steps)
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert any(changed) and all(torch.isfinite(p).all() for p in model.parameters())


def test_fp16_training_on_cpu_counts_overflows_apart_from_bad_losses(tmp_path, monkeypatch):
    """A whole fp16 run started at a scale that overflows (2**24): the overflowing steps are skipped without
    counting toward max_nonfinite_steps (1 here), the run still reaches max_steps with finite weights, and the
    shrunk scale is checkpointed."""
    scaler_class = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler", lambda *a, **k: scaler_class(*a, init_scale=2.0**24, **k))
    cfg = tiny_config(
        tmp_path / "data", max_steps=3, precision="fp16", validate_at_start=False, max_nonfinite_steps=1
    )
    result = train(cfg, tmp_path / "run")
    assert result.step == 3
    data = load_checkpoint(result.checkpoint)
    assert data["state"]["skipped_steps"] > 0
    assert 1.0 <= data["scaler"]["scale"] < 2.0**24
    assert all(torch.isfinite(v).all() for v in data["model"].values())
    assert all(math.isfinite(v) for v in train_losses(tmp_path / "run").values())


def test_progress_bar_counts_applied_steps_not_batches(tmp_path):
    logger = RunLogger(tmp_path, enabled=True, resume_step=2, total_steps=5)
    try:
        for step in (3, 3, 3, 4):  # a batch at step 3, then two skipped (non-finite) batches, then step 4
            logger.step(step, loss=1.0, samples_per_second=10.0)
        assert (logger.progress.n, logger.progress.total) == (4, 5)
    finally:
        logger.close()


def test_learning_rate_schedules():
    cfg = TrainConfig(learning_rate=1.0, lr_warmup_steps=4)
    assert [learning_rate_at(s, cfg) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    cfg = TrainConfig(learning_rate=1.0, lr_schedule="step", lr_decay_steps=10, lr_decay_gamma=0.5)
    assert [learning_rate_at(s, cfg) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cfg = TrainConfig(learning_rate=1.0, lr_schedule="cosine", max_steps=100)
    assert learning_rate_at(50, cfg) == pytest.approx(0.5) and learning_rate_at(100, cfg) == pytest.approx(0)
    with pytest.raises(TrainingError, match="cosine"):
        learning_rate_at(0, TrainConfig(lr_schedule="cosine"))
    # a run fails before it starts, also when warm-up steps come first (step 0 alone would not show it)
    with pytest.raises(ConfigError, match="cosine"):
        Config(train=TrainConfig(lr_schedule="cosine", lr_warmup_steps=10, max_steps=0)).validate()


def test_bad_files_stop_the_run_unless_skipped(tmp_path):
    cfg = tiny_config(tmp_path / "data", max_steps=1, validate_at_start=False)
    (tmp_path / "data/empty.wav").write_bytes(b"")
    with open(tmp_path / "data/train.txt", "a") as handle:
        handle.write("empty.wav\n")
    with pytest.raises(Exception, match="empty.wav"):
        train(cfg, tmp_path / "run")
    cfg.data.skip_bad_files = True
    assert train(cfg, tmp_path / "run2").step == 1


def test_init_from_copies_weights_from_ours_and_weight_norm_free_files(tmp_path):
    cfg = tiny_config(tmp_path / "data", max_steps=2, validate_at_start=False)
    train(cfg, tmp_path / "run")
    source, _ = load_model(tmp_path / "run/checkpoints/step_00000002.pt")
    plain = load_model(tmp_path / "run/checkpoints/step_00000002.pt")[0].remove_weight_norm()
    save_model(plain, cfg, tmp_path / "plain.pt")
    audio = 0.1 * torch.randn(1, 256, generator=torch.Generator().manual_seed(0))
    mel = torch.randn(1, 8, 17, generator=torch.Generator().manual_seed(1))
    expected = source(audio, mel).z
    for path in (tmp_path / "run/checkpoints/step_00000002.pt", tmp_path / "plain.pt"):
        model = training.build_model(cfg, init_from=path)
        assert model.has_weight_norm
        assert torch.allclose(model(audio, mel).z, expected, atol=1e-6)
    other = tiny_config(tmp_path / "data")
    other.model.n_channels = 8
    with pytest.raises(TrainingError, match="same architecture"):
        training.build_model(other, init_from=tmp_path / "plain.pt")


NVIDIA_CONFIG_JSON = """{
    "train_config": {"fp16_run": true, "output_directory": "checkpoints", "epochs": 100000,
        "learning_rate": 1e-4, "sigma": 1.0, "iters_per_checkpoint": 2000, "batch_size": 12, "seed": 1234,
        "checkpoint_path": "", "with_tensorboard": false},
    "data_config": {"training_files": "train_files.txt", "segment_length": 16000, "sampling_rate": 22050,
        "filter_length": 1024, "hop_length": 256, "win_length": 1024, "mel_fmin": 0.0, "mel_fmax": 8000.0},
    "dist_config": {"dist_backend": "nccl", "dist_url": "tcp://localhost:54321"},
    "waveglow_config": {"n_mel_channels": 80, "n_flows": 12, "n_group": 8, "n_early_every": 4,
        "n_early_size": 2, "WN_config": {"n_layers": 8, "n_channels": 256, "kernel_size": 3}}
}"""


def test_the_original_config_json_is_accepted(tmp_path):
    (tmp_path / "config.json").write_text(NVIDIA_CONFIG_JSON)
    args = argparse.Namespace(
        config=str(tmp_path / "config.json"), run_dir=None, data_root="/data/LJSpeech-1.1",
        set=["train.max_steps=10"], resume=False, precision=None, device=None, max_steps=None,
        max_minutes=None, skip_bad_files=False, compile=None,
    )  # fmt: skip
    cfg, run_dir = train_script.config_from_args(args)
    assert run_dir == Path("runs/config")
    assert cfg.model == Config().model and cfg.audio == Config().audio
    assert (cfg.train.batch_size, cfg.train.learning_rate, cfg.train.precision) == (12, 1e-4, "fp16")
    assert (cfg.train.checkpoint_interval, cfg.train.max_steps, cfg.train.sigma) == (2000, 10, 1.0)
    assert (cfg.data.training_files, cfg.data.segment_length) == ("train_files.txt", 16000)
    assert cfg.data.data_root == "/data/LJSpeech-1.1"


@pytest.mark.parametrize("name", ["ljspeech", "demo", "libritts_24k", "light", "allison_light"])
def test_shipped_configs_load_and_document_every_key(name):
    path = REPO / "configs" / f"{name}.yaml"
    cfg = load_config(path).validate()
    text = path.read_text()
    for section in ("model", "audio", "data", "train"):
        for key in getattr(cfg, section).__dataclass_fields__:
            lines = [line for line in text.splitlines() if line.strip().startswith(f"{key}:")]
            assert lines and all("#" in line for line in lines), (
                f"{name}: {section}.{key} missing or uncommented"
            )


def _tiny_yaml(tmp_path: Path, **train_overrides) -> Path:
    cfg = tiny_config(tmp_path / "data", **train_overrides)
    save_config(cfg, tmp_path / "tiny.yaml")
    return tmp_path / "tiny.yaml"


def test_kill9_mid_run_then_resume(tmp_path):
    """A run killed with SIGKILL resumes from its newest checkpoint; every checkpoint on disk loads."""
    config = _tiny_yaml(tmp_path, max_steps=100000, checkpoint_interval=2, validate_at_start=False)
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, str(REPO / "train.py"), "-c", str(config), "--run-dir", str(run)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints/step_00000006.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "training did not reach step 6"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = sorted(p for p in (run / "checkpoints").glob("step_*.pt"))
    steps = [load_checkpoint(p)["step"] for p in saved]  # none is corrupt
    assert steps and max(steps) >= 6
    last = max(steps)
    resume = command[:2] + ["--resume", "--run-dir", str(run), "--max-steps", str(last + 2)]
    done = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"stopped at step {last + 2} (max_steps)" in done.stdout
    losses = train_losses(run)
    assert sorted(losses)[-3:] == [last, last + 1, last + 2]


@pytest.mark.gpu
def test_fp16_with_grad_scaler_on_gpu(tmp_path):
    cfg = tiny_config(
        tmp_path / "data", max_steps=4, precision="fp16", device="cuda", validate_at_start=False
    )
    result = train(cfg, tmp_path / "run")
    assert result.step == 4  # scaler overflows are skipped, not counted as steps
    data = load_checkpoint(result.checkpoint)
    assert data["scaler"]["scale"] > 0 and all(torch.isfinite(v).all() for v in data["model"].values())
    assert all(math.isfinite(v) for v in train_losses(tmp_path / "run").values())
