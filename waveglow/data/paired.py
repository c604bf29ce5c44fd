"""Paired mels, for fine-tuning on a TTS front end's output: reading a mel file and fitting its frames to its
audio and to a training segment.

A pair is a filelist line ``audio_path|mel_path`` (:class:`waveglow.filelists.Entry`); the mel is (n_mel, F)
or (1, n_mel, F) in a ``.npy`` (``numpy.load(allow_pickle=False)``) or ``.pt`` file
(``torch.load(weights_only=True)``). Its F must be the frame count of the configured front end for the
clip's T samples, ``MelSpectrogram.n_frames(T)`` = 1 + T // hop_length (centred frames: Tacotron 2's
convention too), within ``data.mel_frame_tolerance`` frames; within it, frames are cut from the end or the
last one repeated so that they agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from waveglow.audio import ArrayReadError, check_mel, far_outside_convention, read_array_file
from waveglow.config import AudioConfig
from waveglow.filelists import DataError

CONVENTION_SAMPLE = 4  # mels of a dataset whose values are checked against the configured mel convention


class MelFileError(DataError):
    """A paired mel file cannot be used: the message is the file and ``detail``; ``kind`` names the problem in
    a word (missing, empty, unreadable, shape, bins, NaN, frames) for the data check's summary."""

    def __init__(self, path: Path, kind: str, detail: str):
        super().__init__(f"{path}: {detail}")
        self.path, self.kind, self.detail = path, kind, detail


def read_mel_file(path: str | Path, audio_cfg: AudioConfig) -> np.ndarray:
    """A paired mel file -> float32 (n_mel, F), checked: found, not empty, readable without unpickling code,
    (n_mel, F) or (1, n_mel, F) with the config's n_mel, at least one frame, finite. Raises MelFileError."""
    path = Path(path)
    if not path.exists():
        raise MelFileError(path, "missing", "not found")
    if path.is_dir():
        raise MelFileError(path, "unreadable", "a folder, not a file")
    if path.stat().st_size == 0:
        raise MelFileError(path, "empty", "empty file, 0 bytes")
    if path.suffix.lower() not in (".npy", ".pt"):
        raise MelFileError(path, "unreadable", f"extension {path.suffix!r} is not .npy or .pt")
    try:
        mel = read_array_file(path)
    except ArrayReadError as exc:
        raise MelFileError(path, "unreadable", exc.detail) from exc
    if isinstance(mel, torch.Tensor):
        if mel.is_complex() or mel.dtype == torch.bool:
            raise MelFileError(path, "unreadable", f"tensor of dtype {mel.dtype} is not a real-valued mel")
        mel = mel.detach().float().numpy()
    elif isinstance(mel, np.ndarray):
        if not (np.issubdtype(mel.dtype, np.floating) or np.issubdtype(mel.dtype, np.integer)):
            raise MelFileError(path, "unreadable", f"array of dtype {mel.dtype} is not a real-valued mel")
    else:
        raise MelFileError(path, "unreadable", f"holds {type(mel).__name__}, not an array or tensor")
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.ndim != 2:
        raise MelFileError(path, "shape", f"shape {tuple(mel.shape)} is not (n_mel, F) or (1, n_mel, F)")
    n_mel = audio_cfg.n_mel_channels
    if mel.shape[0] != n_mel:
        hint = " (transposed? expected (n_mel, F))" if mel.shape[1] == n_mel else ""
        raise MelFileError(path, "bins", f"{mel.shape[0]} mel bins, the config has {n_mel}{hint}")
    if mel.shape[1] == 0:
        raise MelFileError(path, "empty", "no frames")
    bad = int(np.count_nonzero(~np.isfinite(mel)))
    if bad:
        raise MelFileError(path, "NaN", f"contains {bad} NaN or infinite values")
    return np.ascontiguousarray(mel, dtype=np.float32)


def expected_frames(n_samples: int, audio_cfg: AudioConfig) -> int:
    """The front end's frame count for ``n_samples`` samples: 1 + n_samples // hop_length (centred frames,
    ``MelSpectrogram.n_frames``), what a pair's mel file must have within the tolerance."""
    return 1 + n_samples // audio_cfg.hop_length


def fit_frames(
    mel: np.ndarray, n_samples: int, audio_cfg: AudioConfig, tolerance: int, path: Path
) -> np.ndarray:
    """The mel (n_mel, F) of a clip of ``n_samples`` samples, cut or extended (its last frame repeated) to the
    front end's :func:`expected_frames`. MelFileError (kind "frames") when F is more than ``tolerance`` away."""
    frames, n_frames = mel.shape[1], expected_frames(n_samples, audio_cfg)
    if abs(frames - n_frames) > tolerance:
        raise MelFileError(
            path,
            "frames",
            f"{frames} frames, but its audio's {n_samples} samples give {n_frames} (1 + samples // "
            f"hop_length): {abs(frames - n_frames)} apart, more than data.mel_frame_tolerance = {tolerance}",
        )
    if frames >= n_frames:
        return mel[:, :n_frames]
    return np.pad(mel, ((0, 0), (0, n_frames - frames)), mode="edge")


def load_paired_mel(path: Path, n_samples: int, audio_cfg: AudioConfig, tolerance: int) -> np.ndarray:
    """A pair's mel file for a clip of ``n_samples`` samples (at the config's rate): read, checked and fitted
    to :func:`expected_frames` -> float32 (n_mel, 1 + n_samples // hop_length). MelFileError naming it."""
    return fit_frames(read_mel_file(path, audio_cfg), n_samples, audio_cfg, tolerance, path)


def segment_frames(mel: np.ndarray, first: int, count: int, n_samples: int, hop_length: int) -> np.ndarray:
    """Frames ``first .. first + count - 1`` of a clip's fitted mel (n_mel, 1 + n_samples // hop_length) ->
    (n_mel, count).

    Frame j is centred on sample j * hop_length. Frames outside the clip belong to a mirror padded short
    clip (``mirror_pad``: the clip, then reversed, ...): each is the clip's frame nearest to the sample that
    the mirroring puts at its centre (a time-reversed window has the same magnitude spectrum).
    """
    if 0 <= first and first + count <= mel.shape[1]:
        return mel[:, first : first + count]
    centres = np.arange(first, first + count) * hop_length
    period = 2 * n_samples  # mirror padding repeats the clip and its reversal
    position = np.mod(centres, period)
    position = np.where(position >= n_samples, period - 1 - position, position)
    source = np.clip(np.rint(position / hop_length).astype(np.int64), 0, mel.shape[1] - 1)
    return mel[:, source]


def convention_issues(mels: list[tuple[Path, np.ndarray]], audio_cfg: AudioConfig) -> tuple[list[str], bool]:
    """Check the first mels of a dataset together against the configured mel convention (``audio.check_mel``,
    the rule of the Vocoder's inputs). Returns (issues, each naming the files; whether they are far outside the
    convention, e.g. dB or log10 mels for a natural-log model, which the Vocoder refuses too)."""
    if not mels:
        return [], False
    joined = torch.from_numpy(np.concatenate([mel for _, mel in mels], axis=1))  # (n_mel, sum of F)
    issues = check_mel(joined, audio_cfg)
    if not issues:
        return [], False
    names = ", ".join(str(path) for path, _ in mels)
    far = far_outside_convention(joined, audio_cfg)
    return [f"paired mels ({names}): {issue}" for issue in issues], far
