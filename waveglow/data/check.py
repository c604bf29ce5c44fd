"""The data check: read every file once and sort the usable from the bad, with the reason for each.

:func:`check_files` returns a :class:`DataReport`; :func:`usable_files` and :func:`usable_entries` are the
check a training run does before it starts. Paired clips (``audio|mel.npy`` filelist lines) have their mel
files checked too (:mod:`waveglow.data.paired`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from waveglow.audio import AudioFileError, clip_problem, read_samples, to_mono
from waveglow.config import AudioConfig
from waveglow.data.paired import (
    CONVENTION_SAMPLE,
    MelFileError,
    convention_issues,
    expected_frames,
    fit_frames,
    read_mel_file,
)
from waveglow.filelists import DataError, Entry

log = logging.getLogger(__name__)


class _BadFile(Exception):
    """Internal: why one file fails the data check (the reason, without the path)."""


@dataclass
class DataReport:
    """The result of :func:`check_files`.

    good: usable files (short clips included; they are listed in ``warnings`` too).
    bad: (path, reason) for missing, empty, unreadable, NaN/inf-containing, silent and too-short files, and
    for pairs whose mel file is bad (reasons "mel missing", "mel frames", ...; they name the mel file).
    warnings: (path, note) for usable files worth knowing about (shorter than a segment, clipped).
    hours: total duration of the good files. sample_rates: Counter of the files' native rates.
    entries: the good clips with their paired mel files (same order as ``good``).
    frame_offsets: Counter of (mel file's frames - 1 - samples // hop_length) over the good pairs.
    problems: faults of the whole set (mels far from the configured convention, a segment length that is
    not a multiple of the hop); ``mel_notes``: milder convention doubts (warnings).
    """

    good: list[Path] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[tuple[Path, str]] = field(default_factory=list)
    hours: float = 0.0
    sample_rates: Counter = field(default_factory=Counter)
    target_rate: int = 0
    digital_silence: int = 0  # good files holding a run of >= 8 exact zeros (see AudioSegmentDataset dither)
    entries: list[Entry] = field(default_factory=list)
    frame_offsets: Counter = field(default_factory=Counter)
    mel_frame_tolerance: int = 2
    problems: list[str] = field(default_factory=list)
    mel_notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file is bad and the set as a whole has no problem."""
        return not self.bad and not self.problems

    @property
    def n_pairs(self) -> int:
        """Good clips with a paired mel file."""
        return sum(entry.mel is not None for entry in self.entries)

    def pairs_summary(self) -> str:
        """One line on the good pairs' frame counts, or "" without pairs."""
        if not self.n_pairs:
            return ""
        counts = ", ".join(
            f"{offset:+d}: {n}" if offset else f"equal: {n}"
            for offset, n in sorted(self.frame_offsets.items())
        )
        return (
            f"paired mels: {self.n_pairs} of {len(self.good)} good files; mel frames minus "
            f"1 + samples // hop_length: {counts} (within data.mel_frame_tolerance = "
            f"{self.mel_frame_tolerance}: cut, or the last frame repeated, to agree)"
        )

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
        if self.n_pairs:
            lines.append(self.pairs_summary())
        lines += [f"problem: {problem}" for problem in self.problems]
        lines += [f"warning: {note}" for note in self.mel_notes]
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
    paths: Sequence[str | Path | Entry],
    audio_cfg: AudioConfig,
    segment_length: int,
    progress: bool = True,
    mel_frame_tolerance: int = 2,
) -> DataReport:
    """Read every file once and sort them into good and bad, with the reason for each bad one.

    Bad: missing, empty, unreadable, no samples, NaN or infinite samples, silent (peak below -80 dBFS:
    nothing to learn, and exact silence has no density), shorter than one window (``win_length`` samples at
    the config's rate). Warnings (still good): shorter than ``segment_length`` (mirror padded in training),
    samples beyond [-1, 1] in float files (clipped on load).

    ``paths`` may hold :class:`Entry` pairs: a pair is bad too when its mel file is (missing, empty,
    unreadable, not (n_mel, F), NaN or infinite values) or its frame count is more than
    ``mel_frame_tolerance`` away from 1 + samples // hop_length. The first good mels are checked against the
    configured mel convention; with pairs, ``segment_length`` must be a multiple of hop_length.
    """
    from tqdm import tqdm

    report = DataReport(target_rate=audio_cfg.sampling_rate, mel_frame_tolerance=mel_frame_tolerance)
    seconds = 0.0
    sample: list[tuple[Path, np.ndarray]] = []  # the first good mels, for the convention check
    entries = [item if isinstance(item, Entry) else Entry(Path(item)) for item in paths]
    for entry in tqdm(entries, desc="checking audio", unit="file", disable=not progress or len(paths) < 50):
        path = entry.audio
        try:
            audio, rate, samples, peak = _read_clip(path, audio_cfg)
            if entry.mel is not None:
                mel = _read_pair_mel(entry.mel, samples, audio_cfg, mel_frame_tolerance)
        except _BadFile as exc:
            report.bad.append((path, str(exc)))
            continue
        report.good.append(path)
        report.entries.append(entry)
        report.sample_rates[int(rate)] += 1
        seconds += len(audio) / rate
        if entry.mel is not None:
            report.frame_offsets[mel.shape[1] - expected_frames(samples, audio_cfg)] += 1
            if len(sample) < CONVENTION_SAMPLE:
                sample.append((entry.mel, mel))
        if samples < segment_length:
            report.warnings.append(
                (path, f"short ({samples} samples < segment_length {segment_length}; mirror padded)")
            )
        if _has_zero_run(audio, 8):
            report.digital_silence += 1
        if peak > 1.0:
            report.warnings.append((path, f"peak {peak:.3f} beyond [-1, 1] (clipped on load)"))
    report.hours = seconds / 3600
    issues, far = convention_issues(sample, audio_cfg)
    (report.problems if far else report.mel_notes).extend(issues)
    if report.n_pairs and segment_length % audio_cfg.hop_length:
        report.problems.append(
            f"data.segment_length {segment_length} is not a multiple of audio.hop_length "
            f"{audio_cfg.hop_length}: paired mels need segments on frame boundaries"
        )
    return report


