"""Engine choice by measurement (waveglow.synth.engine_choice): the faster engine wins, the choice is cached
per key, a damaged or unwritable cache only means measuring again. Timing comes from a fake clock."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
from conftest import TINY_AUDIO, TINY_MODEL, make_tiny_model, randomize_end

from waveglow.cpu_load import CpuSample
from waveglow.model.architectures import build_flow
from waveglow.synth.engine_choice import cache_file, choice_key, choose_engine, measure_engines


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


def test_a_choice_timed_while_other_processes_load_the_cpu_is_not_cached(tmp_path):
    clock, calls = FakeClock(), []
    path = tmp_path / "engines.json"
    runners = {"fast": clock.runner(0.1, calls, "fast"), "eager": clock.runner(0.2, calls, "eager")}
    # readings 1 s apart: the CPUs were busy 1.8 s, this process 0.6 s of it -> others kept 1.2 cores busy
    readings = iter([CpuSample(0.0, 0.0, 0.0), CpuSample(1.0, 1.8, 0.6)])
    loaded = measure_engines("k", runners, timer=clock, path=path, cpu_sample=lambda: next(readings))
    assert (loaded.engine, loaded.measured) == ("fast", True) and not path.exists()
    readings = iter([CpuSample(0.0, 0.0, 0.0), CpuSample(1.0, 0.9, 0.6)])  # others 0.3 cores: cached
    quiet = measure_engines("k", runners, timer=clock, path=path, cpu_sample=lambda: next(readings))
    assert quiet.engine == "fast" and json.loads(path.read_text())["choices"]["k"]["engine"] == "fast"
    unknown = measure_engines("k2", runners, timer=clock, path=path, cpu_sample=lambda: None)
    assert unknown.engine == "fast" and "k2" in json.loads(path.read_text())["choices"]  # no reading: cached


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


def test_vocoder_auto_precision_times_each_engine_in_each_precision(tmp_path, monkeypatch):
    """precision="auto" where the CPU has native bf16 (faked, so that it runs on any CPU): the four (engine,
    precision) pairs are timed once and the fastest is taken, under a key of its own; a cached pair is obeyed
    and synthesises what that precision and engine give when asked for; without native bf16 it is the fp32
    engine choice; the light flow times its own pass in both precisions; compile still compiles."""
    from waveglow import Config, Vocoder
    from waveglow.synth import vocoder as vocoder_module

    cache = tmp_path / "engines.json"
    monkeypatch.setenv("WAVEGLOW_ENGINE_CACHE", str(cache))
    monkeypatch.setattr(vocoder_module, "auto_precisions", lambda device: ("fp32", "bf16"))
    cfg = Config(model=TINY_MODEL, audio=TINY_AUDIO)
    first = Vocoder(make_tiny_model(), cfg, device="cpu", precision="auto")
    choice = first.engine_choice
    assert choice.measured and set(choice.seconds) == {"fast-fp32", "eager-fp32", "fast-bf16", "eager-bf16"}
    assert f"{first.engine}-{first.precision}" == choice.engine == min(choice.seconds, key=choice.seconds.get)
    assert first.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[first.precision]
    assert json.loads(choice.key)["precision"] == "auto:fp32,bf16"

    stored = json.loads(cache.read_text())
    stored["choices"][choice.key] = {"engine": "fast-bf16"}
    cache.write_text(json.dumps(stored))
    chosen = Vocoder(make_tiny_model(), cfg, device="cpu", precision="auto")
    assert (chosen.engine, chosen.precision, chosen.dtype) == ("fast", "bf16", torch.bfloat16)
    assert not chosen.engine_choice.measured
    asked = Vocoder(make_tiny_model(), cfg, device="cpu", precision="bf16", engine="fast")
    fp32 = Vocoder(make_tiny_model(), cfg, device="cpu", precision="fp32", engine="fast")
    mel = torch.randn(TINY_AUDIO.n_mel_channels, 12, generator=torch.Generator().manual_seed(0)) - 6.0
    audio = chosen(mel, sigma=0.6, seeds=[3])
    assert torch.equal(audio, asked(mel, sigma=0.6, seeds=[3]))
    assert 0 < (audio - fp32(mel, sigma=0.6, seeds=[3])).abs().max() < 0.05  # bf16: close, not exact

    monkeypatch.setattr(vocoder_module, "auto_precisions", lambda device: ("fp32",))
    plain = Vocoder(make_tiny_model(), cfg, device="cpu", precision="auto")
    assert plain.precision == "fp32" and json.loads(plain.engine_choice.key)["precision"] == "fp32"
    assert set(plain.engine_choice.seconds) == {"fast", "eager"}

    monkeypatch.setattr(vocoder_module, "auto_precisions", lambda device: ("fp32", "bf16"))
    light_cfg = dataclasses.replace(TINY_MODEL, architecture="light")
    light = Vocoder(
        build_flow(light_cfg, TINY_AUDIO),
        Config(model=light_cfg, audio=TINY_AUDIO),
        device="cpu",
        precision="auto",
    )
    assert set(light.engine_choice.seconds) == {"eager-fp32", "eager-bf16"} and light.engine == "eager"
    assert set(light.precision_choices) == {32, 128, 512, 2048}  # the batch sizes it was timed at
    assert light.precision_choices[2048].engine == f"eager-{light.precision}"  # the largest batches' winner

    built = []  # compile=True: the pair is timed uncompiled, then the chosen precision is built compiled
    real_prepare = vocoder_module.prepare_for_inference

    def prepare(model, device, precision, compile=False, **kwargs):
        built.append((precision, compile))
        return real_prepare(model, device, precision, **kwargs)

    monkeypatch.setattr(vocoder_module, "prepare_for_inference", prepare)
    monkeypatch.setenv("WAVEGLOW_ENGINE_CACHE", str(tmp_path / "other.json"))
    compiled = Vocoder(make_tiny_model(), cfg, device="cpu", precision="auto", compile=True)
    assert set(compiled.engine_choice.seconds) == {"fast-fp32", "fast-bf16"}
    assert built == [("fp32", False), ("bf16", False), (compiled.precision, True)]


@pytest.mark.parametrize(
    "winners, precision, fp32_below",
    [
        (("fp32", "fp32", "bf16", "bf16"), "bf16", 512),
        (("fp32", "bf16", "fp32", "bf16"), "bf16", 2048),
        (("bf16", "bf16", "bf16", "bf16"), "bf16", 0),
        (("bf16", "bf16", "bf16", "fp32"), "fp32", 0),
    ],
)
def test_light_flow_auto_precision_follows_the_batch_size(
    tmp_path, monkeypatch, winners, precision, fp32_below
):
    """precision="auto" with the light flow: the winner at each probe size (here from the cache) sets the
    precision of large batches and the size below which batches run in fp32; a small batch then synthesises
    exactly what fp32 gives, a large one what bf16 gives."""
    from waveglow import Config, Vocoder
    from waveglow.synth import vocoder as vocoder_module

    cache = tmp_path / "engines.json"
    monkeypatch.setenv("WAVEGLOW_ENGINE_CACHE", str(cache))
    monkeypatch.setattr(vocoder_module, "auto_precisions", lambda device: ("fp32", "bf16"))
    light_cfg = dataclasses.replace(TINY_MODEL, architecture="light")
    cfg = Config(model=light_cfg, audio=TINY_AUDIO)
    cpu = torch.device("cpu")
    choices = {}
    for frames, winner in zip(vocoder_module.LIGHT_PROBE_FRAMES, winners):
        label = "auto:fp32,bf16" + ("" if frames == vocoder_module.PROBE_FRAMES else f"@{frames}")
        choices[choice_key(cpu, light_cfg, label)] = {"engine": f"eager-{winner}"}
    cache.write_text(json.dumps({"format": 1, "choices": choices}))
    model = randomize_end(build_flow(light_cfg, TINY_AUDIO))  # couplings that are not identities
    auto = Vocoder(copy.deepcopy(model), cfg, device="cpu", precision="auto")
    assert (auto.precision, auto.fp32_below_frames) == (precision, fp32_below)
    assert not any(choice.measured for choice in auto.precision_choices.values())
    fixed = {p: Vocoder(copy.deepcopy(model), cfg, device="cpu", precision=p) for p in ("fp32", "bf16")}
    gen = torch.Generator().manual_seed(0)
    for frames in (40, 600, 2100):
        mel = torch.randn(TINY_AUDIO.n_mel_channels, frames, generator=gen) - 6.0
        expected = "fp32" if frames < fp32_below else precision
        assert auto.dtype_for(frames) == {"fp32": torch.float32, "bf16": torch.bfloat16}[expected]
        audio = auto(mel, sigma=0.6, seeds=[1])
        by_precision = {p: vocoder(mel, sigma=0.6, seeds=[1]) for p, vocoder in fixed.items()}
        assert not torch.equal(by_precision["fp32"], by_precision["bf16"])  # so the check below can fail
        assert torch.equal(audio, by_precision[expected]), frames
