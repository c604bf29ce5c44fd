"""train.compile: the training step under torch.compile trains like the eager one, its checkpoints hold the
plain model's weights (loadable, resumable without compiling), and a machine without a C++ compiler gets a
clear error before the first step. CPU, the tiny model with the sample loss (forward and reverse pass), which
also starts at train.stft_loss_start_step."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_clips, tiny_config, train_losses, write_list

from waveglow.checkpoints import load_model
from waveglow.config import ConfigError
from waveglow.train.log import read_metrics
from waveglow.train.loop import TrainingError, train
from waveglow.train.setup import build_model


def _config(data, **settings):
    """Clips of 0.3 s and segments of 2048 samples: the MR-STFT distance's longest frame is 2048."""
    if not (data / "train.txt").is_file():
        clips = make_clips(data, 8, seconds=0.3)
        write_list(data / "train.txt", clips[:6])
        write_list(data / "validation.txt", clips[6:])
    cfg = tiny_config(data, **settings)
    cfg.data.segment_length = 2048
    return cfg


def test_compiled_training_matches_eager_and_writes_plain_checkpoints(tmp_path):
    settings = dict(max_steps=4, validate_at_start=False, validation_interval=100, stft_loss_weight=0.5)
    eager_cfg = _config(tmp_path / "data", **settings)
    compiled_cfg = _config(tmp_path / "data", compile=True, **settings)
    train(eager_cfg, tmp_path / "eager")
    train(compiled_cfg, tmp_path / "compiled")
    eager, compiled = train_losses(tmp_path / "eager"), train_losses(tmp_path / "compiled")
    assert sorted(compiled) == [1, 2, 3, 4]
    for step in eager:  # same batches, same noise: the same curve to float rounding
        assert math.isclose(compiled[step], eager[step], rel_tol=1e-4, abs_tol=1e-5), (step, compiled, eager)
    path = tmp_path / "compiled/checkpoints/step_00000004.pt"
    state = torch.load(path, weights_only=True)["model"]
    assert not [key for key in state if "_orig_mod" in key]
    reference = torch.load(tmp_path / "eager/checkpoints/step_00000004.pt", weights_only=True)["model"]
    assert state.keys() == reference.keys()
    initial = build_model(eager_cfg).state_dict()  # both runs started here (train.seed)
    moved = sum((reference[k] - initial[k]).abs().sum().item() for k in state)
    apart = sum((state[k] - reference[k]).abs().sum().item() for k in state)
    assert apart < 0.01 * moved, (apart, moved)  # Adam's first steps amplify rounding where a gradient is ~0
    load_model(path)  # a plain checkpoint
    resumed_cfg = _config(tmp_path / "data", **{**settings, "max_steps": 5})
    assert train(resumed_cfg, tmp_path / "compiled", resume=True).step == 5  # resumed without compiling


def test_compile_without_a_cpp_compiler_is_a_clear_error(tmp_path, monkeypatch):
    from torch._inductor import config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, "no-such-compiler-g++"))
    cfg = tiny_config(tmp_path / "data", compile=True, validate_at_start=False)
    with pytest.raises(TrainingError, match="'no-such-compiler-g\\+\\+' is not on PATH.*train.compile false"):
        train(cfg, tmp_path / "run")


def test_the_sample_loss_counts_from_its_start_step(tmp_path):
    cfg = _config(
        tmp_path / "data", max_steps=5, validation_interval=100, stft_loss_weight=0.1, stft_loss_start_step=3
    )
    train(cfg, tmp_path / "run")
    records = {r["step"]: r for r in read_metrics(tmp_path / "run/metrics.jsonl") if r["kind"] == "train"}
    assert sorted(records) == [1, 2, 3, 4, 5]
    # a record's step counts the step just taken: optimiser steps 0-2 (records 1-3) are the NLL alone
    assert all("stft_sc" not in records[s] for s in (1, 2, 3))
    for s in (4, 5):
        extra = 0.1 * (records[s]["stft_sc"] + records[s]["stft_log_mag"])
        assert records[s]["loss"] == pytest.approx(records[s]["nll"] + extra, rel=1e-5)
    with pytest.raises(ConfigError, match="stft_loss_start_step"):
        _config(tmp_path / "data", stft_loss_start_step=-1)
