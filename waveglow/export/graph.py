"""The synthesis graph that is exported: (mel, z) -> audio, for both flows, written so that TorchScript can
script it and ``torch.export`` (the ONNX exporter's front end) can trace it with dynamic batch and length.

``SynthesisGraph.from_model(model)`` copies a trained ``WaveGlow`` or ``LightWaveGlow`` (left unchanged) into
plain buffers, with folds like those of ``waveglow.synth.fast``, all exact in real arithmetic and computed in
float64 before the cast to float32:

- weight norm folded; every 1x1 inverse W^-1 computed once (the reverse pass multiplies by W^-T);
- time-major layout (B, L, C): every 1x1 convolution is one matrix product, and WaveGlow's dilated
  convolutions are one product each on ``kernel_size`` shifted copies of the zero-padded input;
- WaveGlow: the in_layers' biases folded into the conditioning, ``end`` folded into every skip output (8
  columns instead of 256 for the published model);
- light flow: the depthwise conv as one grouped convolution, its bias and the pointwise layer's folded
  into the conditioning;
- before every gated unit the weights and biases of its tanh half are doubled (exact in floating point), so
  that tanh(a) sigmoid(b) is (2 sigmoid(2a) - 1) sigmoid(b) with one sigmoid over both halves.

Unlike ``FastWaveGlow`` (which reuses work buffers in place and stacks a batch of mixed lengths along time)
the graph is functional: in-place writes into views would become copies (``slice_scatter``) once exported.
Every item of a batch has the same length. The audio is clamped to [-1, 1], as the ``Vocoder`` clamps it.

Shapes: B batch, F mel frames, g = n_group, L z columns (time steps), C = n_channels, O = 2*C*n_layers,
r = hop_length // g (when g divides the hop).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from waveglow.model.architectures import Flow
from waveglow.model.flow import WaveGlow
from waveglow.model.lapped import MDCTSqueeze, mdct_inverse

F64 = torch.float64


def _f32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to(torch.float32).contiguous()


def _weight(layer: nn.Module) -> torch.Tensor:
    """A layer's weight in float64 (read through ``.weight``, so weight norm may still be on)."""
    return layer.weight.detach().to(F64)


def _bias(layer: nn.Module) -> torch.Tensor:
    return layer.bias.detach().to(F64)


def gated(acts: torch.Tensor) -> torch.Tensor:
    """tanh(a) * sigmoid(b) for acts = [2a, b] (..., 2C) -> (..., C), as (2 sigmoid(2a) - 1) sigmoid(b).

    The graph's weights and biases before every gated unit carry the factor 2 of its first half (an exact
    scaling in floating point), so one sigmoid covers both halves (on CPUs torch's tanh costs ~3x its
    sigmoid, and fewer nodes export faster)."""
    both = torch.sigmoid(acts)
    n_channels = acts.shape[-1] // 2
    return (2.0 * both[..., :n_channels] - 1.0) * both[..., n_channels:]


def doubled_tanh_half(tensor: torch.Tensor, n_channels: int, layers: int = 1) -> torch.Tensor:
    """A weight (..., layers*2C) or bias (layers*2C,) in float64 with each layer's first C columns times 2."""
    scale = torch.ones(2 * n_channels, dtype=F64, device=tensor.device)
    scale[:n_channels] = 2.0
    return tensor * scale.repeat(layers)


def shifted(hidden: torch.Tensor, dilation: int, kernel_size: int) -> torch.Tensor:
    """hidden (B, L, C) -> (B, L, kernel_size*C): the taps of a centred, zero-padded conv side by side."""
    length = hidden.shape[1]
    pad = (kernel_size - 1) // 2 * dilation
    padded = F.pad(hidden, (0, 0, pad, pad))  # (B, L + 2*pad, C)
    taps = [padded[:, t * dilation : t * dilation + length] for t in range(kernel_size)]
    return torch.cat(taps, dim=2)


