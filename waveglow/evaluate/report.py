"""Copy-synthesis evaluation: held-out NLL, the objective metrics of ``metrics``, a Griffin-Lim baseline and the
recordings' own no-reference scores, written as report.json, report.md, metrics.png and mel plots.

Used by validation during training (``clip_nll``, ``copy_synthesis``) and by ``python -m waveglow.evaluate``.
Works for any flow ``checkpoint.load_model`` returns: it uses only ``model(audio, mel)``,
``model.model_cfg.n_group``, ``model.audio_cfg`` and, unless a ``Synthesize`` is given (``vocoder_synthesis``:
the engine and precision a ``Vocoder`` chose for this machine), ``model.infer``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from waveglow.audio import AudioFileError, MelSpectrogram, clip_problem, load_audio, save_audio
from waveglow.config import AudioConfig
from waveglow.cpu_load import LoadAwareThreads
from waveglow.evaluate.griffin_lim import griffin_lim
from waveglow.files import atomic_write, atomic_write_text
from waveglow.metrics import ALL_METRICS, HIGHER_IS_BETTER, MetricSuite, MetricValues, log_mel_distance
from waveglow.model.loss import WaveGlowLoss
from waveglow.synth import Vocoder
from waveglow.synth.inputs import draw_seeds

log = logging.getLogger(__name__)

REPORT_ORDER = ("nll", *ALL_METRICS)  # rows of report.md and panels of metrics.png
SYSTEMS = {"model": "model", "griffin_lim": "Griffin-Lim", "ground_truth": "recording"}


Synthesize = Callable[[torch.Tensor, float, "torch.Generator | None"], torch.Tensor]
"""How a model synthesises for evaluation: (mel (1, n_mel, F), sigma, generator) -> audio (1, F * hop)."""


def model_synthesis(model: torch.nn.Module) -> Synthesize:
    """The model's own reverse pass (``model.infer``, eager, float32) as a ``Synthesize``."""
    return lambda mel, sigma, generator: model.infer(mel, sigma=sigma, generator=generator)


def vocoder_synthesis(vocoder: Vocoder) -> Synthesize:
    """A ``Vocoder``'s synthesis (its engine and precision) as a ``Synthesize``: one seed per item drawn from
    the generator, z from the seed as ``Vocoder`` draws it. The mel comes from the evaluation's own front end,
    so it is not checked against the mel convention (``Vocoder.copy_synthesis`` does the same)."""

    def synthesize(mel: torch.Tensor, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
        seeds = draw_seeds(mel.shape[0], generator)
        with torch.inference_mode():
            audio = vocoder.synthesize(list(mel.to(vocoder.device)), seeds, sigma=sigma)
        return torch.stack(audio)

    return synthesize


def crop_to_group(audio: torch.Tensor, n_group: int) -> torch.Tensor:
    """audio (..., T) -> (..., T - T % n_group): the flow needs a whole number of groups."""
    return audio[..., : audio.shape[-1] - audio.shape[-1] % n_group]


@torch.no_grad()
def clip_nll(
    model: torch.nn.Module,
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
    model: torch.nn.Module | Synthesize,
    mel_fn: MelSpectrogram,
    audio: torch.Tensor,
    sigma: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """audio (T,) -> (synthesis (T',), mel (n_mel, F), mel of the synthesis (n_mel, F')), all float32.

    The model (its ``infer``, or a ``Synthesize``) synthesises from the clip's own mel (copy synthesis) with
    z ~ N(0, sigma^2).
    """
    synthesize = model_synthesis(model) if isinstance(model, torch.nn.Module) else model
    with torch.autocast(audio.device.type, enabled=False):
        mel = mel_fn(audio.unsqueeze(0))  # (1, n_mel, F)
        synth = synthesize(mel, sigma, generator)[0].float().to(audio.device)  # (F*hop,)
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
    """Summary over a filelist. ``files``/``mean``/``absent``/``baselines`` are the metrics (issue 15's shape:
    ``baselines.griffin_lim.mean``, ``baselines.ground_truth.mean``); ``nll``, ``log_mel_distance`` and
    ``clips`` (every file, bad ones with their error) are the model's figures as before."""

    checkpoint: str
    sigma: float
    nll: float  # mean over good files, weighted by their length (NaN without a model)
    log_mel_distance: float  # mean over good files
    n_files: int
    n_bad: int
    seconds_per_second: float  # synthesis wall time per second of audio
    synthesis: str = ""  # how the model synthesised: engine and precision ("" without a model)
    clips: list[ClipReport] = field(default_factory=list)
    sampling_rate: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)  # per file: metrics, absent, baselines
    mean: dict[str, float] = field(default_factory=dict)  # the model's metrics, mean over files
    absent: dict[str, str] = field(default_factory=dict)  # model metrics missing from ``mean``, and why
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"mean", "absent", ...}
    metric_cost_ms_per_second: dict[str, float] = field(default_factory=dict)  # measured in this run
    environment: dict[str, Any] = field(default_factory=dict)  # machine and package versions of this run


