"""Where the benchmark runs: the machine record (CPU model and flags, library versions), the matrix-product
peak measured in the same run, synchronised timing, peak memory, and the environment record."""

from __future__ import annotations

import ctypes
import datetime
import gc
import os
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from waveglow.device import cpuinfo_fields

# Stated peak dense matrix-product rates in GFLOP/s, by device and dtype: the vendors' dense figures for GPUs,
# and for the CPU the one stated for the 2-core AVX2 machine of issue 9 (used only when the peak is not
# measured: ``--gemm-size 0``).
PEAK_GFLOPS: dict[str, dict[str, float]] = {
    "cpu": {"fp32": 150.0},
    "H100": {"fp32": 67_000.0, "tf32": 494_700.0, "bf16": 989_400.0, "fp16": 989_400.0},
    "H200": {"fp32": 67_000.0, "tf32": 494_700.0, "bf16": 989_400.0, "fp16": 989_400.0},
    "A100": {"fp32": 19_500.0, "tf32": 156_000.0, "bf16": 312_000.0, "fp16": 312_000.0},
}
# The CPU flags that decide which kernels oneDNN and MKL run: AVX2/FMA (fp32), AVX-512 (fp32 at twice the
# width), AVX512_BF16 (native bf16 dot products), VNNI (int8) and AMX (bf16/int8 tile matrix products).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
# Square matrix products that saturate the device: a 2048 product is ~0.1-0.3 s on a 2-core CPU; a GPU needs
# a larger one to hide the launch.
GEMM_SIZE = {"cpu": 2048, "cuda": 8192}
GEMM_REPEATS = 5
_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_CPU_FAMILIES = ("epyc", "threadripper", "ryzen", "xeon", "core", "graviton", "neoverse", "ampere")


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


def measure_gemm_gflops(
    device: torch.device, precision: str, size: int | None = None, repeats: int = GEMM_REPEATS
) -> float:
    """GFLOP/s of a (size, size) @ (size, size) product in ``precision`` on the current torch thread count:
    the best of ``repeats`` timed products after one untimed one (contention only adds time). ``tf32`` lets
    CUDA use TF32; every other precision runs in its own dtype (fp32 true float32)."""
    size = size or GEMM_SIZE.get(device.type, GEMM_SIZE["cpu"])
    gen = torch.Generator().manual_seed(0)
    left = torch.randn(size, size, generator=gen).to(device=device, dtype=_DTYPES[precision])
    right = torch.randn(size, size, generator=gen).to(device=device, dtype=_DTYPES[precision])
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        torch.mm(left, right)
        best = min(timed(lambda: torch.mm(left, right), device)[0] for _ in range(repeats))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return 2 * size**3 / best / 1e9


def gemm_precisions(device: torch.device, precisions: list[str]) -> list[str]:
    """The precisions whose peak a run measures: fp32 and bf16 always, on CUDA tf32 and fp16 too (cheap
    there), and any other one the run measures in (fp16 on a CPU is measured only when asked for)."""
    measured = ["fp32", "tf32", "bf16", "fp16"] if device.type == "cuda" else ["fp32", "bf16"]
    extra = [p for p in precisions if p not in measured and (device.type == "cuda" or p != "tf32")]
    return measured + extra


def measure_peaks(device: torch.device, precisions: list[str], size: int | None = None) -> dict[str, Any]:
    """The matrix-product peaks of this run, and which one the "of peak" figures divide by.

    size: the square product's side (None: ``GEMM_SIZE`` for the device; 0: measure nothing). On a CPU the
    measured peak is used: it is what this machine does now, with this torch, these threads and whatever else
    runs on it. On a GPU the vendor's stated figure is used where known (the measured one beside it),
    else the measured one. Returns {"size", "repeats", "threads", "by_precision": {precision: {"measured",
    "stated", "used", "source"}}}.
    """
    by_precision = {}
    for precision in gemm_precisions(device, precisions):
        measured = measure_gemm_gflops(device, precision, size) if size != 0 else None
        stated = peak_gflops(device, precision)
        prefer_stated = device.type != "cpu" or measured is None
        used, source = (stated, "stated") if prefer_stated and stated else (measured, "measured")
        by_precision[precision] = {
            "measured": measured,
            "stated": stated,
            "used": used,
            "source": source if used else None,
        }
    return {
        "size": 0 if size == 0 else (size or GEMM_SIZE.get(device.type, GEMM_SIZE["cpu"])),
        "repeats": GEMM_REPEATS,
        "threads": torch.get_num_threads(),
        "by_precision": by_precision,
    }


