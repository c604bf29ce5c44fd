"""Synthesis speed of the exported graph (onnxruntime, TorchScript) against the ``Vocoder``, on the CPU.

For each model: export the synthesis graph (``waveglow.export``), then synthesise the same mel with the same z
(batch 1) through the Vocoder, onnxruntime (CPU execution provider) and the TorchScript file, each with
``--threads`` intra-op threads; ``--warmups`` untimed calls, then the best of ``--rounds`` timed calls. The mel is the
demo clips' (real speech, tiled to the length), so the max |ONNX - Vocoder| is measured on speech.

    OMP_NUM_THREADS=2 .venv/bin/python bench/export_speed.py --output bench/results/cpu-DATE-export

Models: ``allison-light`` (the shipped light flow) and ``default`` (the published WaveGlow size, random weights
with a small random ``end``, so its couplings are not identities; for timing only).
"""

from __future__ import annotations

import argparse  # noqa: TID251 (a script: argument parsing and printing are its job)
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from waveglow import AudioConfig, Config, ModelConfig, Vocoder, build_flow, load_audio, load_model
from waveglow.bench.machine import cpu_record, environment
from waveglow.export import SynthesisGraph, export_onnx, export_torchscript, onnx_session, run_onnx
from waveglow.files import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("export_speed")
SEED, SIGMA = 0, 0.6


def cpu_model() -> str:
    """The CPU's model name (``waveglow.bench.machine.cpu_record``)."""
    return cpu_record()["model_name"]


def build(name: str) -> tuple[torch.nn.Module, Config]:
    if name == "default":
        torch.manual_seed(0)
        config = Config(model=ModelConfig(), audio=AudioConfig())
        model = build_flow(config.model, config.audio)
        with torch.no_grad():
            for wn in model.WN:
                wn.end.weight.normal_(0, 0.01)
                wn.end.bias.normal_(0, 0.01)
        return model.eval(), config
    return load_model(name)


