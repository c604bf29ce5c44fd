"""The training and validation datasets.

Randomness comes only from
``(seed, epoch, index)``, so a segment is the same whichever DataLoader worker loads it, differs per epoch,
and nothing touches global random state.

Short clips (fewer samples than ``segment_length``) are extended by mirror padding (the clip, then the clip
reversed, and so on; ``numpy.pad(mode="symmetric")``) at a random offset, never with zeros: a run of exact
zeros has no density under the flow, and the original code's zero padding is a known cause of exploding
losses. ``short_clips="drop"`` leaves them out instead.

Paired clips (filelist lines ``audio|mel.npy``, :mod:`waveglow.data.paired`) give the file's mel instead of
one computed from the audio; their segments start and end on frame boundaries so that mel and audio agree.

Filelists and splits live in :mod:`waveglow.filelists`, the data check in :mod:`waveglow.data.check`; the command line in ``waveglow/data/__main__.py``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from waveglow.audio import (
    AudioFileError,
    MelSpectrogram,
    load_audio,
    min_clip_samples,
    read_samples,
    to_mono,
)
from waveglow.config import AudioConfig
from waveglow.data.paired import load_paired_mel, segment_frames
from waveglow.filelists import DataError, Entry
from waveglow.files import atomic_write

log = logging.getLogger(__name__)


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


def as_entry(item: str | Path | Entry) -> Entry:
    """A clip given as a path (no paired mel) or an :class:`Entry`."""
    return item if isinstance(item, Entry) else Entry(Path(item))


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

    ``paths`` may hold :class:`Entry` pairs (audio, mel file). With any pair the dataset is ``paired``: every
    item is (audio, mel), segment_length must be a multiple of hop_length, and a segment starts on a frame
    boundary (a multiple of hop_length; a short clip's mirror padding in front too), so that its mel is
    exactly frames [start / hop, start / hop + segment_length / hop + 1) of the clip's mel: of the file's
    (fitted to 1 + samples // hop_length frames within ``mel_frame_tolerance``) for a pair, computed from the
    segment for a clip without one. The file's mel is never dithered.
    """

    def __init__(
        self,
        paths: Sequence[str | Path | Entry],
        audio_cfg: AudioConfig,
        segment_length: int,
        seed: int = 1234,
        cache_dir: str | Path | None = None,
        short_clips: str = "pad",
        return_mel: bool = False,
        dither: float = 1.0,
        mel_frame_tolerance: int = 2,
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
        self.mel_frame_tolerance = int(mel_frame_tolerance)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._mel: MelSpectrogram | None = None
        entries = [as_entry(item) for item in paths]
        self.paired = any(entry.mel is not None for entry in entries)
        hop = audio_cfg.hop_length
        if self.paired and self.segment_length % hop:
            raise DataError(
                f"data.segment_length {self.segment_length} is not a multiple of audio.hop_length {hop}: "
                "paired mels need segments that start and end on frame boundaries"
            )
        self.paths: list[Path] = []
        self.mel_files: list[Path | None] = []  # the paired mel file of each clip (None: computed)
        self.frames: list[int] = []  # native length of each clip
        self.rates: list[int] = []  # native rate of each clip
        dropped = 0
        for entry in entries:
            path = entry.audio
            try:
                info = sf.info(str(path))
            except Exception as exc:  # noqa: BLE001
                raise AudioFileError(f"{path}: unreadable ({exc}); run the data check") from exc
            target_frames = math.floor(info.frames * audio_cfg.sampling_rate / info.samplerate)
            if short_clips == "drop" and target_frames < self.segment_length:
                dropped += 1
                continue
            self.paths.append(path)
            self.mel_files.append(entry.mel)
            self.frames.append(int(info.frames))
            self.rates.append(int(info.samplerate))
        if not self.paths:
            raise DataError(f"no clips left of {len(paths)} (short clips dropped: {dropped})")
        if dropped:
            log.info("left out %d clips shorter than %d samples", dropped, self.segment_length)
        if self.paired:
            n_paired = sum(mel is not None for mel in self.mel_files)
            log.info(
                "%d of %d clips condition on their paired mel files%s",
                n_paired,
                len(self.paths),
                "" if n_paired == len(self.paths) else "; the others on mels computed from their audio",
            )
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

    def n_samples(self, index: int) -> int:
        """The length of clip ``index`` at the config's rate (as the segments count it)."""
        return math.floor(self.frames[index] * self.audio_cfg.sampling_rate / self.rates[index])

    def segment(self, index: int) -> np.ndarray:
        """The (segment_length,) float32 segment of clip ``index`` for the current epoch."""
        return self._draw(index)[0]

    def _draw(self, index: int) -> tuple[np.ndarray, int]:
        """(segment (segment_length,) float32, the clip sample at its start: negative when mirror padding
        comes first). In a paired dataset the start is a multiple of hop_length."""
        path, rate = self.paths[index], self.rates[index]
        target = self.audio_cfg.sampling_rate
        length = self.n_samples(index)
        step = self.audio_cfg.hop_length if self.paired else 1  # segments start on frame boundaries
        rng = self.generator(index)
        if length >= self.segment_length:
            start = step * int(rng.integers(0, (length - self.segment_length) // step + 1))
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
            left = step * int(rng.integers(0, (self.segment_length - len(audio)) // step + 1))
            audio = mirror_pad(np.asarray(audio), self.segment_length, left)
            start = -left
        audio = np.array(audio, dtype=np.float32)
        if self.dither > 0:
            # Uniform dequantisation noise: exact digital silence (runs of zeros, common in trimmed
            # recordings) has no density under the flow and would let the likelihood diverge.
            noise = rng.uniform(-0.5, 0.5, size=audio.shape) * (self.dither / 32768)
            audio = np.clip(audio + noise.astype(np.float32), -1.0, 1.0)
        return audio, start

    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        segment, start = self._draw(index)
        audio = torch.from_numpy(segment)  # (segment_length,)
        mel_file = self.mel_files[index]
        if mel_file is not None:
            length, hop = self.n_samples(index), self.audio_cfg.hop_length
            mel = load_paired_mel(mel_file, length, self.audio_cfg, self.mel_frame_tolerance)
            frames = segment_frames(mel, start // hop, self.segment_length // hop + 1, length, hop)
            return audio, torch.from_numpy(np.ascontiguousarray(frames))  # (n_mel, 1 + segment_length // hop)
        if not (self.return_mel or self.paired):
            return audio
        if self._mel is None:
            self._mel = MelSpectrogram(self.audio_cfg)
        with torch.no_grad():
            mel = self._mel(audio.unsqueeze(0))[0]  # (n_mel, F)
        return audio, mel


def _read_span(path: Path, start: int, frames: int) -> np.ndarray:
    """``frames`` mono samples of ``path`` from ``start``, in [-1, 1] (``audio.read_samples``, ``to_mono``)."""
    return to_mono(read_samples(path, start, frames)[0], path)


class AudioClipDataset(Dataset):
    """Whole clips for validation: ``ds[i]`` -> (audio (T,) float32 at the config's rate, path str).

    ``max_samples`` (optional) keeps only the first samples of long clips. ``paths`` may hold :class:`Entry`
    pairs; :meth:`clip` gives their mel files' mels too.
    """

    def __init__(
        self,
        paths: Sequence[str | Path | Entry],
        audio_cfg: AudioConfig,
        cache_dir: str | Path | None = None,
        max_samples: int | None = None,
        mel_frame_tolerance: int = 2,
    ):
        entries = [as_entry(item) for item in paths]
        self.paths = [entry.audio for entry in entries]
        self.mel_files = [entry.mel for entry in entries]
        self.audio_cfg = audio_cfg
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.max_samples = max_samples
        self.mel_frame_tolerance = int(mel_frame_tolerance)
        self._resampling_logged = False

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        audio, path, _ = self.clip(index, with_mel=False)
        return audio, path

    def clip(self, index: int, with_mel: bool = True) -> tuple[torch.Tensor, str, torch.Tensor | None]:
        """(audio (T,), path, the paired mel (n_mel, 1 + T // hop_length) or None for a clip without one).

        The mel file is fitted to the whole clip (``mel_frame_tolerance``), then cut like the audio."""
        path = self.paths[index]
        if not self._resampling_logged:
            self._log_resampling()
        audio = np.array(load_cached(path, self.audio_cfg.sampling_rate, self.cache_dir), dtype=np.float32)
        mel = None
        if with_mel and self.mel_files[index] is not None:
            mel = load_paired_mel(self.mel_files[index], len(audio), self.audio_cfg, self.mel_frame_tolerance)
        if self.max_samples:
            audio = audio[: self.max_samples]
        if mel is not None:
            mel = torch.from_numpy(
                np.ascontiguousarray(mel[:, : 1 + len(audio) // self.audio_cfg.hop_length])
            )
        return torch.from_numpy(audio), str(path), mel

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
