"""Training by exact maximum likelihood: one CPU, one GPU, or many GPUs/machines through torchrun + DDP.

The run is split into build (device, model, optimiser, data), step, validate, log (``training_log``) and
save. Randomness is derived, never hidden: the model's initialisation from ``train.seed``, the data order
from (seed, epoch) through a DistributedSampler, each segment from (seed, epoch, clip index) in the
dataset. A checkpoint stores the epoch and the batches already consumed in it, so a resumed run sees the
same batches as an uninterrupted one.

Run directory::

    config.yaml                 the resolved config
    checkpoints/step_XXXXXXXX.pt  the last train.keep_last checkpoints; best.pt: best held-out NLL
    tensorboard/                TensorBoard events      metrics.jsonl: logged scalars, one JSON per line
    loss.png                    training and held-out NLL curves, log-mel distance
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import parametrizations
from torch.utils.data import DataLoader, DistributedSampler

from .audio import MelSpectrogram
from .checkpoint import CheckpointError, atomic_save, load_model
from .config import Config, TrainConfig, load_config, save_config
from .data import AudioClipDataset, AudioSegmentDataset, DataReport, check_files, resolve_files, usable_files
from .evaluation import clip_nll, copy_synthesis, log_mel_distance
from .loss import WaveGlowLoss
from .model import WaveGlow
from .training_log import METRICS_FILE, RunLogger, read_metrics
from .training_state import (
    TrainingError,
    TrainState,
    checkpoint_files,
    latest_checkpoint,
    restore,
    save_checkpoint,
    training_payload,
)

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------ build


@dataclass
class DistEnv:
    """Where this process runs: its rank among world_size processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialised_here: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto" -> cuda:local_rank when CUDA is available, else cpu; "cuda" -> cuda:local_rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"train.device is {name!r} but no CUDA device is available (use auto or cpu)")
    return device


