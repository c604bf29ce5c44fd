"""WaveGlow: a mel-conditioned normalising flow from audio to Gaussian noise and back.

Layout and numerics follow the published NVIDIA model so its released weights give the same outputs.
Shapes: B batch, T audio samples, F mel frames, g = n_group, L = T // g.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from waveglow.config import AudioConfig, ModelConfig, validate_model_audio
from waveglow.model.layers import WN, Invertible1x1Conv


@dataclass
class FlowOutput:
    """Result of ``WaveGlow.forward``.

    z: (B, g, L) latent, early outputs first (in the order they left), then the remaining channels.
    log_det: (B,) float32, log|det dz/dx| per example = log_det_s + log_det_w.
    log_det_s: (B,) float32, the sum of all log_s terms of the affine couplings.
    log_det_w: (B,) float32, the sum of the 1x1 convolutions' log-determinants (times L each).
    log_det_s_per_flow: (n_flows, B) float32, for logging.
    """

    z: torch.Tensor
    log_det: torch.Tensor
    log_det_s: torch.Tensor
    log_det_w: torch.Tensor
    log_det_s_per_flow: torch.Tensor


@dataclass(frozen=True)
class ReceptiveField:
    """How far one mel frame's audio can depend on the flow's inputs: upper bounds, in mel frames.

    The audio of frame f (samples f*hop .. f*hop + hop - 1) depends only on the mel frames f - left .. f + right
    and on the z columns (groups of n_group samples) covering them; ``columns`` is how far the coupling
    networks alone reach, in z columns to each side. So a window of frames [s, e) synthesised on its own gives
    the one-pass audio of every frame f with f - left >= s (or s = 0) and f + right < e (or e = all frames),
    when its z is the one-pass z's columns from s*hop/n_group on. The bounds are reached (within a frame)
    unless a coupling's input half holds only channels that the coupling before it left unchanged (an early
    output as wide as that half): then the reach is shorter.
    """

    left: int
    right: int
    columns: int


def squeeze(audio: torch.Tensor, n_group: int) -> torch.Tensor:
    """audio (B, T) -> (B, g, T // g) with x[b, j, t] = audio[b, g*t + j]."""
    batch, length = audio.shape
    if length % n_group:
        raise ValueError(f"audio length {length} is not a multiple of n_group={n_group}")
    return audio.reshape(batch, length // n_group, n_group).transpose(1, 2)  # (B, g, L)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """(B, g, L) -> audio (B, g*L), the inverse of ``squeeze``."""
    return x.transpose(1, 2).reshape(x.shape[0], -1)  # (B, T)


class WaveGlow(nn.Module):
    """The WaveGlow flow.

    ``forward(audio, mel)`` maps audio to z with the exact log-determinant (training);
    ``reverse(z, mel)`` is its exact inverse; ``infer(mel, sigma)`` synthesises from Gaussian noise.
    """

    time_major = False  # tensors inside are (B, C, L)

    def __init__(self, model_cfg: ModelConfig | None = None, audio_cfg: AudioConfig | None = None):
        super().__init__()
        model_cfg = model_cfg if model_cfg is not None else ModelConfig()
        audio_cfg = audio_cfg if audio_cfg is not None else AudioConfig()
        validate_model_audio(model_cfg, audio_cfg)
        self.model_cfg = model_cfg
        self.audio_cfg = audio_cfg
        n_mel, n_group = model_cfg.n_mel_channels, model_cfg.n_group
        # Frames to samples: stride is the hop, kernel the window, as in the published model.
        self.upsample = nn.ConvTranspose1d(n_mel, n_mel, audio_cfg.win_length, stride=audio_cfg.hop_length)
        self.WN = nn.ModuleList()
        self.convinv = nn.ModuleList()
        for remaining in model_cfg.flow_channels():
            self.convinv.append(Invertible1x1Conv(remaining))
            self.WN.append(
                WN(
                    remaining // 2,
                    n_mel * n_group,
                    model_cfg.n_layers,
                    model_cfg.n_channels,
                    model_cfg.kernel_size,
                )
            )
        self.n_remaining_channels = model_cfg.remaining_channels()

    @property
    def hop_length(self) -> int:
        return self.audio_cfg.hop_length

    # ---------------------------------------------------------------- conditioning
    def condition(self, mel: torch.Tensor, n_samples: int) -> torch.Tensor:
        """mel (B, n_mel, F) -> conditioning (B, n_mel*g, n_samples // g), channel = mel_bin*g + j.

        The transposed conv gives (F-1)*hop + win samples; the first ``n_samples`` are kept.
        """
        if mel.dim() != 3 or mel.shape[1] != self.model_cfg.n_mel_channels:
            raise ValueError(f"mel must be (B, {self.model_cfg.n_mel_channels}, F), got {tuple(mel.shape)}")
        cond = self.upsample(mel)  # (B, n_mel, (F-1)*hop + win)
        if cond.shape[2] < n_samples:
            raise ValueError(
                f"{mel.shape[2]} mel frames cover {cond.shape[2]} samples, fewer than the {n_samples} needed"
            )
        cond = cond[:, :, :n_samples]
        batch, n_mel, _ = cond.shape
        g = self.model_cfg.n_group
        cond = cond.reshape(batch, n_mel, n_samples // g, g)  # (B, n_mel, L, g)
        return cond.transpose(2, 3).reshape(batch, n_mel * g, n_samples // g)  # (B, n_mel*g, L)

    # ---------------------------------------------------------------- flow
    def forward(self, audio: torch.Tensor, mel: torch.Tensor) -> FlowOutput:
        """audio (B, T) with T a multiple of n_group, mel (B, n_mel, F) covering T -> FlowOutput."""
        cfg = self.model_cfg
        # The flow's carrier, log-dets and exp(log_s) stay in float32 (or float64) even under autocast;
        # only the WN networks run in reduced precision.
        acc = torch.promote_types(audio.dtype, torch.float32)
        x = squeeze(audio.to(acc), cfg.n_group)  # (B, g, L)
        batch, _, length = x.shape
        cond = self.condition(mel, audio.shape[1])
        early: list[torch.Tensor] = []
        log_det_w = torch.zeros(batch, dtype=acc, device=audio.device)
        log_s_terms = []
        for k in range(cfg.n_flows):
            if cfg.early_before(k):
                early.append(x[:, : cfg.n_early_size])
                x = x[:, cfg.n_early_size :]
            x, log_det_w_k = self.convinv[k](x)
            log_det_w = log_det_w + length * log_det_w_k
            n_half = x.shape[1] // 2
            x_a, x_b = x[:, :n_half], x[:, n_half:]
            out = self.WN[k](x_a, cond)
            shift, log_s = out[:, :n_half].to(acc), out[:, n_half:].to(acc)
            x_b = torch.exp(log_s) * x_b + shift
            log_s_terms.append(log_s.sum(dim=(1, 2)))
            x = torch.cat([x_a, x_b], dim=1)
        z = torch.cat(early + [x], dim=1)  # (B, g, L)
        log_det_s_per_flow = torch.stack(log_s_terms)  # (n_flows, B)
        log_det_s = log_det_s_per_flow.sum(0)
        return FlowOutput(
            z=z,
            log_det=log_det_s + log_det_w,
            log_det_s=log_det_s,
            log_det_w=log_det_w,
            log_det_s_per_flow=log_det_s_per_flow,
        )

    def reverse(self, z: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """z (B, g, L), mel (B, n_mel, F) covering g*L samples -> audio (B, g*L): the inverse of forward."""
        cfg = self.model_cfg
        if z.dim() != 3 or z.shape[1] != cfg.n_group:
            raise ValueError(f"z must be (B, {cfg.n_group}, L), got {tuple(z.shape)}")
        cond = self.condition(mel, z.shape[1] * z.shape[2]).to(z.dtype)
        n_early = cfg.n_early_outputs()
        early = list(torch.split(z[:, : n_early * cfg.n_early_size], cfg.n_early_size, dim=1))
        x = z[:, n_early * cfg.n_early_size :]
        for k in reversed(range(cfg.n_flows)):
            n_half = x.shape[1] // 2
            x_a, x_b = x[:, :n_half], x[:, n_half:]
            out = self.WN[k](x_a, cond)
            shift, log_s = out[:, :n_half], out[:, n_half:]
            x_b = (x_b - shift) * torch.exp(-log_s)
            x = self.convinv[k].reverse(torch.cat([x_a, x_b], dim=1))
            if cfg.early_before(k):
                x = torch.cat([early.pop(), x], dim=1)
        return unsqueeze(x)  # (B, T)

    @torch.no_grad()
    def infer(
        self, mel: torch.Tensor, sigma: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """mel (B, n_mel, F) -> audio (B, F*hop_length), from z ~ N(0, sigma^2) on mel's device and dtype.

        When F*hop_length is not a multiple of n_group (e.g. hop 300 with n_group 8), the flow runs on the
        next multiple (the upsampled mel covers it) and the output is cut back to F*hop_length.
        """
        n_samples = mel.shape[2] * self.hop_length
        g = self.model_cfg.n_group
        length = -(-n_samples // g)  # ceil
        z = torch.randn(mel.shape[0], g, length, generator=generator, device=mel.device, dtype=mel.dtype)
        return self.reverse(z * sigma, mel)[:, :n_samples]

    def receptive_field(self) -> ReceptiveField:
        """Upper bounds of how far one frame's audio reaches into mel and z (``ReceptiveField``), derived
        from the architecture.

        Layer i of a coupling network is a conv of kernel_size taps at dilation 2**i, so one coupling mixes
        r = (kernel_size - 1) / 2 * (2**n_layers - 1) z columns to each side and the flow, its couplings one
        after the other (the 1x1 convolutions mix channels only), R = n_flows * r. A sample t in column
        c = t // g thus depends on z and conditioning in columns c - R .. c + R, and a conditioning sample u
        on the mel frames f with f*hop <= u < f*hop + win_length (the transposed convolution looks back
        only). With floor(a/hop) - floor(b/hop) <= ceil((a - b)/hop): right = ceil(((R + 1) g - 1) / hop),
        left = ceil(((R + 1) g - 1 + win_length) / hop) - 1 frames. The published model: R = 3,060 columns,
        left 99 and right 96 frames (1.15 s and 1.11 s at 22.05 kHz).
        """
        cfg, g, hop = self.model_cfg, self.model_cfg.n_group, self.hop_length
        columns = cfg.n_flows * (cfg.kernel_size - 1) // 2 * (2**cfg.n_layers - 1)
        reach = (columns + 1) * g - 1  # from the first sample of t's column to the last of the farthest one
        return ReceptiveField(
            left=-(-(reach + self.upsample.kernel_size[0]) // hop) - 1,
            right=-(-reach // hop),
            columns=columns,
        )

    def apply_weight_norm(self) -> WaveGlow:
        """Put weight norm back on plain convolutions (training from weights without it); outputs do not
        change. Returns self."""
        for wn in self.WN:
            wn.apply_weight_norm()
        return self

    def remove_weight_norm(self) -> WaveGlow:
        """Fold weight norm into plain weights for inference; outputs do not change. Returns self."""
        for wn in self.WN:
            wn.remove_weight_norm()
        return self

    def masked_layers(self) -> list[nn.Module]:
        """The modules whose input mixes time steps (the dilated convs): a padded batch stays exact when
        their inputs are zeroed beyond each item's length; their input is (B, C, L)."""
        return [layer for wn in self.WN for layer in wn.in_layers]

    @property
    def has_weight_norm(self) -> bool:
        from torch.nn.utils import parametrize

        return parametrize.is_parametrized(self.WN[0].start, "weight")
