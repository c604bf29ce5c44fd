"""Configs: validation messages, YAML/JSON round trip, --set overrides, the original config.json layout."""

from __future__ import annotations

import json

import pytest

from waveglow import Config, ConfigError, load_config
from waveglow.config import save_config

NVIDIA_CONFIG_JSON = {
    "train_config": {
        "fp16_run": True,
        "output_directory": "checkpoints",
        "epochs": 100000,
        "learning_rate": 1e-4,
        "sigma": 1.0,
        "iters_per_checkpoint": 2000,
        "batch_size": 12,
        "seed": 1234,
        "checkpoint_path": "",
        "with_tensorboard": False,
    },
    "data_config": {
        "training_files": "train_files.txt",
        "segment_length": 16000,
        "sampling_rate": 22050,
        "filter_length": 1024,
        "hop_length": 256,
        "win_length": 1024,
        "mel_fmin": 0.0,
        "mel_fmax": 8000.0,
    },
    "dist_config": {"dist_backend": "nccl", "dist_url": "tcp://localhost:54321"},
    "waveglow_config": {
        "n_mel_channels": 80,
        "n_flows": 12,
        "n_group": 8,
        "n_early_every": 4,
        "n_early_size": 2,
        "WN_config": {"n_layers": 8, "n_channels": 256, "kernel_size": 3},
    },
}


def test_defaults_are_valid_and_published():
    cfg = Config().validate()
    assert cfg.model.n_flows == 12 and cfg.audio.hop_length == 256 and cfg.data.segment_length == 16000
    assert cfg.train.learning_rate == 1e-4 and cfg.train.batch_size == 12


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(tmp_path, suffix):
    cfg = Config().override(["model.n_channels=64", "train.precision=bf16", "audio.mel_fmax=null"])
    path = tmp_path / f"cfg{suffix}"
    save_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert again.model.n_channels == 64 and again.audio.mel_fmax is None and again.audio.fmax == 11025.0


def test_override_errors():
    with pytest.raises(ConfigError, match="no such config key"):
        Config().override(["train.batchsize=3"])
    with pytest.raises(ConfigError, match="section.key=value"):
        Config().override(["batch_size=3"])


def test_unknown_key_in_file_names_it(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  n_flow: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key\(s\) in model: n_flow"):
        load_config(path)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json: cannot parse"):
        load_config(broken)


@pytest.mark.parametrize(
    "sets,message",
    [
        (["data.segment_length=16001"], "multiple of model.n_group"),
        (["model.n_mel_channels=100"], "must equal audio.n_mel_channels"),
        (["audio.mel_fmax=20000"], "mel_fmax"),
        (["audio.win_length=2048"], "must not exceed audio.filter_length"),
        (["train.precision=fp8"], "train.precision"),
        (["model.n_group=6", "model.n_early_size=2", "model.n_early_every=1", "model.n_flows=4"], ">= 2"),
    ],
)
def test_validation_messages(sets, message):
    with pytest.raises(ConfigError, match=message):
        Config().override(sets).validate()


def test_original_nvidia_config_json_is_accepted(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(NVIDIA_CONFIG_JSON))
    cfg = load_config(path).validate()
    assert cfg.model.n_channels == 256 and cfg.model.n_layers == 8 and cfg.model.n_flows == 12
    assert cfg.audio.sampling_rate == 22050 and cfg.audio.n_mel_channels == 80
    assert cfg.data.segment_length == 16000 and cfg.data.training_files == "train_files.txt"
    assert cfg.train.precision == "fp16" and cfg.train.checkpoint_interval == 2000


@pytest.mark.parametrize(
    "sets,message",
    [(["data.short_clips=zeros"], "short_clips must be pad or drop"), (["data.dither=-1"], "dither")],
)
def test_data_section_validation(sets, message):
    with pytest.raises(ConfigError, match=message):
        Config().override(sets).validate()


def test_numbers_are_read_as_their_fields_type(tmp_path):
    # PyYAML reads "1e-4" (no dot) as a string: it reached Adam as one before the config coerced it
    cfg = Config().override(["train.learning_rate=1e-4", "audio.mel_fmax=7600", "train.max_steps=1e3"])
    assert cfg.train.learning_rate == 1e-4 and isinstance(cfg.train.learning_rate, float)
    assert cfg.audio.mel_fmax == 7600.0 and isinstance(cfg.audio.mel_fmax, float)
    assert cfg.train.max_steps == 1000 and isinstance(cfg.train.max_steps, int)
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 3e-4\n  grad_clip_thresh: 5\n")
    loaded = load_config(path)
    assert loaded.train.learning_rate == 3e-4 and loaded.train.grad_clip_thresh == 5.0
    with pytest.raises(ConfigError, match="train.learning_rate must be a number, got 'fast'"):
        Config().override(["train.learning_rate=fast"])
    with pytest.raises(ConfigError, match="train.batch_size must be an integer, got 2.5"):
        Config().override(["train.batch_size=2.5"])
