"""The same training in two precisions, side by side: speed and the training curve of each on identical data.

``record_batches`` draws a run's first batches once, from the configured data through the training loader
(seeded order, segments and dither: what ``train`` would see). ``replay`` then trains one copy of the
seed's initial weights per precision on exactly those batches, with the configured optimiser settings,
schedule, gradient clip and objective, through the training step itself (``train_step``); the sample loss's
noise is drawn from (seed, step), so both precisions get the same noise too. The precisions take turns in
chunks of steps, so that a busy machine slows them alike, and each step is timed (wall and CPU seconds).
``median_window_gap`` is the statistic to compare the curves by, as a regression test would.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from waveglow.audio import MelSpectrogram
from waveglow.config import TRAIN_PRECISIONS, Config
from waveglow.device import check_device, set_tf32
from waveglow.model.loss import WaveGlowLoss
from waveglow.train.distributed import DistEnv, ResumableSampler
from waveglow.train.loop import StepContext, train_step
from waveglow.train.objective import FlowObjective, SampleLoss
from waveglow.train.setup import (
    build_datasets,
    build_loader,
    build_model,
    compiled_for_training,
    learning_rate_at,
)

log = logging.getLogger(__name__)

Batch = tuple[
    torch.Tensor, torch.Tensor | None
]  # audio (B, segment_length), paired mel (B, n_mel, F) or None


def record_batches(cfg: Config, steps: int) -> list[Batch]:
    """The first ``steps`` batches a run of ``cfg`` would train on (one process), on the CPU.

    Reads ``cfg.data.training_files`` (every file is checked first, as training does) and goes through as
    many epochs as needed.
    """
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    train_set, _ = build_datasets(cfg, env)
    sampler = ResumableSampler(train_set, env, cfg.train.seed)
    loader = build_loader(train_set, sampler, cfg, env)
    batches: list[Batch] = []
    epoch = 0
    while len(batches) < steps:
        train_set.set_epoch(epoch)
        sampler.set_position(epoch, 0)
        for batch in loader:
            audio, mel = batch if isinstance(batch, (list, tuple)) else (batch, None)
            batches.append((audio, mel))
            if len(batches) == steps:
                break
        epoch += 1
    return batches


@dataclass
class PrecisionRun:
    """One variant's replay (``precision`` holds its name: ``bf16``, ``bf16+compile``, ...): per step, the NLL
    (nats per sample, as ``train/nll`` logs it), wall and CPU seconds of the step, and whether the update was
    applied."""

    precision: str
    nll: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    applied: list[bool] = field(default_factory=list)
    samples_per_step: int = 0

    def samples_per_second(self, skip: int = 0) -> float:
        """Audio samples per wall second over the steps after the first ``skip``."""
        return self.samples_per_step * len(self.wall_s[skip:]) / sum(self.wall_s[skip:])

    def samples_per_cpu_second(self, skip: int = 0) -> float:
        """Audio samples per CPU second of this process (all its threads) over the steps after ``skip``:
        with one thread, the cost of a step with less of the noise that other processes add to wall time."""
        return self.samples_per_step * len(self.cpu_s[skip:]) / sum(self.cpu_s[skip:])

    def median_step_s(self, skip: int = 0) -> float:
        return statistics.median(self.wall_s[skip:])


@dataclass
class ReplayResult:
    """The runs by precision, in the order given, over the same batches."""

    runs: dict[str, PrecisionRun]
    chunk_steps: int


def parse_variant(name: str) -> tuple[str, bool]:
    """A replay variant's name -> (training precision, compiled): ``bf16``, ``fp32+compile``, ..."""
    precision, plus, option = name.partition("+")
    if precision not in TRAIN_PRECISIONS or (plus and option != "compile"):
        raise ValueError(
            f"replay variant {name!r}: expected a precision ({', '.join(TRAIN_PRECISIONS)}), optionally "
            "followed by +compile"
        )
    return precision, bool(plus)


