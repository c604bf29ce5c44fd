"""Validation during training: held-out NLL and copy synthesis on rank 0, every train.validation_interval.

The figures themselves (``clip_nll``, ``copy_synthesis``, ``log_mel_distance`` and the cheap metrics of
``metrics.CHEAP_METRICS``: STOI, MR-STFT, V/UV F1, voiced share) are those of ``python -m waveglow.evaluate``;
this module runs them over the held-out clips with the run's settings. Held-out pairs (filelist lines
``audio|mel.npy``) are scored under their mel files: the NLL of the recording given the file's mel, and the
synthesis from the file's mel against the recording's own mel.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from waveglow.audio import MelSpectrogram
from waveglow.config import Config
from waveglow.data.datasets import AudioClipDataset
from waveglow.evaluate.report import Synthesize, clip_nll, copy_synthesis, model_synthesis, vocoder_synthesis
from waveglow.metrics import CHEAP_METRICS, MetricSuite, log_mel_distance
from waveglow.model.architectures import build_flow
from waveglow.model.loss import WaveGlowLoss
from waveglow.synth import Vocoder

QUALITY_FIELDS = ("stoi", "mrstft", "vuv_f1", "voiced_share", "voiced_share_reference")


@dataclass
class ValidationResult:
    """Held-out NLL (nats/sample, weighted by length), copy-synthesis log-mel distance, the cheap quality
    metrics of the synthesised clips (means; NaN where none could be computed), logged examples.

    ``voiced_share`` is the share of frames the pitch tracker calls voiced in the synthesis,
    ``voiced_share_reference`` the same in the recordings (a model that buzzes or whispers moves away from it).
    """

    nll: float
    log_mel_distance: float
    n_files: int
    seconds: float
    examples: list[dict[str, Any]] = field(default_factory=list)
    stoi: float = math.nan
    mrstft: float = math.nan
    vuv_f1: float = math.nan
    voiced_share: float = math.nan
    voiced_share_reference: float = math.nan
    metric_seconds: float = 0.0  # of ``seconds``, the time the quality metrics took

    def scalars(self) -> dict[str, float]:
        """What a validation logs: nll, log_mel_distance and the quality metrics."""
        return {"nll": self.nll, "log_mel_distance": self.log_mel_distance} | {
            name: getattr(self, name) for name in QUALITY_FIELDS
        }


@torch.no_grad()
def validate(
    model: torch.nn.Module, clips: AudioClipDataset, cfg: Config, device: torch.device
) -> ValidationResult:
    """NLL of every held-out clip in float32 (dequantised with data.dither, as in training); copy synthesis at
    train.validation_sigma for the first data.validation_clips clips (noise from a generator seeded with
    train.seed, so validations compare) with the fastest exact engine (``synthesis_for_validation``), scored
    with the cheap metrics on the CPU."""
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    mel_fn = MelSpectrogram(cfg.audio).to(device)
    loss_fn = WaveGlowLoss(cfg.train.sigma)
    generator = torch.Generator(device=device).manual_seed(cfg.train.seed)
    suite = MetricSuite(cfg.audio.sampling_rate, cfg.audio, CHEAP_METRICS)
    weighted = samples = 0.0
    distances, examples, scores = [], [], {name: [] for name in QUALITY_FIELDS}
    metric_seconds = 0.0
    synthesize: Synthesize | None = None  # built at the first clip that is synthesised
    for index in range(len(clips)):
        audio, path, paired = clips.clip(index)
        audio = audio.to(device)  # (T,)
        if audio.shape[0] < cfg.audio.win_length:
            continue
        length = audio.shape[0] - audio.shape[0] % cfg.model.n_group
        # clip_nll conditions on mel_fn(audio): for a pair, a stand-in that returns the file's mel
        condition = mel_fn if paired is None else _given_mel(paired.to(device))
        nll = clip_nll(model, loss_fn, condition, audio, cfg.data.dither, cfg.train.seed + index)
        weighted += nll * length
        samples += length
        if len(examples) < cfg.data.validation_clips:
            synthesize = synthesize or synthesis_for_validation(model, cfg, device)
            if paired is None:
                synth, mel, mel_synth = copy_synthesis(
                    synthesize, mel_fn, audio, cfg.train.validation_sigma, generator
                )
            else:
                synth, mel, mel_synth = _synthesis_from(
                    synthesize, mel_fn, audio, paired.to(device), cfg.train.validation_sigma, generator
                )
            distances.append(log_mel_distance(mel, mel_synth))
            example = {"name": Path(path).stem, "audio": audio.cpu(), "synthesis": synth.cpu()}
            examples.append(example | {"mel": mel.cpu(), "mel_synthesis": mel_synth.cpu()})
            metric_start = time.perf_counter()
            reference = suite.analyse(example["audio"])
            values = suite.compare(example["synthesis"], reference).values
            values["voiced_share_reference"] = suite.no_reference(reference).values.get(
                "voiced_share", math.nan
            )
            for name in QUALITY_FIELDS:
                scores[name].append(values.get(name, math.nan))
            metric_seconds += time.perf_counter() - metric_start
    model.train(was_training)
    return ValidationResult(
        nll=weighted / samples if samples else math.nan,
        log_mel_distance=float(np.mean(distances)) if distances else math.nan,
        n_files=len(clips),
        seconds=time.perf_counter() - start,
        examples=examples,
        **{name: _nanmean(values) for name, values in scores.items()},
        metric_seconds=metric_seconds,
    )


def synthesis_for_validation(model: torch.nn.Module, cfg: Config, device: torch.device) -> Synthesize:
    """The fastest exact synthesis of the model as it is now. WaveGlow: a float32 ``Vocoder`` (engine "auto":
    fast or eager, whichever this machine runs faster, timed once and cached) on a twin holding a copy of the
    weights, so the model in training is left as it is (weight norm and all; a deepcopy would share the
    weight-norm parametrization's class, which the Vocoder's folding edits); building the twin leaves the
    global random state alone. The light flow has one engine, its own reverse pass."""
    if cfg.model.architecture != "waveglow":
        return model_synthesis(model)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        twin = build_flow(cfg.model, cfg.audio)
    twin.load_state_dict(model.state_dict())
    return vocoder_synthesis(Vocoder(twin, cfg, device=device, engine="auto", precision="fp32"))


def _given_mel(mel: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A stand-in for the mel front end that returns ``mel`` (n_mel, F) as a batch of one, whatever the audio."""
    return lambda audio: mel.unsqueeze(0)  # (1, n_mel, F)


@torch.no_grad()
def _synthesis_from(
    synthesize: Synthesize,
    mel_fn: MelSpectrogram,
    audio: torch.Tensor,
    mel: torch.Tensor,
    sigma: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``copy_synthesis`` for a pair: synthesis from the file's mel (n_mel, F) -> (synthesis (T',), the
    recording's mel (n_mel, F), mel of the synthesis), so the distance says how near the recording it comes."""
    with torch.autocast(audio.device.type, enabled=False):
        synth = synthesize(mel.unsqueeze(0).float(), sigma, generator)[0].float().to(audio.device)
        synth = synth[: audio.shape[-1]]
        mel_audio = mel_fn(audio.unsqueeze(0))[0]  # (n_mel, F)
        mel_synth = mel_fn(synth.unsqueeze(0))[0]
    return synth, mel_audio, mel_synth


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan
