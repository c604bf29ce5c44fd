"""The batch job of ``infer.py``: collect inputs (mels, audio, folders, filelists), synthesise them in
length-grouped batches with a ``Vocoder``, write one wav per input atomically, skip finished outputs,
report bad inputs per file and keep going, and shard the inputs across torchrun processes.

Each file's noise seed derives from ``--seed`` and its output name (see ``item_seed``), so a file's audio
does not depend on the batch size, the sharding or resuming.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from waveglow.audio import ArrayReadError, AudioFileError, load_audio, read_array_file, save_audio
from waveglow.config import AudioConfig
from waveglow.cpu_load import LoadAwareThreads
from waveglow.device import check_device
from waveglow.filelists import AUDIO_SUFFIXES, DataError, read_filelist
from waveglow.files import temporary_files
from waveglow.interrupts import StopSignals
from waveglow.synth.inputs import InputError, item_seed, validate_mel
from waveglow.synth.vocoder import DEFAULT_MAX_FRAMES, DEFAULT_OVERLAP_FRAMES, Vocoder

log = logging.getLogger(__name__)

MEL_EXTENSIONS = (".npy", ".pt")
FILELIST_EXTENSIONS = (".txt",)
# Write errors that every later file in the folder would meet too: the job stops at the first one.
FOLDER_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


@dataclass
class JobItem:
    """One input of a batch job: where it comes from, where its wav goes, and its noise seed."""

    source: Path
    output: Path
    kind: str  # "mel" or "audio"
    seed: int = 0


@dataclass
class JobSummary:
    """What a ``synthesize_files`` run did (on this rank)."""

    rank: int = 0
    world_size: int = 1
    seed: int = 0
    written: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)
    audio_samples: int = 0
    sampling_rate: int = 0
    synthesis_seconds: float = 0.0  # model time (incl. denoising), excluding file I/O
    wall_seconds: float = 0.0
    interrupted: str | None = None  # the signal that ended the job early ("SIGINT", "SIGTERM")
    write_error: str | None = None  # a full disk (or read-only folder) that ended the job early
    not_started: int = 0  # inputs left for a rerun after an interruption or a write error

    @property
    def audio_seconds(self) -> float:
        return self.audio_samples / self.sampling_rate if self.sampling_rate else 0.0

    @property
    def samples_per_second(self) -> float:
        return self.audio_samples / self.synthesis_seconds if self.synthesis_seconds > 0 else 0.0

    @property
    def real_time_factor(self) -> float:
        """Synthesis seconds per second of audio (below 1: faster than real time)."""
        return self.synthesis_seconds / self.audio_seconds if self.audio_seconds > 0 else 0.0

    def report(self) -> str:
        """A few human-readable lines: files, audio seconds, speed, failures with their reasons."""
        where = f" (rank {self.rank} of {self.world_size})" if self.world_size > 1 else ""
        lines = [
            f"synthesis summary{where}: {self.written} written, {self.skipped} skipped (exist), "
            f"{len(self.failures)} failed; seed {self.seed}",
            f"audio {self.audio_seconds:.2f} s in {self.synthesis_seconds:.2f} s of synthesis "
            f"({self.wall_seconds:.2f} s wall): {self.samples_per_second:,.0f} samples/s, "
            f"real-time factor {self.real_time_factor:.4f}",
        ]
        if self.interrupted or self.write_error:
            why = f"by {self.interrupted}" if self.interrupted else f"at a write error ({self.write_error})"
            lines.append(
                f"stopped {why}: {self.not_started} input(s) not started; run the same command again to "
                "finish them (finished files are skipped)"
            )
        lines += [f"FAILED {source}: {reason}" for source, reason in self.failures]
        return "\n".join(lines)


def _read_filelist(path: Path) -> list[Path]:
    """Paths in a filelist (``filelists.read_filelist``, the one reader: a byte-order mark, blank lines and
    ``#`` comments are skipped, 'path|text...' lines give their path); relative to the list's folder."""
    try:
        return read_filelist(path)
    except DataError as exc:
        raise InputError(str(exc)) from exc


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "mel" if suffix in MEL_EXTENSIONS else "audio" if suffix in AUDIO_SUFFIXES else None


def collect_inputs(
    inputs: Sequence[str | Path], output_dir: str | Path, seed: int = 0
) -> tuple[list[JobItem], list[tuple[str, str]]]:
    """Expand files, directories (recursively, keeping subfolders in the output) and .txt filelists.

    Returns (items in a deterministic order, failures (input, reason)). Each output is ``output_dir``/
    name.wav; an input whose output name is already taken, or would overwrite the input, is a failure.
    """
    output_dir = Path(output_dir)
    candidates: list[tuple[Path, Path]] = []  # (source, output path relative to output_dir)
    failures: list[tuple[str, str]] = []
    known = ", ".join(MEL_EXTENSIONS + AUDIO_SUFFIXES + FILELIST_EXTENSIONS)
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = _folder_inputs(path, output_dir)
            if not found:
                failures.append((str(path), "directory holds no mel or audio files"))
            candidates += [(p, p.relative_to(path).with_suffix(".wav")) for p in found]
        elif not path.exists():
            failures.append((str(path), "not found"))
        elif path.suffix.lower() in FILELIST_EXTENSIONS:
            try:
                candidates += [(p, Path(p.stem + ".wav")) for p in _read_filelist(path)]
            except InputError as exc:
                failures.append((str(path), _reason(exc, path)))
        else:
            candidates.append((path, Path(path.stem + ".wav")))
    items: list[JobItem] = []
    taken: dict[Path, Path] = {}
    for source, relative in candidates:
        kind = _kind(source)
        if kind is None:
            failures.append(
                (str(source), f"unknown extension {source.suffix!r} (expected {known} or a folder)")
            )
            continue
        output = output_dir / relative
        resolved = source.resolve()
        if output.resolve() in taken:
            if taken[output.resolve()] != resolved:
                failures.append(
                    (str(source), f"output {output} is already the output of {taken[output.resolve()]}")
                )
            continue
        if output.resolve() == resolved:
            failures.append((str(source), f"output {output} would overwrite the input"))
            continue
        taken[output.resolve()] = resolved
        items.append(JobItem(source, output, kind, item_seed(seed, relative.as_posix())))
    return items, failures


def _folder_inputs(folder: Path, output_dir: Path) -> list[Path]:
    """The mel and audio files under ``folder`` (sorted), less this job's own outputs from an earlier run:
    everything under ``output_dir`` when it lies inside ``folder``, and, when it is ``folder`` itself, each
    wav that another input there is synthesised into (a.wav beside a.npy). A rerun then sees the same
    inputs as the first run."""
    found = sorted(p for p in folder.rglob("*") if p.is_file() and _kind(p) is not None)
    folder_abs, output_abs = folder.resolve(), output_dir.resolve()
    if output_abs != folder_abs and output_abs.is_relative_to(folder_abs):
        return [p for p in found if not p.resolve().is_relative_to(output_abs)]
    if output_abs == folder_abs:
        wanted = {p.with_suffix(".wav") for p in found if p.suffix.lower() != ".wav"}
        return [p for p in found if p not in wanted]
    return found


def finished_output(path: Path) -> bool:
    """Whether ``path`` is a finished output: a wav whose header reads and that holds samples. A file left
    empty or damaged by something else (our writes are atomic) is not, and is written again."""
    try:
        import soundfile as sf

        return path.is_file() and sf.info(str(path)).frames > 0
    except Exception:  # noqa: BLE001 - soundfile raises several types for damaged files
        return False


def remove_stale_temporaries(items: Sequence[JobItem]) -> int:
    """Delete the temporary files that a killed earlier run left beside these items' outputs; returns how
    many. Only this job's own outputs: another process writing other files in the folder is left alone."""
    removed = 0
    for item in items:
        for stale in temporary_files(item.output):
            stale.unlink(missing_ok=True)
            removed += 1
    return removed


def load_mel_file(path: Path, audio_cfg: AudioConfig) -> torch.Tensor:
    """A .npy or .pt mel file -> checked float32 (n_mel, F) on the CPU; InputError naming the file."""
    if not path.is_file():
        raise InputError(f"{path}: not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    try:
        mel = read_array_file(path)
    except ArrayReadError as exc:
        message = f"cannot read {path.suffix} file ({exc.detail})" if exc.from_reader else exc.detail
        raise InputError(f"{path}: {message}") from exc
    return validate_mel(mel, audio_cfg, str(path))


@dataclass
class _Loaded:
    item: JobItem
    mel: torch.Tensor  # (n_mel, F) on the CPU
    n_samples: int  # samples to write: F*hop for mels, the input's length for audio


def _load_item(item: JobItem, vocoder: Vocoder) -> _Loaded:
    if item.kind == "mel":
        mel = load_mel_file(item.source, vocoder.config.audio)
        return _Loaded(item, mel, mel.shape[1] * vocoder.hop_length)
    audio, _ = load_audio(item.source, vocoder.sampling_rate)
    if audio.shape[0] <= vocoder.config.audio.filter_length // 2:
        raise InputError(
            f"{item.source}: {audio.shape[0]} samples is too short for the mel front end "
            f"(needs more than {vocoder.config.audio.filter_length // 2})"
        )
    return _Loaded(item, vocoder.mel(audio)[0].cpu(), audio.shape[0])


def shard_info(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world size) from the arguments or torchrun's RANK / WORLD_SIZE environment."""
    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    return rank, world_size


@dataclass(frozen=True)
class JobOptions:
    """What a batch job does with its inputs (the model's own options go to ``Vocoder.from_checkpoint``).

    sigma: std of z; denoise: bias-removal strength (0: off); batch_size: inputs per synthesis call;
    seed: the job's seed (each file's noise derives from it and its output name); max_frames: mels longer
    than this run in crossfaded chunks; overwrite: rewrite finished outputs; rank / world_size: this
    process's shard (None: torchrun's RANK / WORLD_SIZE); progress: a progress bar on rank 0; threads (CPU):
    "auto" keeps torch's threads to the cores other processes leave free, checked between batches
    (``waveglow.cpu_load``), a number fixes them, None leaves them as they are; the count is restored after.
    """

    sigma: float = 0.6
    denoise: float = 0.0
    batch_size: int = 8
    seed: int = 0
    max_frames: int = DEFAULT_MAX_FRAMES
    overwrite: bool = False
    rank: int | None = None
    world_size: int | None = None
    progress: bool = True
    threads: int | str | None = "auto"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if (
            self.threads is not None
            and self.threads != "auto"
            and not (isinstance(self.threads, int) and self.threads >= 1)
        ):
            raise ValueError(f"threads must be 'auto', a count >= 1 or None, got {self.threads!r}")
        if not (self.sigma >= 0 and self.denoise >= 0):
            raise ValueError(f"sigma and denoise must be >= 0, got {self.sigma} and {self.denoise}")


def synthesize_files(
    model: Vocoder | str | Path,
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    options: JobOptions | None = None,
    stop: StopSignals | None = None,
    **vocoder_options: Any,
) -> JobSummary:
    """Write one 16-bit wav per input into ``output_dir``; a bad input is reported, the others still written.

    ``model``: a ready ``Vocoder``, or a checkpoint path or shipped name, read (with ``vocoder_options``:
    device, precision, overlap_frames, engine, compile, cuda_graphs, audio_overrides, as in
    ``Vocoder.from_checkpoint``) only when there is something to synthesise. Mel files (.npy/.pt, (n_mel, F)
    or (1, n_mel, F)) are vocoded, audio files copy-synthesised; inputs (``collect_inputs``) are sharded
    over ranks (rank r takes items r::world_size), existing outputs are skipped unless
    ``options.overwrite``, and batches group inputs of similar length. ``stop``: an entered
    ``interrupts.StopSignals``; once it has received a signal, the job ends after the current batch (every
    file written so far is whole) and the summary says how many were not started.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    options = options or JobOptions()
    vocoder = model if isinstance(model, Vocoder) else None
    if vocoder is not None and vocoder_options:
        raise ValueError(f"options {sorted(vocoder_options)} apply to a checkpoint, not to a ready Vocoder")
    overlap = (
        vocoder.overlap_frames if vocoder else vocoder_options.get("overlap_frames", DEFAULT_OVERLAP_FRAMES)
    )
    max_frames, seed = options.max_frames, options.seed
    if max_frames < 2 * overlap:
        raise ValueError(f"max_frames ({max_frames}) must be at least twice overlap_frames ({overlap})")
    rank, world_size = shard_info(options.rank, options.world_size)
    items, failures = collect_inputs(inputs, output_dir, seed)
    summary = JobSummary(rank=rank, world_size=world_size, seed=seed)
    summary.failures = failures if rank == 0 else []  # every rank sees them; one reports them
    for source, reason in summary.failures:
        log.warning("%s: %s", source, reason)
    mine = items[rank::world_size]
    if remove_stale_temporaries(mine):
        log.info("removed temporary files left by an interrupted earlier run")
    todo = [item for item in mine if options.overwrite or not finished_output(item.output)]
    for item in todo:
        if not options.overwrite and item.output.exists():
            log.warning("%s: exists but is not a finished wav; writing it again", item.output)
    summary.skipped = len(mine) - len(todo)
    if vocoder is None:
        # a clean error for a device this machine lacks, before the model is read
        check_device(vocoder_options.get("device"))
    if todo and vocoder is None:
        vocoder = Vocoder.from_checkpoint(model, **vocoder_options)
    if vocoder is not None:
        summary.sampling_rate = vocoder.sampling_rate
    bar = tqdm(total=len(todo), unit="file", disable=not options.progress or rank != 0, desc="synthesis")
    failed_before = len(summary.failures)

    def stopping() -> bool:
        return summary.write_error is not None or (stop is not None and stop.received is not None)

    threads = _cpu_threads(options.threads, vocoder) if todo else None
    try:
        _run_pools(vocoder, todo, summary, bar, options, stopping, threads)
    finally:
        if threads is not None:
            threads.restore()
    bar.close()
    if stopping():
        summary.interrupted = stop.received if stop is not None else None
        summary.not_started = len(todo) - summary.written - (len(summary.failures) - failed_before)
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _cpu_threads(option: int | str | None, vocoder: Vocoder) -> LoadAwareThreads | None:
    """What controls torch's threads during a CPU job (None: nothing; see ``JobOptions.threads``)."""
    if option is None or vocoder.device.type != "cpu":
        return None
    control = LoadAwareThreads(max_threads=None if option == "auto" else int(option), min_interval=2.0)
    if option != "auto":
        torch.set_num_threads(control.max_threads)  # fixed; restore() puts back the count found
        control.threads = control.max_threads
        return control
    if control.max_threads > 1:
        control.settle()
    return control


def _run_pools(
    vocoder: Vocoder,
    todo: list[JobItem],
    summary: JobSummary,
    bar: Any,
    options: JobOptions,
    stopping: Callable[[], bool],
    threads: LoadAwareThreads | None,
) -> None:
    """Read the inputs a pool at a time, sort each pool by length, synthesise it in batches."""
    batch_size = options.batch_size
    pool_size = batch_size * 16  # read this many, sort them by length, synthesise in batches
    for pool_start in range(0, len(todo), pool_size):
        if stopping():
            break
        loaded = []
        for item in todo[pool_start : pool_start + pool_size]:
            try:
                loaded.append(_load_item(item, vocoder))
            except (InputError, AudioFileError) as exc:
                _fail(summary, item, _reason(exc, item.source), bar)
        loaded.sort(key=lambda entry: entry.mel.shape[1])
        for start in range(0, len(loaded), batch_size):
            if stopping():
                break
            if threads is not None and options.threads == "auto":
                threads.update()
            _run_batch(vocoder, loaded[start : start + batch_size], summary, bar, options)


def _reason(exc: Exception, path: Path) -> str:
    """An error message without its leading "path: " (the summary names the file itself)."""
    message = str(exc)
    return message[len(str(path)) + 2 :] if message.startswith(f"{path}: ") else message


def _fail(summary: JobSummary, item: JobItem, reason: str, bar: Any) -> None:
    log.warning("%s: %s", item.source, reason)
    summary.failures.append((str(item.source), reason))
    bar.update(1)


def _run_batch(
    vocoder: Vocoder, batch: list[_Loaded], summary: JobSummary, bar: Any, options: JobOptions
) -> None:
    """Synthesise and write one batch; if the batch fails as a whole, retry its items one by one."""
    try:
        audio = _timed_synthesis(vocoder, batch, summary, options)
    except (RuntimeError, ValueError) as exc:
        if len(batch) == 1:
            detail = (str(exc).strip().splitlines() or [""])[0][:300]
            hint = ""
            if "out of memory" in str(exc) or "can't allocate memory" in str(exc):
                frames = batch[0].mel.shape[1]
                hint = (
                    f"; this mel has {frames} frames: a smaller --max-frames (now {options.max_frames}) "
                    "bounds the memory"
                )
            _fail(summary, batch[0].item, f"synthesis failed ({type(exc).__name__}: {detail}){hint}", bar)
            return
        log.warning("a batch of %d failed (%s); retrying one by one", len(batch), exc)
        if vocoder.device.type == "cuda":
            torch.cuda.empty_cache()  # after an out-of-memory error, give the single items room
        for entry in batch:
            _run_batch(vocoder, [entry], summary, bar, options)
        return
    for entry, wav in zip(batch, audio):
        if summary.write_error is not None:
            return  # the folder takes no more files: the rest of the batch is "not started"
        try:
            save_audio(entry.item.output, wav[: entry.n_samples], vocoder.sampling_rate)
        except (OSError, RuntimeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            _fail(summary, entry.item, f"cannot write {entry.item.output}: {reason}", bar)
            if isinstance(exc, OSError) and exc.errno in FOLDER_ERRNOS:
                summary.write_error = f"{entry.item.output.parent}: {reason}"
            continue
        summary.written += 1
        summary.audio_samples += min(entry.n_samples, wav.shape[0])
        bar.update(1)


def _timed_synthesis(
    vocoder: Vocoder, batch: list[_Loaded], summary: JobSummary, options: JobOptions
) -> list[np.ndarray]:
    started = time.perf_counter()
    with torch.inference_mode():  # the mels were checked when loaded: synthesize, not __call__, which checks
        audio = vocoder.synthesize(
            [entry.mel.to(vocoder.device) for entry in batch],
            [entry.item.seed for entry in batch],
            sigma=options.sigma,
            denoise=options.denoise,
            max_frames=options.max_frames,
        )
    result = [wav.cpu().numpy() for wav in audio]  # waits for the device
    summary.synthesis_seconds += time.perf_counter() - started
    return result
