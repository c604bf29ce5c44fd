"""Engine choice by measurement (waveglow.synth.engine_choice): the faster engine wins, the choice is cached
per key, a damaged or unwritable cache only means measuring again. Timing comes from a fake clock."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from conftest import TINY_AUDIO, TINY_MODEL, make_tiny_model

from waveglow.model.architectures import build_flow
from waveglow.synth.engine_choice import cache_file, choice_key, choose_engine


class FakeClock:
    """time advances only when a runner runs, by that runner's cost."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def runner(self, cost: float, calls: list[str], name: str):
        def run():
            calls.append(name)
            self.now += cost

        return run


def test_fastest_engine_is_chosen_and_cached(tmp_path):
    clock, calls = FakeClock(), []
    path = tmp_path / "cache" / "engines.json"
    runners = {"fast": clock.runner(0.30, calls, "fast"), "eager": clock.runner(0.20, calls, "eager")}
    first = choose_engine("k1", runners, repeats=2, timer=clock, path=path)
    assert (first.engine, first.measured) == ("eager", True)
    assert first.seconds == pytest.approx({"fast": 0.30, "eager": 0.20})
    assert calls == ["fast"] * 3 + ["eager"] * 3  # one warm-up and two timed runs each
    stored = json.loads(path.read_text())
    assert stored["choices"]["k1"]["engine"] == "eager"

    calls.clear()  # a second process on this machine: no measuring
    again = choose_engine("k1", runners, timer=clock, path=path)
    assert (again.engine, again.measured, calls) == ("eager", False, [])

    other = choose_engine(
        "k2",
        {"fast": clock.runner(0.1, calls, "fast"), "eager": clock.runner(0.2, calls, "eager")},
        timer=clock,
        path=path,
    )
    assert other.engine == "fast"  # another key (machine, model or precision) is measured on its own
    assert set(json.loads(path.read_text())["choices"]) == {"k1", "k2"}


def test_cached_engine_must_be_a_candidate(tmp_path):
    clock, calls = FakeClock(), []
    path = tmp_path / "engines.json"
    path.write_text(json.dumps({"format": 1, "choices": {"k": {"engine": "retired"}}}))
    choice = choose_engine("k", {"fast": clock.runner(0.1, calls, "fast")}, timer=clock, path=path)
    assert (choice.engine, choice.measured) == ("fast", True)


def test_damaged_or_unwritable_cache_means_measuring_again(tmp_path, caplog):
    clock, calls = FakeClock(), []
    damaged = tmp_path / "engines.json"
    damaged.write_text("{not json")
    runners = {"fast": clock.runner(0.1, calls, "fast"), "eager": clock.runner(0.2, calls, "eager")}
    assert choose_engine("k", runners, timer=clock, path=damaged).measured
    assert "unreadable engine cache" in caplog.text
    assert json.loads(damaged.read_text())["choices"]["k"]["engine"] == "fast"  # rewritten whole

    blocked = tmp_path / "file"
    blocked.write_text("")
    choice = choose_engine("k", runners, timer=clock, path=blocked / "engines.json")  # parent is a file
    assert choice.engine == "fast" and "cannot cache the engine choice" in caplog.text


def test_key_and_cache_location(monkeypatch, tmp_path):
    cpu = torch.device("cpu")
    key = json.loads(choice_key(cpu, TINY_MODEL, "fp32"))
    assert key["precision"] == "fp32" and key["model"]["n_group"] == TINY_MODEL.n_group
    assert (
        key["machine"]["threads"] == torch.get_num_threads() and key["machine"]["torch"] == torch.__version__
    )
    assert choice_key(cpu, TINY_MODEL, "fp32") != choice_key(cpu, TINY_MODEL, "bf16")
    monkeypatch.setenv("WAVEGLOW_ENGINE_CACHE", str(tmp_path / "x.json"))
    assert cache_file() == tmp_path / "x.json"
    monkeypatch.delenv("WAVEGLOW_ENGINE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_file() == tmp_path / "xdg" / "waveglow" / "engine-choice.json"


def test_vocoder_auto_engine_measures_once_then_reads_the_cache(tmp_path, monkeypatch):
    """Vocoder(engine="auto"), the default: times both engines on a probe the first time, keeps the faster,
    and a second Vocoder of the same model reads the choice; a cached "eager" is obeyed; the light flow has
    one engine and measures nothing."""
    from waveglow import Config, Vocoder
    from waveglow.synth import vocoder as vocoder_module

    monkeypatch.setenv("WAVEGLOW_ENGINE_CACHE", str(tmp_path / "engines.json"))
    cfg = Config(model=TINY_MODEL, audio=TINY_AUDIO)
    first = Vocoder(make_tiny_model(), cfg, device="cpu")
    assert first.engine in ("fast", "eager") and first.engine_choice.measured
    assert set(first.engine_choice.seconds) == {"fast", "eager"}
    assert (first.fast is not None) == (first.engine == "fast")
    second = Vocoder(make_tiny_model(), cfg, device="cpu")
    assert second.engine == first.engine and not second.engine_choice.measured

    key = json.loads(first.engine_choice.key)
    forced = {"format": 1, "choices": {first.engine_choice.key: {"engine": "eager"}}}
    (tmp_path / "engines.json").write_text(json.dumps(forced))
    eager = Vocoder(make_tiny_model(), cfg, device="cpu")
    assert eager.engine == "eager" and eager.fast is None and key["precision"] == "fp32"
    fast = Vocoder(make_tiny_model(), cfg, device="cpu", engine="fast")
    mel = torch.randn(TINY_AUDIO.n_mel_channels, 12, generator=torch.Generator().manual_seed(0)) - 6.0
    assert (eager(mel, sigma=0.6, seeds=[3]) - fast(mel, sigma=0.6, seeds=[3])).abs().max() < 1e-4

    calls = []  # the Vocoder's own references to the lookup and the measurement
    monkeypatch.setattr(vocoder_module, "cached_engine", lambda *a, **k: calls.append("lookup"))
    monkeypatch.setattr(vocoder_module, "measure_engines", lambda *a, **k: calls.append("measure"))
    light_cfg = dataclasses.replace(TINY_MODEL, architecture="light")
    light = Vocoder(
        build_flow(light_cfg, TINY_AUDIO), Config(model=light_cfg, audio=TINY_AUDIO), device="cpu"
    )
    assert light.engine == "eager" and light.engine_choice is None and calls == []
