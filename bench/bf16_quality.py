#!/usr/bin/env python3
"""fp32 against bf16 synthesis of the shipped light voice on its 38 validation prompts: each one's metrics
against the recordings, and the distance between the two syntheses (same z). Writes JSON to stdout.

Run from the repository root after ``python -m waveglow.data voice data/allison``.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from waveglow import Vocoder
from waveglow.audio import load_audio
from waveglow.metrics import MetricSuite, log_mel_distance

ROOT = "data/allison/"
METRICS = ("pesq", "stoi", "voiced_share", "dnsmos_p808", "log_mel_distance", "mrstft")


def main() -> None:
    torch.set_num_threads(1)
    with open(ROOT + "validation.txt", encoding="utf-8") as handle:
        files = [ROOT + line.split("|")[0].strip() for line in handle if line.strip()]
    vocoders = {
        p: Vocoder.from_pretrained("allison-light", device="cpu", precision=p) for p in ("fp32", "bf16")
    }
    suite = MetricSuite(22050, vocoders["fp32"].config.audio, names=METRICS)
    values: dict[str, dict[str, list[float]]] = {p: {} for p in vocoders}
    max_diff, mel_distance = [], []
    for index, path in enumerate(files):
        reference = torch.as_tensor(load_audio(path, 22050)[0])
        analysis = suite.analyse(reference)
        outputs = {}
        for precision, vocoder in vocoders.items():
            outputs[precision] = vocoder.copy_synthesis(reference, sigma=0.6, seeds=[index])[0]
            for name, value in suite.compare(outputs[precision], analysis).values.items():
                values[precision].setdefault(name, []).append(value)
        max_diff.append((outputs["fp32"] - outputs["bf16"]).abs().max().item())
        mels = vocoders["fp32"].mel(torch.stack([outputs["fp32"], outputs["bf16"]]))
        mel_distance.append(log_mel_distance(mels[0], mels[1]))
    result: dict[str, dict[str, float]] = {
        p: {name: float(np.nanmean(v)) for name, v in d.items()} for p, d in values.items()
    }
    result["fp32_vs_bf16"] = {
        "max_abs_diff_mean": float(np.mean(max_diff)),
        "log_mel_distance_mean": float(np.mean(mel_distance)),
        "files": len(files),
    }
    sys.stdout.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
