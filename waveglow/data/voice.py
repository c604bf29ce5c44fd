"""The single-voice training set of the bundled model, rebuilt from its public source by one command.

Source: the Debian package ``asterisk-core-sounds-en-g722`` (568 prompts, about 25 minutes, of Allison Smith,
US English, CC BY-SA 3.0), G.722 at 16 kHz. Each prompt is decoded, high-passed at 40 Hz, resampled to
22050 Hz, trimmed to its speech with 120 ms of margin, peak-normalised to -1 dBFS and stored as 16-bit FLAC
(the same treatment as ``demo/clips``). The split is fixed: prompts named in ``reserved_prompts.txt`` (kept
for independent evaluation) go to ``reserved.txt`` and nowhere else; the held-out demo clips and a
deterministic SHA-1 share of the rest go to ``validation.txt``; the remaining speech prompts to
``train.txt``. Tones and silence files are left out.

``python -m waveglow.data voice OUT_DIR [--deb FILE | --source DIR] [--reserved FILE]``
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from waveglow.audio import resample
from waveglow.files import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

PACKAGE = "asterisk-core-sounds-en-g722"
VOICE_DIR = "usr/share/asterisk/sounds/en_US_f_Allison"
SOURCE_RATE = 16000
SAMPLING_RATE = 22050
# Not speech: signalling tones, the silence folder and the beeps.
NOT_SPEECH = ("ascending-2tone", "descending-2tone", "beep", "beeperr")
# demo/validation.txt: held out by the demo, so held out here too (the demo's figures stay honest).
DEMO_HELD_OUT = (
    "conf-noempty",
    "confbridge-rest-list-vol-out",
    "something-terribly-wrong",
    "vm-review-urgent",
)
VALIDATION_SHARE = 0.05  # of the other prompts, chosen by SHA-1 of their name


class VoiceDataError(RuntimeError):
    """The source package cannot be found, fetched or read."""


@dataclass
class Prompt:
    """One decoded prompt: name relative to the voice folder without suffix (e.g. ``digits/1``)."""

    name: str
    audio: np.ndarray  # (T,) float32 at SAMPLING_RATE, processed
    split: str


# ------------------------------------------------------------------------------------------ the package


def download_package(folder: Path) -> Path:
    """``apt-get download`` the package into ``folder``; returns the .deb path."""
    if shutil.which("apt-get") is None:
        raise VoiceDataError(f"apt-get not found: download {PACKAGE}'s .deb yourself and pass --deb FILE")
    result = subprocess.run(
        ["apt-get", "download", PACKAGE], cwd=folder, capture_output=True, text=True, check=False
    )
    debs = sorted(folder.glob(f"{PACKAGE}_*.deb"))
    if result.returncode != 0 or not debs:
        raise VoiceDataError(
            f"apt-get download {PACKAGE} failed ({result.stderr.strip() or result.returncode}); "
            "run `apt-get update` first, or pass --deb FILE"
        )
    return debs[-1]


def deb_members(deb: Path) -> dict[str, bytes]:
    """The files of a .deb (an ar archive holding data.tar.*) under VOICE_DIR: {relative path: bytes}."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise VoiceDataError(f"{deb}: not a Debian package (no ar header)")
    offset, data = 8, None
    while offset + 60 <= len(raw):
        header = raw[offset : offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = raw[offset + 60 : offset + 60 + size]
        if name.startswith("data.tar"):
            data = body
        offset += 60 + size + (size % 2)
    if data is None:
        raise VoiceDataError(f"{deb}: no data.tar member")
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # gz, xz and zstd-less bz2 are detected
        for member in tar.getmembers():
            path = member.name.lstrip("./")
            if member.isfile() and path.startswith(VOICE_DIR + "/") and path.endswith(".g722"):
                files[path[len(VOICE_DIR) + 1 :]] = tar.extractfile(member).read()
    if not files:
        raise VoiceDataError(f"{deb}: no .g722 prompts under {VOICE_DIR}")
    return files


def folder_members(folder: Path) -> dict[str, bytes]:
    """The .g722 files of an installed voice folder (e.g. /usr/share/asterisk/sounds/en_US_f_Allison)."""
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.g722"))}
    if not files:
        raise VoiceDataError(f"{folder}: no .g722 files")
    return files


# ------------------------------------------------------------------------------------------ processing


def decode_g722(data: bytes) -> np.ndarray:
    """G.722 at 64 kbit/s -> float32 (T,) at 16 kHz in [-1, 1]."""
    import G722

    pcm = np.asarray(G722.G722(SOURCE_RATE, 64000).decode(data), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def trim(audio: np.ndarray, rate: int, margin_s: float = 0.12, threshold_db: float = -40.0) -> np.ndarray:
    """Cut leading and trailing silence: frames (20 ms) more than 40 dB below the loudest frame, keeping
    ``margin_s`` of audio on each side of the speech."""
    frame = int(0.02 * rate)
    n_frames = len(audio) // frame
    if n_frames == 0:
        return audio
    energy = (audio[: n_frames * frame].reshape(n_frames, frame) ** 2).mean(axis=1)
    loud = np.flatnonzero(10 * np.log10(energy + 1e-12) > 10 * np.log10(energy.max() + 1e-12) + threshold_db)
    margin = int(margin_s * rate)
    start = max(0, loud[0] * frame - margin)
    end = min(len(audio), (loud[-1] + 1) * frame + margin)
    return audio[start:end]


def process(audio16k: np.ndarray) -> np.ndarray:
    """16 kHz prompt -> 22050 Hz: 40 Hz high-pass, resample, trim, peak at -1 dBFS."""
    import torchaudio.functional as AF

    with torch.no_grad():
        filtered = AF.highpass_biquad(torch.from_numpy(audio16k), SOURCE_RATE, 40.0).numpy()
    audio = trim(resample(filtered, SOURCE_RATE, SAMPLING_RATE), SAMPLING_RATE)
    peak = float(np.abs(audio).max())
    return (audio * (10 ** (-1 / 20) / peak)).astype(np.float32) if peak > 0 else audio


def split_of(name: str, reserved: set[str]) -> str | None:
    """'reserved', 'validation', 'train', or None for prompts that are not speech."""
    stem = name.rsplit("/", 1)[-1]
    if name.startswith("silence/") or stem in NOT_SPEECH:
        return None
    if name in reserved:
        return "reserved"
    if stem in DEMO_HELD_OUT:
        return "validation"
    rank = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") / 2**64
    return "validation" if rank < VALIDATION_SHARE else "train"


def read_reserved(path: Path) -> set[str]:
    """Prompt names (relative, without .g722) from a list like ../shared/reserved_prompts.txt."""
    if not path.is_file():
        raise VoiceDataError(f"{path}: reserved-prompt list not found")
    names = set()
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line.removesuffix(".g722"))
    return names


# ------------------------------------------------------------------------------------------ the set


def build(out_dir: Path, members: dict[str, bytes], reserved: set[str]) -> dict[str, list[str]]:
    """Decode and write every prompt to ``out_dir/clips/<name>.flac`` with the lists, metadata and
    attribution; returns {split: [relative paths]}. Existing clips are rewritten (the result is the same)."""
    import soundfile as sf
    from tqdm import tqdm

    lists: dict[str, list[str]] = {"train": [], "validation": [], "reserved": []}
    rows = ["file\tsplit\tduration_s\tlicence\tsource"]
    missing = sorted(reserved - {name.removesuffix(".g722") for name in members})
    if missing:
        log.warning("reserved prompts not in the package: %s", ", ".join(missing))
    for file_name in tqdm(sorted(members), desc="prompts", unit="file"):
        name = file_name.removesuffix(".g722")
        split = split_of(name, reserved)
        if split is None:
            continue
        audio = process(decode_g722(members[file_name]))
        rel = f"clips/{name}.flac"

        def write(handle, audio=audio):
            sf.write(handle, audio, SAMPLING_RATE, subtype="PCM_16", format="FLAC")

        atomic_write(out_dir / rel, write, durable=False)
        lists[split].append(rel)
        rows.append(
            f"{rel}\t{split}\t{len(audio) / SAMPLING_RATE:.3f}\tCC-BY-SA-3.0\t"
            f"Debian {PACKAGE}: {VOICE_DIR}/{file_name}"
        )
    for split, paths in lists.items():
        atomic_write_text(out_dir / f"{split}.txt", "".join(p + "\n" for p in paths))
    atomic_write_text(out_dir / "metadata.tsv", "\n".join(rows) + "\n")
    atomic_write_text(out_dir / "README.md", _readme(lists))
    return lists


def _readme(lists: dict[str, list[str]]) -> str:
    counts = ", ".join(f"{len(paths)} {split}" for split, paths in lists.items())
    return f"""# Allison: the single-voice training set of the bundled model

Built by `python -m waveglow.data voice` from the Debian package `{PACKAGE}` ({VOICE_DIR}/*.g722):
prompts spoken by **Allison Smith** (US English, female), distributed by the Asterisk project (Digium, Inc.)
under the **Creative Commons Attribution-ShareAlike 3.0** licence (https://creativecommons.org/licenses/by-sa/3.0/).

Changes (these files are adaptations, shared under CC BY-SA 3.0): decoded from G.722 (16 kHz, so nothing
above 8 kHz), high-passed at 40 Hz, resampled to 22050 Hz, silence-trimmed (120 ms kept), peak-normalised
to -1 dBFS, stored as 16-bit mono FLAC. Tones, beeps and the silence files are left out.

Split ({counts}): `reserved.txt` lists the prompts named in the project's reserved-prompt list. They are
kept for independent evaluation: never train on them, tune on them, or choose checkpoints with them.
`validation.txt` holds the four clips held out by the demo and a fixed 5% of the rest (by SHA-1 of the name);
`train.txt` the others. `metadata.tsv` lists every clip with its split, duration and source file.
"""
