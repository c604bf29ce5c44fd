"""The data check: read every file once and sort the usable from the bad, with the reason for each.

:func:`check_files` returns a :class:`DataReport`;
:func:`usable_files` is the check a training run does before it starts.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from waveglow.audio import clip_problem
from waveglow.config import AudioConfig
from waveglow.filelists import DataError

log = logging.getLogger(__name__)


class _BadFile(Exception):
    """Internal: why one file fails the data check (the reason, without the path)."""


@dataclass
class DataReport:
    """The result of :func:`check_files`.

    good: usable files (short clips included; they are listed in ``warnings`` too).
    bad: (path, reason) for missing, empty, unreadable, NaN/inf-containing, silent and too-short files.
    warnings: (path, note) for usable files worth knowing about (shorter than a segment, clipped).
    hours: total duration of the good files. sample_rates: Counter of the files' native rates.
    """

    good: list[Path] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[tuple[Path, str]] = field(default_factory=list)
    hours: float = 0.0
    sample_rates: Counter = field(default_factory=Counter)
    target_rate: int = 0
    digital_silence: int = 0  # good files holding a run of >= 8 exact zeros (see AudioSegmentDataset dither)

    @property
    def ok(self) -> bool:
        """True when no file is bad."""
        return not self.bad

    def format(self, max_listed: int | None = 50) -> str:
        """A multi-line report: totals, rates, then every bad file and warning (up to ``max_listed`` each;
        None: all of them)."""
        total = len(self.good) + len(self.bad)
        rates = ", ".join(f"{rate} Hz: {n}" for rate, n in sorted(self.sample_rates.items())) or "none"
        lines = [
            f"{total} files checked: {len(self.good)} good, {len(self.bad)} bad, {len(self.warnings)} warnings",
            f"{self.hours:.3f} hours of good audio",
            f"sample rates: {rates}",
        ]
        resampled = sum(n for rate, n in self.sample_rates.items() if rate != self.target_rate)
        if self.target_rate and resampled:
            lines.append(f"{resampled} files will be resampled to {self.target_rate} Hz")
        if self.digital_silence:
            lines.append(
                f"{self.digital_silence} files hold digital silence (runs of >= 8 exact zeros; "
                "keep data.dither > 0)"
            )
        if self.bad:
            reasons = Counter(reason.split(" (", 1)[0].split(":", 1)[0] for _, reason in self.bad)
            lines.append("bad files (" + ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) + "):")
            lines += [f"  {path}: {reason}" for path, reason in self.bad[:max_listed]]
            if max_listed is not None and len(self.bad) > max_listed:
                lines.append(
                    f"  ... and {len(self.bad) - max_listed} more (train.py --check-data lists them all)"
                )
        if self.warnings:
            lines.append("warnings:")
            lines += [f"  {path}: {note}" for path, note in self.warnings[:max_listed]]
            if max_listed is not None and len(self.warnings) > max_listed:
                lines.append(f"  ... and {len(self.warnings) - max_listed} more")
        return "\n".join(lines)


def check_files(
    paths: Sequence[str | Path], audio_cfg: AudioConfig, segment_length: int, progress: bool = True
) -> DataReport:
    """Read every file once and sort them into good and bad, with the reason for each bad one.

    Bad: missing, empty, unreadable, no samples, NaN or infinite samples, silent (peak below -80 dBFS:
    nothing to learn, and exact silence has no density), shorter than one window (``win_length`` samples at
    the config's rate). Warnings (still good): shorter than ``segment_length`` (mirror padded in training),
    samples beyond [-1, 1] in float files (clipped on load).
    """
    import soundfile as sf
    from tqdm import tqdm

    report = DataReport(target_rate=audio_cfg.sampling_rate)
    seconds = 0.0
    for raw in tqdm(paths, desc="checking audio", unit="file", disable=not progress or len(paths) < 50):
        path = Path(raw)
        try:
            if not path.exists():
                raise _BadFile("missing (file not found)")
            if path.is_dir():
                raise _BadFile("unreadable (a folder, not a file)")
            if path.stat().st_size == 0:
                raise _BadFile("empty (0 bytes)")
            try:
                data, rate = sf.read(str(path), dtype="float32", always_2d=True)
            except Exception as exc:  # noqa: BLE001 - soundfile raises several types for corrupt files
                raise _BadFile(f"unreadable ({exc})") from exc
            if data.size == 0:
                raise _BadFile("empty (no audio samples)")
            if not np.all(np.isfinite(data)):
                bad = int(np.count_nonzero(~np.isfinite(data)))
                raise _BadFile(f"NaN (contains {bad} NaN or infinite samples)")
            audio = data.mean(axis=1)
            peak = float(np.max(np.abs(audio)))
            samples = math.floor(len(audio) * audio_cfg.sampling_rate / rate)
            problem = clip_problem(peak, samples, audio_cfg)
            if problem:
                raise _BadFile(problem)
        except _BadFile as exc:
            report.bad.append((path, str(exc)))
            continue
        report.good.append(path)
        report.sample_rates[int(rate)] += 1
        seconds += len(audio) / rate
        if samples < segment_length:
            report.warnings.append(
                (path, f"short ({samples} samples < segment_length {segment_length}; mirror padded)")
            )
        if _has_zero_run(audio, 8):
            report.digital_silence += 1
        if peak > 1.0:
            report.warnings.append((path, f"peak {peak:.3f} beyond [-1, 1] (clipped on load)"))
    report.hours = seconds / 3600
    return report


def _has_zero_run(audio: np.ndarray, length: int) -> bool:
    """True when ``audio`` holds ``length`` or more consecutive exact zeros."""
    zero = np.concatenate([[0], (audio == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(zero))  # starts and ends of zero runs, alternating
    return bool(len(edges) and np.max(edges[1::2] - edges[::2]) >= length)


def usable_files(
    paths: Sequence[str | Path], audio_cfg: AudioConfig, segment_length: int, skip_bad: bool = False
) -> list[Path]:
    """Check ``paths``; return the good ones. With bad files, raise DataError listing them unless
    ``skip_bad`` (then log the report and go on with the good ones)."""
    report = check_files(paths, audio_cfg, segment_length)
    if report.bad and not skip_bad:
        raise DataError(
            f"{len(report.bad)} of {len(paths)} files are bad (set data.skip_bad_files to train on the "
            f"others):\n{report.format()}"
        )
    if report.bad:
        log.warning("skipping %d bad files:\n%s", len(report.bad), report.format())
    if not report.good:
        raise DataError(f"no usable audio among {len(paths)} files:\n{report.format()}")
    return report.good
