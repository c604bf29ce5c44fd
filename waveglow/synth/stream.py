"""Streaming synthesis (``Vocoder.stream``): audio for mel frames while the rest of the utterance is still
being generated.

The flow is not causal: the audio of frame f depends on the mel and z of frames f - left .. f + right, the
model's ``receptive_field()`` (published WaveGlow: 99 and 96 frames; the shipped light flow: 48 and 48, i.e.
1.11 s and 0.56 s of look-ahead at 22.05 kHz with hop 256). The stream keeps the mel frames and z columns it
still needs and, whenever at least ``min_chunk_frames`` frames not yet emitted have ``lookahead_frames``
frames after them, synthesises the window [emitted - left, received) through the vocoder's own engine and
cuts out those frames' audio; at the end of the input it emits the rest. Window starts are multiples of
``frames_per_z_column`` frames, so a window's z is exactly a run of whole columns of the one-pass z (drawn
block by block, ``Vocoder.noise_blocks``), and its mel frames sit on the same z steps as in one pass.

Exactness. With ``lookahead_frames`` >= ``right`` (the default, None, is ``right``) and ``left`` frames of
left context, every emitted frame sees everything one pass lets it see, so the concatenated stream is the
one-pass audio to float rounding. With less look-ahead, the last frames of every emitted chunk miss the mel
and z beyond the window and differ from one pass (README, "Streaming", has measured sizes).

Cost. Each window recomputes its left context and its look-ahead: about (left + n + lookahead) / n times one
pass's work for chunks of n frames (7x for the light flow at n = 16 with the exact look-ahead, 13x for the
published WaveGlow); a larger ``min_chunk_frames`` trades latency for less work.

Denoising (``denoise`` > 0) is exact too: the denoiser is an STFT (n_fft = filter_length, frames centred at
multiples of hop_length), so its output at a sample depends only on its input within filter_length samples;
the stream holds the denoised audio back ceil(filter_length / hop_length) frames more (4 frames, 46 ms, for
the default config) and denoises windows that start on a frame, so every STFT frame it uses is one that the
one-pass denoiser uses too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import torch

from waveglow.synth.inputs import MelInput, validate_mel

if TYPE_CHECKING:
    from waveglow.synth.vocoder import Vocoder

# Emit at least this many frames at a time (186 ms at 22.05 kHz, hop 256): each emission recomputes the
# receptive field around them, so one-frame emissions would cost ~100x one pass for the light flow.
DEFAULT_MIN_CHUNK_FRAMES = 16


def stream_audio(
    vocoder: Vocoder,
    chunks: Iterable[MelInput],
    sigma: float = 0.6,
    seed: int = 0,
    lookahead_frames: int | None = None,
    min_chunk_frames: int = DEFAULT_MIN_CHUNK_FRAMES,
    denoise: float = 0.0,
) -> Iterator[torch.Tensor]:
    """Mel chunks (n_mel, k_i) (tensors or arrays; (1, n_mel, k_i) too) -> audio chunks (n_j,) float32 in
    [-1, 1] on the vocoder's device, each a whole number of frames (n_j = frames * hop_length).

    Their concatenation is ``vocoder(mel, sigma=sigma, seeds=[seed], denoise=denoise)[0]`` for the
    concatenated mel: to float rounding when ``lookahead_frames`` is None (``vocoder.receptive_field.right``)
    or more, approximately with fewer (0 allowed: emit as soon as a frame arrives). ``min_chunk_frames``
    (>= 1): the fewest new frames synthesised at a time, so every audio chunk but the last (with ``denoise``,
    the first and the last) has at least that many. ``denoise``: bias-removal strength, exact as well, at
    ``ceil(filter_length / hop_length)`` frames more delay. The options are checked at once (ValueError); each
    chunk when it arrives, like the vocoder's inputs (InputError naming "mel chunk i" for a wrong shape or bin
    count, no frames, NaN or inf; a mel of another convention is warned about, chunk by chunk).
    """
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if lookahead_frames is not None and lookahead_frames < 0:
        raise ValueError(
            f"lookahead_frames must be >= 0 (or None: the receptive field), got {lookahead_frames}"
        )
    if min_chunk_frames < 1:
        raise ValueError(f"min_chunk_frames must be >= 1, got {min_chunk_frames}")
    if not denoise >= 0:
        raise ValueError(f"denoise must be >= 0, got {denoise}")
    lookahead = vocoder.receptive_field.right if lookahead_frames is None else lookahead_frames
    return _stream(vocoder, chunks, sigma, seed, lookahead, min_chunk_frames, denoise)


@torch.inference_mode()
def _stream(
    vocoder: Vocoder,
    chunks: Iterable[MelInput],
    sigma: float,
    seed: int,
    lookahead: int,
    min_chunk_frames: int,
    denoise: float,
) -> Iterator[torch.Tensor]:
    flow = FlowWindows(vocoder, sigma, seed, lookahead)
    denoising = DenoiseWindows(vocoder, denoise) if denoise > 0 else None
    end = object()  # not None: a None chunk is a bad chunk, named like the others
    final = False
    chunk_iter = iter(chunks)
    while not final:
        chunk = next(chunk_iter, end)
        final = chunk is end
        if not final:
            source = f"mel chunk {flow.chunks_received}"
            flow.add(validate_mel(chunk, vocoder.config.audio, source, strict_convention=False))
        audio = flow.take(min_chunk_frames, final)
        if denoising is not None:
            if audio is not None:
                denoising.add(audio)
            audio = denoising.take(final)
        if audio is not None and audio.numel():
            yield audio.clamp(-1.0, 1.0)


class FlowWindows:
    """The flow side of a stream: mel frames in, exact (unclamped) audio of whole frames out, in order.

    Holds the mel frames [mel_start, received) and the z columns [z_start, ...) that later windows still
    need (``left`` frames of context before the first frame not yet emitted, rounded down to a whole z column).
    """

    def __init__(self, vocoder: Vocoder, sigma: float, seed: int, lookahead: int):
        self.vocoder, self.sigma, self.lookahead = vocoder, sigma, lookahead
        self.field = vocoder.receptive_field
        self.hop, self.n_group = vocoder.hop_length, vocoder.n_group
        self.align = vocoder.frames_per_z_column
        self.blocks = vocoder.noise_blocks(seed)
        self.chunks_received = 0
        self.received = 0  # mel frames received
        self.emitted = 0  # frames whose audio has been handed out
        self.mel_start = 0  # frame of self.mel[0]'s first column
        self.mel: list[torch.Tensor] = []  # (n_mel, k) pieces, frames [mel_start, received)
        self.z_start = 0  # z column of self.z's first column
        self.z = torch.zeros(self.n_group, 0, device=vocoder.device)  # (n_group, columns) unscaled

    def add(self, mel: torch.Tensor) -> None:
        """Append a checked mel chunk (n_mel, k)."""
        self.mel.append(mel.to(self.vocoder.device))
        self.received += mel.shape[1]
        self.chunks_received += 1

    def take(self, min_frames: int, final: bool) -> torch.Tensor | None:
        """Audio ((ready - emitted) * hop,) of the frames now ready, or None while fewer than ``min_frames``
        are (at the end of the input, ``final``: all the rest)."""
        ready = self.received if final else self.received - self.lookahead
        if ready - self.emitted < (1 if final else min_frames):
            return None
        start = self._window_start(self.emitted)
        end = self.received if final else min(self.received, ready + self.field.right)
        audio = self._synthesize(start, end)  # ((end - start) * hop,)
        piece = audio[(self.emitted - start) * self.hop : (ready - start) * self.hop]
        self.emitted = ready
        self._forget_before(self._window_start(ready))
        return piece

    def _window_start(self, frame: int) -> int:
        """The first frame of the window for audio from ``frame`` on: ``left`` frames earlier, on a z column."""
        start = max(0, frame - self.field.left)
        return start - start % self.align

    def _synthesize(self, start: int, end: int) -> torch.Tensor:
        """The vocoder's one-pass synthesis of frames [start, end) with their slice of the one-pass z."""
        mel = torch.cat(self.mel, dim=1)[
            :, start - self.mel_start : end - self.mel_start
        ]  # (n_mel, end-start)
        first = start * self.hop // self.n_group  # whole: start is a multiple of frames_per_z_column
        z = self._z(first, first + self.vocoder.z_columns(end - start))
        return self.vocoder._synthesize_batch([mel], [z * self.sigma])[0]

    def _z(self, first: int, last: int) -> torch.Tensor:
        """z columns [first, last) (n_group, last - first), drawing blocks as needed."""
        drawn = [self.z]
        end = self.z_start + self.z.shape[1]
        while end < last:
            block = next(self.blocks)
            drawn.append(block.to(self.z.device))
            end += block.shape[1]
        self.z = torch.cat(drawn, dim=1)
        return self.z[:, first - self.z_start : last - self.z_start]

    def _forget_before(self, frame: int) -> None:
        """Drop the mel frames and z columns before ``frame`` (no later window starts earlier)."""
        if frame > self.mel_start:
            self.mel = [torch.cat(self.mel, dim=1)[:, frame - self.mel_start :]]
            self.mel_start = frame
        column = frame * self.hop // self.n_group
        if column > self.z_start:
            self.z = self.z[:, column - self.z_start :]
            self.z_start = column


