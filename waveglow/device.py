"""Where work runs: the one rule that turns a device option into a device (``check_device``; the Vocoder,
infer.py, evaluate and training all use it), and whether a device can run an engine in a precision."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from waveglow.config import SYNTH_PRECISIONS, TRAIN_PRECISIONS

# the dtype each precision name computes in (tf32 is float32 storage with TF32 products on CUDA)
DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
assert set(DTYPES) == set(TRAIN_PRECISIONS) >= set(SYNTH_PRECISIONS)


class DeviceError(ValueError):
    """A device option names a device this machine (or this torch build) does not have."""


def check_device(name: str | torch.device | None, option: str = "--device") -> torch.device:
    """The device that ``name`` means, or DeviceError naming ``option`` when it is malformed or absent here,
    before any model is built.

    "auto" or None: ``default_device()``; a bare "cuda": this process's GPU, ``cuda:LOCAL_RANK`` (torchrun
    sets LOCAL_RANK; 0 without it), so that every process of a multi-GPU job (training, infer.py, evaluate)
    takes its own GPU from the same option; anything else as named ("cuda:1", "cpu", "mps").
    """
    if name is None or str(name) == "auto":
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise DeviceError(f"{option} {name}: not a device name (e.g. cpu, cuda, cuda:1, mps)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"{option} {name}: no CUDA device is available on this machine "
                f"({'this torch build has no CUDA' if torch.version.cuda is None else 'none found'}); use cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"{option} {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                f"cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
        if device.index is None:
            return check_device(f"cuda:{_local_rank()}", option)
    elif device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise DeviceError(f"{option} {name}: MPS is not available on this machine; use cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        try:
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError) as exc:
            reason = str(exc).splitlines()[0].split(". ")[0][:200]
            raise DeviceError(f"{option} {name}: not usable here ({reason})") from exc
    return device


def default_device() -> torch.device:
    """cuda (this process's LOCAL_RANK under torchrun) when available, else cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda", _local_rank())
    return torch.device("cpu")


def _local_rank() -> int:
    """This process's GPU index under torchrun (its LOCAL_RANK), 0 outside it."""
    return int(os.environ.get("LOCAL_RANK", 0))


def cpuinfo_fields(cpuinfo: str | None = None) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ("model name", "flags" or ARM's "Features", ...; every
    core of one machine reports the same ones), from ``cpuinfo`` or the file; {} where there is none."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instruction sets that compute in bf16 natively


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bf16 natively (an x86 flag of NATIVE_BF16_FLAGS in /proc/cpuinfo); elsewhere
    torch emulates bf16, slower than fp32. Other architectures count as not native (not measured)."""
    flags = set((cpuinfo_fields(cpuinfo).get("flags") or "").split())
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def auto_precisions(device: torch.device, cpuinfo: str | None = None) -> tuple[str, ...]:
    """The synthesis precisions ``precision="auto"`` chooses among on ``device``, fp32 first.

    CPU: fp32 and bf16 where the CPU has bf16 natively (the faster one is then measured), else fp32 alone.
    CUDA: bf16 where the GPU supports it, else fp16 (not measured: no GPU has run this code yet). Other
    devices: fp32.
    """
    if device.type == "cpu":
        return ("fp32", "bf16") if cpu_has_native_bf16(cpuinfo) else ("fp32",)
    if device.type == "cuda":
        return ("bf16",) if torch.cuda.is_bf16_supported() else ("fp16",)
    return ("fp32",)


def check_precision(device: torch.device, dtype: torch.dtype, engine: str) -> None:
    """Fail early, with a clear message, where this device cannot run the engine's work in ``dtype``: matrix
    products for the fast engine, convolutions under autocast for the eager one."""
    if dtype == torch.float32:
        return
    name = {torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    try:
        with warnings.catch_warnings():  # builds without it warn and run float32 instead
            warnings.simplefilter("ignore")
            if engine == "fast":
                probe = torch.ones(4, 4, device=device, dtype=dtype)
                out_dtype = (probe @ probe).dtype
            else:
                conv = nn.Conv1d(2, 2, 3, padding=1).to(device)
                with torch.autocast(device.type, dtype=dtype):
                    out_dtype = conv(torch.randn(1, 2, 4, device=device)).dtype
    except (RuntimeError, NotImplementedError) as exc:
        raise ValueError(
            f"precision {name} is not supported on {device} by this torch build ({exc}); use fp32 or bf16"
        ) from exc
    if out_dtype != dtype:
        raise ValueError(
            f"precision {name}: autocast on {device.type} does not run convolutions in {dtype} with this "
            f"torch build; use fp32, bf16 or engine='fast'"
        )


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the block on at most ``threads`` torch intra-op threads (None: as configured), then restore the
    count. torch's thread count is process-wide: other threads running torch at the same time see it too."""
    before = torch.get_num_threads()
    if threads is None or threads >= before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """torch.autocast for bf16/fp16; nothing for fp32/tf32. The flows keep their carrier in float32 inside."""
    if precision in ("bf16", "fp16"):
        return torch.autocast(device.type, dtype=DTYPES[precision])
    return contextlib.nullcontext()


def set_tf32(device: torch.device, precision: str) -> None:
    """TF32 matrix products and convolutions on CUDA only for precision "tf32"; fp32 means full float32."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 for CUDA convolutions and matrix products on or off inside the block; the flags are restored."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