def evaluate_model(
    model: torch.nn.Module | None,
    paths: list[Path],
    sigma: float = 0.6,
    device: torch.device | str = "cpu",
    output_dir: str | Path | None = None,
    seed: int = 1234,
    plot_clips: int = 4,
    checkpoint: str = "",
    nll_sigma: float = 1.0,
    dither: float = 0.0,
    *,
    audio_cfg: AudioConfig | None = None,
    griffin_lim_iters: int | None = None,
    metrics: tuple[str, ...] = ALL_METRICS,
    per_file_outputs: bool = True,
    synthesize: Synthesize | None = None,
    synthesis: str = "",
    threads: LoadAwareThreads | None = None,
) -> EvaluationReport:
    """NLL, copy-synthesis metrics and baselines of ``model`` (any flow, or None for baselines only) on files.

    ``griffin_lim_iters`` adds the Griffin-Lim baseline of the same mels; the recordings' no-reference
    scores (DNSMOS, voiced share) are always the ``ground_truth`` baseline; ``log_mel_distance`` is always
    computed. With ``output_dir``: mels.png (the first ``plot_clips`` files), metrics.png, report.json and
    report.md; with ``per_file_outputs`` also <stem>.wav (synthesis; Griffin-Lim's in griffin_lim/) and
    <stem>.png (mels side by side). A bad file is reported and skipped, never fatal. The NLL is under the
    prior N(0, nll_sigma^2) with ``dither`` (see ``clip_nll``): pass the model's train.sigma and data.dither.
    ``synthesize`` is how the model synthesises (default: its own ``infer``, eager float32; ``python -m
    waveglow.evaluate`` passes ``vocoder_synthesis``), ``synthesis`` names it in the report; ``threads``, if
    given, is updated before each file (``waveglow.cpu_load``: torch's threads kept to the free cores).
    """
    if model is None and griffin_lim_iters is None:
        raise ValueError("nothing to evaluate: give a model, a Griffin-Lim baseline, or both")
    device = torch.device(device)
    audio_cfg = model.audio_cfg if model is not None else (audio_cfg or AudioConfig())
    run = _Run(
        model=model.to(device).eval() if model is not None else None,
        synthesize=synthesize or (model_synthesis(model) if model is not None else None),
        audio_cfg=audio_cfg,
        device=device,
        mel_fn=MelSpectrogram(audio_cfg).to(device),
        loss_fn=WaveGlowLoss(sigma=nll_sigma),
        generator=torch.Generator(device=device).manual_seed(seed),
        suite=MetricSuite(
            audio_cfg.sampling_rate, audio_cfg, tuple(dict.fromkeys((*metrics, "log_mel_distance")))
        ),
        sigma=sigma,
        seed=seed,
        dither=dither,
        griffin_lim_iters=griffin_lim_iters,
        out=Path(output_dir) if output_dir is not None and per_file_outputs else None,
    )
    from tqdm import tqdm

    clips: list[ClipReport] = []
    files: list[dict[str, Any]] = []
    rows = []
    for index, path in enumerate(tqdm(paths, desc="evaluating", unit="file", disable=None)):
        if threads is not None:
            threads.update()
        clip, entry, mels = _evaluate_file(run, index, path)
        clips.append(clip)
        files.append(entry)
        if mels is not None and len(rows) < plot_clips:
            rows.append((Path(path).stem, *mels))
    report = _summarise(clips, files, checkpoint, sigma, run.timing, model is not None, griffin_lim_iters)
    if model is not None:
        report.synthesis = synthesis or ("model.infer (eager, fp32)" if synthesize is None else "given")
    report.sampling_rate = audio_cfg.sampling_rate
    report.metric_cost_ms_per_second = {k: round(v, 2) for k, v in run.suite.cost_ms_per_second().items()}
    report.environment = environment()
    if output_dir is not None:
        write_report(report, Path(output_dir), rows)
    return report


