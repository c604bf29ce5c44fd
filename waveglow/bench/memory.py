"""Peak memory of synthesis against audio length, with and without chunking (the ``Vocoder``'s ``max_frames``).

``python -m waveglow.bench --memory --model light --lengths 10,60,300,600 --max-frames 0,4000``

Every case (model, precision, length, max_frames) runs in a fresh process, spawned for it, so that no case
counts memory an earlier one left behind: the allocator keeps freed memory for reuse, and after a long case
the resident set of the same process starts higher. In that process: the model (random weights, as in the
speed benchmark) and a random mel in the log-mel convention (``randn - 5``) are built, one second of audio is
synthesised to warm up (oneDNN's kernels, thread pools), freed memory is handed back to the system
(glibc's ``malloc_trim``), the peak is reset, and the measured call runs:
``vocoder([mel], sigma=0.6, seeds=[0], max_frames=max_frames)`` (a list in, a list out: no padded copy).

Recorded: the peak since the reset (CPU: the process's peak resident set, VmHWM, reset through
/proc/self/clear_refs; CUDA: max allocated), the memory just before the call (model, mel, torch itself),
their difference (what synthesis adds), the size of the output audio, and the time of the call.
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

from waveglow.bench.machine import (
    current_memory_mb,
    environment,
    free_memory,
    measure_peaks,
    peak_memory_mb,
    reset_peak_memory,
    sync,
)
from waveglow.bench.report import MemoryRow
from waveglow.bench.variants import MODELS, random_model
from waveglow.config import AudioConfig, Config, ModelConfig
from waveglow.synth.vocoder import Vocoder

log = logging.getLogger(__name__)

WARM_UP_SECONDS = 1.0
SIGMA = 0.6


def measure_memory_case(
    model_name: str,
    model_cfg: ModelConfig,
    seconds: float,
    max_frames: int | None,
    device: str = "cpu",
    precision: str = "fp32",
    threads: int = 0,
) -> MemoryRow:
    """Peak memory and time of synthesising ``seconds`` of audio in this process (``measure_in_fresh_process``
    runs it in a new one). max_frames None: one pass, no chunking."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    audio_cfg = AudioConfig()
    model = random_model(model_cfg)
    vocoder = Vocoder(model, _config(model_cfg), device=dev, precision=precision)
    del model
    frames = frames_of(seconds, audio_cfg)
    gen = torch.Generator().manual_seed(1)
    warm_frames = frames_of(WARM_UP_SECONDS, audio_cfg)
    warm_up = (torch.randn(audio_cfg.n_mel_channels, warm_frames, generator=gen) - 5.0).to(dev)
    vocoder([warm_up], sigma=SIGMA, seeds=[0])
    mel = (torch.randn(audio_cfg.n_mel_channels, frames, generator=gen) - 5.0).to(dev)
    del warm_up
    free_memory(dev)  # what the warm-up freed must not count as in use before the call
    sync(dev)
    reset = reset_peak_memory(dev)
    before = current_memory_mb(dev)
    start = time.perf_counter()
    audio = vocoder([mel], sigma=SIGMA, seeds=[0], max_frames=max_frames)[0]
    sync(dev)
    elapsed = time.perf_counter() - start
    peak, kind = peak_memory_mb(dev)
    chunked = max_frames is not None and frames > max_frames
    n_samples = audio.numel()
    return MemoryRow(
        model=model_name,
        precision=precision,
        seconds_of_audio=n_samples / audio_cfg.sampling_rate,
        frames=frames,
        max_frames=max_frames,
        chunks=len(vocoder.chunk_bounds(frames, max_frames)) if chunked else 1,  # type: ignore[arg-type]
        peak_mb=peak,
        before_mb=before,
        synthesis_mb=peak - before,
        output_mb=n_samples * audio.element_size() / 2**20,
        time_s=elapsed,
        real_time_factor=n_samples / audio_cfg.sampling_rate / elapsed,
        memory_kind=kind if reset else f"{kind} since the process started",
        threads=torch.get_num_threads(),
    )


