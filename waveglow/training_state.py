"""Training state on disk: the counters, RNG states, and step checkpoints of a run directory.

A training checkpoint is ``checkpoint.model_payload`` (format version, config, weights) plus the optimiser,
GradScaler, counters and RNG states: tensors and primitives only, loadable with weights_only=True.
"""

from __future__ import annotations

import logging
import math
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import CheckpointError, atomic_save, load_checkpoint, model_payload, unwrap
from .config import Config
from .model import WaveGlow

log = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^step_(\d{8,})\.pt$")


class TrainingError(RuntimeError):
    """Training cannot start or go on; the message says why and what to do."""


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


def latest_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest step checkpoint that loads (an unreadable one is reported and passed over)."""
    for path in reversed(checkpoint_files(run_dir)):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            log.warning("passing over %s", exc)
    return None


def save_checkpoint(run_dir: Path, payload: dict[str, Any], step: int, keep_last: int) -> Path:
    """Write checkpoints/step_XXXXXXXX.pt atomically, then delete all but the newest ``keep_last``."""
    path = run_dir / "checkpoints" / f"step_{step:08d}.pt"
    atomic_save(payload, path)
    for old in checkpoint_files(run_dir)[: -max(1, keep_last)]:
        old.unlink(missing_ok=True)
    return path


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