def replay(
    cfg: Config,
    batches: Sequence[Batch],
    precisions: Sequence[str] = ("fp32", "bf16"),
    chunk_steps: int = 10,
    device: str | torch.device = "cpu",
) -> ReplayResult:
    """Train the seed's initial weights on ``batches`` once per variant in ``precisions`` (a training
    precision, or one followed by ``+compile``: the step under torch.compile; plain names run eager whatever
    ``train.compile`` says), taking turns every ``chunk_steps`` steps (the first variant goes first in even
    chunks, last in odd ones). A compiled variant's first step includes compiling: leave it out of timings.

    Each variant has its own copy of the model, Adam and GradScaler (enabled for fp16 only). The learning
    rate follows ``cfg.train``'s schedule step by step; a step whose loss or gradient is not finite is not
    applied, as in training, and its NLL is still recorded.
    """
    dev = check_device(device, option="device")
    tcfg = cfg.train
    initial = build_model(cfg)  # seeded by train.seed
    mel_fn = MelSpectrogram(cfg.audio).to(dev)
    loss_fn = WaveGlowLoss(tcfg.sigma)
    sample_loss = SampleLoss.from_config(tcfg)
    if sample_loss is not None:
        sample_loss.to(dev)
    contexts, runs = {}, {}
    for variant in precisions:
        precision, compiled = parse_variant(variant)
        model = copy.deepcopy(initial).to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=tcfg.learning_rate)
        scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")
        objective = FlowObjective(model)
        if compiled:
            objective = compiled_for_training(objective, dev)
        contexts[variant] = StepContext(
            objective, mel_fn, loss_fn, optimizer, scaler, precision, tcfg.grad_clip_thresh, 1, sample_loss,
        )  # fmt: skip
        runs[variant] = PrecisionRun(variant)
    for chunk_start in range(0, len(batches), chunk_steps):
        order = list(precisions) if (chunk_start // chunk_steps) % 2 == 0 else list(reversed(precisions))
        for precision in order:
            set_tf32(dev, contexts[precision].precision)
            for step in range(chunk_start, min(chunk_start + chunk_steps, len(batches))):
                _timed_step(contexts[precision], runs[precision], batches[step], step, cfg, dev)
        log.info(
            "replay: step %d of %d; %s",
            min(chunk_start + chunk_steps, len(batches)), len(batches),
            ", ".join(f"{p} NLL {runs[p].nll[-1]:.4f}" for p in precisions),
        )  # fmt: skip
    return ReplayResult(runs, chunk_steps)


def _timed_step(
    ctx: StepContext, run: PrecisionRun, batch: Batch, step: int, cfg: Config, device: torch.device
) -> None:
    """One training step of ``run``'s precision on ``batch`` as step ``step`` (0-based), timed."""
    audio, mel = batch
    for group in ctx.optimizer.param_groups:
        group["lr"] = learning_rate_at(step, cfg.train)
    wall, cpu = time.perf_counter(), time.process_time()
    audio = audio.to(device)
    mel = None if mel is None else mel.to(device)
    sample_z = None
    if ctx.sample_loss is not None:
        sample_z = ctx.sample_loss.noise(audio, cfg.model.n_group, step, 0)
    result = train_step(ctx, audio, mel, sample_z)  # reads its figures back: the step has finished
    run.wall_s.append(time.perf_counter() - wall)
    run.cpu_s.append(time.process_time() - cpu)
    run.nll.append(result.terms["nll"])
    run.applied.append(result.applied)
    run.samples_per_step = audio.numel()


def window_means(values: Sequence[float], window: int = 50) -> list[float]:
    """Means of consecutive, non-overlapping windows of ``window`` values; a last partial window is dropped."""
    return [statistics.fmean(values[i : i + window]) for i in range(0, len(values) - window + 1, window)]


def median_window_gap(reference: Sequence[float], other: Sequence[float], window: int = 50) -> float:
    """Median over the windows of ``window`` steps of (mean of ``other`` - mean of ``reference``): for NLL
    curves, how much worse (> 0) ``other`` trains, in nats per sample. Needs one full window."""
    if len(reference) != len(other):
        raise ValueError(f"curves of different lengths: {len(reference)} and {len(other)} steps")
    if len(reference) < window:
        raise ValueError(f"{len(reference)} steps: fewer than one window of {window}")
    gaps = [b - a for a, b in zip(window_means(reference, window), window_means(other, window))]
    return statistics.median(gaps)