@dataclass
class _Run:
    """What every file of one ``evaluate_model`` call shares."""

    model: torch.nn.Module | None
    synthesize: Synthesize | None
    audio_cfg: AudioConfig
    device: torch.device
    mel_fn: MelSpectrogram
    loss_fn: WaveGlowLoss
    generator: torch.Generator
    suite: MetricSuite
    sigma: float
    seed: int
    dither: float
    griffin_lim_iters: int | None
    out: Path | None  # where per-file wavs and plots go, if anywhere
    timing: dict[str, float] = field(default_factory=lambda: {"model": 0.0, "griffin_lim": 0.0, "audio": 0.0})


@torch.no_grad()
def _evaluate_file(run: _Run, index: int, path: Path) -> tuple[ClipReport, dict[str, Any], tuple | None]:
    """One file -> (its ClipReport, its entry of report.json's ``files``, (mel, mel of the synthesis) on the
    CPU for the plots, or None for a bad file)."""
    cfg = run.audio_cfg
    try:
        samples, _ = load_audio(path, cfg.sampling_rate)
    except AudioFileError as exc:
        log.warning("skipping %s", exc)
        reason = str(exc).removeprefix(f"{path}: ")  # the report names the path once, beside the reason
        return (
            ClipReport(str(path), 0.0, error=reason),
            {"path": str(path), "seconds": 0.0, "error": reason},
            None,
        )
    seconds = samples.shape[0] / cfg.sampling_rate
    # the data check's rule (silent or shorter than one window): such a clip never enters the means
    problem = clip_problem(float(np.abs(samples).max()), samples.shape[0], cfg)
    if problem is None and samples.shape[0] <= cfg.filter_length:
        problem = (
            f"too short ({samples.shape[0]} samples; the mel front end needs more than {cfg.filter_length})"
        )
    if problem:
        log.warning("skipping %s: %s", path, problem)
        return (
            ClipReport(str(path), seconds, error=problem),
            {"path": str(path), "seconds": seconds, "error": problem},
            None,
        )
    run.timing["audio"] += seconds
    clip = ClipReport(path=str(path), seconds=seconds)
    entry: dict[str, Any] = {"path": str(path), "seconds": seconds}
    audio = torch.from_numpy(samples).to(run.device)
    reference = run.suite.analyse(samples)
    stem = Path(path).stem
    with torch.autocast(run.device.type, enabled=False):
        mel = run.mel_fn(audio.unsqueeze(0))[0]  # (n_mel, F)
    plotted = None
    if run.model is not None:
        clip.nll = clip_nll(run.model, run.loss_fn, run.mel_fn, audio, run.dither, run.seed + index)
        start = time.perf_counter()
        synth, mel, plotted = copy_synthesis(run.synthesize, run.mel_fn, audio, run.sigma, run.generator)
        run.timing["model"] += time.perf_counter() - start
        clip.log_mel_distance = log_mel_distance(mel, plotted)
        values = run.suite.compare(synth, reference)
        values.values.update(nll=clip.nll, log_mel_distance=clip.log_mel_distance)
        entry |= _as_dict(values)
        if run.out is not None:
            save_audio(run.out / f"{stem}.wav", synth, cfg.sampling_rate)
            clip.synthesis = entry["synthesis"] = str(run.out / f"{stem}.wav")
    entry["baselines"] = {"ground_truth": _as_dict(run.suite.no_reference(reference))}
    if run.griffin_lim_iters is not None:
        start = time.perf_counter()
        baseline = griffin_lim(
            mel, cfg, run.griffin_lim_iters, length=samples.shape[0], seed=run.seed + index
        )
        run.timing["griffin_lim"] += time.perf_counter() - start
        values = run.suite.compare(baseline, reference)
        values.absent["nll"] = "Griffin-Lim has no likelihood"
        entry["baselines"]["griffin_lim"] = _as_dict(values)
        if plotted is None:
            plotted = run.mel_fn(torch.from_numpy(baseline).to(run.device).unsqueeze(0))[0]
        if run.out is not None:
            save_audio(run.out / "griffin_lim" / f"{stem}.wav", torch.from_numpy(baseline), cfg.sampling_rate)
    if run.out is not None:
        save_figure(mel_figure([(stem, mel, plotted)]), run.out / f"{stem}.png")
    return clip, entry, (mel.cpu(), plotted.cpu())


