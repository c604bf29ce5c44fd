"""Benchmarks: synthesis and training throughput, FLOP utilisation, and every fast path against the plain one.

``python -m waveglow.bench --device cpu --model default --lengths 1.0 --batch-sizes 1 --json out.json``
(the command line is ``waveglow/bench/__main__.py``)

Synthesis variants are timed side by side in one process, in rounds that run each variant once (the order
rotated every round), so a shared or throttled machine slows them alike; a variant's ratio is the median
over rounds of (baseline time / its time), with the min and max as its spread. The baseline ``eager`` is
the straightforward implementation: ``WaveGlow`` with weight norm removed, fp32, eager, under no_grad.
Weights are random (the zero-initialised ``end`` convs too, so no coupling is an identity); speed does
not depend on their values.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

from waveglow.audio import MelSpectrogram
from waveglow.bench.flops import fast_flops_per_sample
from waveglow.bench.machine import (
    environment,
    free_memory,
    measure_peaks,
    peak_memory_mb,
    reset_peak_memory,
    timed,
    used_peak,
)
from waveglow.bench.report import SynthesisRow, TrainingRow
from waveglow.bench.variants import (
    build_model,
    copy_model,
    default_variants,
    executed_flops,
    make_variant,
    nominal_flops,
    precision_of,
    variants_for,
)
from waveglow.device import autocast, tf32
from waveglow.model.flow import WaveGlow
from waveglow.model.loss import WaveGlowLoss
from waveglow.synth.fast import PRECISIONS
from waveglow.synth.vocoder import Vocoder

log = logging.getLogger(__name__)


@tf32(False)
def bench_synthesis(
    model: WaveGlow,
    model_name: str,
    variants: list[str],
    device: torch.device,
    batch_size: int,
    seconds: float,
    rounds: int,
    sigma: float = 0.6,
    peaks: dict[str, Any] | None = None,
) -> list[SynthesisRow]:
    """Time every variant side by side on one (batch, length) case; ``variants`` must start with eager.

    Runs with TF32 off: true float32 unless a variant's name asks for less. peaks: ``measure_peaks``' record,
    whose chosen peak the utilisation divides by (None: the stated peaks)."""
    if variants[0] != "eager":
        raise ValueError("the first variant must be the baseline 'eager'")
    audio_cfg = model.audio_cfg
    n_frames = max(1, round(seconds * audio_cfg.sampling_rate / audio_cfg.hop_length))
    gen = torch.Generator().manual_seed(1)
    mel = (torch.randn(batch_size, audio_cfg.n_mel_channels, n_frames, generator=gen) - 5.0).to(device)
    n_samples = batch_size * n_frames * audio_cfg.hop_length
    mel_spec = MelSpectrogram(audio_cfg).to(device)
    built = {}
    for name in variants:
        module, fn, prepare_s = make_variant(name, model, device)
        # warm-up and exactness: sigma 0 (z = 0, the conditioning alone) and the benchmark's sigma
        first_call_s, silent = timed(
            lambda fn=fn: fn(mel, 0.0, torch.Generator(device).manual_seed(0)), device
        )
        noisy = fn(mel, sigma, torch.Generator(device).manual_seed(0)).float()
        built[name] = (module, fn, prepare_s, silent.float(), noisy, first_call_s)
    ref_silent, ref_noisy = built["eager"][3], built["eager"][4]
    ref_mel = mel_spec(ref_noisy.clamp(-1, 1))
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for name in order:
            fn = built[name][1]
            elapsed, _ = timed(
                lambda fn=fn, r=r: fn(mel, sigma, torch.Generator(device).manual_seed(r)), device
            )
            times[name].append(elapsed)
    rows = []
    nominal = nominal_flops(model)
    for name in variants:
        runner, _, prepare_s, silent, noisy, first_call_s = built[name]
        ratios = [base / mine for base, mine in zip(times["eager"], times[name])]
        median_time = statistics.median(times[name])
        # vocoder-auto: the precision the Vocoder chose
        precision = runner.precision if isinstance(runner, Vocoder) else precision_of(name)
        executed = executed_flops(name, model) * n_samples / median_time / 1e9
        peak = used_peak(peaks, device, precision)
        rows.append(
            SynthesisRow(
                model=model_name,
                variant=name,
                precision=precision,
                batch_size=batch_size,
                seconds_of_audio=n_frames * audio_cfg.hop_length / audio_cfg.sampling_rate,
                time_s=median_time,
                samples_per_s=n_samples / median_time,
                real_time_factor=n_samples / median_time / audio_cfg.sampling_rate,
                model_gflops=nominal * n_samples / median_time / 1e9,
                executed_gflops=executed,
                peak_gflops=peak,
                utilisation=executed / peak if peak else None,
                ratio_vs_eager=statistics.median(ratios),
                ratio_min=min(ratios),
                ratio_max=max(ratios),
                ratio_of_best=min(times["eager"]) / min(times[name]),
                max_abs_diff_sigma0=(silent - ref_silent).abs().max().item(),
                max_abs_diff=(noisy - ref_noisy).abs().max().item(),
                log_mel_l1=(mel_spec(noisy.clamp(-1, 1)) - ref_mel).abs().mean().item(),
                prepare_s=prepare_s,
                first_call_s=first_call_s,
                times_s=times[name],
            )
        )
    return rows


def bench_training(
    model: WaveGlow,
    model_name: str,
    device: torch.device,
    precision: str,
    batch_size: int,
    segment_length: int,
    steps: int,
    peaks: dict[str, Any] | None = None,
) -> TrainingRow:
    """Median time of a full training step (forward, loss, backward, Adam) with weight norm, as trained."""
    train_model = copy_model(model).to(device).train()
    optimizer = torch.optim.Adam(train_model.parameters(), lr=1e-4)
    criterion = WaveGlowLoss(sigma=1.0)
    audio_cfg = model.audio_cfg
    gen = torch.Generator().manual_seed(2)
    audio = (torch.randn(batch_size, segment_length, generator=gen) * 0.1).to(device)
    n_frames = -(-segment_length // audio_cfg.hop_length)
    mel = (torch.randn(batch_size, audio_cfg.n_mel_channels, n_frames, generator=gen) - 5.0).to(device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = criterion(train_model(audio, mel))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    with tf32(precision == "tf32"):
        _warm_up(step, scaler)
        reset_peak_memory(device)
        times = [timed(step, device)[0] for _ in range(steps)]
    memory, kind = peak_memory_mb(device)
    step_s = statistics.median(times)
    samples = batch_size * segment_length / step_s
    gflops = 3 * nominal_flops(model) * samples / 1e9
    peak = used_peak(peaks, device, precision)
    return TrainingRow(
        model=model_name,
        precision=precision,
        batch_size=batch_size,
        segment_length=segment_length,
        step_s=step_s,
        samples_per_s=samples,
        approx_gflops=gflops,
        utilisation=gflops / peak if peak else None,
        peak_memory_mb=memory,
        peak_memory_kind=kind,
    )


def _warm_up(step: Callable[[], None], scaler: torch.amp.GradScaler, max_steps: int = 30) -> None:
    """One step, then (fp16) more until the GradScaler stops shrinking its scale: a timed step that overflows
    skips Adam and would look faster than a real one."""
    step()
    while scaler.is_enabled() and max_steps > 0:
        scale = scaler.get_scale()
        step()
        max_steps -= 1
        if scaler.get_scale() >= scale:
            break


def run_benchmark(
    device: str = "cpu",
    models: list[str] | None = None,
    precisions: list[str] | None = None,
    batch_sizes: list[int] | None = None,
    lengths: list[float] | None = None,
    variants: list[str] | None = None,
    rounds: int = 3,
    train: bool = False,
    synthesis: bool = True,
    train_segment: int = 16000,
    train_steps: int = 2,
    gemm_size: int | None = None,
    command: str = "",
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the synthesis (and optionally training) benchmarks; returns the JSON-ready result.

    ``on_progress`` is called with the result so far after every measured case, so that a run cut off by a
    time limit keeps what it measured (``main`` rewrites the JSON and the table each time). The "of peak"
    figures divide by the peaks ``measure_peaks`` takes first, in the same run (gemm_size: the side of its
    square product; None: the device's default; 0: no measurement, the stated peaks)."""
    report = on_progress or (lambda result: None)
    dev = torch.device(device)
    models = models or ["default"]
    precisions = precisions or ["fp32"]
    batch_sizes = batch_sizes or [1]
    lengths = lengths or [1.0]
    for precision in precisions:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    names = variants or default_variants(dev, precisions)
    if names[0] != "eager":
        names = ["eager"] + [name for name in names if name != "eager"]
    result: dict[str, Any] = {
        "environment": environment(dev),
        "command": command,
        "peaks": measure_peaks(dev, precisions, gemm_size),
        "baseline": "eager: WaveGlow with weight norm removed, fp32 (TF32 off), eager, no_grad",
        "flops_per_sample": {},
        "synthesis": [],
        "training": [],
    }
    for model_name in models:
        model = build_model(model_name)
        flops = nominal_flops(model)
        result["flops_per_sample"][model_name] = {
            "architecture": model.model_cfg.architecture,
            "model": flops,
            "gmac_per_second_of_audio": flops / 2 * model.audio_cfg.sampling_rate / 1e9,
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        if model.model_cfg.architecture == "waveglow":
            result["flops_per_sample"][model_name] |= {
                "fast": fast_flops_per_sample(model.model_cfg, model.audio_cfg),
                "fast_fold": fast_flops_per_sample(model.model_cfg, model.audio_cfg, fold_upsampler=True),
            }
        model_names = variants_for(model, names)
        for batch_size in batch_sizes if synthesis else []:
            for seconds in lengths:
                log.info("synthesis: %s model, batch %d, %.2f s", model_name, batch_size, seconds)
                rows = bench_synthesis(
                    model, model_name, model_names, dev, batch_size, seconds, rounds, peaks=result["peaks"]
                )
                result["synthesis"] += [asdict(row) for row in rows]
                free_memory(dev)
                report(result)
        if train:
            # on a CPU fp16 autocast is emulated (and bf16 too where the CPU lacks avx512_bf16/AMX): the user
            # names what to measure; fp16 training is measured on CUDA only
            train_precisions = [p for p in precisions if dev.type == "cuda" or p != "fp16"]
            for precision in train_precisions:
                for batch_size in batch_sizes:
                    log.info("training: %s model, %s, batch %d", model_name, precision, batch_size)
                    row = bench_training(
                        model, model_name, dev, precision, batch_size, train_segment, train_steps,
                        peaks=result["peaks"],
                    )  # fmt: skip
                    result["training"].append(asdict(row))
                    report(result)
    return result