class DenoiseWindows:
    """The denoiser side of a stream: exact model audio of whole frames in, denoised audio out, in order.

    The denoised audio of frame f needs the model audio of frames f - margin .. f + margin (margin =
    ceil(filter_length / hop_length)): every STFT frame that reaches f lies within filter_length samples of it.
    """

    def __init__(self, vocoder: Vocoder, strength: float):
        self.vocoder, self.strength = vocoder, strength
        self.hop = vocoder.hop_length
        self.margin = -(-vocoder.config.audio.filter_length // self.hop)
        self.start = 0  # frame of the first sample held
        self.end = 0  # frames of model audio received
        self.emitted = 0
        self.audio: list[torch.Tensor] = []  # model audio of frames [start, end)

    def add(self, audio: torch.Tensor) -> None:
        """Append the model audio of the next frames (a whole number of them)."""
        self.audio.append(audio)
        self.end += audio.shape[0] // self.hop

    def take(self, final: bool) -> torch.Tensor | None:
        """Denoised audio of the frames now ready (all the rest when ``final``), or None."""
        ready = self.end if final else self.end - self.margin
        if ready <= self.emitted:
            return None
        held = torch.cat(self.audio)  # frames [start, end)
        denoised = self.vocoder.denoiser(held, self.strength)
        piece = denoised[(self.emitted - self.start) * self.hop : (ready - self.start) * self.hop]
        self.emitted = ready
        keep = max(0, ready - self.margin)
        self.audio = [held[(keep - self.start) * self.hop :]]
        self.start = keep
        return piece