def _read_clip(path: Path, audio_cfg: AudioConfig) -> tuple[np.ndarray, int, int, float]:
    """(mono audio, native rate, samples at the config's rate, peak) of a usable clip; _BadFile otherwise."""
    if not path.exists():
        raise _BadFile("missing (file not found)")
    if path.is_dir():
        raise _BadFile("unreadable (a folder, not a file)")
    if path.stat().st_size == 0:
        raise _BadFile("empty (0 bytes)")
    try:
        data, rate = read_samples(path)
    except AudioFileError as exc:
        raise _BadFile(f"unreadable ({exc.__cause__})") from exc
    if data.size == 0:
        raise _BadFile("empty (no audio samples)")
    try:
        audio = to_mono(data, path, clip=False)  # a peak beyond full scale is reported below
    except AudioFileError as exc:
        raise _BadFile(f"NaN ({str(exc).removeprefix(f'{path}: ')})") from exc
    peak = float(np.max(np.abs(audio)))
    samples = math.floor(len(audio) * audio_cfg.sampling_rate / rate)
    problem = clip_problem(peak, samples, audio_cfg)
    if problem:
        raise _BadFile(problem)
    return audio, int(rate), samples, peak


def _read_pair_mel(path: Path, samples: int, audio_cfg: AudioConfig, tolerance: int) -> np.ndarray:
    """The pair's mel file, read and its frame count checked (not fitted); _BadFile "mel <kind> (...)"."""
    try:
        mel = read_mel_file(path, audio_cfg)
        fit_frames(mel, samples, audio_cfg, tolerance, path)
    except MelFileError as exc:
        raise _BadFile(f"mel {exc.kind} ({exc.path}: {exc.detail})") from exc
    return mel


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
    return [entry.audio for entry in usable_entries(paths, audio_cfg, segment_length, skip_bad)]


def usable_entries(
    paths: Sequence[str | Path | Entry],
    audio_cfg: AudioConfig,
    segment_length: int,
    skip_bad: bool = False,
    mel_frame_tolerance: int = 2,
) -> list[Entry]:
    """:func:`usable_files` for clips that may be pairs: the good clips with their mel files. Problems of the
    whole set (mels far from the configured convention) raise DataError even with ``skip_bad``; the pairs'
    frame-count summary and milder convention doubts are logged."""
    report = check_files(paths, audio_cfg, segment_length, mel_frame_tolerance=mel_frame_tolerance)
    if report.problems:
        raise DataError("; ".join(report.problems))
    if report.bad and not skip_bad:
        raise DataError(
            f"{len(report.bad)} of {len(paths)} files are bad (set data.skip_bad_files to train on the "
            f"others):\n{report.format()}"
        )
    if report.bad:
        log.warning("skipping %d bad files:\n%s", len(report.bad), report.format())
    if not report.good:
        raise DataError(f"no usable audio among {len(paths)} files:\n{report.format()}")
    if report.n_pairs:
        log.info("%s", report.pairs_summary())
    for note in report.mel_notes:
        log.warning("%s", note)
    return report.entries
