"""The benchmark on a tiny model: the JSON structure, and numbers that make sense."""

from __future__ import annotations

import json

import pytest
import torch

import waveglow.device as device_module
from waveglow import AudioConfig, ModelConfig
from waveglow.bench import machine as bench_machine
from waveglow.bench import report as bench_report
from waveglow.bench import run as bench
from waveglow.bench import variants as bench_variants
from waveglow.bench.__main__ import main as bench_main
from waveglow.bench.flops import light_flops_per_sample, model_flops_per_sample

TINY = ModelConfig(n_flows=2, n_early_every=4, n_layers=2, n_channels=16)


@pytest.fixture
def tiny_registry(monkeypatch):
    monkeypatch.setitem(bench_variants.MODELS, "tiny", TINY)


@pytest.fixture(autouse=True)
def small_gemm(monkeypatch):
    """The peak is measured on a 128 product here (2048 on a CPU otherwise): milliseconds, not seconds."""
    monkeypatch.setitem(bench_machine.GEMM_SIZE, "cpu", 128)


def test_bench_main_writes_json_and_table(tiny_registry, tmp_path, capsys):
    out = tmp_path / "result.json"
    table = tmp_path / "result.md"
    bench_main(
        [
            "--device", "cpu", "--model", "tiny", "--batch-sizes", "1,2", "--lengths", "0.05",
            "--rounds", "2", "--train", "--train-segment", "1024", "--train-steps", "1",
            "--json", str(out), "--markdown", str(table),
        ]
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert set(result) == {
        "environment", "command", "peaks", "baseline", "flops_per_sample", "synthesis", "training",
    }  # fmt: skip
    assert result["environment"]["torch"] == torch.__version__
    peaks = result["peaks"]
    assert (peaks["size"], peaks["threads"]) == (128, torch.get_num_threads())
    fp32_peak = peaks["by_precision"]["fp32"]
    assert fp32_peak["source"] == "measured" and fp32_peak["used"] == fp32_peak["measured"] > 0.1
    assert fp32_peak["stated"] == 150.0
    assert "--model tiny" in result["command"]
    flops = result["flops_per_sample"]["tiny"]
    assert flops["model"] == pytest.approx(model_flops_per_sample(TINY, AudioConfig()))
    assert flops["fast_fold"] < flops["fast"] < flops["model"]
    variants = bench_variants.default_variants(torch.device("cpu"), ["fp32"])
    rows = result["synthesis"]
    assert [(row["batch_size"], row["variant"]) for row in rows] == [(b, v) for b in (1, 2) for v in variants]
    frames = round(0.05 * 22050 / 256)
    for row in rows:
        eager_times = next(
            r["times_s"] for r in rows if r["variant"] == "eager" and r["batch_size"] == row["batch_size"]
        )
        assert len(row["times_s"]) == 2 and row["time_s"] > 0 and row["first_call_s"] > 0
        samples = row["batch_size"] * frames * 256
        assert row["samples_per_s"] == pytest.approx(samples / row["time_s"])
        assert row["real_time_factor"] == pytest.approx(row["samples_per_s"] / 22050)
        assert row["model_gflops"] == pytest.approx(flops["model"] * row["samples_per_s"] / 1e9)
        assert row["executed_gflops"] <= row["model_gflops"] * (1 + 1e-9)
        assert row["peak_gflops"] == fp32_peak["measured"]  # measured in this run, not the constant
        assert row["utilisation"] == pytest.approx(row["executed_gflops"] / fp32_peak["measured"])
        assert row["ratio_min"] <= row["ratio_vs_eager"] <= row["ratio_max"]
        assert row["ratio_of_best"] == pytest.approx(min(eager_times) / min(row["times_s"]))
        assert row["max_abs_diff_sigma0"] < 1e-4 and row["max_abs_diff"] < 1e-4
        assert row["log_mel_l1"] < 1e-3
        if row["variant"] == "eager":
            assert row["ratio_vs_eager"] == 1.0 and row["max_abs_diff"] == 0.0
    assert len(result["training"]) == 2
    for row in result["training"]:
        assert row["precision"] == "fp32" and row["segment_length"] == 1024
        assert row["samples_per_s"] == pytest.approx(row["batch_size"] * 1024 / row["step_s"])
        assert row["peak_memory_mb"] > 10
        assert row["utilisation"] == pytest.approx(row["approx_gflops"] / fp32_peak["measured"])
    printed = capsys.readouterr().out
    assert "fast-fp32-fold" in printed and "training precision" in printed
    text = table.read_text()
    assert text.startswith("Command: `python -m waveglow.bench --device cpu")
    assert f"Machine `{result['environment']['cpu']['kind']}`" in text
    assert f"| fp32 | {fp32_peak['measured']:,.1f} | 150.0 | measured |" in text


def test_bench_rejects_unknown_names(tiny_registry):
    with pytest.raises(ValueError, match="unknown model"):
        bench_variants.build_model("huge")
    with pytest.raises(ValueError, match="unknown variant"):
        bench_variants.make_variant("slow-fp32", bench_variants.build_model("tiny"), torch.device("cpu"))
    with pytest.raises(ValueError, match="precision"):
        bench.run_benchmark(models=["tiny"], precisions=["fp8"])


def test_results_are_reported_after_every_case(tiny_registry):
    """A run cut off by a time limit keeps what it measured: the result is handed over after each case."""
    seen = []
    final = bench.run_benchmark(
        models=["tiny"], batch_sizes=[1, 2], lengths=[0.03], variants=["eager", "fast-fp32"], rounds=1,
        train=True, train_segment=512, train_steps=1,
        on_progress=lambda result: seen.append((len(result["synthesis"]), len(result["training"]))),
    )  # fmt: skip
    assert seen == [(2, 0), (4, 0), (4, 1), (4, 2)]
    assert (len(final["synthesis"]), len(final["training"])) == seen[-1]


def test_train_only_writes_the_training_table_with_the_ratio_to_fp32(tiny_registry, tmp_path):
    table = tmp_path / "train.md"
    bench_main(
        [
            "--device", "cpu", "--model", "tiny", "--batch-sizes", "2", "--train-only",
            "--train-segment", "512", "--train-steps", "1", "--markdown", str(table),
        ]
    )  # fmt: skip
    text = table.read_text()
    assert "| variant |" not in text  # no synthesis measured
    row = next(line for line in text.splitlines() if line.startswith("| tiny | fp32 | 2 | 512 |"))
    assert row.split("|")[7].strip() == "1.00x"  # samples/s against its own fp32 row
    rows = [{"model": "m", "batch_size": 1, "segment_length": 8, "precision": p, "samples_per_s": s}
            for p, s in (("fp32", 100.0), ("bf16", 250.0))]  # fmt: skip
    assert bench_report._training_ratio(rows[1], rows) == "2.50x"
    assert bench_report._training_ratio(rows[1], rows[1:]) == "n/a"


def test_tf32_switch_restores_the_flags_and_names_its_precision():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with device_module.tf32(True):
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        with device_module.tf32(False):
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before
    assert bench_variants.precision_of("eager-tf32") == "tf32"
    assert bench_variants.precision_of("eager") == "fp32"
    assert "eager-tf32" in bench_variants.default_variants(torch.device("cuda"), ["bf16"])
    assert "eager-tf32" not in bench_variants.default_variants(torch.device("cpu"), ["fp32"])


def test_fp16_warm_up_runs_until_the_scale_stops_shrinking():
    """A step overflows while the scale is above 2**10: the warm-up shrinks it there, then stops."""
    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**14)
    calls = []

    def step() -> None:
        calls.append(scaler.get_scale())
        optimizer.zero_grad()
        scaler.scale(weight.sum() * (torch.inf if scaler.get_scale() > 2**10 else 1.0)).backward()
        scaler.step(optimizer)
        scaler.update()

    bench._warm_up(step, scaler)
    assert calls == [2.0**14, 2.0**13, 2.0**12, 2.0**11, 2.0**10]  # the last one applied, scale kept
    assert scaler.get_scale() == 2.0**10


