"""Filelists, the dataset check, and the training and validation datasets.

Layer 2: imports config and audio. Randomness comes only from ``(seed, epoch, index)``, so a segment is the
same whichever DataLoader worker loads it, differs per epoch, and nothing touches global random state.

Short clips (fewer samples than ``segment_length``) are extended by mirror padding (the clip, then the clip
reversed, and so on; ``numpy.pad(mode="symmetric")``) at a random offset, never with zeros: a run of exact
zeros has no density under the flow, and the original code's zero padding is a known cause of exploding
losses. ``short_clips="drop"`` leaves them out instead.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .audio import AudioFileError, MelSpectrogram, load_audio
from .config import AudioConfig, ConfigError, load_config
from .files import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3", ".opus")
SPLITS = ("train", "validation", "test", "all")
SILENCE_PEAK = 1e-4  # a file whose peak is below this (-80 dBFS) is silent
# Fractions of the Tacotron 2 LJSpeech split (12,500 train / 100 validation / 500 test of 13,100 clips).
VALIDATION_FRACTION = 100 / 13100
TEST_FRACTION = 500 / 13100


class DataError(ValueError):
    """A filelist, a data folder or a set of files cannot be used; the message names them."""


class _BadFile(Exception):
    """Internal: why one file fails the data check (the reason, without the path)."""


# ----------------------------------------------------------------------------------------------- filelists


def read_filelist(path: str | Path, data_root: str | Path | None = None) -> list[Path]:
    """Audio paths from a filelist: one path per line (WaveGlow) or ``path|transcript|...`` (Tacotron 2).

    Blank lines and lines starting with ``#`` are skipped. Relative paths are resolved against
    ``data_root`` when given (and not empty), else against the list's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: filelist not found")
    root = Path(data_root) if data_root else path.parent
    paths = []
    for raw in path.read_text(encoding="utf-8-sig").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry = Path(line.split("|", 1)[0].strip())
        paths.append(entry if entry.is_absolute() else root / entry)
    if not paths:
        raise DataError(f"{path}: filelist holds no audio paths")
    return paths


def write_filelist(
    path: str | Path, paths: Iterable[str | Path], relative_to: str | Path | None = None
) -> None:
    """Write one path per line (atomically), relative to ``relative_to`` when given."""
    path = Path(path)
    lines = []
    for entry in paths:
        entry = Path(entry)
        if relative_to is not None:
            entry = Path(os.path.relpath(entry, relative_to))
        lines.append(entry.as_posix())
    atomic_write_text(path, "\n".join(lines) + "\n")


def split_keys(keys: Sequence[str], split: str) -> list[int]:
    """Indices of ``keys`` in ``split`` ("train", "validation", "test" or "all"), chosen deterministically.

    Keys are ranked by the SHA-1 of their text; the first ``round(N * 100/13100)`` (at least 1) are the
    validation split, the next ``round(N * 500/13100)`` (at least 1) the test split, the rest the training
    split: the Tacotron 2 proportions for LJSpeech. With fewer than 3 keys every split holds all of them.
    Returned indices are in the keys' original order.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    count = len(keys)
    if split == "all" or count < 3:
        return list(range(count))
    n_val = max(1, round(count * VALIDATION_FRACTION))
    n_test = max(1, round(count * TEST_FRACTION))
    ranked = sorted(range(count), key=lambda i: hashlib.sha1(keys[i].encode("utf-8")).hexdigest())
    chosen = {
        "validation": ranked[:n_val],
        "test": ranked[n_val : n_val + n_test],
        "train": ranked[n_val + n_test :],
    }[split]
    return sorted(chosen)


def is_ljspeech_folder(path: str | Path) -> bool:
    """True for an LJSpeech-style folder: ``metadata.csv`` next to a ``wavs/`` folder."""
    path = Path(path)
    return (path / "metadata.csv").is_file() and (path / "wavs").is_dir()


def ljspeech_files(root: str | Path, split: str = "train") -> list[Path]:
    """The clips of an LJSpeech folder listed in ``metadata.csv`` (``ID|text|normalised text``), in one split.

    The split is :func:`split_keys` on the clip IDs: for LJSpeech-1.1 (13,100 clips) 12,500 train,
    100 validation and 500 test clips, the same on every machine.
    """
    root = Path(root)
    metadata = root / "metadata.csv"
    ids = []
    for number, raw in enumerate(metadata.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        clip_id = line.split("|", 1)[0].strip()
        if not clip_id:
            raise DataError(f"{metadata}:{number}: line has no clip ID")
        ids.append(clip_id)
    if not ids:
        raise DataError(f"{metadata}: no clips listed")
    return [root / "wavs" / f"{ids[i]}.wav" for i in split_keys(ids, split)]


def directory_files(root: str | Path, split: str = "all") -> list[Path]:
    """Audio files under ``root`` (recursively, sorted), in one :func:`split_keys` split of their paths."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder")
    keys = [p.relative_to(root).as_posix() for p in files]
    return [files[i] for i in split_keys(keys, split)]


