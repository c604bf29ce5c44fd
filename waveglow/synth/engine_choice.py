"""Which exact synthesis engine is fastest on this machine: measured once per machine, model and precision,
then cached.

The fast engine (``FastWaveGlow``) and the eager one (``WaveGlow.reverse``) compute the same audio within
float32 rounding, but which of them is faster depends on the processor: measured with the default model on
2 threads, fast was 1.43x eager on an AVX2 machine and 0.88x on an AVX-512 AMD EPYC (issue 19). So
``Vocoder(engine="auto")`` (the default) times both on a short input the first time a model of that shape
runs on a machine, keeps the faster, and writes the result to ``cache_file()`` so that later processes on
the same machine choose at once. The key holds everything the timing depends on: the processor (model name
and the instruction-set flags), the GPU name, torch's version, the thread count, the model's
configuration and the precision. ``Vocoder(precision="auto")`` uses the same cache for its choice among
(engine, precision) pairs, named "fast-bf16", "eager-fp32", ..., under a precision such as "auto:fp32,bf16"
(with "@FRAMES" for the light flow's probes of other sizes).

``WAVEGLOW_ENGINE_CACHE`` names the cache file (default ``$XDG_CACHE_HOME/waveglow/engine-choice.json``,
else ``~/.cache/waveglow/engine-choice.json``); an unreadable cache is ignored and an unwritable one only
means measuring again next time. A choice measured while other processes kept the CPU busy (half a core or
more, ``waveglow.cpu_load``) holds for that process only and is not cached: such timings can rank the
engines wrongly, and a cached choice is kept for good.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from waveglow.config import ModelConfig
from waveglow.cpu_load import CpuSample, others_busy, read_cpu_sample
from waveglow.device import cpuinfo_fields
from waveglow.files import atomic_write_text

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
# instruction sets that change which engine wins; the rest of /proc/cpuinfo's flags do not enter the key
_KEY_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


@dataclass
class EngineChoice:
    """The engine chosen, the seconds each engine took on the probe (empty when it came from the cache),
    and the key it is cached under."""

    engine: str
    seconds: dict[str, float] = field(default_factory=dict)
    measured: bool = False
    key: str = ""


def cache_file() -> Path:
    """Where choices are kept (see the module docstring)."""
    if os.environ.get("WAVEGLOW_ENGINE_CACHE"):
        return Path(os.environ["WAVEGLOW_ENGINE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "waveglow" / "engine-choice.json"


def machine_signature(device: torch.device) -> dict[str, Any]:
    """What the engines' relative speed depends on, besides the model: processor, GPU, torch, threads."""
    signature: dict[str, Any] = {
        "torch": torch.__version__,
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "cpu": _cpu_model_and_flags(),
    }
    if device.type == "cuda":
        signature["gpu"] = torch.cuda.get_device_name(device)
        signature["cuda"] = torch.version.cuda
    return signature


def _cpu_model_and_flags() -> str:
    """'model name [flag, ...]' from /proc/cpuinfo, or what ``platform`` says where there is none."""
    fields = cpuinfo_fields()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    present = [flag for flag in _KEY_FLAGS if flag in flags]
    return f"{fields.get('model name') or platform.processor() or platform.machine()} [{' '.join(present)}]"


def choice_key(device: torch.device, model_cfg: ModelConfig, precision: str) -> str:
    """The cache key of one choice: machine signature, model configuration and precision, as JSON."""
    return json.dumps(
        {"machine": machine_signature(device), "model": asdict(model_cfg), "precision": precision},
        sort_keys=True,
    )


def cached_engine(key: str, candidates: Sequence[str], path: Path | None = None) -> str | None:
    """The engine cached under ``key`` when it is one of ``candidates``, else None (measure it)."""
    cached = _read_cache(path or cache_file()).get(key)
    if isinstance(cached, dict) and cached.get("engine") in candidates:
        return str(cached["engine"])
    return None


def choose_engine(
    key: str, runners: Mapping[str, Callable[[], object]], path: Path | None = None, **timing: Any
) -> EngineChoice:
    """The fastest of ``runners`` (engine name -> one synthesis of the probe input), cached under ``key``.

    A cached choice naming one of ``runners`` is returned without running anything; otherwise
    ``measure_engines`` times them (``timing``: its ``repeats``, ``sync`` and ``timer``) and caches the best.
    """
    path = path or cache_file()
    cached = cached_engine(key, list(runners), path)
    if cached is not None:
        return EngineChoice(cached, measured=False, key=key)
    return measure_engines(key, runners, path=path, **timing)


def measure_engines(
    key: str,
    runners: Mapping[str, Callable[[], object]],
    repeats: int = 2,
    sync: Callable[[], None] = lambda: None,
    timer: Callable[[], float] = time.perf_counter,
    path: Path | None = None,
    busy_limit: float | None = 0.5,
    cpu_sample: Callable[[], CpuSample | None] | None = None,
) -> EngineChoice:
    """``choose_engine`` without the cache lookup, for a caller that has looked already (``cached_engine``):
    time every runner, keep the fastest, and add it to the cache.

    Each runner runs once to warm up, then ``repeats`` times; the best time counts (the least disturbed by
    other work on the machine). ``sync`` waits for the device (CUDA runs asynchronously). When other
    processes kept ``busy_limit`` cores or more busy meanwhile (None: do not check; ``cpu_sample`` reads the
    load, default ``waveglow.cpu_load.read_cpu_sample``), the choice is returned but not cached.
    """
    path = path or cache_file()
    cpu_sample = cpu_sample or read_cpu_sample
    before = cpu_sample() if busy_limit is not None else None
    seconds: dict[str, float] = {}
    for name, run in runners.items():
        run()  # warm-up: first-call allocations, lazy initialisation
        best = float("inf")
        for _ in range(max(1, repeats)):
            sync()
            start = timer()
            run()
            sync()
            best = min(best, timer() - start)
        seconds[name] = best
    engine = min(seconds, key=seconds.__getitem__)
    after = cpu_sample() if before is not None else None
    busy = others_busy(before, after) if before is not None and after is not None else 0.0
    if busy_limit is not None and busy >= busy_limit:
        log.info(
            "engine for this machine and model: %s (%s), measured while other processes kept %.1f cores busy: "
            "not cached, measured again next time",
            engine,
            ", ".join(f"{name} {s * 1e3:.1f} ms" for name, s in seconds.items()),
            busy,
        )
        return EngineChoice(engine, seconds, measured=True, key=key)
    log.info(
        "engine for this machine and model: %s (%s; cached in %s)",
        engine,
        ", ".join(f"{name} {s * 1e3:.1f} ms" for name, s in seconds.items()),
        path,
    )
    cache = _read_cache(path)  # again: another process may have added its own choices meanwhile
    cache[key] = {"engine": engine, "seconds": seconds, "date": time.strftime("%Y-%m-%d")}
    _write_cache(path, cache)
    return EngineChoice(engine, seconds, measured=True, key=key)


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable engine cache (%s); measuring again", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return {}
    choices = data.get("choices")
    return choices if isinstance(choices, dict) else {}


def _write_cache(path: Path, choices: dict[str, Any]) -> None:
    text = json.dumps({"format": CACHE_FORMAT, "choices": choices}, indent=1, sort_keys=True)
    try:
        atomic_write_text(path, text + "\n", durable=False)
    except OSError as exc:  # a read-only home, a full disk: the choice still holds for this process
        log.warning("%s: cannot cache the engine choice (%s); it is measured again next time", path, exc)