def setup_distributed(device_name: str) -> DistEnv:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK; start the process group (NCCL on GPUs, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    env = DistEnv(rank, world_size, local_rank, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        env.initialised_here = True
    return env


def set_precision_flags(device: torch.device, precision: str) -> None:
    """TF32 matmuls/convolutions only for precision "tf32" (CUDA only); fp32 means full float32."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """torch.autocast for bf16/fp16; nothing for fp32/tf32. The model keeps its flow in float32 inside."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


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


def build_model(cfg: Config, init_from: str | Path | None = None) -> WaveGlow:
    """A WaveGlow initialised from ``train.seed``, or with the weights of ``init_from`` (fine-tuning)."""
    torch.manual_seed(cfg.train.seed)
    model = WaveGlow(cfg.model, cfg.audio)
    if init_from:
        load_initial_weights(model, init_from)
    return model


def load_initial_weights(model: WaveGlow, path: str | Path) -> None:
    """Copy the weights of a checkpoint of ours or a published NVIDIA file into ``model`` (same architecture).

    Files without weight norm (NVIDIA's, inference exports) are loaded into plain convolutions and weight
    norm is put back, which leaves the outputs unchanged.
    """
    source, source_cfg = load_model(path)
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
    for wn in model.WN:
        for conv in [wn.start, wn.cond_layer, *wn.in_layers, *wn.res_skip_layers]:
            parametrizations.weight_norm(conv, name="weight", dim=0)
    log.info("initialised from %s (weight norm re-applied)", path)


def data_paths(cfg: Config) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files). A folder (or an LJSpeech metadata.csv) gives its deterministic train
    and validation splits; a training filelist without data.validation_files gives no held-out files."""
    data = cfg.data
    if not data.training_files:
        raise TrainingError("data.training_files is empty: give a filelist, an LJSpeech folder or a folder")
    train = resolve_files(data.training_files, data.data_root, "train")
    if data.validation_files:
        return train, resolve_files(data.validation_files, data.data_root, "validation")
    spec = Path(data.training_files)
    if not spec.exists() and data.data_root:
        spec = Path(data.data_root) / spec
    is_folder = spec.is_dir() or (spec.name == "metadata.csv" and spec.is_file())
    return train, (resolve_files(spec, data.data_root, "validation") if is_folder else [])


def check_data(cfg: Config) -> list[tuple[str, DataReport]]:
    """The data check alone (``train.py --check-data``): a report for the training and held-out files."""
    train, held_out = data_paths(cfg)
    reports = [("training", check_files(train, cfg.audio, cfg.data.segment_length))]
    if held_out:
        reports.append(("validation", check_files(held_out, cfg.audio, cfg.data.segment_length)))
    return reports


def build_datasets(cfg: Config, env: DistEnv) -> tuple[AudioSegmentDataset, AudioClipDataset | None]:
    """Check the files once on rank 0 (bad files stop the run unless data.skip_bad_files), share the result."""
    result: Any
    if env.is_main:
        try:
            train, held_out = data_paths(cfg)
            seg, skip = cfg.data.segment_length, cfg.data.skip_bad_files
            train = usable_files(train, cfg.audio, seg, skip)
            held_out = usable_files(held_out, cfg.audio, seg, skip) if held_out else []
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
    cache = cfg.data.cache_dir or None
    train_set = AudioSegmentDataset(
        train, cfg.audio, cfg.data.segment_length, cfg.train.seed, cache,
        short_clips=cfg.data.short_clips, dither=cfg.data.dither,
    )  # fmt: skip
    max_samples = round(cfg.data.validation_max_seconds * cfg.audio.sampling_rate) or None
    held_out_set = AudioClipDataset(held_out, cfg.audio, cache, max_samples) if held_out else None
    return train_set, held_out_set


class ResumableSampler(DistributedSampler):
    """A DistributedSampler (order from seed and epoch) that can start an epoch after ``start`` samples."""

    def __init__(self, dataset: AudioSegmentDataset, env: DistEnv, seed: int):
        super().__init__(
            dataset, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=seed, drop_last=True
        )
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        return iter(list(super().__iter__())[self.start :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)


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


# ------------------------------------------------------------------------------------------------- step


@dataclass
class StepResult:
    """One optimiser step: loss terms averaged over ranks, the gradient norm, whether it was applied."""

    terms: dict[str, float]
    grad_norm: float
    applied: bool
    loss_finite: bool
    stop_requested: bool


def train_step(
    model: torch.nn.Module,
    audio: torch.Tensor,
    mel_fn: MelSpectrogram,
    loss_fn: WaveGlowLoss,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    precision: str,
    grad_clip: float,
    world_size: int = 1,
    stop: bool = False,
) -> StepResult:
    """Forward, backward, clip, and update unless the loss or gradient norm is non-finite on any rank.

    audio (B, segment_length) on the training device; the mel is computed here with ``mel_fn`` (the same
    front end as at inference). ``stop`` is this rank's wish to stop; any rank's wish is returned to all.
    """
    with torch.no_grad():
        mel = mel_fn(audio)  # (B, n_mel, 1 + segment_length // hop_length), float32
    with autocast(audio.device, precision):
        out = model(audio, mel)
    terms = loss_fn.terms(out)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(terms.nll).backward()
    scaler.unscale_(optimizer)
    max_norm = grad_clip if grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm).item()
    stats = torch.stack([terms.nll, terms.nll_no_const, terms.z_term, terms.log_det_s, terms.log_det_w])
    stats = stats.detach().float()
    flags = torch.tensor([float(not torch.isfinite(stats).all()), float(stop)], device=stats.device)
    packed = torch.cat([stats, flags])
    if world_size > 1:
        dist.all_reduce(packed)  # sums: mean loss terms, any rank's non-finite loss or stop wish
    values = (packed[:5] / world_size).tolist()
    loss_finite, stop_requested = packed[5].item() == 0, packed[6].item() > 0
    applied = loss_finite and math.isfinite(grad_norm)
    if applied:
        scaler.step(optimizer)
    scaler.update()  # fp16: shrinks the scale after an overflow; no-op otherwise
    names = ("nll", "nll_no_const", "z_term", "log_det_s", "log_det_w")
    return StepResult(dict(zip(names, values)), grad_norm, applied, loss_finite, stop_requested)


# --------------------------------------------------------------------------------------------- validate


@dataclass
class ValidationResult:
    """Held-out NLL (nats/sample, weighted by length), copy-synthesis log-mel distance, logged examples."""

    nll: float
    log_mel_distance: float
    n_files: int
    seconds: float
    examples: list[dict[str, Any]] = field(default_factory=list)


@torch.no_grad()
def validate(model: WaveGlow, clips: AudioClipDataset, cfg: Config, device: torch.device) -> ValidationResult:
    """NLL of every held-out clip in float32 (dequantised with data.dither, as in training); copy synthesis at
    train.validation_sigma for the first data.validation_clips clips (noise from a generator seeded with
    train.seed, so validations compare)."""
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    mel_fn = MelSpectrogram(cfg.audio).to(device)
    loss_fn = WaveGlowLoss(cfg.train.sigma)
    generator = torch.Generator(device=device).manual_seed(cfg.train.seed)
    weighted = samples = 0.0
    distances, examples = [], []
    for index in range(len(clips)):
        audio, path = clips[index]
        audio = audio.to(device)  # (T,)
        if audio.shape[0] < cfg.audio.win_length:
            continue
        length = audio.shape[0] - audio.shape[0] % cfg.model.n_group
        weighted += clip_nll(model, loss_fn, mel_fn, audio, cfg.data.dither, cfg.train.seed + index) * length
        samples += length
        if len(examples) < cfg.data.validation_clips:
            synth, mel, mel_synth = copy_synthesis(
                model, mel_fn, audio, cfg.train.validation_sigma, generator
            )
            distances.append(log_mel_distance(mel, mel_synth))
            example = {"name": Path(path).stem, "audio": audio.cpu(), "synthesis": synth.cpu()}
            examples.append(example | {"mel": mel.cpu(), "mel_synthesis": mel_synth.cpu()})
    model.train(was_training)
    return ValidationResult(
        nll=weighted / samples if samples else math.nan,
        log_mel_distance=float(np.mean(distances)) if distances else math.nan,
        n_files=len(clips),
        seconds=time.perf_counter() - start,
        examples=examples,
    )


# ------------------------------------------------------------------------------------------------- save


def prepare_run_dir(run_dir: Path, cfg: Config, env: DistEnv, resume: bool) -> dict[str, Any] | None:
    """Find the checkpoint to resume from (checking it fits ``cfg``); write config.yaml (rank 0)."""
    found = latest_checkpoint(run_dir)
    if found and not resume:
        raise TrainingError(
            f"{run_dir} already holds checkpoints ({found[0].name}); pass --resume to continue that run "
            "or choose another --run-dir"
        )
    if resume and not found:
        log.warning("%s: no checkpoint to resume from; starting a new run", run_dir)
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


# ------------------------------------------------------------------------------------------------- loop


@dataclass
class TrainResult:
    """How a run ended: the step, why it stopped, the checkpoints, the held-out figures over time."""

    step: int
    stopped_by: str
    checkpoint: Path | None
    best_checkpoint: Path | None
    validations: list[dict[str, Any]]


def train(
    cfg: Config, run_dir: str | Path, resume: bool = False, init_from: str | Path | None = None
) -> TrainResult:
    """Train ``cfg`` in ``run_dir``; under torchrun every process calls this (only rank 0 writes)."""
    cfg.validate()
    env = setup_distributed(cfg.train.device)
    try:
        return Trainer(cfg, Path(run_dir), env, resume, init_from).run()
    finally:
        if env.initialised_here:
            dist.destroy_process_group()


class Trainer:
    """The pieces of one run and the loop over them; see ``train``."""

    def __init__(self, cfg: Config, run_dir: Path, env: DistEnv, resume: bool, init_from: str | Path | None):
        self.cfg, self.run_dir, self.env = cfg, run_dir, env
        set_precision_flags(env.device, cfg.train.precision)
        learning_rate_at(0, cfg.train)  # fail early on an incomplete schedule
        checkpoint = prepare_run_dir(run_dir, cfg, env, resume)
        self.model = build_model(cfg, None if checkpoint else init_from).to(env.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.train.learning_rate)
        self.scaler = torch.amp.GradScaler(env.device.type, enabled=cfg.train.precision == "fp16")
        self.state = (
            restore(checkpoint, self.model, self.optimizer, self.scaler) if checkpoint else TrainState()
        )
        self.train_set, self.held_out = build_datasets(cfg, env)
        self.sampler = ResumableSampler(self.train_set, env, cfg.train.seed)
        self.loader = build_loader(self.train_set, self.sampler, cfg, env)
        self.ddp = (
            DistributedDataParallel(
                self.model, device_ids=[env.device.index] if env.device.type == "cuda" else None
            )
            if env.distributed
            else self.model
        )
        self.mel_fn = MelSpectrogram(cfg.audio).to(env.device)
        self.loss_fn = WaveGlowLoss(cfg.train.sigma)
        self.logger = RunLogger(run_dir, env.is_main, self.state.step, cfg.train.max_steps)
        self.saved_step = self.validated_step = self.state.step if checkpoint else -1
        self.samples_per_second = 0.0
        self.start_time = time.monotonic()
        self.last_step_end = time.perf_counter()  # samples/s counts data loading too

    def run(self) -> TrainResult:
        """Train until max_steps, max_minutes or epochs; validate and checkpoint at the end."""
        try:
            if self.state.step == 0 and self.cfg.train.validate_at_start and self.validated_step < 0:
                self.validate_and_log()
            reason = None
            while reason is None:
                reason = self.run_epoch()
            if self.validated_step != self.state.step:
                self.validate_and_log()
            if self.saved_step != self.state.step:
                self.save()
            self.logger.plot_curves()
        finally:
            self.logger.close()
        log.info("stopped at step %d (%s)", self.state.step, reason)
        return self.result(reason)

    def run_epoch(self) -> str | None:
        """One pass over the training clips (or the rest of one); returns why to stop, or None."""
        state, batch_size = self.state, self.cfg.train.batch_size
        if state.epoch >= self.cfg.train.epochs:
            return "epochs"
        if self.cfg.train.max_steps and state.step >= self.cfg.train.max_steps:
            return "max_steps"  # a run resumed at its end
        self.train_set.set_epoch(state.epoch)
        self.sampler.set_position(state.epoch, state.batch_in_epoch * batch_size)
        for audio in self.loader:
            reason = self.after_step(self.step(audio))
            if reason:
                return reason
        state.epoch += 1
        state.batch_in_epoch = 0
        return None

    def step(self, audio: torch.Tensor) -> StepResult:
        """One batch: set the learning rate, take the step, count it (or the skip)."""
        tcfg, state = self.cfg.train, self.state
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate_at(state.step, tcfg)
        time_up = tcfg.max_minutes > 0 and time.monotonic() - self.start_time >= tcfg.max_minutes * 60
        audio = audio.to(self.env.device, non_blocking=True)
        result = train_step(
            self.ddp, audio, self.mel_fn, self.loss_fn, self.optimizer, self.scaler,
            tcfg.precision, tcfg.grad_clip_thresh, self.env.world_size, time_up,
        )  # fmt: skip
        state.batch_in_epoch += 1
        now = time.perf_counter()
        # audio samples per second over all processes (as the benchmark counts them), not clips
        rate = audio.numel() * self.env.world_size / max(now - self.last_step_end, 1e-9)
        self.last_step_end = now
        self.samples_per_second = (
            rate if not self.samples_per_second else 0.9 * self.samples_per_second + 0.1 * rate
        )
        if result.applied:
            state.step += 1
            state.nonfinite_in_row = 0
        else:
            self.count_nonfinite(result)
        return result

    def count_nonfinite(self, result: StepResult) -> None:
        """Log a skipped step; stop after train.max_nonfinite_steps in a row. An fp16 gradient overflow
        with a finite loss is the GradScaler's business and does not count unless the scale falls below 1."""
        state = self.state
        state.skipped_steps += 1
        overflow = self.scaler.is_enabled() and result.loss_finite and self.scaler.get_scale() >= 1.0
        if not overflow:
            state.nonfinite_in_row += 1
        log.warning(
            "step %d: non-finite %s (loss %.4g, grad norm %.4g); step skipped (%d in a row, %d in total)",
            state.step + 1, "gradient" if result.loss_finite else "loss", result.terms["nll"],
            result.grad_norm, state.nonfinite_in_row, state.skipped_steps,
        )  # fmt: skip
        limit = self.cfg.train.max_nonfinite_steps
        if state.nonfinite_in_row >= limit:
            raise TrainingError(
                f"{state.nonfinite_in_row} non-finite steps in a row at step {state.step + 1} "
                f"(train.max_nonfinite_steps={limit}); the model was not updated by them and no non-finite "
                "weights were saved. Lower train.learning_rate, set train.grad_clip_thresh, use fp32, or "
                "check the data (train.py --check-data)"
            )

    def after_step(self, result: StepResult) -> str | None:
        """Log, validate and checkpoint on their intervals; returns why to stop, or None."""
        tcfg, step = self.cfg.train, self.state.step
        self.logger.step(step, result.terms["nll"], self.samples_per_second)
        if result.applied and step % tcfg.log_interval == 0:
            extra = {"grad_norm": result.grad_norm, "learning_rate": self.optimizer.param_groups[0]["lr"]}
            extra |= {
                "samples_per_second": self.samples_per_second,
                "skipped_steps": self.state.skipped_steps,
            }
            self.logger.scalars(step, result.terms | extra)
        if result.applied and step % tcfg.validation_interval == 0:
            self.validate_and_log()
        if result.applied and step % tcfg.checkpoint_interval == 0:
            self.save()
        if tcfg.max_steps and step >= tcfg.max_steps:
            return "max_steps"
        if result.stop_requested:
            return "max_minutes"
        return None

    def validate_and_log(self) -> None:
        """Rank 0 validates on the held-out clips (others wait), logs, and keeps best.pt."""
        self.validated_step = self.state.step
        if self.env.is_main and self.held_out is not None:
            res = validate(self.model, self.held_out, self.cfg, self.env.device)
            self.logger.scalars(
                self.state.step, {"nll": res.nll, "log_mel_distance": res.log_mel_distance}, "validation"
            )
            self.logger.examples(self.state.step, res.examples, self.cfg.audio.sampling_rate)
            self.logger.plot_curves()
            log.info(
                "step %d: held-out NLL %.4f nats/sample, copy-synthesis log-mel distance %.3f "
                "(%d files, sigma %.2f, %.1f s)",
                self.state.step, res.nll, res.log_mel_distance, res.n_files,
                self.cfg.train.validation_sigma, res.seconds,
            )  # fmt: skip
            if self.state.step > 0 and res.nll < self.state.best_nll:
                self.state.best_nll = res.nll
                payload = training_payload(self.model, self.optimizer, self.scaler, self.cfg, self.state)
                atomic_save(payload, self.run_dir / "checkpoints" / "best.pt")
        if self.env.distributed:
            dist.barrier()
        self.last_step_end = time.perf_counter()  # keep validation out of samples/s

    def save(self) -> None:
        """Rank 0 writes a checkpoint of the current step."""
        self.saved_step = self.state.step
        if self.env.is_main:
            payload = training_payload(self.model, self.optimizer, self.scaler, self.cfg, self.state)
            path = save_checkpoint(self.run_dir, payload, self.state.step, self.cfg.train.keep_last)
            log.info("saved %s", path)
        self.last_step_end = time.perf_counter()

    def result(self, reason: str) -> TrainResult:
        files = checkpoint_files(self.run_dir)
        best = self.run_dir / "checkpoints" / "best.pt"
        records = read_metrics(self.run_dir / METRICS_FILE)
        validations = [r for r in records if r.get("kind") == "validation"]
        return TrainResult(
            step=self.state.step,
            stopped_by=reason,
            checkpoint=files[-1] if files else None,
            best_checkpoint=best if best.is_file() else None,
            validations=validations,
        )


# -------------------------------------------------------------------------------------------------- CLI


def config_from_args(args: Any) -> tuple[Config, Path]:
    """The run's Config and run dir from train.py's arguments (flags and --set override the file)."""
    run_dir = Path(args.run_dir) if args.run_dir else None
    if args.config:
        cfg = load_config(args.config)
        run_dir = run_dir or Path("runs") / Path(args.config).stem
    elif args.resume and run_dir is not None and (run_dir / "config.yaml").is_file():
        cfg = load_config(run_dir / "config.yaml")
    else:
        raise TrainingError("give a config (-c FILE), or --resume with a --run-dir that holds config.yaml")
    cfg = cfg.override(list(args.set))
    if args.data_root is not None:
        cfg.data.data_root = args.data_root
    if args.skip_bad_files:
        cfg.data.skip_bad_files = True
    for flag in ("precision", "device", "max_steps", "max_minutes"):
        if getattr(args, flag) is not None:
            setattr(cfg.train, flag, getattr(args, flag))
    return cfg.validate(), run_dir


def summary(result: TrainResult) -> str:
    """Lines for the end of a run: where it stopped, the checkpoints, held-out figures first vs last."""
    lines = [f"stopped at step {result.step} ({result.stopped_by}); last checkpoint {result.checkpoint}"]
    if result.best_checkpoint:
        lines.append(f"best checkpoint (held-out NLL) {result.best_checkpoint}")
    if result.validations:
        first, last = result.validations[0], result.validations[-1]
        nll, dist = "nll", "log_mel_distance"
        lines.append(
            f"held-out NLL {_number(first[nll])} (step {first['step']}) -> {_number(last[nll])} (step "
            f"{last['step']}) nats/sample; copy-synthesis log-mel distance {_number(first[dist], 3)} -> "
            f"{_number(last[dist], 3)}"
        )
    return "\n".join(lines)


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def run_cli(args: Any) -> int:
    """The body of train.py: --check-data, or train and print a summary (rank 0). Returns the exit code."""
    from .audio import AudioFileError
    from .config import ConfigError
    from .data import DataError

    try:
        cfg, run_dir = config_from_args(args)
        if args.check_data:
            reports = check_data(cfg)
            for name, report in reports:
                print(f"{name} files:\n{report.format()}\n")
            return 0 if all(report.ok for _, report in reports) else 1
        result = train(cfg, run_dir, resume=args.resume, init_from=args.init_from)
    except (TrainingError, ConfigError, DataError, CheckpointError, AudioFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(summary(result))
    return 0