def _as_dict(values: MetricValues) -> dict[str, Any]:
    return {"metrics": values.values, "absent": values.absent}


def _grouped_notes(notes: dict[tuple[str, str], str]) -> list[str]:
    """One markdown bullet per distinct reason, naming every (system, metric) it applies to."""
    by_reason: dict[str, dict[str, list[str]]] = {}
    for (system, metric), reason in notes.items():
        by_reason.setdefault(reason, {}).setdefault(system, []).append(metric)
    lines = []
    for reason, systems in by_reason.items():
        metric_sets = {tuple(m) for m in systems.values()}
        if len(metric_sets) == 1:
            who = f"{', '.join(systems)}: {', '.join(metric_sets.pop())}"
        else:
            who = "; ".join(f"{system}: {', '.join(m)}" for system, m in systems.items())
        lines.append(f"- {who}: {reason}")
    return lines


def mean_metrics(
    entries: list[dict[str, Any]], weights: list[float]
) -> tuple[dict[str, float], dict[str, str]]:
    """Means over per-file {"metrics", "absent"} dicts: the NLL weighted by ``weights`` (clip lengths), the
    others plain; a metric missing in some files is averaged over the rest, noted in the second dict."""
    means, absent = {}, {}
    names = [n for n in REPORT_ORDER if any(n in e["metrics"] or n in e["absent"] for e in entries)]
    for name in names:
        have = [(e["metrics"][name], w) for e, w in zip(entries, weights) if name in e["metrics"]]
        reasons = Counter(e["absent"][name] for e in entries if name in e["absent"])
        why = "; ".join(f"{r} ({n} file{'s' * (n > 1)})" if n > 1 else r for r, n in sorted(reasons.items()))
        if have:
            values, counts = zip(*have)
            weight = counts if name == "nll" else [1.0] * len(values)
            means[name] = float(np.average(values, weights=weight))
            if reasons:
                absent[name] = f"mean over {len(have)} of {len(entries)} files; others: {why}"
        else:  # absent in every file: the reasons alone (a count only when they differ)
            absent[name] = why if len(reasons) > 1 else next(iter(reasons))
    return means, absent


def _summarise(
    clips: list[ClipReport],
    files: list[dict[str, Any]],
    checkpoint: str,
    sigma: float,
    timing: dict[str, float],
    has_model: bool,
    griffin_lim_iters: int | None,
) -> EvaluationReport:
    good = [f for f in files if "error" not in f]
    weights = [f["seconds"] for f in good]
    report = EvaluationReport(
        checkpoint=checkpoint,
        sigma=sigma,
        nll=math.nan,
        log_mel_distance=math.nan,
        n_files=len(good),
        n_bad=len(files) - len(good),
        seconds_per_second=timing["model"] / max(timing["audio"], 1e-9),
        clips=clips,
        files=files,
    )
    if has_model:
        report.mean, report.absent = mean_metrics(good, weights)
        report.nll = report.mean.get("nll", math.nan)
        report.log_mel_distance = report.mean.get("log_mel_distance", math.nan)
    else:
        report.absent = {"all": "no checkpoint given: the baselines alone were evaluated"}
    truth = [f["baselines"]["ground_truth"] for f in good]
    mean, absent = mean_metrics(truth, weights)
    report.baselines["ground_truth"] = {"mean": mean, "absent": absent}
    if griffin_lim_iters is not None:
        mean, absent = mean_metrics([f["baselines"]["griffin_lim"] for f in good], weights)
        report.baselines["griffin_lim"] = {
            "mean": mean,
            "absent": absent,
            "iterations": griffin_lim_iters,
            "seconds_per_second": timing["griffin_lim"] / max(timing["audio"], 1e-9),
        }
    return report


