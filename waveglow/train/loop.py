"""Training by exact maximum likelihood: one CPU, one GPU, or many GPUs/machines through torchrun + DDP.

The run is split into build (``distributed``: process group and device; ``setup``: model, data,
run dir), step and loop (here), validate (``validation``), log (``log``) and save (``state``); train.py
holds the command line. Randomness is derived, never hidden: the model's
initialisation from ``train.seed``, the data order from (seed, epoch) through a DistributedSampler, each
segment from (seed, epoch, clip index) in the dataset. A checkpoint stores the epoch and the batches already
consumed in it, so a resumed run sees the same batches as an uninterrupted one.

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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from waveglow.audio import MelSpectrogram
from waveglow.checkpoints import atomic_save
from waveglow.config import Config
from waveglow.device import autocast, set_tf32
from waveglow.interrupts import STOP_SIGNALS, StopSignals
from waveglow.model.loss import WaveGlowLoss
from waveglow.train.distributed import (
    DistEnv,
    ResumableSampler,
    peer_failure,
    restart_count,
    setup_distributed,
)
from waveglow.train.errors import TrainingError
from waveglow.train.log import METRICS_FILE, DataWaitMeter, RunLogger, read_metrics
from waveglow.train.objective import FlowObjective, SampleLoss
from waveglow.train.setup import (
    build_datasets,
    build_loader,
    build_model,
    compiled_for_training,
    learning_rate_at,
    prepare_run_dir,
)
from waveglow.train.state import (
    RunDirLock,
    TrainState,
    checkpoint_files,
    restore,
    save_checkpoint,
    training_payload,
)
from waveglow.train.validation import validate

log = logging.getLogger(__name__)
STOP_SIGNAL_NAMES = tuple(signum.name for signum in STOP_SIGNALS)  # TrainResult.stopped_by after a signal

# ------------------------------------------------------------------------------------------------- step


@dataclass
class StepResult:
    """One optimiser step: loss terms averaged over ranks, the gradient norm, whether it was applied."""

    terms: dict[str, float]
    grad_norm: float
    applied: bool
    loss_finite: bool
    stop_requested: bool


@dataclass
class StepContext:
    """What every training step uses and no step changes: the model (a ``FlowObjective``, or DDP of one),
    the mel front end, the loss, the optimizer and its scaler, the precision, the gradient clip (0: none),
    the number of processes, and the sample loss (None: the published objective, the NLL alone)."""

    model: torch.nn.Module
    mel_fn: MelSpectrogram
    loss_fn: WaveGlowLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    precision: str = "fp32"
    grad_clip: float = 0.0
    world_size: int = 1
    sample_loss: SampleLoss | None = None


def train_step(
    ctx: StepContext,
    audio: torch.Tensor,
    mel: torch.Tensor | None = None,
    sample_z: torch.Tensor | None = None,
    stop: bool = False,
) -> StepResult:
    """Forward, backward, clip, and update unless the loss or gradient norm is non-finite on any rank.

    audio (B, segment_length) on the training device; mel (B, n_mel, 1 + segment_length // hop_length): a
    paired dataset's mels, else computed here with ``ctx.mel_fn`` (the same front end as at inference).
    With ``ctx.sample_loss`` and its noise ``sample_z`` (B, n_group, T // n_group) the loss adds the
    weighted MR-STFT distance of the synthesis from z. ``stop`` is this rank's wish to stop; any rank's wish
    is returned to all.
    """
    model, loss_fn, optimizer, scaler = ctx.model, ctx.loss_fn, ctx.optimizer, ctx.scaler
    sample_loss, world_size = ctx.sample_loss, ctx.world_size
    if mel is None:
        with torch.no_grad():
            mel = ctx.mel_fn(audio)  # (B, n_mel, 1 + segment_length // hop_length), float32
    with autocast(audio.device, ctx.precision):
        out, synthesis = model(audio, mel, sample_z if sample_loss is not None else None)
    terms = loss_fn.terms(out)
    loss, extra = terms.nll, []
    if sample_loss is not None and synthesis is not None:
        distance = sample_loss(synthesis, audio)
        loss = loss + sample_loss.weight * distance.total
        extra = [distance.spectral_convergence, distance.log_magnitude, loss]
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    max_norm = ctx.grad_clip if ctx.grad_clip > 0 else math.inf
    grad_norm_t = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    stats = torch.stack(
        [terms.nll, terms.nll_no_const, terms.z_term, terms.log_det_s, terms.log_det_w, *extra]
    )
    stats = stats.detach().float()
    nonfinite = (~torch.isfinite(stats).all()).float().reshape(1)
    stop_flag = torch.full((1,), float(stop), device=stats.device)
    packed = torch.cat([stats, nonfinite, stop_flag])
    if world_size > 1:
        dist.all_reduce(packed)  # sums: mean loss terms, any rank's non-finite loss or stop wish
    # one read-back from the device per step: the reduced figures and this rank's gradient norm
    *sums, nonfinite_ranks, stop_ranks, grad_norm = torch.cat(
        [packed, grad_norm_t.detach().float().reshape(1).to(packed.device)]
    ).tolist()
    values = [total / world_size for total in sums]
    loss_finite, stop_requested = nonfinite_ranks == 0, stop_ranks > 0
    applied = loss_finite and math.isfinite(grad_norm)
    if applied:
        scaler.step(optimizer)
    scaler.update()  # fp16: shrinks the scale after an overflow; no-op otherwise
    names = ("nll", "nll_no_const", "z_term", "log_det_s", "log_det_w")
    names += ("stft_sc", "stft_log_mag", "loss") if extra else ()
    return StepResult(dict(zip(names, values)), grad_norm, applied, loss_finite, stop_requested)


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
    """Train ``cfg`` in ``run_dir``; under torchrun every process calls this (only rank 0 writes).

    After a torchrun restart (a worker of this job failed and torchrun started the group again: some
    rank's TORCHELASTIC_RESTART_COUNT > 0) the run resumes from the newest checkpoint in ``run_dir``, as
    with ``resume``.
    A collective that waits longer than train.collective_timeout_s for a peer, or loses it, raises a
    TrainingError that says so.
    """
    cfg.validate()
    timeout_s = cfg.train.collective_timeout_s
    env = setup_distributed(cfg.train.device, timeout_s)
    try:
        restarts = restart_count(env)  # the ranks agree on it (a collective)
        if restarts > 0 and not resume:
            log.warning("torchrun restart %d: resuming from the newest checkpoint in %s", restarts, run_dir)
            resume = True
        # rank 0 holds the run directory's lock: a second training started on it refuses (TrainingError)
        with RunDirLock(Path(run_dir)) if env.is_main else contextlib.nullcontext():
            return Trainer(cfg, Path(run_dir), env, resume, init_from).run()
    except RuntimeError as exc:
        failure = peer_failure(exc, env, timeout_s)
        if failure is None:
            raise
        raise failure from exc
    finally:
        if env.initialised_here:
            dist.destroy_process_group()


class Trainer:
    """The pieces of one run and the loop over them; see ``train``."""

    def __init__(self, cfg: Config, run_dir: Path, env: DistEnv, resume: bool, init_from: str | Path | None):
        self.cfg, self.run_dir, self.env = cfg, run_dir, env
        set_tf32(env.device, cfg.train.precision)
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
        objective = FlowObjective(self.model)
        self.ddp = (
            DistributedDataParallel(
                objective, device_ids=[env.device.index] if env.device.type == "cuda" else None
            )
            if env.distributed
            else objective
        )
        if cfg.train.compile:
            self.ddp = compiled_for_training(self.ddp, env.device)
        self.sample_loss = SampleLoss.from_config(cfg.train)
        if self.sample_loss is not None:
            self.sample_loss.to(env.device)
        self.mel_fn = MelSpectrogram(cfg.audio).to(env.device)
        self.loss_fn = WaveGlowLoss(cfg.train.sigma)
        self.step_context = StepContext(
            self.ddp,
            self.mel_fn,
            self.loss_fn,
            self.optimizer,
            self.scaler,
            cfg.train.precision,
            cfg.train.grad_clip_thresh,
            env.world_size,
            self.sample_loss,
        )
        self.logger = RunLogger(run_dir, env.is_main, self.state.step, cfg.train.max_steps)
        self.saved_step = self.validated_step = self.state.step if checkpoint else -1
        self.samples_per_second = 0.0
        self.data_wait = DataWaitMeter()  # seconds waiting for batches vs in steps, per logged interval
        self.data_wait_share: float | None = None  # of the last logged interval, for the progress bar
        self.start_time = time.monotonic()
        self.last_step_end = time.perf_counter()  # samples/s counts data loading too

    def run(self) -> TrainResult:
        """Train until max_steps, max_minutes or epochs; validate and checkpoint at the end.

        SIGINT (Ctrl-C) or SIGTERM stops the run after the current step (every rank at the same one), then
        writes a checkpoint without the final validation; the result's ``stopped_by`` names the signal.
        """
        self.stop_signals = StopSignals("stopping after this step, then writing a checkpoint")
        try:
            with self.stop_signals:
                if self.state.step == 0 and self.cfg.train.validate_at_start and self.validated_step < 0:
                    self.validate_and_log()
                reason = None
                while reason is None:
                    reason = self.run_epoch()
            if reason == "max_minutes" and self.stop_signals.received:
                reason = self.stop_signals.received
            if self.validated_step != self.state.step and reason not in STOP_SIGNAL_NAMES:
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
        for batch in self.data_wait.batches(self.loader):
            with self.data_wait.step():
                result = self.step(batch)
            reason = self.after_step(result)
            if reason:
                return reason
        state.epoch += 1
        state.batch_in_epoch = 0
        return None

    def step(self, batch: torch.Tensor | list[torch.Tensor]) -> StepResult:
        """One batch (audio, or [audio, mel] from a paired dataset): set the learning rate, take the step,
        count it (or the skip)."""
        audio, mel = batch if isinstance(batch, (list, tuple)) else (batch, None)
        tcfg, state = self.cfg.train, self.state
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate_at(state.step, tcfg)
        time_up = tcfg.max_minutes > 0 and time.monotonic() - self.start_time >= tcfg.max_minutes * 60
        time_up = time_up or self.stop_signals.received is not None  # Ctrl-C/SIGTERM: every rank stops here
        audio = audio.to(self.env.device, non_blocking=True)
        mel = None if mel is None else mel.to(self.env.device, non_blocking=True)
        sample_z = None
        if self.sample_loss is not None:
            sample_z = self.sample_loss.noise(audio, self.cfg.model.n_group, state.step, self.env.rank)
        result = train_step(self.step_context, audio, mel, sample_z, stop=time_up)
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
        self.logger.step(step, result.terms["nll"], self.samples_per_second, self.data_wait_share)
        if result.applied and step % tcfg.log_interval == 0:
            extra = {"grad_norm": result.grad_norm, "learning_rate": self.optimizer.param_groups[0]["lr"]}
            waits = self.data_wait.take()  # data_wait_s, step_s, data_wait_share since the last log
            self.data_wait_share = waits["data_wait_share"]
            extra |= waits | {
                "samples_per_second": self.samples_per_second,
                "skipped_steps": self.state.skipped_steps,
                # CPU seconds of this process since it started (all its threads): a run's cost in CPU
                # hours is the sum over its resumed segments
                "process_cpu_seconds": time.process_time(),
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
            self.logger.validation(self.state.step, res, self.cfg.audio.sampling_rate)
            log.info(
                "step %d: held-out NLL %.4f nats/sample, copy synthesis: log-mel distance %.3f, STOI %.3f, "
                "V/UV F1 %.3f, voiced share %.2f (%d files, sigma %.2f, %.1f s)",
                self.state.step, res.nll, res.log_mel_distance, res.stoi, res.vuv_f1, res.voiced_share,
                res.n_files, self.cfg.train.validation_sigma, res.seconds,
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