def test_synthesis_is_measured_with_tf32_off(tiny_registry, monkeypatch):
    seen = []
    make_variant = bench.make_variant

    def recording(name, model, device):
        seen.append(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)
        return make_variant(name, model, device)

    monkeypatch.setattr(bench, "make_variant", recording)
    with device_module.tf32(True):
        bench.bench_synthesis(
            bench_variants.build_model("tiny"), "tiny", ["eager"], torch.device("cpu"), 1, 0.05, 1
        )
        assert torch.backends.cudnn.allow_tf32  # restored afterwards
    assert seen == [False]


def test_light_model_is_benchmarked_with_its_own_reverse_and_its_size(monkeypatch, tmp_path):
    """The light flow: only eager variants apply, its FLOPs are the light count, the models table lists its
    parameters and GMAC per second of audio; the published light size is 5.7M parameters, ~0.82 GMAC/s."""
    light = bench_variants.MODELS["light"]
    assert sum(p.numel() for p in bench_variants.build_model("light").parameters()) == 5_711_456
    gmac = light_flops_per_sample(light, AudioConfig()) / 2 * 22050 / 1e9
    assert 0.80 < gmac < 0.84
    tiny_light = ModelConfig(
        architecture="light", n_group=128, n_flows=2, n_early_every=4, n_layers=1, n_channels=8
    )
    monkeypatch.setitem(bench_variants.MODELS, "tiny-light", tiny_light)
    result = bench.run_benchmark(
        "cpu", ["tiny-light"], ["fp32", "bf16"], [1], [0.05],
        ["eager", "fast-fp32", "eager-autocast-bf16"], rounds=1, train=True, train_segment=1024, train_steps=1,
    )  # fmt: skip
    # CPU training is measured in each precision asked for (bf16 autocast included), fp16 only on CUDA
    assert [row["precision"] for row in result["training"]] == ["fp32", "bf16"]
    assert [row["variant"] for row in result["synthesis"]] == ["eager", "eager-autocast-bf16"]
    info = result["flops_per_sample"]["tiny-light"]
    assert info["architecture"] == "light" and "fast" not in info
    assert info["model"] == light_flops_per_sample(tiny_light, AudioConfig())
    assert result["synthesis"][0]["max_abs_diff"] == 0.0
    table = bench_report.format_table(result)
    assert "| tiny-light | light |" in table and "GMAC per second of audio" in table
