"""Synthesis: the ``Vocoder`` a TTS front end calls (the batch job of ``infer.py`` is in ``batch.py``).

Noise. Item i's latent z_i ~ N(0, 1) of shape (n_group, ceil(F_i * hop_length / n_group)) is drawn on the
CPU from ``torch.Generator().manual_seed(s_i)`` and then moved to the device, so a seed gives the same z on
any device and in any batch. The per-item seeds s_i are either given (``seeds=``) or drawn in order, one
int64 per item, from ``generator`` (the global RNG when None): a batch gives the same audio as calling the
vocoder one item at a time, in the same order, with the same generator. ``infer.py`` derives s_i from
``--seed`` and the output file name, so a file's audio does not depend on batch size, sharding or resuming.

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

import contextlib
import hashlib
import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .audio import MelSpectrogram, check_mel
from .checkpoint import load_model
from .config import AudioConfig, Config
from .denoiser import BIAS_MODES, Denoiser
from .fast import PRECISIONS, FastWaveGlow, prepare_for_inference
from .loss import WaveGlowLoss
from .model import FlowOutput, WaveGlow

log = logging.getLogger(__name__)

ENGINES = ("fast", "eager")
DEFAULT_MAX_FRAMES = 4000  # 46 s at 22.05 kHz with hop 256: ordinary utterances run in one exact pass
DEFAULT_OVERLAP_FRAMES = 128  # chunk overlap (1.5 s at 22.05 kHz, hop 256), crossfaded

MelInput = torch.Tensor | np.ndarray


class InputError(ValueError):
    """An input cannot be synthesised; the message names the input and the problem."""


# ---------------------------------------------------------------------------------------------- mels
def validate_mel(
    mel: MelInput, audio_cfg: AudioConfig, source: str = "mel", strict_convention: bool = True
) -> torch.Tensor:
    """Check a mel of shape (n_mel, F) or (1, n_mel, F); returns it as float32 (n_mel, F) on its device.

    Raises InputError naming ``source`` for a wrong shape or bin count, no frames, NaN or inf, or (when
    ``strict_convention``) values unlike the config's mel convention (``audio.check_mel``: e.g. a dB, log10
    or normalised mel for a natural-log model); without ``strict_convention`` those are warnings.
    """
    n_mel_channels = audio_cfg.n_mel_channels
    if isinstance(mel, np.ndarray):
        if not (np.issubdtype(mel.dtype, np.floating) or np.issubdtype(mel.dtype, np.integer)):
            raise InputError(f"{source}: array of dtype {mel.dtype} is not a real-valued mel")
        mel = torch.from_numpy(np.ascontiguousarray(mel))
    if not isinstance(mel, torch.Tensor):
        raise InputError(f"{source}: holds {type(mel).__name__}, expected an array or tensor")
    if mel.is_complex() or mel.dtype == torch.bool:
        raise InputError(f"{source}: tensor of dtype {mel.dtype} is not a real-valued mel")
    if mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.dim() != 2:
        raise InputError(f"{source}: shape {tuple(mel.shape)} is not (n_mel, F) or (1, n_mel, F)")
    if mel.shape[0] != n_mel_channels:
        hint = " (transposed? expected (n_mel, F))" if mel.shape[1] == n_mel_channels else ""
        raise InputError(
            f"{source}: has {mel.shape[0]} mel bins, the checkpoint expects {n_mel_channels}{hint}"
        )
    if mel.shape[1] == 0:
        raise InputError(f"{source}: has no frames")
    mel = mel.float()
    bad = int((~torch.isfinite(mel)).sum())
    if bad:
        raise InputError(f"{source}: contains {bad} NaN or infinite values")
    issues = check_mel(mel, audio_cfg)
    if issues and strict_convention and _far_outside_convention(mel, audio_cfg):
        raise InputError(f"{source}: {'; '.join(issues)}")
    for issue in issues:
        log.warning("%s: %s", source, issue)
    return mel


def _far_outside_convention(mel: torch.Tensor, audio_cfg: AudioConfig) -> bool:
    """Whether the mel's value range is far from the front end's [floor, ceiling], not just near its edges.

    ``check_mel`` also flags mild deviations (a predicted mel undershooting the floor a little, a short mel
    whose minimum is not the floor); those are warnings. Far means: minimum a quarter of the range below the
    floor (dB), maximum a quarter above the ceiling (power, linear), or a minimum that never comes within
    40% of the range of the floor (log10, normalised).
    """
    floor, ceiling = MelSpectrogram(audio_cfg).value_range()
    span = ceiling - floor
    low, high = float(mel.min()), float(mel.max())
    return low < floor - 0.25 * span or high > ceiling + 0.25 * span or low > floor + 0.4 * span


def draw_seeds(count: int, generator: torch.Generator | None = None) -> list[int]:
    """``count`` int64 seeds drawn from ``generator`` (the global RNG when None), one call per seed.

    One call each, so that drawing for a batch equals drawing for its items one by one on any device.
    """
    device = generator.device if generator is not None else "cpu"
    return [
        int(torch.randint(0, 2**63 - 1, (1,), generator=generator, device=device, dtype=torch.int64))
        for _ in range(count)
    ]


def item_seed(seed: int, key: str) -> int:
    """A stable 63-bit seed for one file from the job seed and the file's output name."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


