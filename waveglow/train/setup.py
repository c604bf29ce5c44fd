"""Building a training run: precision, learning rate, the model (fresh or fine-tuned), the data, the run dir.

Everything ``Trainer`` is made of before its first step, and the data check of ``train.py --check-data``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from waveglow.checkpoints import CheckpointError, load_checkpoint, load_model
from waveglow.config import Config, TrainConfig, save_config
from waveglow.data.check import DataReport, check_files, usable_entries
from waveglow.data.datasets import AudioClipDataset, AudioSegmentDataset
from waveglow.filelists import Entry, locate, resolve_entries
from waveglow.model.architectures import Flow, build_flow
from waveglow.train.distributed import DistEnv, ResumableSampler
from waveglow.train.errors import TrainingError
from waveglow.train.state import checkpoint_files, latest_checkpoint, set_aside

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------- lr


def learning_rate_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate for optimiser step ``step`` (0-based): linear warm-up, then the schedule."""
    base = cfg.learning_rate
    if step < cfg.lr_warmup_steps:
        return base * (step + 1) / cfg.lr_warmup_steps
    if cfg.lr_schedule == "step" and cfg.lr_decay_steps > 0:
        return base * cfg.lr_decay_gamma ** (step // cfg.lr_decay_steps)
    if cfg.lr_schedule == "cosine":
        total = cfg.lr_decay_steps or cfg.max_steps
        if total <= 0:
            raise TrainingError("train.lr_schedule cosine needs train.lr_decay_steps or train.max_steps")
        progress = min(1.0, (step - cfg.lr_warmup_steps) / max(1, total - cfg.lr_warmup_steps))
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    return base


# ------------------------------------------------------------------------------------------------ model


def compiled_for_training(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` (the ``FlowObjective``, or DDP of it) under torch.compile, for ``train.compile``.

    Compiling happens in the first step (minutes on a CPU; the compiled code is cached on disk by torch, so
    a later process of the same model compiles faster). The checkpoints still hold the plain model's
    weights. On the CPU, torch's compiler writes C++ and needs a compiler on PATH: TrainingError if none.
    """
    if device.type == "cpu":
        import shutil

        from torch._inductor import config as inductor_config

        compiler = next((name for name in inductor_config.cpp.cxx if name), "g++")
        if shutil.which(compiler) is None:
            raise TrainingError(
                f"train.compile on the CPU needs a C++ compiler ({compiler!r} is not on PATH): install one "
                "(e.g. g++) or set train.compile false"
            )
    log.info("train.compile: compiling the training step in the first step (minutes on a CPU)")
    return torch.compile(module)


def build_model(cfg: Config, init_from: str | Path | None = None) -> Flow:
    """The configured flow initialised from ``train.seed``, or with the weights of ``init_from``."""
    torch.manual_seed(cfg.train.seed)
    model = build_flow(cfg.model, cfg.audio)
    if init_from:
        load_initial_weights(model, init_from)
    return model


def load_initial_weights(model: Flow, path: str | Path) -> None:
    """Copy the weights of a checkpoint of ours or a published NVIDIA file into ``model`` (same architecture).

    Files without weight norm (NVIDIA's, inference exports) are loaded into plain convolutions and weight
    norm is put back, which leaves the outputs unchanged.
    """
    source, source_cfg = load_model(path)
    if source_cfg.model.architecture != model.model_cfg.architecture:
        raise TrainingError(
            f"{path}: holds a {source_cfg.model.architecture!r} flow; this run's model.architecture is "
            f"{model.model_cfg.architecture!r}. --init-from needs a checkpoint of the same architecture"
        )
    if asdict(source_cfg.model) != asdict(model.model_cfg):
        raise TrainingError(
            f"{path}: its model config {asdict(source_cfg.model)} differs from this run's "
            f"{asdict(model.model_cfg)}; --init-from needs the same architecture"
        )
    if asdict(source_cfg.audio) != asdict(model.audio_cfg):
        log.warning(
            "%s: audio settings differ from this run's (%s); fine-tuning anyway", path, source_cfg.audio
        )
    if source.has_weight_norm:
        model.load_state_dict(source.state_dict(), strict=True)
        return
    model.remove_weight_norm()
    model.load_state_dict(source.state_dict(), strict=True)
    model.apply_weight_norm()
    log.info("initialised from %s (weight norm re-applied)", path)


# ------------------------------------------------------------------------------------------------- data


def data_paths(cfg: Config) -> tuple[list[Entry], list[Entry]]:
    """(training clips, held-out clips), each with its paired mel file if its filelist line names one. A
    folder (or an LJSpeech metadata.csv) gives its deterministic train and validation splits; a training
    filelist without data.validation_files gives no held-out clips."""
    data = cfg.data
    if not data.training_files:
        raise TrainingError("data.training_files is empty: give a filelist, an LJSpeech folder or a folder")
    train = resolve_entries(data.training_files, data.data_root, "train")
    if data.validation_files:
        return train, resolve_entries(data.validation_files, data.data_root, "validation")
    spec, kind = locate(data.training_files, data.data_root)
    return train, (resolve_entries(spec, data.data_root, "validation") if kind != "filelist" else [])


def check_data(cfg: Config) -> list[tuple[str, DataReport]]:
    """The data check alone (``train.py --check-data``): a report for the training and held-out files
    (paired mel files included)."""
    train, held_out = data_paths(cfg)
    seg, tolerance = cfg.data.segment_length, cfg.data.mel_frame_tolerance
    reports = [("training", check_files(train, cfg.audio, seg, mel_frame_tolerance=tolerance))]
    if held_out:
        reports.append(("validation", check_files(held_out, cfg.audio, seg, mel_frame_tolerance=tolerance)))
    return reports


def build_datasets(cfg: Config, env: DistEnv) -> tuple[AudioSegmentDataset, AudioClipDataset | None]:
    """Check the files once on rank 0 (bad files stop the run unless data.skip_bad_files), share the result.

    With paired clips (filelist lines ``audio|mel.npy``) the training set yields (audio, mel) batches and
    validation scores the held-out pairs under their mel files."""
    result: Any
    if env.is_main:
        try:
            train, held_out = data_paths(cfg)
            seg, skip, tolerance = (
                cfg.data.segment_length,
                cfg.data.skip_bad_files,
                cfg.data.mel_frame_tolerance,
            )
            train = usable_entries(train, cfg.audio, seg, skip, tolerance)
            held_out = usable_entries(held_out, cfg.audio, seg, skip, tolerance) if held_out else []
            result = (train, held_out)
        except Exception as exc:  # noqa: BLE001 - passed to every rank, then raised
            result = exc
    if env.distributed:
        box = [result if env.is_main else None]
        dist.broadcast_object_list(box, src=0)
        result = box[0]
    if isinstance(result, Exception):
        raise result
    train, held_out = result
    cache, tolerance = cfg.data.cache_dir or None, cfg.data.mel_frame_tolerance
    train_set = AudioSegmentDataset(
        train, cfg.audio, cfg.data.segment_length, cfg.train.seed, cache,
        short_clips=cfg.data.short_clips, dither=cfg.data.dither, mel_frame_tolerance=tolerance,
    )  # fmt: skip
    max_samples = round(cfg.data.validation_max_seconds * cfg.audio.sampling_rate) or None
    held_out_set = (
        AudioClipDataset(held_out, cfg.audio, cache, max_samples, mel_frame_tolerance=tolerance)
        if held_out
        else None
    )
    return train_set, held_out_set


def build_loader(
    dataset: AudioSegmentDataset, sampler: ResumableSampler, cfg: Config, env: DistEnv
) -> DataLoader:
    """One DataLoader for the whole run; set the sampler's position before iterating it for an epoch."""
    if len(dataset) // env.world_size < cfg.train.batch_size:
        raise TrainingError(
            f"{len(dataset)} training clips give no full batch of {cfg.train.batch_size} per process on "
            f"{env.world_size} process(es); lower train.batch_size or add data"
        )
    workers = cfg.data.num_workers
    return DataLoader(
        dataset,
        batch_size=cfg.train.batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=env.device.type == "cuda",
        persistent_workers=workers > 0,
    )


# -------------------------------------------------------------------------------------------- run dir


def prepare_run_dir(run_dir: Path, cfg: Config, env: DistEnv, resume: bool) -> dict[str, Any] | None:
    """Find the checkpoint to resume from (checking it fits ``cfg``); write config.yaml (rank 0).

    A run that cannot go on refuses before it writes anything: a directory that already holds a run needs
    --resume, and with --resume, step checkpoints none of which loads stop the run (a new run there would
    overwrite best.pt and mix two runs' logs). Unreadable checkpoints newer than the one resumed from are
    renamed ``*.unreadable``. Only an empty (or new) directory starts a new run under --resume.
    """
    files = checkpoint_files(run_dir)
    best = run_dir / "checkpoints" / "best.pt"
    if not resume:
        if files or best.is_file():
            raise TrainingError(
                f"{run_dir} already holds checkpoints ({(files[-1] if files else best).name}); pass --resume "
                "to continue that run or choose another --run-dir"
            )
        found = None
    else:
        unreadable: list[CheckpointError] = []
        found = latest_checkpoint(run_dir, unreadable)
        if found is None and (files or best.is_file()):
            raise TrainingError(_cannot_resume(run_dir, files, unreadable, best))
        if found is None:
            log.warning("%s: no checkpoint to resume from; starting a new run", run_dir)
        elif env.is_main:
            for newer in files[files.index(found[0]) + 1 :]:
                set_aside(newer)
    data = found[1] if found else None
    if data is not None:
        saved = Config.from_dict(data["config"])
        for section in ("model", "audio"):
            if asdict(getattr(saved, section)) != asdict(getattr(cfg, section)):
                raise TrainingError(
                    f"{found[0]}: its {section} config differs from the one given; resume with the "
                    "run's own config (omit -c) or start a new run with --init-from"
                )
        log.info("resuming from %s (step %d)", found[0], data["step"])
    if env.is_main:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        for stale in (run_dir / "checkpoints").glob(".*.tmp"):  # a write killed before its rename
            stale.unlink(missing_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    return data


def _cannot_resume(run_dir: Path, files: list[Path], unreadable: list[CheckpointError], best: Path) -> str:
    """Why --resume stops in a run directory whose step checkpoints are all unreadable, and what to do."""
    folder = run_dir / "checkpoints"
    if files:
        newest = str(unreadable[0]).replace(str(files[-1]), files[-1].name)
        what = f"none of its {len(files)} step checkpoint(s) loads ({newest})"
    else:
        what = "it holds best.pt but no step checkpoint"
    hint = ""
    if best.is_file():
        try:
            step = int(load_checkpoint(best)["step"])
        except (CheckpointError, KeyError, TypeError, ValueError):
            hint = "; best.pt does not load either"
        else:
            hint = (
                f"; best.pt (step {step}) loads: to continue from it, copy it to "
                f"{folder / f'step_{step:08d}.pt'} and resume again"
            )
    return (
        f"{run_dir}: cannot resume: {what}{hint}. Nothing in the run directory was changed. To start a new "
        f"run there, first move the old files out of {folder}; or choose another --run-dir"
    )
