#!/usr/bin/env python3
"""fp32 vs bf16 synthesis of the shipped light model on the voice's validation prompts: metrics of each
against the recordings, and the distance between the two syntheses (same seeds)."""
import sys, json, time, torch, numpy as np
torch.set_num_threads(1)
from waveglow import Vocoder
from waveglow.audio import load_audio
from waveglow.metrics import MetricSuite, log_mel_distance
root = "/work/main/data/allison/"
files = [root + l.split("|")[0].strip() for l in open(root + "validation.txt") if l.strip()]
v = {p: Vocoder.from_pretrained("allison-light", device="cpu", precision=p) for p in ("fp32", "bf16")}
suite = MetricSuite(22050, v["fp32"].config.audio, names=("pesq", "stoi", "voiced_share", "dnsmos_p808", "log_mel_distance", "mrstft"))
vals = {p: {} for p in v}; diff = []; lmd = []
for i, f in enumerate(files):
    ref = torch.as_tensor(load_audio(f, 22050)[0])
    ana = suite.analyse(ref)
    outs = {}
    for p, voc in v.items():
        outs[p] = voc.copy_synthesis(ref, sigma=0.6, seeds=[i])[0]
        for k, x in suite.compare(outs[p], ana).values.items():
            vals[p].setdefault(k, []).append(x)
    diff.append((outs["fp32"] - outs["bf16"]).abs().max().item())
    m = v["fp32"].mel(torch.stack([outs["fp32"], outs["bf16"]]))
    lmd.append(log_mel_distance(m[0], m[1]))
res = {p: {k: float(np.nanmean(x)) for k, x in d.items()} for p, d in vals.items()}
res["fp32_vs_bf16"] = {"max_abs_diff_mean": float(np.mean(diff)), "log_mel_distance_mean": float(np.mean(lmd)), "files": len(files)}
print(json.dumps(res, indent=1))
