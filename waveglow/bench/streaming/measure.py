"""What streaming synthesis (``Vocoder.stream``) costs and how much a short look-ahead changes: latency to the
first audio chunk, real-time factor, and the difference from one pass on real speech
(``python -m waveglow.bench.streaming``).

The mel arrives ``arrival_frames`` at a time with no wait between chunks, so the latency measured is the
compute between the first mel chunk and the first audio chunk; a TTS front end adds the time it takes to
produce the look-ahead's frames.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from waveglow.audio import load_audio
from waveglow.bench.variants import MODELS, build_model
from waveglow.config import AudioConfig, Config
from waveglow.metrics import log_mel_distance
from waveglow.synth.stream import DEFAULT_MIN_CHUNK_FRAMES
from waveglow.synth.vocoder import Vocoder

log = logging.getLogger(__name__)

ARRIVAL_FRAMES = 10  # mel frames per arriving chunk (116 ms at 22.05 kHz, hop 256)
SHORT_LOOKAHEAD_FRAMES = 8  # the short look-ahead timed against the exact one (93 ms)
SPEECH_LOOKAHEADS = (0, 1, 2, 4, 6, 8, 12, 16, 24, 48)  # look-aheads compared with one pass on real speech
DEFAULT_ONE_PASS_SECONDS = (
    2.0  # the published model's one-pass reference (0.3x real time: 10 s would take 30 s)
)
WARM_UP_FRAMES = 32  # one untimed synthesis first: the first call of an engine pays for its set-up


def default_vocoder() -> Vocoder:
    """The published architecture with random weights (timing only), on the CPU."""
    config = Config(model=copy.deepcopy(MODELS["default"]), audio=AudioConfig())
    return Vocoder(build_model("default"), config, device="cpu")


def speech_mel(vocoder: Vocoder, clip: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(audio (T,), its mel (n_mel, F)) of a recording at the vocoder's rate."""
    audio, _ = load_audio(clip, vocoder.sampling_rate)
    audio_tensor = torch.from_numpy(audio)
    return audio_tensor, vocoder.mel(audio_tensor)[0]