def used_peak(peaks: dict[str, Any] | None, device: torch.device, precision: str) -> float | None:
    """The peak that "of peak" divides by for ``precision``: ``measure_peaks``' choice, else the stated one."""
    if peaks and precision in peaks["by_precision"]:
        return peaks["by_precision"][precision]["used"]
    return peak_gflops(device, precision)


def reset_peak_memory(device: torch.device) -> bool:
    """Start counting peak memory afresh (CUDA allocator, or the process's peak RSS on Linux); False where
    the peak cannot be reset (then ``peak_memory_mb`` counts from the start of the process)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:  # Linux: "5" resets the peak resident set size (VmHWM) of this process
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """(peak memory in MiB since the last reset, what was measured)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda max allocated"
    peak = _proc_status_mb("VmHWM")
    return peak, "process peak RSS" if peak == peak else "unavailable"  # NaN: no /proc (not Linux)


def current_memory_mb(device: torch.device) -> float:
    """Memory in use now, in MiB: CUDA allocated, or the process's resident set (NaN where unknown)."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return _proc_status_mb("VmRSS")


def _proc_status_mb(field: str) -> float:
    """A kB field of /proc/self/status in MiB, NaN without it (not Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def free_memory(device: torch.device) -> None:
    """Free the last case's variants now (FastWaveGlow holds bound methods of itself, so only the cyclic
    collector frees its weights and CUDA graph pools), and hand freed memory back to the system: glibc keeps
    freed heap memory resident for reuse, which a peak resident set measured next would count as in use."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    _malloc_trim()


def _malloc_trim() -> None:
    """glibc's malloc_trim(0) (Linux), nothing elsewhere."""
    if platform.system() != "Linux":
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # another C library (musl)
        pass


def environment(device: torch.device) -> dict[str, Any]:
    """Where and with what the figures were measured: date, versions, threads, load, the CPU record
    (``cpu_record``) and the library versions (``library_versions``)."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cpu": cpu_record(),
        "libraries": library_versions(),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
    else:
        info["device_name"] = info["cpu"]["model_name"]
    return info


def cpu_record(cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU: model name, vendor, family/model, logical CPUs, whether each of ``CPU_FLAGS`` is present, the
    ISA torch dispatches to, and ``machine_kind``.

    cpuinfo: the text of /proc/cpuinfo (None: read it; where there is none, as on macOS or Windows, the
    name is what ``platform`` says and the flags are None: unknown, not absent).
    """
    first = cpuinfo_fields(cpuinfo)
    names = (first.get("flags") or first.get("Features") or "").split()  # x86 or ARM
    flags = {flag: flag in names for flag in CPU_FLAGS} if names else None
    model_name = first.get("model name") or platform.processor() or platform.machine()
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)()
    return {
        "model_name": model_name,
        "vendor": first.get("vendor_id"),
        "family": first.get("cpu family"),
        "model": first.get("model"),
        "logical_cpus": os.cpu_count(),
        "flags": flags,
        "torch_capability": capability,
        "kind": machine_kind(model_name, flags, platform.machine()),
    }


def machine_kind(model_name: str, flags: dict[str, bool] | None, machine: str = "") -> str:
    """A short name for a kind of machine, for results files: the CPU family from its model name and the
    best matrix-product instruction set, e.g. ``epyc-avx512bf16``, ``xeon-amx``, ``core-avx2``."""
    words = re.findall(r"[a-z]+", model_name.lower())
    family = next((name for name in _CPU_FAMILIES if name in words), None)
    family = family or (words[0] if words else machine.lower() or "cpu")
    if not flags:
        return f"{family}-{machine.lower()}" if machine and machine.lower() != family else family
    for flag, tier in (
        ("amx_bf16", "amx"),
        ("avx512_bf16", "avx512bf16"),
        ("avx512f", "avx512"),
        ("avx2", "avx2"),
    ):
        if flags.get(flag):
            return f"{family}-{tier}"
    return f"{family}-{machine.lower() or 'generic'}"


def library_versions() -> dict[str, Any]:
    """torch and the libraries under it: oneDNN, MKL and OpenMP as ``torch.__config__.show()`` reports them
    (None where this build lacks one), CUDA and cuDNN where present. The same text on torch 2.11 and 2.14."""
    config = torch.__config__.show()
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "torch": torch.__version__,
        "onednn": _config_version(config, r"(?:oneDNN|MKL-DNN)[^\n]*?\bv?(\d+\.\d+(?:\.\d+)?)"),
        "onednn_enabled": torch.backends.mkldnn.is_available(),
        "mkl": _config_version(config, r"Math Kernel Library Version (\d+(?:\.\d+)*)"),
        "openmp": _config_version(config, r"OpenMP (\d+)"),
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
    }


def _config_version(config: str, pattern: str) -> str | None:
    match = re.search(pattern, config)
    return match.group(1) if match else None
