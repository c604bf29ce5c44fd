"""The light flow: WaveGlow's flow with SqueezeWave's placement of the work, laid out for CPUs.

Same flow as ``model.WaveGlow`` (squeeze into groups, invertible 1x1 mixing, affine couplings, early outputs,
exact log-determinant), with three changes that make it about 200x cheaper per second of audio:

- many more samples per group (``n_group`` 128 or 256), so the coupling networks run at twice the mel's
  frame rate or at it;
- coupling networks of depthwise-separable layers (depthwise conv over time, then a pointwise matrix
  product, a gated unit, a residual matrix product); no skip connections;
- the mel conditions every layer of a coupling through one linear map at frame rate, each frame repeated
  for the hop_length // n_group steps it covers (no transposed-convolution upsampler).

Tensors are time-major inside, (B, L, C), so every 1x1 convolution is one matrix product; ``z`` is handed
out as (B, n_group, L) like WaveGlow's, early outputs first. Shapes: B batch, T samples, F frames,
g = n_group, L = T // g, r = hop_length // g.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from waveglow.config import AudioConfig, ModelConfig, validate_model_audio
from waveglow.model.flow import FlowOutput, ReceptiveField
from waveglow.model.lapped import MDCTSqueeze
from waveglow.model.layers import Invertible1x1Conv


class DepthwiseConv(nn.Module):
    """Per-channel convolution over time with zero padding: (B, L, C) -> (B, L, C)."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.weight = nn.Parameter(torch.randn(kernel_size, channels) / kernel_size**0.5)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, length = self.weight.shape[0], x.shape[1]
        pad = kernel // 2
        padded = F.pad(x, (0, 0, pad, pad))  # (B, L + 2*pad, C)
        weight = self.weight.to(x.dtype)
        out = torch.addcmul(self.bias.to(x.dtype), padded[:, :length], weight[0])
        for j in range(1, kernel):
            out = torch.addcmul(out, padded[:, j : j + length], weight[j])
        return out


class LightLayer(nn.Module):
    """Depthwise conv, then a pointwise map to the two halves of a gated unit."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.depthwise = DepthwiseConv(channels, kernel_size)
        self.pointwise = nn.Linear(channels, 2 * channels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, L, C) -> pre-activations (B, L, 2C)."""
        return self.pointwise(self.depthwise(hidden))