def speech_mel(vocoder: Vocoder, frames: int) -> torch.Tensor:
    """(1, n_mel, frames): the mel of the demo clips one after another, tiled to ``frames``."""
    clips = sorted((REPO / "demo" / "clips").glob("*.flac"))[:8]
    audio = torch.cat([torch.as_tensor(load_audio(path, vocoder.sampling_rate)[0]) for path in clips])
    mel = vocoder.mel(audio)  # (1, n_mel, F)
    repeats = -(-frames // mel.shape[2])
    return mel.repeat(1, 1, repeats)[:, :, :frames].contiguous()


def best_time(fn, rounds: int, warmups: int) -> tuple[float, torch.Tensor]:
    """(best seconds of ``rounds`` calls after ``warmups`` untimed ones, the last output)."""
    for _ in range(warmups):  # first-call allocations, onnxruntime's arena, TorchScript's profiling runs
        out = fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def measure(
    name: str, seconds: list[float], threads: list[int], rounds: int, warmups: int, folder: Path
) -> dict:
    model, config = build(name)
    graph = SynthesisGraph.from_model(model)
    start = time.perf_counter()
    onnx_path = export_onnx(graph, folder / f"{name}.onnx")
    export_s = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.*` is deprecated")  # still works
        script_path = export_torchscript(graph, folder / f"{name}.torchscript.pt")
        scripted = torch.jit.load(str(script_path))
    vocoder = Vocoder(model, config, device="cpu")
    record = {
        "model": name,
        "architecture": config.model.architecture,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocoder_engine": vocoder.engine,
        "onnx_export_s": round(export_s, 1),
        "onnx_mb": round(onnx_path.stat().st_size / 1e6, 1),
        "rows": [],
    }
    for n_threads, length in [(t, s) for t in threads for s in seconds]:
        torch.set_num_threads(n_threads)
        session = onnx_session(onnx_path, threads=n_threads)
        frames = round(length * vocoder.sampling_rate / vocoder.hop_length)
        n_samples = frames * vocoder.hop_length
        mel = speech_mel(vocoder, frames)
        z = (vocoder.noise(SEED, frames) * SIGMA)[None]  # (1, g, L): the Vocoder's own z for this seed
        with torch.inference_mode():
            t_voc, want = best_time(lambda: vocoder(mel, sigma=SIGMA, seeds=[SEED]), rounds, warmups)  # noqa: B023
            t_ts, got_ts = best_time(lambda: scripted(mel, z), rounds, warmups)  # noqa: B023
        t_ort, got_ort = best_time(lambda: run_onnx(session, mel, z), rounds, warmups)  # noqa: B023
        audio_s = n_samples / vocoder.sampling_rate
        record["rows"].append(
            {
                "threads": n_threads,
                "load_average_1min": os.getloadavg()[0],
                "audio_s": round(audio_s, 3),
                "vocoder_s": t_voc,
                "onnxruntime_s": t_ort,
                "torchscript_s": t_ts,
                "vocoder_x_real_time": audio_s / t_voc,
                "onnxruntime_x_real_time": audio_s / t_ort,
                "torchscript_x_real_time": audio_s / t_ts,
                "max_abs_diff_onnx": (got_ort[:, :n_samples] - want).abs().max().item(),
                "max_abs_diff_torchscript": (got_ts[:, :n_samples] - want).abs().max().item(),
                "clipped_fraction": (want.abs() >= 1).float().mean().item(),
            }
        )
        log.info("%s %.1f s: %s", name, audio_s, record["rows"][-1])
    return record


def markdown(results: dict) -> str:
    env = results["environment"]
    lines = [
        f"Command: `{results['command']}`",
        "",
        f"{env['date']} · {results['cpu']} ({env['cpu_count']} cores, shared: contended, load average "
        f"{', '.join(f'{x:.1f}' for x in env['load_average'])} at the start) · torch {env['torch']} · "
        f"onnxruntime {results['onnxruntime']} · batch 1 · "
        f"best of {results['rounds']} after {results['warmups']} warm-up calls",
        "",
        "| model | threads | audio s | Vocoder (engine) x real time | onnxruntime x real time "
        "| TorchScript x real time | onnxruntime vs Vocoder | max abs diff ONNX | max abs diff TorchScript "
        "| load (1 min) | ONNX export s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for record in results["models"]:
        for row in record["rows"]:
            lines.append(
                f"| {record['model']} | {row['threads']} | {row['audio_s']:.2f} | {row['vocoder_x_real_time']:.2f} "
                f"({record['vocoder_engine']}) | {row['onnxruntime_x_real_time']:.2f} | "
                f"{row['torchscript_x_real_time']:.2f} | "
                f"{row['vocoder_s'] / row['onnxruntime_s']:.2f}x | {row['max_abs_diff_onnx']:.1e} | "
                f"{row['max_abs_diff_torchscript']:.1e} | {row['load_average_1min']:.1f} | {record['onnx_export_s']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="path without extension: writes .json and .md")
    parser.add_argument("--models", nargs="+", default=["allison-light", "default"])
    parser.add_argument("--seconds", nargs="+", type=float, default=[1.0, 10.0])
    parser.add_argument(
        "--threads", nargs="+", type=int, default=[2, 1], help="intra-op threads of torch and onnxruntime"
    )
    parser.add_argument("--rounds", type=int, default=2, help="timed calls after the warm-ups (best kept)")
    parser.add_argument(
        "--warmups", type=int, default=2, help="untimed calls first (TorchScript optimises on the 2nd)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # the exporters' INFO lines are many
    log.setLevel(logging.INFO)
    import onnxruntime

    results = {
        "command": "python bench/export_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cpu": cpu_model(),
        "environment": environment(torch.device("cpu")),
        "onnxruntime": onnxruntime.__version__,
        "threads": args.threads,
        "rounds": args.rounds,
        "warmups": args.warmups,
        "models": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            record = measure(name, args.seconds, args.threads, args.rounds, args.warmups, Path(folder))
            results["models"].append(record)
    atomic_write_text(f"{args.output}.json", json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    atomic_write_text(f"{args.output}.md", table)
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
