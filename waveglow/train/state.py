"""Training state on disk: the counters, RNG states, and step checkpoints of a run directory.

A training checkpoint is ``checkpoint.model_payload`` (format version, config, weights) plus the optimiser,
GradScaler, counters and RNG states: tensors and primitives only, loadable with weights_only=True.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from waveglow.checkpoints import (
    CheckpointError,
    atomic_save,
    is_truncated,
    load_checkpoint,
    model_payload,
    unwrap,
)
from waveglow.config import Config
from waveglow.model.flow import WaveGlow
from waveglow.train.errors import TrainingError

log = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^step_(\d{8,})\.pt$")
UNREADABLE_SUFFIX = ".unreadable"  # an unreadable step checkpoint set aside by a resumed run
LOCK_FILE = "train.lock"  # held (flock) by the training that writes the run directory


@dataclass
class TrainState:
    """Counters stored in every checkpoint (primitives only)."""

    step: int = 0  # optimiser steps applied
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of this epoch already consumed (applied or skipped)
    best_nll: float = math.inf  # best held-out NLL so far
    skipped_steps: int = 0  # non-finite steps skipped in total
    nonfinite_in_row: int = 0


def rng_state() -> dict[str, Any]:
    """torch, CUDA, Python and NumPy global RNG states as tensors and ints (weights_only-loadable)."""
    version, internal, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos)}
        | {"has_gauss": int(has_gauss), "cached": float(cached)},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved (CUDA states only when the device count matches)."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_payload(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: Config,
    state: TrainState,
) -> dict[str, Any]:
    """A full checkpoint: the model payload plus optimiser, scaler, counters and RNG states.

    Raises TrainingError if any weight is non-finite: such a model is never written.
    """
    model = unwrap(model)
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise TrainingError(f"step {state.step}: non-finite weights in {bad[:5]}; not writing a checkpoint")
    payload = model_payload(model, cfg)
    payload.update(
        optimizer=optimizer.state_dict(),
        scaler=scaler.state_dict(),
        step=state.step,
        epoch=state.epoch,
        state=asdict(state),
        rng=rng_state(),
    )
    return payload


def checkpoint_files(run_dir: Path) -> list[Path]:
    """Step checkpoints of a run, oldest first."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(
    run_dir: Path, unreadable: list[CheckpointError] | None = None
) -> tuple[Path, dict[str, Any]] | None:
    """The newest step checkpoint that loads (an unreadable one is reported, appended to ``unreadable`` when
    given, and passed over)."""
    for path in reversed(checkpoint_files(run_dir)):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            log.warning("passing over %s", exc)
            if unreadable is not None:
                unreadable.append(exc)
    return None


def is_complete(path: Path) -> bool:
    """Whether a step checkpoint was written to its end (``checkpoint.is_truncated``: its zip archive's end
    reads; the tensors are not loaded). Step checkpoints are always zip archives."""
    try:
        return path.stat().st_size > 0 and not is_truncated(path)
    except OSError:
        return False


def set_aside(path: Path) -> Path:
    """Rename an unreadable checkpoint to ``<name>.unreadable`` (kept for inspection, no longer a step
    checkpoint: it neither counts towards keep_last nor is ever deleted by a run)."""
    target = path.with_name(path.name + UNREADABLE_SUFFIX)
    path.replace(target)
    log.warning("%s: unreadable; renamed to %s", path, target.name)
    return target


def save_checkpoint(run_dir: Path, payload: dict[str, Any], step: int, keep_last: int) -> Path:
    """Write checkpoints/step_XXXXXXXX.pt atomically, then delete all but the newest ``keep_last`` complete
    ones: an incomplete (truncated) file is neither counted as kept nor deleted."""
    path = run_dir / "checkpoints" / f"step_{step:08d}.pt"
    atomic_save(payload, path)
    complete = [old for old in checkpoint_files(run_dir) if old == path or is_complete(old)]
    for old in complete[: -max(1, keep_last)]:
        if old != path:
            old.unlink(missing_ok=True)
    return path


class RunDirLock:
    """An exclusive lock on a run directory (``train.lock`` in it), so that two trainings cannot write one
    run at once. An OS file lock (flock): released when the process ends, however it ends (kill -9 too),
    so a stale lock file never blocks a later run. A no-op where flock is unavailable (Windows)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> RunDirLock:
        try:
            import fcntl
        except ImportError:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (process {holder})" if holder else ""
            raise TrainingError(
                f"{self.path.parent} is in use by another training{who}; wait for it to end or choose "
                "another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock; the file stays (removing it would race a waiting run)
            self._fd = None


def restore(
    data: dict[str, Any],
    model: WaveGlow,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> TrainState:
    """Load a training checkpoint into the model, optimiser and scaler; returns the counters."""
    model.load_state_dict(data["model"], strict=True)
    if "optimizer" not in data or "state" not in data:
        raise TrainingError("checkpoint holds weights only (no optimiser state); use --init-from for it")
    optimizer.load_state_dict(data["optimizer"])
    if data.get("scaler"):
        scaler.load_state_dict(data["scaler"])
    if "rng" in data:
        set_rng_state(data["rng"])
    return TrainState(**data["state"])
