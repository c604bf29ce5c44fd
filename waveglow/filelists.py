"""Filelists and the deterministic train/validation/test split: reading and writing lists, LJSpeech folder
detection and listing, folder listing, and :func:`resolve_entries` / :func:`resolve_files`, which turn any of
them into clips (audio paths, with the paired mel file of an ``audio|mel.npy`` line).

:class:`DataError`, raised by the whole data layer (``waveglow.data`` imports it from here), lives here
because this is its lowest module; the lists are here, not in ``waveglow.data``, because synthesis reads them too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from waveglow.files import atomic_write_text

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3", ".opus")
MEL_SUFFIXES = (".npy", ".pt")  # a filelist's second field ending so is a paired mel file, not a transcript
SPLITS = ("train", "validation", "test", "all")
# Fractions of the Tacotron 2 LJSpeech split (12,500 train / 100 validation / 500 test of 13,100 clips).
VALIDATION_FRACTION = 100 / 13100
TEST_FRACTION = 500 / 13100


class DataError(ValueError):
    """A filelist, a data folder or a set of files cannot be used; the message names them."""


class Entry(NamedTuple):
    """One clip of a filelist: its audio file and, for a pair (``audio|mel.npy``), the mel file to condition
    on instead of the mel computed from the audio (None: computed)."""

    audio: Path
    mel: Path | None = None


def is_mel_field(text: str) -> bool:
    """Whether a filelist line's second field names a mel file (ends in .npy or .pt, any case) rather than
    holding a transcript."""
    return text.strip().lower().endswith(MEL_SUFFIXES)


def read_entries(path: str | Path, data_root: str | Path | None = None) -> list[Entry]:
    """The clips of a filelist: one audio path per line (WaveGlow), ``path|transcript|...`` (Tacotron 2),
    or ``audio_path|mel_path`` (a pair: the second field ends in .npy or .pt; fields after it are ignored).

    Blank lines and lines starting with ``#`` are skipped. Relative paths (audio and mel alike) are resolved
    against ``data_root`` when given (and not empty), else against the list's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: filelist not found")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark is not part of the first path
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read filelist ({exc})") from exc
    root = Path(data_root) if data_root else path.parent
    entries = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [part.strip() for part in line.split("|", 2)]
        audio = Path(fields[0])
        mel = Path(fields[1]) if len(fields) > 1 and is_mel_field(fields[1]) else None
        entries.append(
            Entry(
                audio if audio.is_absolute() else root / audio,
                None if mel is None else mel if mel.is_absolute() else root / mel,
            )
        )
    if not entries:
        raise DataError(f"{path}: filelist names no files")
    return entries


def read_filelist(path: str | Path, data_root: str | Path | None = None) -> list[Path]:
    """The audio paths of a filelist (:func:`read_entries` without the paired mel files)."""
    return [entry.audio for entry in read_entries(path, data_root)]


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
    try:
        text = metadata.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{metadata}: cannot read ({exc})") from exc
    for number, raw in enumerate(text.splitlines(), start=1):
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


def locate(spec: str | Path, data_root: str | Path = "") -> tuple[Path, str]:
    """(path, kind) of a data spec, the one rule every reader uses: kind "ljspeech" (a folder with
    ``metadata.csv`` and ``wavs/``, or that ``metadata.csv`` itself: the path is then the folder), "folder"
    (a folder of audio files) or "filelist" (any other file). A relative ``spec`` is looked up as given,
    then under ``data_root``. DataError when it names nothing."""
    if not str(spec):
        raise DataError("no data given (empty filelist / folder path)")
    path = Path(spec)
    if not path.exists() and data_root and not path.is_absolute() and (Path(data_root) / path).exists():
        path = Path(data_root) / path
    if path.is_dir():
        return path, "ljspeech" if is_ljspeech_folder(path) else "folder"
    if path.is_file():
        if path.name == "metadata.csv" and is_ljspeech_folder(path.parent):
            return path.parent, "ljspeech"
        return path, "filelist"
    raise DataError(f"{spec}: no such filelist or folder")


def resolve_entries(spec: str | Path, data_root: str | Path = "", split: str = "train") -> list[Entry]:
    """The clips of a filelist (with their paired mel files, if any), an LJSpeech folder or a folder of audio
    files (no mel files).

    A filelist is already a split, so ``split`` is ignored for it. An LJSpeech folder (``metadata.csv`` +
    ``wavs/``) or a plain folder of audio gives its deterministic ``split`` ("train", "validation",
    "test" or "all"; see :func:`split_keys`). Where ``spec`` is looked up: :func:`locate`.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    path, kind = locate(spec, data_root)
    if kind == "ljspeech":
        return [Entry(p) for p in ljspeech_files(path, split)]
    if kind == "folder":
        return [Entry(p) for p in directory_files(path, split)]
    return read_entries(path, data_root or None)


def resolve_files(spec: str | Path, data_root: str | Path = "", split: str = "train") -> list[Path]:
    """Audio paths from a filelist, an LJSpeech folder or a folder of audio files (:func:`resolve_entries`
    without the paired mel files)."""
    return [entry.audio for entry in resolve_entries(spec, data_root, split)]