@contextlib.contextmanager
def _masked_dilations(model: WaveGlow, mask: torch.Tensor) -> Iterator[None]:
    """Zero the input of every dilated conv beyond each item's length; mask (B, 1, L) bool.

    A conv's zero padding does exactly this for an item that runs alone, so a padded batch computes what
    each item computes on its own. ``torch.where`` (not a product) keeps NaN or inf in the padded tail out.
    """

    def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (torch.where(mask, args[0], torch.zeros((), dtype=args[0].dtype, device=args[0].device)),)

    handles = [layer.register_forward_pre_hook(hook) for wn in model.WN for layer in wn.in_layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class LogLikelihood:
    """Exact log-likelihood of audio given its mel, per example (higher is more likely).

    nats_per_sample: (B,) log p(audio | mel) / T in nats, with the prior N(0, sigma^2) at the training
    sigma; this is minus the training loss. bits_per_sample: (B,) the same in bits. Densities are of float
    samples in [-1, 1]. n_samples: the samples scored per example (T cut to a multiple of n_group).
    """

    nats_per_sample: torch.Tensor
    bits_per_sample: torch.Tensor
    n_samples: int
    sigma: float


# ---------------------------------------------------------------------------------------------- vocoder
class Vocoder:
    """A WaveGlow ready for synthesis: mel (n_mel, F) or (B, n_mel, F) or a list of mels -> audio.

    Carries its own audio settings (sampling_rate, hop_length, the mel front end) from the checkpoint's
    config. ``precision`` "fp32", "bf16" or "fp16" runs the coupling networks in that dtype; the flow's
    carrier, z, the 1x1 inverses and the output stay float32.

    ``engine`` "fast" (default) synthesises with ``waveglow.fast.FastWaveGlow`` (weight norm, 1x1 inverses,
    start and end folded in advance, time-major matrix products; equal to "eager" within float32 rounding,
    1.5x faster on CPU); "eager" runs ``WaveGlow.reverse`` as the original code does, under autocast for
    bf16/fp16. ``compile`` (torch.compile) and ``cuda_graphs`` (one CUDA graph per batch shape) apply to
    the fast engine; both specialise on shapes, so they pay off when batches repeat their shapes.
    """

    def __init__(
        self,
        model: WaveGlow,
        config: Config,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        overlap_frames: int = DEFAULT_OVERLAP_FRAMES,
        denoiser_mode: str = "zeros",
        engine: str = "fast",
        compile: bool = False,
        cuda_graphs: bool = False,
    ):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if (compile or cuda_graphs) and engine != "fast":
            raise ValueError("compile and cuda_graphs need engine='fast'")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if overlap_frames < 1:
            raise ValueError(f"overlap_frames must be >= 1, got {overlap_frames}")
        if denoiser_mode not in BIAS_MODES:
            raise ValueError(f"denoiser_mode must be one of {BIAS_MODES}, got {denoiser_mode!r}")
        self.config = config
        self.device = torch.device(device) if device is not None else default_device()
        self.precision = precision
        self.dtype = PRECISIONS[precision]
        self.overlap_frames = overlap_frames
        self.denoiser_mode = denoiser_mode
        self.engine = engine
        _check_precision(self.device, self.dtype, engine)
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

    def _prepare(self, model: WaveGlow, compile: bool, cuda_graphs: bool) -> None:
        """The one place where the model is made ready for inference.

        Sets ``self.model``, the plain WaveGlow (weight norm folded, eval), which ``score`` and the eager
        engine use (for batches of different lengths with the dilated-conv inputs masked by hooks on
        ``WN[k].in_layers``), and ``self.fast``, the fast engine's ``FastWaveGlow`` (None for eager), which
        takes each item's length itself and holds its own copy of the weights on the device. With the fast
        engine the plain model stays on the CPU until ``score`` first needs it on the device, so synthesis
        holds one copy of the weights in device memory, not two.
        """
        if model.has_weight_norm:
            model.remove_weight_norm()
        self.model = model.eval().requires_grad_(False)
        self.fast: FastWaveGlow | None = None
        if self.engine == "fast":
            self.model.cpu()
            self.fast = prepare_for_inference(
                self.model, self.device, self.precision, compile=compile, cuda_graphs=cuda_graphs
            )
        else:
            self.model.to(self.device)

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

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)

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
        mels, as_list = self._split(mel, lengths)
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

    def _split(
        self, mel: MelInput | Sequence[MelInput], lengths: Sequence[int] | torch.Tensor | None
    ) -> tuple[list[torch.Tensor], bool]:
        """Any accepted mel input -> (list of float32 (n_mel, F_i) on the device, whether it was a list)."""
        audio_cfg = self.config.audio
        if isinstance(mel, (list, tuple)):
            if lengths is not None:
                raise ValueError("lengths is for a padded batch, not for a list of mels")
            mels = [
                validate_mel(m, audio_cfg, f"mel[{i}]", strict_convention=False) for i, m in enumerate(mel)
            ]
            return [m.to(self.device) for m in mels], True
        if isinstance(mel, np.ndarray):
            mel = torch.from_numpy(np.ascontiguousarray(mel))
        if not isinstance(mel, torch.Tensor) or mel.dim() not in (2, 3):
            raise ValueError(
                f"mel must be (n_mel, F) or (B, n_mel, F), got {getattr(mel, 'shape', type(mel))}"
            )
        batch = mel.unsqueeze(0) if mel.dim() == 2 else mel
        frames = [batch.shape[2]] * batch.shape[0]
        if lengths is not None:
            frames = [int(n) for n in (lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths)]
            if len(frames) != batch.shape[0] or not all(1 <= n <= batch.shape[2] for n in frames):
                raise ValueError(f"lengths {frames} do not fit a mel batch of shape {tuple(batch.shape)}")
        mels = [
            validate_mel(batch[i, :, :n], audio_cfg, f"mel[{i}]", strict_convention=False)
            for i, n in enumerate(frames)
        ]
        return [m.to(self.device) for m in mels], False

    def noise(self, seed: int, frames: int) -> torch.Tensor:
        """z ~ N(0, 1) (n_group, ceil(frames*hop/n_group)) float32 on the device, from a CPU generator."""
        length = -(-frames * self.hop_length // self.n_group)
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(self.n_group, length, generator=gen).to(self.device)

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
        # Zero padding (not the log floor): a padded frame's upsampling must add nothing to real samples.
        mel_batch = torch.zeros(len(mels), self.n_mel_channels, max(frames), device=self.device)
        z_batch = torch.zeros(len(zs), self.n_group, max(lengths), device=self.device)
        for i, (mel, z) in enumerate(zip(mels, zs)):
            mel_batch[i, :, : frames[i]] = mel
            z_batch[i, :, : lengths[i]] = z
        mixed = len(set(lengths)) > 1
        if self.fast is not None:  # casts its own weights to the precision
            audio = self.fast.reverse(z_batch, mel_batch, lengths if mixed else None)
        else:
            with torch.inference_mode(), self._autocast():
                if not mixed:
                    audio = self.model.reverse(z_batch, mel_batch)  # (B, g*L)
                else:
                    steps = torch.arange(max(lengths), device=self.device)
                    mask = steps[None, None, :] < torch.tensor(lengths, device=self.device)[:, None, None]
                    with _masked_dilations(self.model, mask):
                        audio = self.model.reverse(z_batch, mel_batch)
        return [audio[i, : n * self.hop_length].float() for i, n in enumerate(frames)]

    def _synthesize_zero_noise(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (1, n_mel, F) -> audio (1, F*hop) at sigma 0, in the vocoder's precision (for the denoiser)."""
        z = torch.zeros(self.n_group, -(-mel.shape[2] * self.hop_length // self.n_group), device=self.device)
        return self._synthesize_batch([mel[0].to(self.device)], [z])[0].unsqueeze(0)

    def chunk_bounds(self, frames: int, max_frames: int) -> list[tuple[int, int]]:
        """Frame ranges [start, end) of the chunks of a ``frames``-long mel; starts keep z slices whole."""
        align = self.n_group // math.gcd(self.hop_length, self.n_group)  # frames per whole z column
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
    def _audio_batch(self, audio: MelInput) -> torch.Tensor:
        if isinstance(audio, np.ndarray):
            audio = torch.from_numpy(np.ascontiguousarray(audio))
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        if audio.dim() != 2:
            raise ValueError(f"audio must be (T,) or (B, T), got {tuple(audio.shape)}")
        return audio.to(self.device, torch.float32)

    @torch.inference_mode()
    def mel(self, audio: MelInput) -> torch.Tensor:
        """audio (T,) or (B, T) in [-1, 1] at ``sampling_rate`` -> log-mel (B, n_mel, 1 + T // hop_length)."""
        return self.mel_fn(self._audio_batch(audio))

    @torch.inference_mode()
    def copy_synthesis(
        self,
        audio: MelInput,
        sigma: float = 0.6,
        denoise: float = 0.0,
        generator: torch.Generator | None = None,
        seeds: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """audio (T,) or (B, T) -> its resynthesis from its own mel, (B, T) float32."""
        audio = self._audio_batch(audio)
        out = self(self.mel(audio), sigma=sigma, denoise=denoise, generator=generator, seeds=seeds)
        return out[:, : audio.shape[1]]

    @torch.inference_mode()
    def score(self, audio: MelInput, mel: MelInput | None = None) -> LogLikelihood:
        """Exact log-likelihood of audio (T,) or (B, T) given its mel (B, n_mel, F) (default: ``mel(audio)``).

        Runs ``model.forward`` in float32 whatever the precision, with the prior sigma the model was trained
        with (``config.train.sigma``); T is cut to a multiple of n_group.
        """
        audio = self._audio_batch(audio)
        audio = audio[:, : audio.shape[1] - audio.shape[1] % self.n_group]
        if audio.shape[1] == 0:
            raise ValueError(f"audio is shorter than n_group={self.n_group} samples")
        mel_batch = self.mel(audio) if mel is None else self._mel_batch(mel)
        loss = WaveGlowLoss(self.config.train.sigma)
        nats = []
        with torch.autocast(self.device.type, enabled=False):
            out = self._plain_model_on_device()(audio, mel_batch)
            for b in range(audio.shape[0]):
                item = FlowOutput(
                    z=out.z[b : b + 1],
                    log_det=out.log_det[b : b + 1],
                    log_det_s=out.log_det_s[b : b + 1],
                    log_det_w=out.log_det_w[b : b + 1],
                    log_det_s_per_flow=out.log_det_s_per_flow[:, b : b + 1],
                )
                nats.append(-loss.terms(item).nll)
        nats_per_sample = torch.stack(nats).float().cpu()
        return LogLikelihood(
            nats_per_sample=nats_per_sample,
            bits_per_sample=nats_per_sample / math.log(2),
            n_samples=audio.shape[1],
            sigma=loss.sigma,
        )

    def _mel_batch(self, mel: MelInput) -> torch.Tensor:
        if isinstance(mel, np.ndarray):
            mel = torch.from_numpy(np.ascontiguousarray(mel))
        mel = mel.unsqueeze(0) if mel.dim() == 2 else mel
        return mel.to(self.device, torch.float32)


def default_device() -> torch.device:
    """cuda (this process's LOCAL_RANK under torchrun) when available, else cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _check_precision(device: torch.device, dtype: torch.dtype, engine: str) -> None:
    """Fail early, with a clear message, where this device cannot run the engine's work in ``dtype``: matrix
    products for the fast engine, convolutions under autocast for the eager one."""
    if dtype == torch.float32:
        return
    name = {torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    try:
        with warnings.catch_warnings():  # builds without it warn and run float32 instead
            warnings.simplefilter("ignore")
            if engine == "fast":
                probe = torch.ones(4, 4, device=device, dtype=dtype)
                out_dtype = (probe @ probe).dtype
            else:
                conv = nn.Conv1d(2, 2, 3, padding=1).to(device)
                with torch.autocast(device.type, dtype=dtype):
                    out_dtype = conv(torch.randn(1, 2, 4, device=device)).dtype
    except (RuntimeError, NotImplementedError) as exc:
        raise ValueError(
            f"precision {name} is not supported on {device} by this torch build ({exc}); use fp32 or bf16"
        ) from exc
    if out_dtype != dtype:
        raise ValueError(
            f"precision {name}: autocast on {device.type} does not run convolutions in {dtype} with this "
            f"torch build; use fp32, bf16 or engine='fast'"
        )