def environment() -> dict[str, Any]:
    """Where the figures (and the metric costs) were measured: CPU, threads, load, metric package versions."""
    import datetime
    import os
    import platform
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu
            )
    except OSError:
        pass
    versions = {}
    for package in ("torch", "librosa", "pesq", "pystoi", "speechmos", "onnxruntime"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def write_report(report: EvaluationReport, out: Path, rows: list | None = None) -> None:
    """report.json (NaN written as null), report.md, metrics.png and, given mel ``rows``, mels.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    if rows:
        save_figure(mel_figure(rows), out / "mels.png")
    atomic_write_text(out / "report.json", json.dumps(_finite_or_none(asdict(report)), indent=2))
    atomic_write_text(out / "report.md", markdown_table(report))
    save_figure(metrics_figure(report), out / "metrics.png")


def _systems(report: EvaluationReport) -> dict[str, dict[str, float]]:
    systems = {"model": report.mean} if report.mean else {}
    for name in ("griffin_lim", "ground_truth"):
        if name in report.baselines:
            systems[name] = report.baselines[name]["mean"]
    return systems


def markdown_table(report: EvaluationReport) -> str:
    """The means as a markdown table (metric rows; model, Griffin-Lim and recording columns) with the reasons
    for missing figures and the measured cost of each metric."""
    systems = _systems(report)
    gl = report.baselines.get("griffin_lim", {})
    lines = [
        f"# Evaluation: {report.checkpoint or 'no model (baselines only)'}",
        "",
        f"{report.n_files} files ({report.n_bad} bad) at {report.sampling_rate} Hz"
        + (
            f"; model sigma {report.sigma}, {report.seconds_per_second:.2f} s per second of audio"
            + (f" ({report.synthesis})" if report.synthesis else "")
            if report.mean
            else ""
        )
        + (
            f"; Griffin-Lim {gl['iterations']} iterations, {gl['seconds_per_second']:.2f} s per second"
            if gl
            else ""
        )
        + ". Copy synthesis: every system inverts the recording's own mel.",
        "",
        "| metric | better | " + " | ".join(SYSTEMS[name] for name in systems) + " |",
        "|---|---|" + "---:|" * len(systems),
    ]
    for metric in REPORT_ORDER:
        if not any(metric in means for means in systems.values()):
            continue
        cells = [_number(means.get(metric)) for means in systems.values()]
        lines.append(f"| {metric} | {_better(metric)} | " + " | ".join(cells) + " |")
    notes = {(SYSTEMS["model"], k): v for k, v in report.absent.items()}
    for name in ("griffin_lim", "ground_truth"):
        for metric, reason in report.baselines.get(name, {}).get("absent", {}).items():
            notes[(SYSTEMS[name], metric)] = reason
    if notes:
        lines += ["", "Missing or partial figures:", ""] + _grouped_notes(notes)
    if report.metric_cost_ms_per_second:
        cost = ", ".join(f"{k} {v:.1f}" for k, v in report.metric_cost_ms_per_second.items())
        where = report.environment
        machine = f" ({where['cpu']}, {where['torch_threads']} thread(s))" if where else ""
        lines += ["", f"Cost of each metric in this run{machine}, ms per second of scored audio: {cost}."]
    return "\n".join(lines) + "\n"


def _better(metric: str) -> str:
    if metric == "voiced_share":
        return "closest to the recording"
    return "higher" if metric in HIGHER_IS_BETTER else "lower"


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def metrics_figure(report: EvaluationReport) -> Any:
    """A matplotlib Figure: one bar panel per metric, a bar per system (model, Griffin-Lim, recording)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    systems = _systems(report)
    metrics = [m for m in REPORT_ORDER if any(m in means for means in systems.values())]
    columns = 4
    rows = max(1, math.ceil(len(metrics) / columns))
    fig = Figure(figsize=(3.2 * columns, 2.4 * rows))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.06, top=0.93, wspace=0.35, hspace=0.5)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        shown = [(SYSTEMS[name], means[metric]) for name, means in systems.items() if metric in means]
        labels, values = zip(*shown)
        colours = [f"C{list(SYSTEMS.values()).index(label)}" for label in labels]
        bars = ax.bar(labels, values, color=colours)
        ax.bar_label(bars, labels=[_number(v) for v in values], fontsize=7)
        ax.margins(y=0.18)  # room for the labels
        ax.set_title(f"{metric} ({_better(metric)})", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    return fig