def resolve_files(spec: str | Path, data_root: str | Path = "", split: str = "train") -> list[Path]:
    """Audio paths from a filelist, an LJSpeech folder or a folder of audio files.

    A filelist is already a split, so ``split`` is ignored for it. An LJSpeech folder (``metadata.csv`` +
    ``wavs/``) or a plain folder of audio gives its deterministic ``split`` ("train", "validation",
    "test" or "all"; see :func:`split_keys`). A relative ``spec`` is looked up as given, then under
    ``data_root``.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    path = Path(spec)
    if not str(spec):
        raise DataError("no data given (empty filelist / folder path)")
    if not path.exists() and data_root and not path.is_absolute() and (Path(data_root) / path).exists():
        path = Path(data_root) / path
    if path.is_dir():
        if is_ljspeech_folder(path):
            return ljspeech_files(path, split)
        return directory_files(path, split)
    if path.is_file():
        if path.name == "metadata.csv" and is_ljspeech_folder(path.parent):
            return ljspeech_files(path.parent, split)
        return read_filelist(path, data_root or None)
    raise DataError(f"{spec}: no such filelist or folder")


# ------------------------------------------------------------------------------------------- the data check


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

    def format(self, max_listed: int = 50) -> str:
        """A multi-line report: totals, rates, then every bad file and warning (up to ``max_listed`` each)."""
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
            if len(self.bad) > max_listed:
                lines.append(f"  ... and {len(self.bad) - max_listed} more")
        if self.warnings:
            lines.append("warnings:")
            lines += [f"  {path}: {note}" for path, note in self.warnings[:max_listed]]
            if len(self.warnings) > max_listed:
                lines.append(f"  ... and {len(self.warnings) - max_listed} more")
        return "\n".join(lines)


def min_clip_samples(audio_cfg: AudioConfig) -> int:
    """The shortest usable clip: one full analysis window (``win_length`` samples)."""
    return audio_cfg.win_length


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
    minimum = min_clip_samples(audio_cfg)
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
            if peak < SILENCE_PEAK:
                raise _BadFile(f"silent (peak {peak:.2g}, below {SILENCE_PEAK:g})")
            samples = math.floor(len(audio) * audio_cfg.sampling_rate / rate)
            if samples < minimum:
                raise _BadFile(
                    f"too short ({samples} samples at {audio_cfg.sampling_rate} Hz; "
                    f"need at least {minimum}, one window)"
                )
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


# -------------------------------------------------------------------------------------------- audio access


def _cache_path(cache_dir: Path, path: Path, sampling_rate: int) -> Path:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sampling_rate}"
    return cache_dir / f"{hashlib.sha1(key.encode('utf-8')).hexdigest()}.npy"


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda handle: np.save(handle, array), durable=False)  # a cache: rebuilt if lost


def load_cached(path: Path, sampling_rate: int, cache_dir: Path | None) -> np.ndarray:
    """The file's mono float32 audio at ``sampling_rate``, through the cache when ``cache_dir`` is set.

    Cache entries are keyed by the file's absolute path, size, modification time and the target rate, so
    an edited file or a new rate is decoded afresh. Entries are written atomically (safe with workers).
    """
    if cache_dir is None:
        return load_audio(path, sampling_rate)[0]
    entry = _cache_path(cache_dir, path, sampling_rate)
    if entry.is_file():
        try:
            return np.load(entry, mmap_mode="r")
        except (OSError, ValueError):
            log.warning("%s: unreadable cache entry for %s, decoding again", entry, path)
    audio = load_audio(path, sampling_rate)[0]
    _atomic_save_npy(entry, audio)
    return audio


def mirror_pad(audio: np.ndarray, length: int, left: int) -> np.ndarray:
    """Extend ``audio`` (T,) to ``length`` samples by mirroring, with ``left`` of the new samples in front."""
    missing = length - len(audio)
    if missing <= 0:
        return audio[:length]
    if not 0 <= left <= missing:
        raise ValueError(f"left padding {left} outside [0, {missing}]")
    return np.pad(audio, (left, missing - left), mode="symmetric")


class AudioSegmentDataset(Dataset):
    """Random training segments: ``ds[i]`` -> audio (segment_length,) float32 in [-1, 1].

    The segment of clip ``i`` is drawn from a generator seeded with ``(seed, epoch, i)``; call
    ``set_epoch(epoch)`` before each epoch. The epoch lives in shared memory, so DataLoader workers
    (persistent or not) see it, and a segment does not depend on which worker loads it. Files at the
    config's rate are read partially (only the segment); others are decoded whole and resampled (once, when
    ``cache_dir`` is given). Clips shorter than a segment are mirror padded at a random offset
    (``short_clips="pad"``) or left out (``"drop"``). With ``return_mel`` the item is (audio, mel
    (n_mel, 1 + segment_length // hop_length)), computed by :class:`MelSpectrogram`; a trainer may instead
    compute the mel batch-wise on its device with the same module. ``dither`` adds uniform noise of that
    many 16-bit steps (1/32768) peak to peak, so digital silence inside clips is not exactly zero (0: off).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        audio_cfg: AudioConfig,
        segment_length: int,
        seed: int = 1234,
        cache_dir: str | Path | None = None,
        short_clips: str = "pad",
        return_mel: bool = False,
        dither: float = 1.0,
    ):
        import soundfile as sf

        if segment_length < min_clip_samples(audio_cfg):
            raise DataError(
                f"segment_length {segment_length} is shorter than one window ({audio_cfg.win_length})"
            )
        if short_clips not in ("pad", "drop"):
            raise DataError(f"short_clips must be 'pad' or 'drop', got {short_clips!r}")
        self.audio_cfg = audio_cfg
        self.segment_length = int(segment_length)
        self.seed = int(seed)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.return_mel = return_mel
        self.dither = float(dither)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._mel: MelSpectrogram | None = None
        self.paths: list[Path] = []
        self.frames: list[int] = []  # native length of each clip
        self.rates: list[int] = []  # native rate of each clip
        dropped = 0
        for raw in paths:
            path = Path(raw)
            try:
                info = sf.info(str(path))
            except Exception as exc:  # noqa: BLE001
                raise AudioFileError(f"{path}: unreadable ({exc}); run the data check") from exc
            target_frames = math.floor(info.frames * audio_cfg.sampling_rate / info.samplerate)
            if short_clips == "drop" and target_frames < self.segment_length:
                dropped += 1
                continue
            self.paths.append(path)
            self.frames.append(int(info.frames))
            self.rates.append(int(info.samplerate))
        if not self.paths:
            raise DataError(f"no clips left of {len(paths)} (short clips dropped: {dropped})")
        if dropped:
            log.info("left out %d clips shorter than %d samples", dropped, self.segment_length)
        other = Counter(rate for rate in self.rates if rate != audio_cfg.sampling_rate)
        if other:
            log.info(
                "resampling %d of %d files (%s) to %d Hz%s",
                sum(other.values()),
                len(self.paths),
                ", ".join(f"{rate} Hz: {n}" for rate, n in sorted(other.items())),
                audio_cfg.sampling_rate,
                f"; caching them in {self.cache_dir}" if self.cache_dir else " at every read (no cache_dir)",
            )

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose segments the next reads return (seen by all workers)."""
        self._epoch.fill_(int(epoch))

    def generator(self, index: int) -> np.random.Generator:
        """The random generator of clip ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def segment(self, index: int) -> np.ndarray:
        """The (segment_length,) float32 segment of clip ``index`` for the current epoch."""
        path, frames, rate = self.paths[index], self.frames[index], self.rates[index]
        target = self.audio_cfg.sampling_rate
        length = math.floor(frames * target / rate)
        rng = self.generator(index)
        if length >= self.segment_length:
            start = int(rng.integers(0, length - self.segment_length + 1))
            if rate == target:
                audio = _read_span(path, start, self.segment_length)
            else:
                audio = load_cached(path, target, self.cache_dir)[start : start + self.segment_length]
            if len(audio) < self.segment_length:  # a header that overstates the length
                audio = mirror_pad(np.asarray(audio), self.segment_length, 0)
        else:
            audio = load_cached(path, target, self.cache_dir)
            if len(audio) < min_clip_samples(self.audio_cfg):
                raise AudioFileError(f"{path}: too short ({len(audio)} samples); run the data check")
            left = int(rng.integers(0, self.segment_length - len(audio) + 1))
            audio = mirror_pad(np.asarray(audio), self.segment_length, left)
        audio = np.array(audio, dtype=np.float32)
        if self.dither > 0:
            # Uniform dequantisation noise: exact digital silence (runs of zeros, common in trimmed
            # recordings) has no density under the flow and would let the likelihood diverge.
            noise = rng.uniform(-0.5, 0.5, size=audio.shape) * (self.dither / 32768)
            audio = np.clip(audio + noise.astype(np.float32), -1.0, 1.0)
        return audio

    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        audio = torch.from_numpy(self.segment(index))  # (segment_length,)
        if not self.return_mel:
            return audio
        if self._mel is None:
            self._mel = MelSpectrogram(self.audio_cfg)
        with torch.no_grad():
            mel = self._mel(audio.unsqueeze(0))[0]  # (n_mel, F)
        return audio, mel


def _read_span(path: Path, start: int, frames: int) -> np.ndarray:
    import soundfile as sf

    try:
        data, _ = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise AudioFileError(f"{path}: cannot read audio ({exc})") from exc
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(audio)):
        raise AudioFileError(f"{path}: contains NaN or infinite samples")
    return np.clip(audio, -1.0, 1.0)