class LightWN(nn.Module):
    """Coupling network: (x_a (B, L, n_in), frame conditioning (B, F, n_mel)) -> (B, L, 2*n_in).

    The output's first n_in channels are the shift, the last n_in log_s; ``end`` starts at zero, so the
    coupling starts as the identity.
    """

    def __init__(self, n_in: int, n_mel: int, n_layers: int, n_channels: int, kernel_size: int):
        super().__init__()
        self.n_channels = n_channels
        self.start = nn.Linear(n_in, n_channels)
        self.cond_layer = nn.Linear(n_mel, 2 * n_channels * n_layers)
        self.in_layers = nn.ModuleList(LightLayer(n_channels, kernel_size) for _ in range(n_layers))
        self.res_layers = nn.ModuleList(nn.Linear(n_channels, n_channels) for _ in range(n_layers))
        self.end = nn.Linear(n_channels, 2 * n_in)
        scale = torch.cat([torch.full((n_channels,), 2.0), torch.ones(n_channels)])
        self.register_buffer("gate_scale", scale, persistent=False)
        nn.init.zeros_(self.end.weight)
        nn.init.zeros_(self.end.bias)

    def forward(self, x: torch.Tensor, mel_t: torch.Tensor, repeat: int) -> torch.Tensor:
        """x (B, L, n_in), mel_t (B, F, n_mel) with F*repeat >= L -> (B, L, 2*n_in)."""
        batch, length, _ = x.shape
        n_channels = self.n_channels
        frames = -(-length // repeat)
        cond = self.cond_layer(mel_t[:, :frames])  # (B, F', 2*C*n_layers), at frame rate
        hidden = self.start(x)  # (B, L, C)
        for i, (layer, res_layer) in enumerate(zip(self.in_layers, self.res_layers)):
            cond_i = cond[..., 2 * n_channels * i : 2 * n_channels * (i + 1)]
            acts = add_per_frame(layer(hidden), cond_i, repeat)  # (B, L, 2C)
            hidden = hidden + res_layer(gated_unit(acts, self.gate_scale))
        return self.end(hidden)


def mixing_permutations(model_cfg: ModelConfig) -> list[torch.Tensor]:
    """The starting 1x1 mixings of an MDCT light flow, as permutations (flow 0 first), drawn from torch's RNG.

    Flow 0 shuffles the bands. Every later flow puts first (into the half that conditions its coupling) the
    channels the previous coupling transformed, and after them (into the half its coupling transforms) those
    the previous coupling left unchanged, each group shuffled. So couplings alternate between the two
    halves and every channel is scaled and shifted by a mel-conditioned coupling before it leaves: an early
    output takes the first channels of the previous flow's output, which the coupling before that
    transformed. With random rotations, or random permutations, up to half of an early output's channels
    leave untransformed, as noise of one level whatever the mel (measured on the voice: stationary lines in
    the synthesis with random permutations; with these mixings a held-out NLL of -4.46 nats/sample and the
    envelope followed at step 500, notes/voice-training.md).
    """
    channels = model_cfg.flow_channels()
    permutations = [torch.randperm(channels[0])]
    for k in range(1, model_cfg.n_flows):
        early = model_cfg.n_early_size if model_cfg.early_before(k) else 0
        unchanged = channels[k - 1] // 2 - early  # the previous coupling's input half, less what left
        transformed = torch.arange(unchanged, channels[k])
        permutations.append(
            torch.cat(
                [
                    transformed[torch.randperm(len(transformed))],
                    torch.randperm(unchanged),
                ]
            )
        )
    return permutations


def gated_unit(acts: torch.Tensor, gate_scale: torch.Tensor) -> torch.Tensor:
    """tanh(a) * sigmoid(b) for acts = [a, b] (..., 2C) -> (..., C), with tanh(a) = 2*sigmoid(2a) - 1 so that
    one sigmoid covers both halves (``gate_scale`` is [2]*C + [1]*C): on CPUs torch's tanh costs several
    times its sigmoid, and this made synthesis 1.3x faster (1 s of audio, one thread)."""
    n_channels = acts.shape[-1] // 2
    both = torch.sigmoid(acts * gate_scale.to(acts.dtype))
    sig_a, sig_b = both[..., :n_channels], both[..., n_channels:]
    return torch.addcmul(-sig_b, sig_a, sig_b, value=2.0)  # (2*sig_a - 1) * sig_b


def add_per_frame(steps: torch.Tensor, frames: torch.Tensor, repeat: int) -> torch.Tensor:
    """steps (B, L, D) + frames (B, ceil(L / repeat), D), frame f added to steps f*repeat .. f*repeat+repeat-1,
    without materialising the repeated frames when L is a whole number of frames."""
    batch, length, dim = steps.shape
    if length % repeat == 0:
        view = steps.reshape(batch, length // repeat, repeat, dim) + frames.unsqueeze(2)
        return view.reshape(batch, length, dim)
    return steps + frames.repeat_interleave(repeat, dim=1)[:, :length]


class LightWaveGlow(nn.Module):
    """The light flow; the same interface as ``WaveGlow`` (forward, reverse, infer, condition-free)."""

    time_major = True

    def __init__(self, model_cfg: ModelConfig, audio_cfg: AudioConfig | None = None):
        super().__init__()
        audio_cfg = audio_cfg if audio_cfg is not None else AudioConfig()
        validate_model_audio(model_cfg, audio_cfg)
        self.model_cfg, self.audio_cfg = model_cfg, audio_cfg
        self.repeat = audio_cfg.hop_length // model_cfg.n_group  # z steps per mel frame
        self.WN = nn.ModuleList()
        self.convinv = nn.ModuleList()
        # With the MDCT squeeze each channel is a band: mixings that start as alternating permutations
        # keep it one and have every band transformed by a mel-conditioned coupling (mixing_permutations).
        mdct = model_cfg.squeeze == "mdct"
        permutations = mixing_permutations(model_cfg) if mdct else [None] * model_cfg.n_flows
        for remaining, permutation in zip(model_cfg.flow_channels(), permutations):
            self.convinv.append(Invertible1x1Conv(remaining, permutation))
            self.WN.append(
                LightWN(
                    remaining // 2,
                    model_cfg.n_mel_channels,
                    model_cfg.n_layers,
                    model_cfg.n_channels,
                    model_cfg.kernel_size,
                )
            )
        self.n_remaining_channels = model_cfg.remaining_channels()
        self.mdct = MDCTSqueeze(model_cfg.n_group) if mdct else None
        self._inverse_cache: dict[int, tuple[tuple, torch.Tensor]] = {}

    @property
    def hop_length(self) -> int:
        return self.audio_cfg.hop_length

    @property
    def has_weight_norm(self) -> bool:
        return False

    def apply_weight_norm(self) -> LightWaveGlow:
        """The light flow has no weight norm; returns self (the interface of ``WaveGlow``)."""
        return self

    def remove_weight_norm(self) -> LightWaveGlow:
        """The light flow has no weight norm; returns self (the interface of ``WaveGlow``)."""
        return self

    def receptive_field(self) -> ReceptiveField:
        """Upper bounds of how far one frame's audio reaches into mel and z (``ReceptiveField``), derived
        from the architecture.

        Every layer's depthwise conv (dilation 1) mixes (kernel_size - 1) / 2 z steps to each side, so the
        flow mixes R = n_flows * n_layers * (kernel_size - 1) / 2 steps; the mel enters at frame rate, frame
        f on steps f*r .. f*r + r - 1 (r = hop_length // n_group), mixing nothing itself. A step c thus
        depends on steps c - R .. c + R and their frames: ceil(R / r) frames to each side. The shipped light
        configuration: R = 96 steps, 48 frames (0.56 s at 22.05 kHz) each side.
        """
        cfg = self.model_cfg
        columns = cfg.n_flows * cfg.n_layers * (cfg.kernel_size - 1) // 2
        columns += 1 if self.mdct is not None else 0  # an MDCT frame spans two blocks
        frames = -(-columns // self.repeat)
        return ReceptiveField(left=frames, right=frames, columns=columns)

    def masked_layers(self) -> list[nn.Module]:
        """The modules whose input mixes time steps (the depthwise convs): a padded batch stays exact when
        their inputs are zeroed beyond each item's length; their input is (B, L, C)."""
        return [layer.depthwise for wn in self.WN for layer in wn.in_layers]

    def _mel_frames(self, mel: torch.Tensor, length: int) -> torch.Tensor:
        """mel (B, n_mel, F) -> (B, F, n_mel), checked to cover ``length`` z steps."""
        if mel.dim() != 3 or mel.shape[1] != self.model_cfg.n_mel_channels:
            raise ValueError(f"mel must be (B, {self.model_cfg.n_mel_channels}, F), got {tuple(mel.shape)}")
        if mel.shape[2] * self.repeat < length:
            raise ValueError(
                f"{mel.shape[2]} mel frames cover {mel.shape[2] * self.hop_length} samples, fewer than the "
                f"{length * self.model_cfg.n_group} needed"
            )
        return mel.transpose(1, 2)

    def _mix(self, x: torch.Tensor, k: int, inverse: bool = False) -> torch.Tensor:
        """x (B, L, C) -> x W^T (or x W^-T), outside autocast in x's dtype."""
        conv = self.convinv[k]
        weight = self._inverse_weight(k) if inverse else conv.conv.weight
        with torch.autocast(x.device.type, enabled=False):
            return x @ weight.squeeze(-1).to(x.dtype).T

    def _inverse_weight(self, k: int) -> torch.Tensor:
        """W_k^-1 (C, C, 1). Without autograd (synthesis), the inverse is kept and reused while the weight is
        unchanged (same tensor, same version counter), so it never goes stale; with autograd it is always
        computed anew, so gradients flow through it."""
        conv = self.convinv[k]
        weight = conv.conv.weight
        if torch.is_grad_enabled() and weight.requires_grad:
            return conv.inverse_weight()
        key = (weight.data_ptr(), weight._version, weight.device, weight.dtype)
        cached = self._inverse_cache.get(k)
        if cached is None or cached[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                cached = (key, conv.inverse_weight().detach())
            self._inverse_cache[k] = cached
        return cached[1]

    def forward(self, audio: torch.Tensor, mel: torch.Tensor) -> FlowOutput:
        """audio (B, T) with T a multiple of n_group, mel (B, n_mel, F) covering T -> FlowOutput."""
        cfg = self.model_cfg
        acc = torch.promote_types(audio.dtype, torch.float32)
        batch, n_samples = audio.shape
        if n_samples % cfg.n_group:
            raise ValueError(f"audio length {n_samples} is not a multiple of n_group={cfg.n_group}")
        x = self._squeeze(audio.to(acc))  # (B, L, g)
        length = x.shape[1]
        mel_t = self._mel_frames(mel, length)
        early: list[torch.Tensor] = []
        log_det_w = torch.zeros(batch, dtype=acc, device=audio.device)
        log_s_terms = []
        for k in range(cfg.n_flows):
            if cfg.early_before(k):
                early.append(x[..., : cfg.n_early_size])
                x = x[..., cfg.n_early_size :]
            x = self._mix(x, k)
            log_det_w = log_det_w + length * self.convinv[k].log_det()
            n_half = x.shape[2] // 2
            x_a, x_b = x[..., :n_half], x[..., n_half:]
            out = self.WN[k](x_a, mel_t, self.repeat)
            shift, log_s = out[..., :n_half].to(acc), out[..., n_half:].to(acc)
            x_b = torch.exp(log_s) * x_b + shift
            log_s_terms.append(log_s.sum(dim=(1, 2)))
            x = torch.cat([x_a, x_b], dim=2)
        z = torch.cat(early + [x], dim=2).transpose(1, 2)  # (B, g, L)
        log_det_s_per_flow = torch.stack(log_s_terms)  # (n_flows, B)
        log_det_s = log_det_s_per_flow.sum(0)
        return FlowOutput(z, log_det_s + log_det_w, log_det_s, log_det_w, log_det_s_per_flow)

    def reverse(
        self, z: torch.Tensor, mel: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z (B, g, L), mel (B, n_mel, F) covering g*L samples -> audio (B, g*L): the inverse of forward.

        ``lengths`` (B,) z steps per item of a padded batch: the MDCT squeeze ends each item's signal there,
        as when it runs alone (the blocks squeeze needs no lengths; the caller masks the convolutions)."""
        cfg = self.model_cfg
        if z.dim() != 3 or z.shape[1] != cfg.n_group:
            raise ValueError(f"z must be (B, {cfg.n_group}, L), got {tuple(z.shape)}")
        z = z.transpose(1, 2)  # (B, L, g)
        mel_t = self._mel_frames(mel, z.shape[1]).to(z.dtype)
        n_early = cfg.n_early_outputs()
        early = list(torch.split(z[..., : n_early * cfg.n_early_size], cfg.n_early_size, dim=2))
        x = z[..., n_early * cfg.n_early_size :]
        for k in reversed(range(cfg.n_flows)):
            n_half = x.shape[2] // 2
            x_a, x_b = x[..., :n_half], x[..., n_half:]
            out = self.WN[k](x_a, mel_t, self.repeat)
            shift, log_s = out[..., :n_half].to(x.dtype), out[..., n_half:].to(x.dtype)
            x_b = (x_b - shift) * torch.exp(-log_s)
            x = self._mix(torch.cat([x_a, x_b], dim=2), k, inverse=True)
            if cfg.early_before(k):
                x = torch.cat([early.pop(), x], dim=2)
        return self._unsqueeze(x, lengths)  # (B, T)

    def _squeeze(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (B, T) -> (B, T // g, g): blocks of consecutive samples, or their MDCT (``model.squeeze``)."""
        if self.mdct is not None:
            return self.mdct(audio)
        return audio.reshape(audio.shape[0], -1, self.model_cfg.n_group)

    def _unsqueeze(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, g) -> audio (B, L * g), the inverse of ``_squeeze``; ``lengths`` as in ``reverse``."""
        if self.mdct is not None:
            return self.mdct.inverse(x, lengths)
        return x.reshape(x.shape[0], -1)

    @torch.no_grad()
    def infer(
        self, mel: torch.Tensor, sigma: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """mel (B, n_mel, F) -> audio (B, F*hop_length), from z ~ N(0, sigma^2) on mel's device and dtype."""
        g = self.model_cfg.n_group
        length = mel.shape[2] * self.repeat
        z = torch.randn(mel.shape[0], g, length, generator=generator, device=mel.device, dtype=mel.dtype)
        return self.reverse(z * sigma, mel)