# --------------------------------------------------------------------------------------------- WaveGlow
class WaveGlowLayer(nn.Module):
    """One WN layer: dilated conv + conditioning, gated unit, res/skip product with ``end`` folded in."""

    def __init__(self, in_layer: nn.Module, res_skip: nn.Module, end: nn.Module, last: bool):
        super().__init__()
        weight = _weight(in_layer)  # (2C, C, k)
        n_channels = weight.shape[1]
        self.kernel_size: int = weight.shape[2]
        self.dilation: int = in_layer.dilation[0]
        self.n_channels: int = n_channels
        self.last: bool = last
        # rows ordered (tap, channel) to match ``shifted``
        in_w = weight.permute(2, 1, 0).reshape(-1, 2 * n_channels)  # (k*C, 2C)
        self.register_buffer("in_w", _f32(doubled_tanh_half(in_w, n_channels)))
        res_w = _weight(res_skip).squeeze(-1)  # (2C, C), or (C, C) for the last layer: skip only
        end_w = _weight(end).squeeze(-1)  # (2 n_in, C)
        if last:
            self.register_buffer("res_w", _f32((end_w @ res_w).T))  # (C, 2 n_in)
            self.register_buffer("res_b", torch.zeros(0))
        else:
            folded = torch.cat([res_w[:n_channels], end_w @ res_w[n_channels:]])  # (C + 2 n_in, C)
            self.register_buffer("res_w", _f32(folded.T))  # (C, C + 2 n_in)
            self.register_buffer("res_b", _f32(_bias(res_skip)[:n_channels]))

    def forward(self, hidden: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden (B, L, C), cond (B, L, 2C) with the in_layer bias -> (next hidden, skip (B, L, 2 n_in))."""
        acts = cond + torch.matmul(shifted(hidden, self.dilation, self.kernel_size), self.in_w)
        out = torch.matmul(gated(acts), self.res_w)
        if self.last:
            return hidden, out
        return hidden + out[..., : self.n_channels] + self.res_b, out[..., self.n_channels :]


class WaveGlowCoupling(nn.Module):
    """One flow's WN with ``start``, ``cond_layer`` and ``end``: (x_a (B, L, n_in), upsampled mel
    (B, L, n_mel*g)) -> [shift, log_s] (B, L, 2 n_in)."""

    def __init__(self, wn: nn.Module):
        super().__init__()
        n_layers = len(wn.in_layers)
        self.layers = nn.ModuleList(
            WaveGlowLayer(wn.in_layers[i], wn.res_skip_layers[i], wn.end, last=i == n_layers - 1)
            for i in range(n_layers)
        )
        self.n_channels: int = wn.n_channels
        self.register_buffer("start_w", _f32(_weight(wn.start).squeeze(-1).T))  # (n_in, C)
        self.register_buffer("start_b", _f32(_bias(wn.start)))
        cond_w = _weight(wn.cond_layer).squeeze(-1).T  # (n_mel*g, O)
        cond_b = _bias(wn.cond_layer) + torch.cat([_bias(layer) for layer in wn.in_layers])
        self.register_buffer("cond_w", _f32(doubled_tanh_half(cond_w, wn.n_channels, n_layers)))
        self.register_buffer("cond_b", _f32(doubled_tanh_half(cond_b, wn.n_channels, n_layers)))
        end_w = _weight(wn.end).squeeze(-1)
        skip_b = torch.zeros(wn.n_channels, dtype=F64)
        for i, res_skip in enumerate(wn.res_skip_layers):
            skip_b = skip_b + (_bias(res_skip)[wn.n_channels :] if i < n_layers - 1 else _bias(res_skip))
        self.register_buffer("out_b", _f32(_bias(wn.end) + end_w @ skip_b))

    def forward(self, x_a: torch.Tensor, mel_steps: torch.Tensor) -> torch.Tensor:
        cond = torch.matmul(mel_steps, self.cond_w) + self.cond_b  # (B, L, O)
        hidden = torch.matmul(x_a, self.start_w) + self.start_b  # (B, L, C)
        width = 2 * self.n_channels
        out = self.out_b
        for i, layer in enumerate(self.layers):
            hidden, skip = layer(hidden, cond[..., width * i : width * (i + 1)])
            out = out + skip
        return out


class WaveGlowConditioning(nn.Module):
    """The upsampler: mel (B, n_mel, F) -> (B, L, n_mel*g), column mel_bin*g + j for sample g*t + j."""

    def __init__(self, model: WaveGlow):
        super().__init__()
        self.hop_length: int = model.audio_cfg.hop_length
        self.n_group: int = model.model_cfg.n_group
        # With g dividing the hop the exported z length is tied to F (L = F*hop/g) and the upsampled mel
        # always covers it; otherwise L is a free dimension and the slice below must be provably in range.
        self.tied: bool = self.hop_length % self.n_group == 0
        self.register_buffer("up_w", _f32(_weight(model.upsample)))  # (n_mel, n_mel, win)
        self.register_buffer("up_b", _f32(_bias(model.upsample)))

    def forward(self, mel: torch.Tensor, length: int) -> torch.Tensor:
        batch, n_mel = mel.shape[0], mel.shape[1]
        up = F.conv_transpose1d(mel, self.up_w, self.up_b, stride=self.hop_length)  # (B, n_mel, (F-1)hop+win)
        if self.tied:
            # F*hop samples, from the mel's length: a z of other than F*hop/g columns fails the reshape below
            samples = mel.shape[2] * self.hop_length
        else:
            # zeros past the mel's reach (a z longer than ceil(F*hop/g) columns reads silence there)
            samples = length * self.n_group
            up = F.pad(up, (0, samples))
        up = up[:, :, :samples].reshape(batch, n_mel, length, self.n_group)  # (B, n_mel, L, g)
        return up.transpose(1, 2).reshape(batch, length, n_mel * self.n_group)  # (B, L, n_mel*g)


# ------------------------------------------------------------------------------------------ light flow
class LightLayer(nn.Module):
    """One light layer: depthwise conv over time, pointwise product, + conditioning, gated unit, residual."""

    def __init__(self, layer: nn.Module, res_layer: nn.Module):
        super().__init__()
        depth_w = layer.depthwise.weight.detach().to(F64)  # (k, C)
        self.kernel_size: int = depth_w.shape[0]
        self.register_buffer("depth_w", _f32(depth_w.T.unsqueeze(1)))  # (C, 1, k): a grouped conv's weight
        point_w = _weight(layer.pointwise).T  # (C, 2C)
        self.register_buffer("point_w", _f32(doubled_tanh_half(point_w, point_w.shape[0])))
        self.register_buffer("res_w", _f32(_weight(res_layer).T))  # (C, C)
        self.register_buffer("res_b", _f32(_bias(res_layer)))

    def forward(self, hidden: torch.Tensor, cond: torch.Tensor, repeat: int) -> torch.Tensor:
        """hidden (B, L, C), cond (B, L // repeat, 2C) at frame rate with all biases -> next hidden."""
        batch, length, channels = hidden.shape
        # one grouped conv (channel-major) rather than k shifted products: a few nodes instead of 3k + 1
        depth = F.conv1d(hidden.transpose(1, 2), self.depth_w, padding=self.kernel_size // 2, groups=channels)
        acts = torch.matmul(depth.transpose(1, 2), self.point_w)  # (B, L, 2C)
        frames = cond.shape[1]
        acts = (acts.reshape(batch, frames, repeat, -1) + cond.unsqueeze(2)).reshape(batch, length, -1)
        return hidden + torch.matmul(gated(acts), self.res_w) + self.res_b


class LightCoupling(nn.Module):
    """One flow's ``LightWN``: (x_a (B, L, n_in), mel (B, F, n_mel)) -> [shift, log_s] (B, L, 2 n_in)."""

    def __init__(self, wn: nn.Module, repeat: int):
        super().__init__()
        self.layers = nn.ModuleList(LightLayer(layer, res) for layer, res in zip(wn.in_layers, wn.res_layers))
        self.repeat: int = repeat
        self.n_channels: int = wn.n_channels
        # the biases before each gated unit, pointwise(depthwise bias) + pointwise bias, join cond_layer's
        biases = [
            _bias(layer.depthwise) @ _weight(layer.pointwise).T + _bias(layer.pointwise)
            for layer in wn.in_layers
        ]
        n_layers = len(self.layers)
        cond_b = _bias(wn.cond_layer) + torch.cat(biases)
        self.register_buffer(
            "cond_w", _f32(doubled_tanh_half(_weight(wn.cond_layer).T, wn.n_channels, n_layers))
        )
        self.register_buffer("cond_b", _f32(doubled_tanh_half(cond_b, wn.n_channels, n_layers)))
        self.register_buffer("start_w", _f32(_weight(wn.start).T))  # (n_in, C)
        self.register_buffer("start_b", _f32(_bias(wn.start)))
        self.register_buffer("end_w", _f32(_weight(wn.end).T))  # (C, 2 n_in)
        self.register_buffer("end_b", _f32(_bias(wn.end)))

    def forward(self, x_a: torch.Tensor, mel_frames: torch.Tensor) -> torch.Tensor:
        cond = torch.matmul(mel_frames, self.cond_w) + self.cond_b  # (B, F, O), at frame rate
        hidden = torch.matmul(x_a, self.start_w) + self.start_b  # (B, L, C)
        width = 2 * self.n_channels
        for i, layer in enumerate(self.layers):
            hidden = layer(hidden, cond[..., width * i : width * (i + 1)], self.repeat)
        return torch.matmul(hidden, self.end_w) + self.end_b


class LightConditioning(nn.Module):
    """mel (B, n_mel, F) -> (B, F, n_mel): the light flow conditions at frame rate (L = F*r steps)."""

    def forward(self, mel: torch.Tensor, length: int) -> torch.Tensor:
        return mel.transpose(1, 2)


# ------------------------------------------------------------------------------------------ the graph
class FlowStep(nn.Module):
    """One flow step of the reverse pass: the affine coupling undone, then W^-1, then the early output
    (z columns [early_start, early_start + early_size)) put back in front when one left before this flow."""

    def __init__(self, coupling: nn.Module, inverse: torch.Tensor, early_start: int, early_size: int):
        super().__init__()
        self.coupling = coupling
        self.register_buffer("inverse_t", _f32(inverse.T))  # (c, c): x @ W^-T = (W^-1 x)^T
        self.early_start: int = early_start  # -1: no early output before this flow
        self.early_end: int = early_start + early_size

    def forward(self, x: torch.Tensor, cond: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        """x (B, L, c) -> (B, L, c + early); cond: the coupling's conditioning input; z_t (B, L, g)."""
        n_half = x.shape[2] // 2
        x_a, x_b = x[..., :n_half], x[..., n_half:]
        out = self.coupling(x_a, cond)
        x_b = (x_b - out[..., :n_half]) * torch.exp(-out[..., n_half:])
        x = torch.matmul(torch.cat([x_a, x_b], dim=2), self.inverse_t)
        if self.early_start >= 0:
            x = torch.cat([z_t[..., self.early_start : self.early_end], x], dim=2)
        return x


class SynthesisGraph(nn.Module):
    """The exported synthesis: ``forward(mel, z) -> audio``, the reverse pass of a trained flow.

    mel (B, n_mel, F) float32 log-mel; z (B, g, L) float32, the caller's noise already scaled by sigma, with
    L = ceil(F*hop_length/g) (= F*hop_length/g when g divides the hop); returns audio (B, L*g) float32 in
    [-1, 1], whose first F*hop_length samples are the ``Vocoder``'s audio for the same z (denoise 0).
    """

    def __init__(self, model: Flow):
        super().__init__()
        cfg, audio = model.model_cfg, model.audio_cfg
        self.architecture: str = cfg.architecture
        self.n_group: int = cfg.n_group
        self.n_mel_channels: int = cfg.n_mel_channels
        self.hop_length: int = audio.hop_length
        self.sampling_rate: int = audio.sampling_rate
        self.n_early: int = cfg.n_early_outputs() * cfg.n_early_size
        light = cfg.architecture == "light"
        self.conditioning = LightConditioning() if light else WaveGlowConditioning(model)
        steps = []
        early = self.n_early
        for k in reversed(range(cfg.n_flows)):  # in the order the reverse pass runs them
            start = -1
            if cfg.early_before(k):
                early -= cfg.n_early_size
                start = early
            if light:
                coupling: nn.Module = LightCoupling(model.WN[k], audio.hop_length // cfg.n_group)
            else:
                coupling = WaveGlowCoupling(model.WN[k])
            inverse = torch.linalg.inv(model.convinv[k].conv.weight.detach().squeeze(-1).to(F64))
            steps.append(FlowStep(coupling, inverse, start, cfg.n_early_size))
        self.steps = nn.ModuleList(steps)
        self.mdct: bool = light and cfg.squeeze == "mdct"
        tables = MDCTSqueeze(cfg.n_group if self.mdct else 2)  # float32 DCT-IV and fold weights
        self.register_buffer("mdct_dct", tables.dct.clone())
        self.register_buffer("mdct_fold_a", tables.fold_a.clone())
        self.register_buffer("mdct_fold_b", tables.fold_b.clone())

    @classmethod
    @torch.no_grad()
    def from_model(cls, model: Flow) -> SynthesisGraph:
        """The graph of a trained flow (weight norm on or off; the model is not changed), in eval mode."""
        return cls(model).eval().requires_grad_(False)

    def forward(self, mel: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """mel (B, n_mel, F), z (B, g, L) -> audio (B, L*g) in [-1, 1]."""
        length = z.shape[2]
        z_t = z.transpose(1, 2)  # (B, L, g), sample g*t + j at [t, j]
        cond = self.conditioning(mel, length)
        x = z_t[..., self.n_early :]
        for step in self.steps:
            x = step(x, cond, z_t)
        if self.mdct:
            audio = mdct_inverse(x, self.mdct_dct, self.mdct_fold_a, self.mdct_fold_b)
        else:
            audio = x.reshape(z.shape[0], -1)
        return audio.clamp(-1.0, 1.0)  # (B, L*g)

    def columns(self, frames: int) -> int:
        """z columns L that cover ``frames`` mel frames: ceil(frames*hop_length/n_group)."""
        return -(-frames * self.hop_length // self.n_group)
