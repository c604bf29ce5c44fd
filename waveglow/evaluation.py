"""Copy-synthesis quality: held-out NLL, the log-mel distance, and mel plots of synthesis vs ground truth.

Used by validation during training and by ``python -m waveglow.evaluate --checkpoint CKPT FILELIST``.
``log_mel_distance`` is the one metric function, so inference code can reuse it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .audio import AudioFileError, MelSpectrogram, load_audio, save_audio
from .files import atomic_write, atomic_write_text
from .loss import WaveGlowLoss
from .model import WaveGlow
from .nvidia import add_audio_override_args, audio_overrides

log = logging.getLogger(__name__)


def log_mel_distance(mel: torch.Tensor, mel_synth: torch.Tensor) -> float:
    """Mean absolute difference of two log-mels (n_mel, F) or (B, n_mel, F), over all bins (0..fmax).

    Our filterbank spans mel_fmin..mel_fmax, so every bin is inside the band. Frames are cut to the shorter
    of the two. In nats of log-magnitude (0 = identical).
    """
    if mel.shape[-2] != mel_synth.shape[-2]:
        raise ValueError(f"mel bins differ: {tuple(mel.shape)} vs {tuple(mel_synth.shape)}")
    frames = min(mel.shape[-1], mel_synth.shape[-1])
    diff = mel[..., :frames].float() - mel_synth[..., :frames].float()
    return diff.abs().mean().item()


def crop_to_group(audio: torch.Tensor, n_group: int) -> torch.Tensor:
    """audio (..., T) -> (..., T - T % n_group): the flow needs a whole number of groups."""
    return audio[..., : audio.shape[-1] - audio.shape[-1] % n_group]


@torch.no_grad()
def clip_nll(
    model: WaveGlow,
    loss_fn: WaveGlowLoss,
    mel_fn: MelSpectrogram,
    audio: torch.Tensor,
    dither: float = 0.0,
    seed: int = 0,
) -> float:
    """Exact NLL (nats per sample, with the Gaussian constant) of one clip audio (T,) under its own mel.

    ``dither`` (in 16-bit steps, peak to peak) adds the same uniform dequantisation noise as training's
    ``data.dither``, from a generator seeded with ``seed``: without it, runs of exact digital silence get an
    unbounded density and dominate the figure. The mel is computed from the clean audio.
    """
    audio = crop_to_group(audio, model.model_cfg.n_group).unsqueeze(0)  # (1, T)
    with torch.autocast(audio.device.type, enabled=False):
        mel = mel_fn(audio)  # (1, n_mel, F)
        if dither > 0:
            generator = torch.Generator().manual_seed(seed)
            noise = (torch.rand(audio.shape, generator=generator) - 0.5) * (dither / 32768)
            audio = audio + noise.to(audio.device, audio.dtype)
        return loss_fn(model(audio, mel)).item()


@torch.no_grad()
def copy_synthesis(
    model: WaveGlow,
    mel_fn: MelSpectrogram,
    audio: torch.Tensor,
    sigma: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """audio (T,) -> (synthesis (T',), mel (n_mel, F), mel of the synthesis (n_mel, F')), all float32.

    The model synthesises from the clip's own mel (copy synthesis) with z ~ N(0, sigma^2).
    """
    with torch.autocast(audio.device.type, enabled=False):
        mel = mel_fn(audio.unsqueeze(0))  # (1, n_mel, F)
        synth = model.infer(mel, sigma=sigma, generator=generator)[0].float()  # (F*hop,)
        synth = synth[: audio.shape[-1]]
        mel_synth = mel_fn(synth.unsqueeze(0))  # (1, n_mel, F)
    return synth, mel[0], mel_synth[0]


def mel_figure(rows: list[tuple[str, torch.Tensor, torch.Tensor]], vmin: float = math.log(1e-5)) -> Any:
    """A matplotlib Figure: one row per clip, ground-truth mel left, synthesis mel right (same colour scale).

    rows: (title, mel (n_mel, F), mel of the synthesis (n_mel, F')).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 2.6 * max(1, len(rows))), layout="constrained")
    axes = fig.subplots(max(1, len(rows)), 2, squeeze=False)
    for (title, mel, mel_synth), (ax_true, ax_synth) in zip(rows, axes):
        vmax = float(mel.max())
        for ax, image, label in ((ax_true, mel, "ground truth"), (ax_synth, mel_synth, "synthesis")):
            shown = ax.imshow(
                image.float().cpu().numpy(), origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma"
            )
            ax.set_title(f"{title}: {label}", fontsize=9)
            ax.set_xlabel("frame")
            ax.set_ylabel("mel bin")
        fig.colorbar(shown, ax=ax_synth, label="log mel")
    return fig


def save_figure(fig: Any, path: str | Path) -> None:
    """Write a matplotlib Figure as PNG atomically (temporary file, then rename)."""
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=90))


@dataclass
class ClipReport:
    """Figures for one evaluated file (NLL in nats per sample, distance in log-mel units)."""

    path: str
    seconds: float
    nll: float | None = None
    log_mel_distance: float | None = None
    synthesis: str | None = None
    error: str | None = None


@dataclass
class EvaluationReport:
    """Summary over a filelist; ``clips`` lists every file, bad ones with their error."""

    checkpoint: str
    sigma: float
    nll: float  # mean over good files, weighted by their length
    log_mel_distance: float  # mean over good files
    n_files: int
    n_bad: int
    seconds_per_second: float  # synthesis wall time per second of audio
    clips: list[ClipReport] = field(default_factory=list)


