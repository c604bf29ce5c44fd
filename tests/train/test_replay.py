"""The fp32/bf16 curve replay (waveglow.train.replay): the window statistic, that a replay trains exactly as
``train`` does, and the regression check that bf16 autocast on CPU trains as well as fp32 on the same batches."""

from __future__ import annotations

import math
import re

import pytest
from conftest import make_clips, tiny_config, train_losses, write_list

from waveglow.train.loop import train
from waveglow.train.replay import median_window_gap, parse_variant, record_batches, replay, window_means


def test_window_means_and_their_median_gap():
    reference = [1.0] * 4 + [3.0] * 4 + [5.0] * 4 + [7.0] * 2  # the partial last window is dropped
    other = [1.5] * 4 + [2.5] * 4 + [5.25] * 4 + [100.0] * 2
    assert window_means(reference, 4) == [1.0, 3.0, 5.0]
    assert median_window_gap(reference, other, 4) == 0.25  # gaps 0.5, -0.5, 0.25
    with pytest.raises(ValueError, match="fewer than one window"):
        median_window_gap(reference, other, 50)
    with pytest.raises(ValueError, match="different lengths"):
        median_window_gap(reference, other[:-1], 4)


def test_a_replay_trains_exactly_as_train_does(tmp_path):
    """The recorded batches, the initial weights, the schedule and the sample loss's noise are the run's own:
    the fp32 replay's NLL equals train()'s logged NLL, bit for bit, across an epoch boundary. Clips of 0.3 s
    and segments of 2048 samples: the MR-STFT distance's longest frame is 2048."""
    clips = make_clips(tmp_path / "data", 8, seconds=0.3)
    write_list(tmp_path / "data/train.txt", clips[:6])
    write_list(tmp_path / "data/validation.txt", clips[6:])
    cfg = tiny_config(
        tmp_path / "data", max_steps=5, validate_at_start=False, validation_interval=100,
        lr_warmup_steps=3, grad_clip_thresh=1.0, stft_loss_weight=0.1,
    )  # fmt: skip
    cfg.data.segment_length = 2048
    train(cfg, tmp_path / "run")
    logged = train_losses(tmp_path / "run")
    result = replay(cfg, record_batches(cfg, 5), precisions=("fp32",), chunk_steps=2)
    assert result.runs["fp32"].nll == [logged[step] for step in range(1, 6)]
    assert all(result.runs["fp32"].applied)


def test_bf16_autocast_on_cpu_follows_the_fp32_curve(tmp_path):
    """150 steps of the tiny model on the same batches in fp32 and bf16: the median of the 50-step gaps
    (bf16 - fp32) is within 0.05 nats/sample; both curves fall, and they differ (bf16 ran)."""
    cfg = tiny_config(tmp_path / "data", grad_clip_thresh=5.0)
    result = replay(cfg, record_batches(cfg, 150), chunk_steps=25)
    fp32, bf16 = result.runs["fp32"], result.runs["bf16"]
    assert all(fp32.applied) and all(bf16.applied)
    assert all(math.isfinite(v) for v in fp32.nll + bf16.nll)
    for run in (fp32, bf16):
        first, *_, last = window_means(run.nll, 50)
        assert last < first - 0.5, run.precision  # it learns: 0.20 -> -1.00 when written
    assert max(abs(a - b) for a, b in zip(fp32.nll, bf16.nll)) > 1e-3  # the couplings ran in bfloat16
    gap = median_window_gap(fp32.nll, bf16.nll, 50)
    assert abs(gap) < 0.05, gap  # -0.009 when written
    assert fp32.samples_per_step == bf16.samples_per_step == 2 * 256
    assert fp32.samples_per_second() > 0 and len(bf16.wall_s) == len(bf16.cpu_s) == 150


def test_replay_variants_name_a_precision_and_optionally_compile():
    assert parse_variant("bf16") == ("bf16", False) and parse_variant("fp32+compile") == ("fp32", True)
    for bad in ("fp8", "bf16+jit", "bf16+", "+compile"):
        with pytest.raises(ValueError, match=f"replay variant '{re.escape(bad)}'"):
            parse_variant(bad)