def _config(model_cfg: ModelConfig) -> Config:
    """The config of a benchmark model: its model section and the default audio settings."""
    return Config(model=copy.deepcopy(model_cfg), audio=AudioConfig())


def frames_of(seconds: float, audio_cfg: AudioConfig) -> int:
    """Mel frames of ``seconds`` of audio (at least one)."""
    return max(1, round(seconds * audio_cfg.sampling_rate / audio_cfg.hop_length))


# glibc raises its mmap threshold each time a large mmapped block is freed, after which large blocks come from
# the heap and stay in the resident set when freed: peak RSS then grows with the number of chunks synthesised,
# not with the memory in use. A fixed threshold (which also turns the adjustment off) keeps every large
# block mmapped, returned to the system when freed.
MMAP_THRESHOLD = str(256 * 1024)


def measure_in_fresh_process(**case: Any) -> MemoryRow:
    """``measure_memory_case(**case)`` in a new (spawned) process, which exits afterwards; large allocations
    there are always mmapped (``MMAP_THRESHOLD``), so that its peak RSS is the peak memory in use."""
    before = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    os.environ["MALLOC_MMAP_THRESHOLD_"] = MMAP_THRESHOLD
    try:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(measure_memory_case, kwds=case)
    finally:
        if before is None:
            os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = before


def run_memory_benchmark(
    device: str = "cpu",
    models: list[str] | None = None,
    precisions: list[str] | None = None,
    lengths: list[float] | None = None,
    max_frames: list[int | None] | None = None,
    threads: int = 0,
    gemm_size: int | None = None,
    command: str = "",
    fresh_process: bool = True,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Peak memory of synthesis for every model, precision, length (seconds) and max_frames (None or 0: no
    chunking); returns the JSON-ready result with the environment and this run's matrix-product peaks.

    A length no longer than a max_frames setting runs in one pass with it too: that case is not measured
    again when the run measures no chunking (the table says "one pass").

    fresh_process False measures in this process, one case after another (each then counts what the earlier
    ones left in the allocator: for comparison only). ``on_progress`` gets the result after every case.
    """
    report = on_progress or (lambda result: None)
    dev = torch.device(device)
    models = models or ["default"]
    precisions = precisions or ["fp32"]
    lengths = lengths or [10.0, 60.0]
    settings = [value or None for value in (max_frames or [None])]
    for name in models:
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    measure = measure_in_fresh_process if fresh_process else measure_memory_case
    threads = threads or torch.get_num_threads()  # a spawned process runs on this process's thread count
    result: dict[str, Any] = {
        "environment": environment(dev),
        "command": command,
        "peaks": measure_peaks(dev, precisions, gemm_size),
        "memory_method": "a fresh process per case" if fresh_process else "one process, cases in turn",
        "max_frames": settings,
        "memory": [],
    }
    for model_name in models:
        for precision in precisions:
            # the Vocoder's engine="auto" times its engines once per machine and model and caches the choice:
            # done here, so that no measured case pays for (or allocates for) that probe
            Vocoder(
                random_model(MODELS[model_name]), _config(MODELS[model_name]), device=dev, precision=precision
            )
            free_memory(dev)
            for seconds in lengths:
                for setting in settings:
                    if (
                        setting is not None
                        and None in settings
                        and frames_of(seconds, AudioConfig()) <= setting
                    ):
                        continue  # one pass, measured with max_frames None
                    log.info("memory: %s %s, %.0f s, max_frames %s", model_name, precision, seconds, setting)
                    row = measure(
                        model_name=model_name,
                        model_cfg=MODELS[model_name],
                        seconds=seconds,
                        max_frames=setting,
                        device=device,
                        precision=precision,
                        threads=threads,
                    )
                    result["memory"].append(asdict(row))
                    report(result)
    return result