def evaluate_model(
    model: WaveGlow,
    paths: list[Path],
    sigma: float = 0.6,
    device: torch.device | str = "cpu",
    output_dir: str | Path | None = None,
    seed: int = 1234,
    plot_clips: int = 4,
    checkpoint: str = "",
    nll_sigma: float = 1.0,
    dither: float = 0.0,
) -> EvaluationReport:
    """NLL and copy-synthesis log-mel distance of ``model`` on audio files.

    With ``output_dir``: writes <stem>.wav (synthesis), <stem>.png (mels side by side) per file, mels.png
    (the first ``plot_clips`` files) and report.json. A bad file is reported and skipped, never fatal.
    The NLL is under the prior N(0, nll_sigma^2) with ``dither`` (see ``clip_nll``): pass the model's
    train.sigma and data.dither.
    """
    device = torch.device(device)
    audio_cfg = model.audio_cfg
    model = model.to(device).eval()
    mel_fn = MelSpectrogram(audio_cfg).to(device)
    loss_fn = WaveGlowLoss(sigma=nll_sigma)
    generator = torch.Generator(device=device).manual_seed(seed)
    out = Path(output_dir) if output_dir is not None else None
    clips: list[ClipReport] = []
    rows = []
    synth_seconds = audio_seconds = 0.0
    for index, path in enumerate(paths):
        try:
            samples, _ = load_audio(path, audio_cfg.sampling_rate)
        except AudioFileError as exc:
            log.warning("skipping %s", exc)
            clips.append(ClipReport(path=str(path), seconds=0.0, error=str(exc)))
            continue
        audio = torch.from_numpy(samples).to(device)
        if audio.shape[0] <= audio_cfg.filter_length:
            clips.append(ClipReport(str(path), audio.shape[0] / audio_cfg.sampling_rate, error="too short"))
            continue
        report = ClipReport(path=str(path), seconds=audio.shape[0] / audio_cfg.sampling_rate)
        report.nll = clip_nll(model, loss_fn, mel_fn, audio, dither, seed + index)
        start = time.perf_counter()
        synth, mel, mel_synth = copy_synthesis(model, mel_fn, audio, sigma, generator)
        synth_seconds += time.perf_counter() - start
        audio_seconds += report.seconds
        report.log_mel_distance = log_mel_distance(mel, mel_synth)
        if out is not None:
            stem = Path(path).stem
            save_audio(out / f"{stem}.wav", synth, audio_cfg.sampling_rate)
            report.synthesis = str(out / f"{stem}.wav")
            save_figure(mel_figure([(stem, mel, mel_synth)]), out / f"{stem}.png")
            if len(rows) < plot_clips:
                rows.append((stem, mel.cpu(), mel_synth.cpu()))
        clips.append(report)
    return _summarise(clips, rows, out, checkpoint, sigma, synth_seconds / max(audio_seconds, 1e-9))


def _summarise(
    clips: list[ClipReport], rows: list, out: Path | None, checkpoint: str, sigma: float, rtf: float
) -> EvaluationReport:
    good = [c for c in clips if c.error is None]
    total = sum(c.seconds for c in good)
    report = EvaluationReport(
        checkpoint=checkpoint,
        sigma=sigma,
        nll=sum(c.nll * c.seconds for c in good) / total if good else math.nan,
        log_mel_distance=sum(c.log_mel_distance for c in good) / len(good) if good else math.nan,
        n_files=len(good),
        n_bad=len(clips) - len(good),
        seconds_per_second=rtf,
        clips=clips,
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if rows:
            save_figure(mel_figure(rows), out / "mels.png")
        atomic_write_text(out / "report.json", json.dumps(asdict(report), indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m waveglow.evaluate --checkpoint CKPT FILELIST [--output DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m waveglow.evaluate",
        description="Copy-synthesis evaluation of a checkpoint: held-out NLL and log-mel distance per file.",
    )
    parser.add_argument("--checkpoint", required=True, help="our checkpoint or a published NVIDIA file")
    parser.add_argument("files", help="filelist, LJSpeech folder (its test split) or directory of audio")
    parser.add_argument("--output", default=None, help="write synthesis wavs, mel PNGs and report.json here")
    parser.add_argument("--data-root", default="", help="resolve relative filelist paths against this")
    parser.add_argument("--sigma", type=float, default=0.6, help="std of z at synthesis (default 0.6)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--max-files", type=int, default=0, help="evaluate only the first N files (0: all)")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the synthesis noise")
    add_audio_override_args(parser, "; published NVIDIA files only, which do not store it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    from .checkpoint import load_model
    from .filelists import resolve_files

    model, cfg = load_model(args.checkpoint, **audio_overrides(args))
    if model.has_weight_norm:
        model.remove_weight_norm()  # same outputs, faster synthesis
    paths = resolve_files(args.files, data_root=args.data_root, split="test")
    if args.max_files > 0:
        paths = paths[: args.max_files]
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    report = evaluate_model(
        model,
        paths,
        args.sigma,
        device,
        args.output,
        seed=args.seed,
        checkpoint=args.checkpoint,
        nll_sigma=cfg.train.sigma,
        dither=cfg.data.dither,
    )
    print(
        f"{report.n_files} file{'s' if report.n_files != 1 else ''} ({report.n_bad} bad): held-out NLL {report.nll:.4f} nats/sample, "
        f"copy-synthesis log-mel distance {report.log_mel_distance:.3f} (sigma {args.sigma}), "
        f"synthesis {report.seconds_per_second:.2f} s per second of audio on {device}"
    )
    for clip in report.clips:
        if clip.error:
            print(f"  bad: {clip.path}: {clip.error}")
    if args.output:
        print(
            f"synthesised audio and mel plots (ground truth | synthesis) in {args.output}/, report.json there"
        )
    return 0 if report.n_files else 1