def tiled_mel(mel: torch.Tensor, frames: int) -> torch.Tensor:
    """``mel`` (n_mel, F) repeated and cut to ``frames`` frames: speech-like input of any length."""
    return mel.repeat(1, -(-frames // mel.shape[1]))[:, :frames]


def time_stream(
    vocoder: Vocoder,
    mel: torch.Tensor,
    lookahead_frames: int | None,
    min_chunk_frames: int = DEFAULT_MIN_CHUNK_FRAMES,
    arrival_frames: int = ARRIVAL_FRAMES,
    first_chunk_only: bool = False,
) -> dict[str, Any]:
    """Stream ``mel`` (n_mel, F) arriving ``arrival_frames`` at a time; wall seconds from the first mel chunk
    to the first audio chunk and to the end (``first_chunk_only``: stop at the first audio chunk)."""
    pulled: list[float] = []
    cpu_start: list[float] = []  # process CPU time (all threads) at the first chunk

    def arriving() -> Iterator[torch.Tensor]:
        for chunk in torch.split(mel, arrival_frames, dim=1):
            pulled.append(time.perf_counter())
            if len(pulled) == 1:
                cpu_start.append(time.process_time())
            yield chunk

    first_audio_s, first_samples, frames_before, samples = None, 0, 0, 0
    pieces = vocoder.stream(
        arriving(), sigma=0.6, seed=0, lookahead_frames=lookahead_frames, min_chunk_frames=min_chunk_frames
    )
    for piece in pieces:
        samples += piece.shape[0]
        if first_audio_s is None:
            first_audio_s = time.perf_counter() - pulled[0]
            first_samples = piece.shape[0]
            frames_before = min(len(pulled) * arrival_frames, mel.shape[1])
            if first_chunk_only:
                break
    total_s = time.perf_counter() - pulled[0]
    cpu_s = time.process_time() - cpu_start[0]
    lookahead = vocoder.receptive_field.right if lookahead_frames is None else lookahead_frames
    row: dict[str, Any] = {
        "lookahead_frames": lookahead,
        "lookahead_ms": 1000 * lookahead * vocoder.hop_length / vocoder.sampling_rate,
        "min_chunk_frames": min_chunk_frames,
        "arrival_frames": arrival_frames,
        "mel_frames_before_first_audio": frames_before,
        "first_audio_s": first_audio_s,
        "first_chunk_audio_s": first_samples / vocoder.sampling_rate,
    }
    if not first_chunk_only:
        audio_s = samples / vocoder.sampling_rate
        row.update(audio_s=audio_s, total_s=total_s, real_time_factor=total_s / audio_s, cpu_s=cpu_s)
    return row


def time_one_pass(vocoder: Vocoder, mel: torch.Tensor) -> dict[str, Any]:
    """Wall seconds of ``vocoder(mel)`` (one pass) and its real-time factor (compute s per audio s)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    vocoder(mel, sigma=0.6, seeds=[0])
    seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    audio_s = mel.shape[1] * vocoder.hop_length / vocoder.sampling_rate
    return {"audio_s": audio_s, "total_s": seconds, "real_time_factor": seconds / audio_s, "cpu_s": cpu_s}


def time_steady_window(
    vocoder: Vocoder, mel: torch.Tensor, lookahead_frames: int, min_chunk_frames: int
) -> dict:
    """What one emission costs once the stream is past its start: one pass over left + min_chunk + look-ahead
    frames for min_chunk frames of audio; real_time_factor is that time per second of the new audio."""
    frames = vocoder.receptive_field.left + min_chunk_frames + lookahead_frames
    timed = time_one_pass(vocoder, mel[:, :frames])
    new_audio_s = min_chunk_frames * vocoder.hop_length / vocoder.sampling_rate
    return {
        "window_frames": frames,
        "window_s": timed["total_s"],
        "real_time_factor": timed["total_s"] / new_audio_s,
    }


def lookahead_errors(
    vocoder: Vocoder, mel: torch.Tensor, lookaheads: tuple[int, ...], sigma: float = 0.6, seed: int = 0
) -> dict[str, Any]:
    """How far streams with each look-ahead are from one pass on ``mel``: max |difference|, its RMS relative to
    the audio's, and the log-mel distance; with, for scale, the distance between two seeds' one passes."""
    one_pass = vocoder(mel, sigma=sigma, seeds=[seed])[0]
    one_pass_mel = vocoder.mel(one_pass)
    other_seed = vocoder(mel, sigma=sigma, seeds=[seed + 1])[0]
    rows = []
    for lookahead in lookaheads:
        chunks = torch.split(mel, ARRIVAL_FRAMES, dim=1)
        audio = torch.cat(list(vocoder.stream(chunks, sigma=sigma, seed=seed, lookahead_frames=lookahead)))
        difference = audio - one_pass
        rows.append(
            {
                "lookahead_frames": lookahead,
                "lookahead_ms": 1000 * lookahead * vocoder.hop_length / vocoder.sampling_rate,
                "max_abs_diff": difference.abs().max().item(),
                "relative_rms_diff": (difference.pow(2).mean() / one_pass.pow(2).mean()).sqrt().item(),
                "log_mel_distance": log_mel_distance(one_pass_mel, vocoder.mel(audio)),
            }
        )
        log.info("look-ahead %d: %s", lookahead, rows[-1])
    return {
        "sigma": sigma,
        "seed": seed,
        "arrival_frames": ARRIVAL_FRAMES,
        "min_chunk_frames": DEFAULT_MIN_CHUNK_FRAMES,
        "one_pass_rms": one_pass.pow(2).mean().sqrt().item(),
        "other_seed_log_mel_distance": log_mel_distance(one_pass_mel, vocoder.mel(other_seed)),
        "rows": rows,
    }


def run_stream_benchmark(
    clip: str | Path,
    seconds: float = 10.0,
    light: str = "allison-light",
    models: tuple[str, ...] = ("light", "default"),
) -> dict[str, Any]:
    """Latency and real-time factor of streaming for the shipped light flow and the published WaveGlow
    (random weights), and the look-ahead's effect on real speech with the light flow.

    The published model runs at about 0.3x real time on two CPU threads, so its whole stream (about 13x one
    pass's work) is not run: its first chunk is timed, and its steady state from one window of the size that
    every emission after the start synthesises."""
    unknown = set(models) - {"light", "default"}
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}: known are light and default")
    result: dict[str, Any] = {"clip": str(clip), "seconds": seconds, "models": {}}
    light_vocoder = Vocoder.from_pretrained(light, device="cpu")
    audio, speech = speech_mel(light_vocoder, clip)
    result["clip_s"] = audio.shape[0] / light_vocoder.sampling_rate
    for name in models:
        vocoder = light_vocoder if name == "light" else default_vocoder()
        frames = math.ceil(seconds * vocoder.sampling_rate / vocoder.hop_length)
        mel = tiled_mel(speech, frames)
        field = vocoder.receptive_field
        vocoder(mel[:, :WARM_UP_FRAMES], seeds=[0])
        rows = []
        for lookahead in (None, SHORT_LOOKAHEAD_FRAMES):
            if name == "light":
                rows.append(time_stream(vocoder, mel, lookahead))
            else:
                row = time_stream(vocoder, mel, lookahead, first_chunk_only=True)
                exact = field.right if lookahead is None else lookahead
                row["steady"] = time_steady_window(vocoder, mel, exact, DEFAULT_MIN_CHUNK_FRAMES)
                rows.append(row)
            log.info("%s stream: %s", name, rows[-1])
        one_pass_frames = frames if name == "light" else round(DEFAULT_ONE_PASS_SECONDS * frames / seconds)
        result["models"][name] = {
            "receptive_field": {"left": field.left, "right": field.right, "columns": field.columns},
            "stream": rows,
            "one_pass": time_one_pass(vocoder, mel[:, :one_pass_frames]),
        }
        log.info("%s one pass: %s", name, result["models"][name]["one_pass"])
    result["speech"] = lookahead_errors(light_vocoder, speech, SPEECH_LOOKAHEADS)
    return result


def cpu_note(row: dict[str, Any]) -> str:
    """ ", CPU x s" (process CPU time, all threads) where the row has it."""
    return f", CPU {row['cpu_s']:.2f} s" if "cpu_s" in row else ""


def format_stream_report(result: dict[str, Any]) -> str:
    """Markdown tables of ``run_stream_benchmark``'s result."""
    lines = [
        "| model | look-ahead | mel frames in before the first audio | first audio after (compute) "
        "| first chunk | whole stream RTF | one pass RTF |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in result["models"].items():
        for row in entry["stream"]:
            if "real_time_factor" in row:
                whole = (
                    f"{row['real_time_factor']:.3f} ({row['total_s']:.2f} s for {row['audio_s']:.1f} s"
                    f"{cpu_note(row)})"
                )
            else:
                steady = row["steady"]
                whole = (
                    f"{steady['real_time_factor']:.1f} in steady state ({steady['window_s']:.2f} s per "
                    f"{steady['window_frames']}-frame window)"
                )
            one_pass = entry["one_pass"]
            lines.append(
                f"| {name} | {row['lookahead_frames']} frames ({row['lookahead_ms']:.0f} ms) "
                f"| {row['mel_frames_before_first_audio']} | {row['first_audio_s']:.3f} s "
                f"| {row['first_chunk_audio_s']:.3f} s of audio | {whole} "
                f"| {one_pass['real_time_factor']:.3f} ({one_pass['audio_s']:.1f} s{cpu_note(one_pass)}) |"
            )
    speech = result["speech"]
    lines += [
        "",
        f"Light flow on {Path(result['clip']).name} ({result['clip_s']:.2f} s), sigma {speech['sigma']}, mel in "
        f"chunks of {speech['arrival_frames']} frames: stream against one pass (for scale, the one passes of two "
        f"seeds differ by a log-mel distance of {speech['other_seed_log_mel_distance']:.3f})",
        "",
        "| look-ahead | max abs diff | relative RMS diff | log-mel distance |",
        "| --- | --- | --- | --- |",
    ]
    for row in speech["rows"]:
        lines.append(
            f"| {row['lookahead_frames']} frames ({row['lookahead_ms']:.0f} ms) | {row['max_abs_diff']:.2e} "
            f"| {row['relative_rms_diff']:.2e} | {row['log_mel_distance']:.2e} |"
        )
    return "\n".join(lines)
