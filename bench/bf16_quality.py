#!/usr/bin/env python3
"""fp32 against bf16 synthesis of the shipped light voice on its 38 validation prompts: each one's metrics
against the recordings, the distance between the two syntheses (same z), and the time each took. Writes
OUTPUT.json and OUTPUT.md (the machine, the model's training step, the table), or JSON to stdout.

Run from the repository root after ``python -m waveglow.data voice data/allison``:

    OMP_NUM_THREADS=1 .venv/bin/python bench/bf16_quality.py --output bench/results/cpu-DATE-KIND-quality
"""

from __future__ import annotations

import argparse  # noqa: TID251 (a script: argument parsing and printing are its job)
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from waveglow import Vocoder
from waveglow.audio import load_audio
from waveglow.bench.machine import environment
from waveglow.checkpoints.pretrained import pretrained_path
from waveglow.files import atomic_write_text
from waveglow.metrics import MetricSuite, log_mel_distance

ROOT = "data/allison/"
METRICS = ("pesq", "stoi", "voiced_share", "dnsmos_p808", "log_mel_distance", "mrstft")
PRECISIONS = ("fp32", "bf16")


def measure(threads: int) -> dict:
    """Both precisions on every validation prompt: mean metrics, the distance between them, seconds."""
    torch.set_num_threads(threads)
    with open(ROOT + "validation.txt", encoding="utf-8") as handle:
        files = [ROOT + line.split("|")[0].strip() for line in handle if line.strip()]
    vocoders = {p: Vocoder.from_pretrained("allison-light", device="cpu", precision=p) for p in PRECISIONS}
    suite = MetricSuite(22050, vocoders["fp32"].config.audio, names=METRICS)
    values: dict[str, dict[str, list[float]]] = {p: {} for p in vocoders}
    seconds = dict.fromkeys(vocoders, 0.0)
    max_diff, mel_distance, audio_seconds = [], [], 0.0
    for index, path in enumerate(files):
        reference = torch.as_tensor(load_audio(path, 22050)[0])
        audio_seconds += reference.numel() / 22050
        analysis = suite.analyse(reference)
        outputs = {}
        for precision, vocoder in vocoders.items():
            start = time.perf_counter()
            outputs[precision] = vocoder.copy_synthesis(reference, sigma=0.6, seeds=[index])[0]
            seconds[precision] += time.perf_counter() - start
            for name, value in suite.compare(outputs[precision], analysis).values.items():
                values[precision].setdefault(name, []).append(value)
        max_diff.append((outputs["fp32"] - outputs["bf16"]).abs().max().item())
        mels = vocoders["fp32"].mel(torch.stack([outputs["fp32"], outputs["bf16"]]))
        mel_distance.append(log_mel_distance(mels[0], mels[1]))
    result: dict = {p: {name: float(np.nanmean(v)) for name, v in d.items()} for p, d in values.items()}
    result["fp32_vs_bf16"] = {
        "max_abs_diff_mean": float(np.mean(max_diff)),
        "log_mel_distance_mean": float(np.mean(mel_distance)),
        "files": len(files),
        "audio_seconds": audio_seconds,
    }
    result["seconds"] = seconds  # copy synthesis (mel + synthesis), every file, one precision
    return result


def markdown(result: dict, env: dict, command: str) -> str:
    cpu = env["cpu"]
    flags = " ".join(name for name, present in cpu["flags"].items() if present)
    lines = [
        "# bf16 against fp32 synthesis of the shipped voice on real speech (issue 19)",
        "",
        f"- date: {env['date']}; machine `{cpu['kind']}`: {cpu['model_name']}, flags: {flags}; "
        f"torch {env['torch']}, {env['threads']} thread(s); load average at the start "
        f"{', '.join(f'{x:.2f}' for x in env['load_average'])}",
        f"- model: the shipped `allison-light` (step {result['model_step']}); data: the "
        f"{result['fp32_vs_bf16']['files']} validation prompts of the voice (none of the reserved prompts); "
        "copy synthesis at sigma 0.6, seed = prompt index",
        f"- command: `{command}`",
        "",
        "| metric (mean over prompts) | fp32 | bf16 |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {result['fp32'][name]:.4f} | {result['bf16'][name]:.4f} |" for name in result["fp32"]
    ]
    audio = result["fp32_vs_bf16"]["audio_seconds"]
    lines.append(
        "| x real time (copy synthesis incl. the mel) | "
        + " | ".join(f"{audio / result['seconds'][p]:.1f}" for p in PRECISIONS)
        + " |"
    )
    pair = result["fp32_vs_bf16"]
    lines += [
        "",
        f"Between the two syntheses (same z): mean over files of the largest absolute sample difference "
        f"{pair['max_abs_diff_mean']:.4f}; log-mel distance between them {pair['log_mel_distance_mean']:.4f} "
        f"(the fp32 synthesis against the recording: {result['fp32']['log_mel_distance']:.3f}).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", help="write OUTPUT.json and OUTPUT.md (default: JSON to stdout)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = environment(torch.device("cpu"))  # the load average before measuring
    result = measure(args.threads)
    record = torch.load(pretrained_path("allison-light"), map_location="cpu", weights_only=True)["pretrained"]
    result["model_step"] = record["step"]
    result["environment"] = env
    if not args.output:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")
        return
    command = "python bench/bf16_quality.py " + " ".join(sys.argv[1:])
    atomic_write_text(Path(args.output + ".json"), json.dumps(result, indent=1) + "\n")
    atomic_write_text(Path(args.output + ".md"), markdown(result, env, command))
    sys.stdout.write(markdown(result, env, command))


if __name__ == "__main__":
    main()
