"""Synthesis: the ``Vocoder`` a TTS front end calls. Its inputs are checked in ``inputs.py``, its engines are
``fast.py`` and ``eager.py``, ``score`` is ``waveglow.model.likelihood``; the batch job of ``infer.py`` is ``batch.py``;
``stream`` (audio while the mel is still arriving) is ``stream.py``.

Noise. Item i's latent z_i ~ N(0, 1) of shape (n_group, ceil(F_i * hop_length / n_group)) is drawn on the
CPU from one ``torch.Generator().manual_seed(s_i)`` in blocks of NOISE_BLOCK_COLUMNS columns, in order, each
``randn(NOISE_BLOCK_COLUMNS, n_group)`` transposed (a column's n_group values are consecutive draws), then
cropped to its length and moved to the device. So a seed gives the same z on any device and in any batch,
and z's first L columns are the same whatever the utterance's length: the z of a prefix is the prefix of
the z, which lets ``stream`` draw the one-pass z as frames arrive. The per-item seeds s_i are either given
(``seeds=``) or drawn in order, one int64 per item, from ``generator`` (the global RNG when None): a batch
gives the same audio as calling the vocoder one item at a time, in the same order, with the same generator.
``infer.py`` derives s_i from ``--seed`` and the output file name, so a file's audio does not depend on batch
size, sharding or resuming.

Batching. Mels of different lengths run as one padded batch in which the input of every dilated
convolution is zeroed beyond each item's own length: exactly what the convolution's zero padding does when
the item runs alone. The padded mel frames hold 0, so that the one padded frame whose upsampling window
reaches back into an item's last, partial group of n_group samples (when hop_length is not a multiple of
n_group) adds nothing there either. A batch therefore equals one-by-one synthesis up to float rounding,
tail included; what the model computes in the padded region is masked out and cut off.

Long inputs. Mels longer than ``max_frames`` run in chunks of at most ``max_frames`` frames that overlap by
``overlap_frames`` and are joined with a raised-cosine crossfade. Each chunk uses its slice of the one
whole-utterance z, so away from chunk edges a chunk computes what one pass computes.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from waveglow.audio import MelSpectrogram
from waveglow.checkpoints import list_pretrained, load_model, pretrained_path
from waveglow.config import Config
from waveglow.device import auto_precisions, check_device, check_precision
from waveglow.model.flow import ReceptiveField, WaveGlow
from waveglow.model.likelihood import LogLikelihood, log_likelihood
from waveglow.synth.denoiser import BIAS_MODES, Denoiser
from waveglow.synth.eager import eager_reverse
from waveglow.synth.engine_choice import EngineChoice, cached_engine, choice_key, measure_engines
from waveglow.synth.fast import PRECISIONS, FastWaveGlow, prepare_for_inference
from waveglow.synth.inputs import (
    InputError,
    MelInput,
    as_audio_batch,
    as_mel_batch,
    bucket_frames,
    draw_seeds,
    split_mels,
)
from waveglow.synth.stream import DEFAULT_MIN_CHUNK_FRAMES, stream_audio

log = logging.getLogger(__name__)

ENGINES = ("auto", "fast", "eager")
PRECISION_CHOICES = (*PRECISIONS, "auto")  # "auto": the fastest of auto_precisions(device), measured
PROBE_FRAMES = 32  # mel frames on which engine="auto" / precision="auto" time candidates (0.37 s, hop 256)
# precision="auto" for the light flow: whether bf16 beats fp32 there depends on the work in a batch (0.79x
# fp32 at 1 s, 1.18x at 10 s, 1.92x at 8 x 10 s on an AMX Xeon), so it is timed at these batch sizes (items
# x frames) and each batch runs in the precision that won at the largest probe it reaches
LIGHT_PROBE_FRAMES = (32, 128, 512, 2048)
DEFAULT_MAX_FRAMES = 4000  # 46 s at 22.05 kHz with hop 256: ordinary utterances run in one exact pass
DEFAULT_OVERLAP_FRAMES = 128  # chunk overlap (1.5 s at 22.05 kHz, hop 256), crossfaded
NOISE_BLOCK_COLUMNS = 64  # z is drawn in blocks of this many columns, so a prefix of z is the z of a prefix


# ---------------------------------------------------------------------------------------------- vocoder
class Vocoder:
    """A WaveGlow ready for synthesis: mel (n_mel, F) or (B, n_mel, F) or a list of mels -> audio.

    Carries its own audio settings (sampling_rate, hop_length, the mel front end) from the checkpoint's
    config. ``precision`` "fp32", "bf16" or "fp16" runs the coupling networks in that dtype; the flow's
    carrier, z, the 1x1 inverses and the output stay float32. ``precision="auto"`` lets the Vocoder choose,
    accepting output that is not exact: on a CPU with native bf16 (``avx512_bf16`` or ``amx_bf16``) the
    faster of fp32 and bf16 for this model, timed with the engines on a short input and cached like the
    engine; fp32 on other CPUs; bf16 (else fp16) on CUDA. ``precision`` then names the one chosen.

    ``engine`` (for WaveGlow; the light flow always runs its own reverse): "fast" synthesises with
    ``waveglow.synth.fast.FastWaveGlow`` (weight norm, 1x1 inverses, start and end folded in advance,
    time-major matrix products; equal to "eager" within float32 rounding); "eager" runs ``WaveGlow.reverse``
    as the original code does, under autocast for bf16/fp16; "auto" (default) takes whichever of the two is
    faster for this model and precision on this machine, timed once on a short input and cached
    (``waveglow.synth.engine_choice``; which one wins depends on the CPU: fast 1.43x eager on AVX2, 0.88x on
    an AVX-512 EPYC). ``engine_choice`` then holds the choice and its timings. ``compile`` (torch.compile) and ``cuda_graphs`` (one CUDA graph per batch shape) apply to
    the fast engine; both specialise on shapes, so with either one ``bucket_lengths`` (default: on when
    either is) pads every batch to one of a few fixed lengths (``inputs.bucket_frames``; each item still
    gets exactly its own audio) so that a long job reuses a handful of shapes.
    """

    def __init__(
        self,
        model: WaveGlow,
        config: Config,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        overlap_frames: int = DEFAULT_OVERLAP_FRAMES,
        denoiser_mode: str = "zeros",
        engine: str = "auto",
        compile: bool = False,
        cuda_graphs: bool = False,
        bucket_lengths: bool | None = None,
    ):
        _check_options(engine, precision, overlap_frames, denoiser_mode, compile or cuda_graphs)
        if model.model_cfg.architecture != "waveglow":
            if compile or cuda_graphs:
                raise ValueError(
                    "compile and cuda_graphs apply to the WaveGlow fast engine, not the light flow"
                )
            # The light flow is time-major matrix products already (what the fast engine makes of WaveGlow):
            # it runs its own reverse pass, under autocast for bf16/fp16, whichever engine is asked for.
            engine = "eager"
        elif engine == "auto" and (compile or cuda_graphs):
            engine = "fast"  # both exist for the fast engine only
        self.bucket_lengths = (compile or cuda_graphs) if bucket_lengths is None else bucket_lengths
        self.config = config
        self.device = check_device(device, option="device")  # DeviceError naming it when absent here
        self.overlap_frames = overlap_frames
        self.denoiser_mode = denoiser_mode
        self.engine_choice: EngineChoice | None = None
        self._probed_fast: FastWaveGlow | None = None  # the fast engine "auto" built to time it
        if model.has_weight_norm:
            model.remove_weight_norm()  # folded once, before either engine (or the choice) sees the weights
        model = model.eval().requires_grad_(False)
        engines = ("fast", "eager") if engine == "auto" else (engine,)
        precisions = auto_precisions(self.device) if precision == "auto" else (precision,)
        engine, precision, self.engine_choice = self._choose(model, engines, precisions)
        # batches of fewer frames (items x frames) than this run in fp32 (precision="auto", light flow)
        self.fp32_below_frames = 0
        self.precision_choices: dict[int, EngineChoice | None] = {}
        if model.model_cfg.architecture != "waveglow" and len(precisions) > 1:
            precision, self.fp32_below_frames = self._choose_by_size(model, precisions)
        self.engine = engine
        self.precision = precision
        self.dtype = PRECISIONS[precision]
        check_precision(self.device, self.dtype, engine)
        self._prepare(model, compile=compile, cuda_graphs=cuda_graphs)
        self.mel_fn = MelSpectrogram(config.audio).to(self.device)
        self._denoiser: Denoiser | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        audio_overrides: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Vocoder:
        """Rebuild model and mel front end from a checkpoint (ours or NVIDIA's); device None: cuda if any.

        ``audio_overrides`` (e.g. ``{"sampling_rate": 24000, "hop_length": 300}``) apply to published NVIDIA
        files only, which do not store their audio settings (the published ones are the default).
        """
        model, config = load_model(path, map_location="cpu", **(audio_overrides or {}))
        return cls(model, config, device=device, precision=precision, **kwargs)

    @classmethod
    def from_pretrained(cls, name: str, **kwargs: Any) -> Vocoder:
        """A model that ships with the package, by name (``waveglow.list_pretrained()``), offline; the same
        keyword options as ``from_checkpoint``."""
        path = pretrained_path(name)
        if path is None:
            shipped = ", ".join(list_pretrained()) or "none"
            raise ValueError(f"no shipped model named {name!r} (shipped: {shipped})")
        return cls.from_checkpoint(path, **kwargs)

    def _prepare(self, model: WaveGlow, compile: bool, cuda_graphs: bool) -> None:
        """The one place where the model is made ready for inference.

        Sets ``self.model``, the plain WaveGlow (weight norm already folded, eval), which ``score`` and the eager
        engine use (for batches of different lengths with the dilated-conv inputs masked by hooks on
        ``WN[k].in_layers``), and ``self.fast``, the fast engine's ``FastWaveGlow`` (None for eager), which
        takes each item's length itself and holds its own copy of the weights on the device. With the fast
        engine the plain model stays on the CPU until ``score`` first needs it on the device, so synthesis
        holds one copy of the weights in device memory, not two.
        """
        self.model = model  # weight norm folded, eval, no gradients (__init__)
        self.fast: FastWaveGlow | None = None
        if self.engine == "fast":
            self.model.cpu()
            probed = None if compile or cuda_graphs else self._probed_fast  # timed plain: not reused then
            self.fast = probed or prepare_for_inference(
                self.model, self.device, self.precision, compile=compile, cuda_graphs=cuda_graphs
            )
            self._probed_fast = None
        else:
            self.model.to(self.device)

    def _choose(
        self,
        model: WaveGlow,
        engines: tuple[str, ...],
        precisions: tuple[str, ...],
        frames: int = PROBE_FRAMES,
    ) -> tuple[str, str, EngineChoice | None]:
        """The fastest (engine, precision) of the candidates here (engine="auto", precision="auto"), and the
        choice's record (None when there was nothing to choose).

        Pairs this device cannot run are not candidates; one candidate is taken as it is, unmeasured.
        Otherwise the choice cached for this machine, model, candidate precisions and probe size is taken,
        else every candidate synthesises ``frames`` frames at batch 1 and the fastest wins; the fast engine
        built for the timing is kept when it wins. With one precision the candidates are named by their
        engine ("fast", "eager"), with several by engine and precision ("fast-bf16")."""
        pairs = [(e, p) for p in precisions for e in engines if _runs(self.device, e, p)]
        if len(pairs) < 2:  # none: check_precision then says why
            engine, precision = pairs[0] if pairs else (engines[0], precisions[0])
            return engine, precision, None
        label = precisions[0] if len(precisions) == 1 else "auto:" + ",".join(precisions)
        if frames != PROBE_FRAMES:
            label += f"@{frames}"
        names = {(e if len(precisions) == 1 else f"{e}-{p}"): (e, p) for e, p in pairs}
        key = choice_key(self.device, model.model_cfg, label)
        cached = cached_engine(key, list(names))
        if cached is not None:
            return (*names[cached], EngineChoice(cached, key=key))
        mel = torch.full((1, self.n_mel_channels, frames), -6.0, device=self.device)
        z = torch.randn(1, self.n_group, self.z_columns(frames), generator=torch.Generator()) * 0.6
        z, lengths = z.to(self.device), [z.shape[2]]
        plain = copy.deepcopy(model).to(self.device)  # the model itself may stay on the CPU (fast engine)
        fast = {p: prepare_for_inference(model, self.device, p) for e, p in pairs if e == "fast"}

        def runner(engine: str, precision: str) -> Callable[[], object]:
            if engine == "fast":
                return lambda: fast[precision].reverse(z, mel, lengths)
            return lambda: eager_reverse(plain, z, mel, lengths, PRECISIONS[precision])

        with torch.inference_mode():
            choice = measure_engines(
                key,
                {name: runner(*pair) for name, pair in names.items()},
                repeats=3,  # best of 3: a choice is cached for good, so one disturbed run must not decide it
                sync=lambda: torch.cuda.synchronize(self.device) if self.device.type == "cuda" else None,
                busy_limit=0.5 if self.device.type == "cpu" else None,  # a loaded CPU's timings: not cached
            )
        engine, precision = names[choice.engine]
        if engine == "fast":
            self._probed_fast = fast[precision]
        return engine, precision, choice

    def _choose_by_size(self, model: WaveGlow, precisions: tuple[str, ...]) -> tuple[str, int]:
        """precision="auto" for the light flow: the precision that wins at the largest probe of
        LIGHT_PROBE_FRAMES, and the batch size in frames from which it is used (0: every size; smaller
        batches run in fp32): the smallest probe from which it wins at every larger probe. Timed once per
        machine and model and cached like the engine; ``precision_choices`` keeps each probe's record."""
        won = {}
        for frames in LIGHT_PROBE_FRAMES:
            _, won[frames], self.precision_choices[frames] = self._choose(
                model, ("eager",), precisions, frames
            )
        largest = won[LIGHT_PROBE_FRAMES[-1]]
        start = LIGHT_PROBE_FRAMES[-1]
        for frames in reversed(LIGHT_PROBE_FRAMES):
            if won[frames] != largest:
                break
            start = frames
        if largest == "fp32" or start == LIGHT_PROBE_FRAMES[0]:
            start = 0
        log.info(
            "precision for this machine and model: %s%s",
            largest,
            f" for batches of {start} frames or more (fp32 below)" if start else "",
        )
        return largest, start

    def dtype_for(self, frames: int) -> torch.dtype:
        """The dtype a batch of ``frames`` frames (items x padded frames) runs in: ``dtype``, but float32
        below ``fp32_below_frames`` (precision="auto" with the light flow)."""
        return torch.float32 if frames < self.fp32_below_frames else self.dtype

    def _plain_model_on_device(self) -> WaveGlow:
        """The plain model, moved to the vocoder's device on first use (the fast engine leaves it on CPU)."""
        return self.model.to(self.device)

    # ------------------------------------------------------------------ properties
    @property
    def sampling_rate(self) -> int:
        return self.config.audio.sampling_rate

    @property
    def hop_length(self) -> int:
        return self.config.audio.hop_length

    @property
    def n_mel_channels(self) -> int:
        return self.config.audio.n_mel_channels

    @property
    def n_group(self) -> int:
        return self.config.model.n_group

    @property
    def denoiser(self) -> Denoiser:
        """The bias-removal denoiser, built on first use (weights never change in a Vocoder)."""
        if self._denoiser is None:
            self._denoiser = Denoiser.from_model(
                self.model, mode=self.denoiser_mode, synthesize=self._synthesize_zero_noise
            ).to(self.device)
        return self._denoiser

    # ------------------------------------------------------------------ synthesis
    @torch.inference_mode()
    def __call__(
        self,
        mel: MelInput | Sequence[MelInput],
        sigma: float = 0.6,
        denoise: float = 0.0,
        generator: torch.Generator | None = None,
        lengths: Sequence[int] | torch.Tensor | None = None,
        seeds: Sequence[int] | None = None,
        max_frames: int | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Synthesise audio in [-1, 1] (float32, on the vocoder's device).

        mel: (n_mel, F) or (B, n_mel, F) tensor or array -> (B, F*hop_length); with ``lengths`` (B,) in
        frames, item i is mel[i, :, :lengths[i]] and the result is (B, max(lengths)*hop_length) with item
        i's audio in [:lengths[i]*hop_length] and zeros after it. A list of mels (n_mel, F_i) -> a list of
        audio (F_i*hop_length,). sigma: std of z; denoise: bias-removal strength (0: off); generator or
        seeds: the noise (module docstring); max_frames: chunk longer mels (None: never).
        """
        mels, as_list = split_mels(mel, lengths, self.config.audio)
        mels = [m.to(self.device) for m in mels]
        if seeds is None:
            seeds = draw_seeds(len(mels), generator)
        elif len(seeds) != len(mels):
            raise ValueError(f"got {len(seeds)} seeds for {len(mels)} mels")
        audio = self.synthesize(mels, list(seeds), sigma=sigma, denoise=denoise, max_frames=max_frames)
        if as_list:
            return audio
        out = torch.zeros(len(audio), max(a.shape[0] for a in audio), device=self.device)
        for i, item in enumerate(audio):
            out[i, : item.shape[0]] = item
        return out

    def z_columns(self, frames: int) -> int:
        """Time steps of z (columns of n_group samples) that cover ``frames`` mel frames."""
        return -(-frames * self.hop_length // self.n_group)

    @property
    def frames_per_z_column(self) -> int:
        """The fewest frames that end on a whole z column (chunk starts and bucket sizes are multiples)."""
        return self.n_group // math.gcd(self.hop_length, self.n_group)

    def noise_blocks(self, seed: int) -> Iterator[torch.Tensor]:
        """The z of ``seed`` block by block (module docstring, "Noise"): an endless iterator of float32 CPU
        tensors (n_group, NOISE_BLOCK_COLUMNS), the first columns first; ``noise`` and ``stream`` draw from it."""
        gen = torch.Generator().manual_seed(seed)
        while True:
            yield torch.randn(NOISE_BLOCK_COLUMNS, self.n_group, generator=gen).T  # (n_group, block)

    def noise(self, seed: int, frames: int) -> torch.Tensor:
        """z ~ N(0, 1) (n_group, z_columns(frames)) float32 on the device, the first columns of
        ``noise_blocks(seed)``: its first columns do not depend on ``frames``."""
        columns = self.z_columns(frames)
        blocks = self.noise_blocks(seed)
        z = torch.cat([next(blocks) for _ in range(-(-columns // NOISE_BLOCK_COLUMNS))], dim=1)
        return z[:, :columns].to(self.device)

    @property
    def receptive_field(self) -> ReceptiveField:
        """How far, in mel frames, one frame's audio depends on the mel and z to each side (upper bounds from
        the architecture; ``WaveGlow.receptive_field``, ``LightWaveGlow.receptive_field``)."""
        return self.model.receptive_field()

    def stream(
        self,
        chunks: Iterable[MelInput],
        sigma: float = 0.6,
        seed: int = 0,
        lookahead_frames: int | None = None,
        min_chunk_frames: int = DEFAULT_MIN_CHUNK_FRAMES,
        denoise: float = 0.0,
    ) -> Iterator[torch.Tensor]:
        """Audio while the mel is still arriving: mel chunks (n_mel, k_i) in -> audio chunks (n,) float32 in
        [-1, 1] out, whose concatenation is ``self(mel, sigma=sigma, seeds=[seed], denoise=denoise)[0]`` for
        the concatenated mel (to float rounding) when ``lookahead_frames`` is None (the receptive field's
        ``right``); fewer frames of look-ahead answer sooner and differ. ``waveglow.synth.stream``
        (``stream_audio``) says how and what it costs. Options are checked now, chunks as they arrive.
        """
        return stream_audio(
            self,
            chunks,
            sigma=sigma,
            seed=seed,
            lookahead_frames=lookahead_frames,
            min_chunk_frames=min_chunk_frames,
            denoise=denoise,
        )

    def synthesize(
        self,
        mels: Sequence[torch.Tensor],
        seeds: Sequence[int],
        sigma: float = 0.6,
        denoise: float = 0.0,
        max_frames: int | None = None,
    ) -> list[torch.Tensor]:
        """Checked mels (n_mel, F_i) on the device and one seed each -> audio (F_i*hop_length,) in [-1, 1]."""
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        out: list[torch.Tensor | None] = [None] * len(mels)
        zs = [self.noise(seed, mel.shape[1]) * sigma for mel, seed in zip(mels, seeds)]
        short = [i for i, mel in enumerate(mels) if max_frames is None or mel.shape[1] <= max_frames]
        if short:
            audio = self._synthesize_batch([mels[i] for i in short], [zs[i] for i in short])
            for i, item in zip(short, audio):
                out[i] = item
        for i, mel in enumerate(mels):
            if out[i] is None:
                out[i] = self._synthesize_chunked(mel, zs[i], max_frames)  # type: ignore[arg-type]
        result = []
        for item in out:
            if denoise > 0:
                item = self.denoiser(item, denoise)
            result.append(item.clamp(-1.0, 1.0))
        return result

    def _synthesize_batch(
        self, mels: Sequence[torch.Tensor], zs: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """One padded pass: mels (n_mel, F_i), scaled z (n_group, L_i) -> audio (F_i*hop_length,) float32."""
        frames = [mel.shape[1] for mel in mels]
        lengths = [z.shape[1] for z in zs]
        padded = max(frames)
        if self.bucket_lengths:
            padded = bucket_frames(padded, self.frames_per_z_column)
        # Zero padding (not the log floor): a padded frame's upsampling must add nothing to real samples.
        mel_batch = torch.zeros(len(mels), self.n_mel_channels, padded, device=self.device)
        z_batch = torch.zeros(len(zs), self.n_group, self.z_columns(padded), device=self.device)
        for i, (mel, z) in enumerate(zip(mels, zs)):
            mel_batch[i, :, : frames[i]] = mel
            z_batch[i, :, : lengths[i]] = z
        # each item's z columns: both engines keep every item's padded tail out of the others
        if self.fast is not None:  # casts its own weights to the precision
            audio = self.fast.reverse(z_batch, mel_batch, lengths)
        else:
            dtype = self.dtype_for(len(mels) * padded)
            audio = eager_reverse(self.model, z_batch, mel_batch, lengths, dtype)  # (B, g*L)
        return [audio[i, : n * self.hop_length].float() for i, n in enumerate(frames)]

    def _synthesize_zero_noise(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (1, n_mel, F) -> audio (1, F*hop) at sigma 0, in the vocoder's precision (for the denoiser)."""
        z = torch.zeros(self.n_group, self.z_columns(mel.shape[2]), device=self.device)
        return self._synthesize_batch([mel[0].to(self.device)], [z])[0].unsqueeze(0)

    def chunk_bounds(self, frames: int, max_frames: int) -> list[tuple[int, int]]:
        """Frame ranges [start, end) of the chunks of a ``frames``-long mel; starts keep z slices whole."""
        align = self.frames_per_z_column
        chunk = max_frames - max_frames % align
        overlap = -(-self.overlap_frames // align) * align
        step = chunk - overlap
        if step < align or step < overlap:
            raise ValueError(
                f"max_frames ({max_frames}) must be at least twice overlap_frames ({self.overlap_frames})"
            )
        bounds = [(0, min(chunk, frames))]
        while bounds[-1][1] < frames:
            start = bounds[-1][0] + step
            bounds.append((start, min(start + chunk, frames)))
        return bounds

    def _synthesize_chunked(self, mel: torch.Tensor, z: torch.Tensor, max_frames: int) -> torch.Tensor:
        """mel (n_mel, F) with F > max_frames, scaled z (n_group, L) -> audio (F*hop,), crossfaded chunks."""
        hop, g = self.hop_length, self.n_group
        audio = torch.zeros(mel.shape[1] * hop, device=self.device)
        filled = 0  # samples of ``audio`` written so far
        for start, end in self.chunk_bounds(mel.shape[1], max_frames):
            first = start * hop // g
            z_chunk = z[:, first : first + -(-(end - start) * hop // g)]
            piece = self._synthesize_batch([mel[:, start:end]], [z_chunk])[0]  # ((end-start)*hop,)
            fade = filled - start * hop  # samples shared with the previous chunk
            if fade > 0:
                ramp = torch.sin(0.5 * math.pi * (torch.arange(fade, device=self.device) + 0.5) / fade) ** 2
                audio[start * hop : filled] = audio[start * hop : filled] * (1 - ramp) + piece[:fade] * ramp
            audio[filled : end * hop] = piece[max(fade, 0) :]
            filled = end * hop
        return audio

    # ------------------------------------------------------------------ analysis
    @torch.inference_mode()
    def mel(self, audio: MelInput) -> torch.Tensor:
        """audio (T,) or (B, T) in [-1, 1] at ``sampling_rate`` -> log-mel (B, n_mel, 1 + T // hop_length)."""
        return self.mel_fn(as_audio_batch(audio, self.device))

    @torch.inference_mode()
    def copy_synthesis(
        self,
        audio: MelInput,
        sigma: float = 0.6,
        denoise: float = 0.0,
        generator: torch.Generator | None = None,
        seeds: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """audio (T,) or (B, T) -> its resynthesis from its own mel, (B, T) float32.

        The mel comes from this vocoder's own front end, so it is not checked against the mel convention
        (loud or noisy audio would otherwise be warned about as "a log10 mel").
        """
        audio = as_audio_batch(audio, self.device)
        mels = list(self.mel(audio))  # B x (n_mel, F)
        if seeds is None:
            seeds = draw_seeds(len(mels), generator)
        elif len(seeds) != len(mels):
            raise ValueError(f"got {len(seeds)} seeds for {len(mels)} audio items")
        out = self.synthesize(mels, list(seeds), sigma=sigma, denoise=denoise)
        return torch.stack(out)[:, : audio.shape[1]]

    @torch.inference_mode()
    def score(self, audio: MelInput, mel: MelInput | None = None) -> LogLikelihood:
        """Exact log-likelihood of audio (T,) or (B, T) given its mel (B, n_mel, F) (default: ``mel(audio)``).

        Runs ``model.forward`` in float32 whatever the precision, with the prior sigma the model was trained
        with (``config.train.sigma``); T is cut to a multiple of n_group.
        """
        audio = as_audio_batch(audio, self.device)  # InputError for NaN/inf samples (a NaN score otherwise)
        audio = audio[:, : audio.shape[1] - audio.shape[1] % self.n_group]
        if audio.shape[1] == 0:
            raise InputError(f"audio: shorter than n_group={self.n_group} samples")
        mel_batch = self.mel(audio) if mel is None else as_mel_batch(mel, self.device)
        return log_likelihood(self._plain_model_on_device(), audio, mel_batch, self.config.train.sigma)


def _check_options(
    engine: str, precision: str, overlap_frames: int, denoiser_mode: str, shapes: bool
) -> None:
    """ValueError for a ``Vocoder`` option out of range; ``shapes``: compile or cuda_graphs was asked for."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if shapes and engine == "eager":  # "auto" becomes "fast" with them
        raise ValueError("compile and cuda_graphs need engine='fast'")
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")
    if overlap_frames < 1:
        raise ValueError(f"overlap_frames must be >= 1, got {overlap_frames}")
    if denoiser_mode not in BIAS_MODES:
        raise ValueError(f"denoiser_mode must be one of {BIAS_MODES}, got {denoiser_mode!r}")


def _runs(device: torch.device, engine: str, precision: str) -> bool:
    """Whether this device can run the engine in the precision (``check_precision`` without the error)."""
    try:
        check_precision(device, PRECISIONS[precision], engine)
    except ValueError:
        return False
    return True
