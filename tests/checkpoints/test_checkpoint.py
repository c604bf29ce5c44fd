"""Our checkpoint format: atomic writes, weights_only loading, version checks, strict rebuild."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_AUDIO, TINY_MODEL, make_tiny_model

from waveglow import Config
from waveglow.checkpoints import (
    FORMAT_VERSION,
    CheckpointError,
    atomic_save,
    load_checkpoint,
    load_model,
    save_model,
)


def _cfg():
    return Config(model=TINY_MODEL, audio=TINY_AUDIO)


@pytest.mark.parametrize("remove_wn", [False, True])
def test_save_and_load_model_gives_same_outputs(tmp_path, remove_wn):
    model = make_tiny_model()
    if remove_wn:
        model.remove_weight_norm()
    path = tmp_path / "m.pt"
    save_model(model, _cfg(), path)
    data = torch.load(path, weights_only=True)
    assert data["format_version"] == FORMAT_VERSION and data["weight_norm"] is (not remove_wn)
    loaded, cfg = load_model(path)
    assert cfg.model == TINY_MODEL and cfg.audio == TINY_AUDIO
    mel = torch.randn(1, 8, 5)
    z = torch.randn(1, 8, 10)
    with torch.no_grad():
        assert torch.allclose(loaded.reverse(z, mel), model.reverse(z, mel), atol=1e-6)


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    atomic_save({"a": torch.ones(3)}, path)

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"a": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt: checkpoint file is empty"):
        load_checkpoint(empty)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_model(garbage)


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"format_version": FORMAT_VERSION + 1, "config": {}, "model": {}}, path)
    with pytest.raises(CheckpointError, match="format version 2 is not supported"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_are_reported(tmp_path):
    model = make_tiny_model()
    path = tmp_path / "m.pt"
    save_model(model, _cfg(), path)
    data = torch.load(path, weights_only=True)
    data["config"]["model"]["n_channels"] = 32
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(path)


def test_load_model_puts_the_model_where_asked(tmp_path):
    path = tmp_path / "model.pt"
    save_model(make_tiny_model(), _cfg(), path)
    assert next(load_model(path)[0].parameters()).device.type == "cpu"
    model, config = load_model(path, map_location="meta")  # any device; meta holds no data
    assert {p.device.type for p in model.parameters()} == {"meta"} and config.model == TINY_MODEL
