"""The long-audio memory benchmark (``python -m waveglow.bench --memory``) on a tiny WaveGlow: every case in a
fresh process, peak memory that grows with length in one pass and stays bounded in chunks."""

from __future__ import annotations

import json
import math

import pytest

from waveglow import ModelConfig
from waveglow.bench import machine as bench_machine
from waveglow.bench import memory as bench_memory
from waveglow.bench import variants as bench_variants
from waveglow.bench.__main__ import main as bench_main
from waveglow.bench.report import MemoryRow, format_memory

# A WaveGlow small enough to synthesise 16 s in about a second on one thread; in one pass its synthesis holds
# about 9 MiB per second of audio (the upsampled mel, 80 values per sample), far above RSS noise (measured:
# 37 MiB for 4 s, 142 MiB for 16 s; in chunks 28 and 32 MiB). A tiny light flow holds too little per sample
# for a clear margin (one pass about 8x the output audio, chunks about 3.6x the output plus one chunk).
TINY = ModelConfig(n_flows=2, n_early_every=4, n_layers=2, n_channels=16)
SHORT_S, LONG_S, MAX_FRAMES = 4.0, 16.0, 256  # a chunk is 256 frames (3 s), overlapping by 128


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(bench_variants.MODELS, "tiny", TINY)
    monkeypatch.setitem(bench_machine.GEMM_SIZE, "cpu", 128)


def test_memory_grows_with_length_in_one_pass_and_stays_bounded_in_chunks(tiny, tmp_path):
    out, table = tmp_path / "memory.json", tmp_path / "memory.md"
    bench_main(
        [
            "--device", "cpu", "--memory", "--model", "tiny", "--lengths", f"{SHORT_S},{LONG_S}",
            "--max-frames", f"0,{MAX_FRAMES}", "--threads", "1", "--json", str(out), "--markdown", str(table),
        ]
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert set(result) == {"environment", "command", "peaks", "memory_method", "max_frames", "memory"}
    assert result["max_frames"] == [None, MAX_FRAMES]
    assert result["memory_method"] == "a fresh process per case"
    assert result["peaks"]["by_precision"]["fp32"]["source"] == "measured"
    rows = {(row["seconds_of_audio"] > SHORT_S + 1, row["max_frames"]): row for row in result["memory"]}
    assert [(row["frames"], row["max_frames"]) for row in result["memory"]] == [
        (345, None), (345, MAX_FRAMES), (1378, None), (1378, MAX_FRAMES),
    ]  # fmt: skip
    for row in result["memory"]:
        assert row["memory_kind"] == "process peak RSS" and row["threads"] == 1
        assert row["synthesis_mb"] == pytest.approx(row["peak_mb"] - row["before_mb"])
        assert row["output_mb"] == pytest.approx(row["frames"] * 256 * 4 / 2**20)
        assert row["real_time_factor"] == pytest.approx(row["frames"] * 256 / 22050 / row["time_s"])
        step = MAX_FRAMES - 128
        expected_chunks = (
            1 if row["max_frames"] is None else math.ceil((row["frames"] - MAX_FRAMES) / step) + 1
        )
        assert row["chunks"] == expected_chunks
    one_pass_short, one_pass_long = rows[(False, None)]["synthesis_mb"], rows[(True, None)]["synthesis_mb"]
    chunked_short, chunked_long = (
        rows[(False, MAX_FRAMES)]["synthesis_mb"],
        rows[(True, MAX_FRAMES)]["synthesis_mb"],
    )
    output_growth = rows[(True, None)]["output_mb"] - rows[(False, None)]["output_mb"]  # 1.0 MiB
    # one pass: 4x the audio, at least 3x the memory
    assert one_pass_long > 60 and one_pass_long > 3 * one_pass_short
    # chunks: what one chunk needs, plus the whole-length buffers (z, the audio, its clamped copy), no more
    assert chunked_long < chunked_short + 5 * output_growth + 8
    assert chunked_long < 0.4 * one_pass_long
    text = table.read_text()
    assert "| model | precision | audio s | no chunking | max_frames 256 | output audio MiB |" in text
    assert f"| tiny | fp32 | 4 | {rows[(False, None)]['peak_mb']:,.0f} (+{one_pass_short:,.0f}) |" in text


def test_memory_table_pivots_lengths_against_chunk_settings():
    def row(frames: int, max_frames: int | None, peak: float, before: float) -> dict:
        return {
            "model": "light", "precision": "fp32", "seconds_of_audio": frames * 256 / 22050, "frames": frames,
            "max_frames": max_frames, "chunks": 1, "peak_mb": peak, "before_mb": before,
            "synthesis_mb": peak - before, "output_mb": frames * 256 * 4 / 2**20, "time_s": 1.0,
            "real_time_factor": 2.0, "memory_kind": "process peak RSS", "threads": 2,
        }  # fmt: skip

    rows = [row(861, None, 700, 600), row(51680, None, 2500, 600), row(51680, 4000, 900, 600)]
    lines = format_memory(rows, "a fresh process per case", [None, 4000, 100_000])
    assert lines[0].startswith("Peak memory, MiB (process peak RSS;") and lines[0].endswith("per case:")
    head = "| model | precision | audio s | no chunking | max_frames 4000 | max_frames 100000 | output audio MiB |"
    assert head in lines
    assert "| light | fp32 | 10 | 700 (+100) | one pass | one pass | 0.8 |" in lines  # fits in one chunk
    assert "| light | fp32 | 600 | 2,500 (+1,900) | 900 (+300) | one pass | 50.5 |" in lines
    assert "| light | fp32 | 600.0 | 51680 | none | 1 | 2,500 | 600 | 1,900 | 50.5 | 1.00 | 2.00 |" in lines


def test_memory_mode_rejects_unknown_models():
    with pytest.raises(ValueError, match="unknown model"):
        bench_main(["--memory", "--model", "huge", "--gemm-size", "0"])


def test_a_length_that_fits_in_one_chunk_is_measured_once(monkeypatch):
    """10 s (861 frames) with max_frames 4000 is one pass: only the case without chunking runs."""
    asked = []

    def fake(**case):
        asked.append((case["model_name"], case["seconds"], case["max_frames"], case["threads"]))
        frames = round(case["seconds"] * 22050 / 256)
        return MemoryRow(
            model=case["model_name"], precision="fp32", seconds_of_audio=case["seconds"], frames=frames,
            max_frames=case["max_frames"], chunks=1, peak_mb=1.0, before_mb=0.5, synthesis_mb=0.5, output_mb=0.1,
            time_s=1.0, real_time_factor=1.0, memory_kind="process peak RSS", threads=case["threads"],
        )  # fmt: skip

    monkeypatch.setattr(bench_memory, "measure_in_fresh_process", fake)
    result = bench_memory.run_memory_benchmark(
        models=["light"], lengths=[10, 60], max_frames=[0, 4000], threads=2, gemm_size=0
    )
    assert asked == [("light", 10, None, 2), ("light", 60, None, 2), ("light", 60, 4000, 2)]
    assert (
        result["max_frames"] == [None, 4000] and result["peaks"]["by_precision"]["fp32"]["source"] == "stated"
    )
    only_chunked = bench_memory.run_memory_benchmark(
        models=["light"], lengths=[10], max_frames=[4000], gemm_size=0
    )
    assert asked[-1][1:3] == (10, 4000) and len(only_chunked["memory"]) == 1  # nothing to reuse: measured
