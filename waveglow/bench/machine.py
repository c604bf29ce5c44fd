"""Where the benchmark runs: device peaks, synchronised timing, peak memory, and the environment record."""

from __future__ import annotations

import datetime
import gc
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# Peak dense matrix-product rates in GFLOP/s, by device and dtype. The CPU figure is the one stated for
# the 2-core AVX2 machine this project runs on (issue 9); the GPU ones are the vendors' dense figures.
PEAK_GFLOPS: dict[str, dict[str, float]] = {
    "cpu": {"fp32": 150.0},
    "H100": {"fp32": 67_000.0, "tf32": 494_700.0, "bf16": 989_400.0, "fp16": 989_400.0},
    "H200": {"fp32": 67_000.0, "tf32": 494_700.0, "bf16": 989_400.0, "fp16": 989_400.0},
    "A100": {"fp32": 19_500.0, "tf32": 156_000.0, "bf16": 312_000.0, "fp16": 312_000.0},
}


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """(seconds, result) of ``fn()``, the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def peak_gflops(device: torch.device, precision: str) -> float | None:
    """The stated peak for this device and precision, or None when unknown."""
    if device.type == "cpu":
        return PEAK_GFLOPS["cpu"].get(precision)
    name = torch.cuda.get_device_name(device)
    for key, table in PEAK_GFLOPS.items():
        if key != "cpu" and key in name:
            return table.get(precision)
    return None


def reset_peak_memory(device: torch.device) -> None:
    """Start counting peak memory afresh (CUDA allocator, or the process's peak RSS on Linux)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux: "5" resets the peak resident set size (VmHWM) of this process
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """(peak memory in MiB since the last reset, what was measured)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda max allocated"
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024, "process peak RSS"
    except OSError:
        pass
    return float("nan"), "unavailable"


def free_memory(device: torch.device) -> None:
    """Free the last case's variants now (FastWaveGlow holds bound methods of itself, so only the cyclic
    collector frees its weights and CUDA graph pools)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def environment(device: torch.device) -> dict[str, Any]:
    """Where and with what the figures were measured."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info