class AudioClipDataset(Dataset):
    """Whole clips for validation: ``ds[i]`` -> (audio (T,) float32 at the config's rate, path str).

    ``max_samples`` (optional) keeps only the first samples of long clips.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        audio_cfg: AudioConfig,
        cache_dir: str | Path | None = None,
        max_samples: int | None = None,
    ):
        self.paths = [Path(p) for p in paths]
        self.audio_cfg = audio_cfg
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.max_samples = max_samples
        self._resampling_logged = False

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        path = self.paths[index]
        if not self._resampling_logged:
            self._log_resampling()
        audio = np.array(load_cached(path, self.audio_cfg.sampling_rate, self.cache_dir), dtype=np.float32)
        if self.max_samples:
            audio = audio[: self.max_samples]
        return torch.from_numpy(audio), str(path)

    def _log_resampling(self) -> None:
        """Say once per dataset (per process) how many clips are resampled; unreadable ones are skipped here."""
        import soundfile as sf

        self._resampling_logged = True
        rates = Counter()
        for path in self.paths:
            try:
                rates[sf.info(str(path)).samplerate] += 1
            except Exception:  # noqa: BLE001 - reported with the file's name when it is loaded
                continue
        other = sum(n for rate, n in rates.items() if rate != self.audio_cfg.sampling_rate)
        if other:
            log.info(
                "resampling %d of %d clips to %d Hz", other, len(self.paths), self.audio_cfg.sampling_rate
            )


# ---------------------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m waveglow.data check FILELIST`` and ``python -m waveglow.data split FOLDER OUT_DIR``."""
    parser = argparse.ArgumentParser(prog="python -m waveglow.data", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="scan every file once and report problems (exit 1 if any bad)")
    check.add_argument("files", help="filelist, LJSpeech folder or folder of audio files")
    check.add_argument("--data-root", default="", help="folder that relative filelist paths start from")
    check.add_argument("--config", default=None, help="config file (audio settings and segment_length)")
    check.add_argument("--split", default="all", choices=SPLITS, help="split of a folder (default: all)")
    split = commands.add_parser("split", help="write train/validation/test filelists for a folder")
    split.add_argument("folder", help="LJSpeech folder (metadata.csv + wavs/) or folder of audio files")
    split.add_argument("out_dir", help="where <prefix>_{train,validation,test}.txt are written")
    split.add_argument("--prefix", default=None, help="file name prefix (default: the folder's name)")
    split.add_argument(
        "--absolute", action="store_true", help="write absolute paths (default: relative to OUT_DIR)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.command == "check":
            from .config import Config

            cfg = load_config(args.config) if args.config else Config()
            paths = resolve_files(args.files, args.data_root, args.split)
            report = check_files(paths, cfg.audio, cfg.data.segment_length)
            print(report.format(max_listed=10**9))
            return 0 if report.ok else 1
        folder = Path(args.folder)
        out_dir = Path(args.out_dir)
        prefix = args.prefix or folder.resolve().name
        for name in ("train", "validation", "test"):
            files = resolve_files(folder, split=name)
            out = out_dir / f"{prefix}_{name}.txt"
            if args.absolute:
                write_filelist(out, [p.resolve() for p in files])
            else:  # relative to the list's own folder, so it works without a data_root
                write_filelist(out, files, relative_to=out_dir)
            print(f"{out}: {len(files)} files")
        return 0
    except (DataError, ConfigError, AudioFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
