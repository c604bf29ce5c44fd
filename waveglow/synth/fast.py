"""Inference-optimised WaveGlow: the same math as ``WaveGlow.reverse``/``infer``, rearranged to do less work.

``prepare_for_inference(model, device, precision)`` builds a ``FastWaveGlow`` from a trained ``WaveGlow``
(with or without weight norm; the model is not changed). What it does, all exact in real arithmetic:

- weight norm folded; every 1x1 inverse W^-1 computed once, in float64, at preparation;
- time-major layout: activations are (rows = time, columns = channels) matrices, so each dilated conv is
  ``kernel_size`` matrix products on shifted row slices of one zero-padded buffer (no im2col copy, no
  ``torch.cat``), accumulated in place into the conditioning, which already holds the in_layer bias;
- the upsampler (a transposed conv whose stride is the hop) is a single GEMM on stacked mel frames, and
  with ``fold_upsampler`` it is multiplied into every flow's ``cond_layer`` in advance: the conditioning
  then reads the ``ceil(win/hop) * n_mel`` mel values that reach a time step instead of
  ``n_group * n_mel`` upsampled ones (320 instead of 640 for the default model, half the conditioning
  work, at the price of ``n_flows * 2*n_channels*n_layers * n_mel * win/n_group`` weights: 2 GB in fp32);
- with ``cond_all_flows`` the conditioning of all flows is one GEMM (n_flows*2*n_channels*n_layers
  columns), otherwise one per flow (with the fold: one per flow and step phase, the rows being frames);
- ``start`` is folded into the first dilated conv (it acts on ``n_in + 1`` channels instead of
  ``n_channels``), and ``end`` into every skip output (the skip half of each res/skip conv becomes
  ``2*n_in`` columns appended to the residual GEMM, accumulated in the same buffer);
- batches are stacked along time with zero rows between them, so every product has B*L rows.

``infer`` draws z exactly as ``WaveGlow.infer`` does, so with the same generator it gives the same audio.
Precision ``bf16``/``fp16`` runs the coupling networks in that dtype with float32 islands (the flow's carrier,
``exp(log_s)``, the 1x1 inverses); ``compile`` wraps the synthesis in ``torch.compile``; ``cuda_graphs``
records one CUDA graph per input shape and replays it.

One flow's coupling network in this form is ``fast_coupling.FastCoupling``; the CUDA-graph replay is
``cuda_graphs.GraphedReverse``; the FLOPs both engines execute are counted in ``waveglow.bench.flops``.

Shapes: B batch, g = n_group, L = T // g time steps, F mel frames, C = n_channels, O = 2*C*n_layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from waveglow.config import SYNTH_PRECISIONS
from waveglow.device import DTYPES
from waveglow.model.flow import WaveGlow
from waveglow.synth.cuda_graphs import GraphedReverse
from waveglow.synth.fast_coupling import FastCoupling

PRECISIONS: dict[str, torch.dtype] = {
    name: DTYPES[name] for name in SYNTH_PRECISIONS
}  # synthesis' precisions

# Above this many bytes the all-flows conditioning falls back to one GEMM per flow.
COND_ALL_FLOWS_MAX_BYTES = 1 << 30


class FastWaveGlow(nn.Module):
    """A trained WaveGlow rearranged for synthesis; ``reverse``/``infer`` as in ``WaveGlow``.

    Build it with ``FastWaveGlow.from_model`` or ``prepare_for_inference``; it holds its own copies of the
    weights (as buffers, so ``.to(device)`` moves them) and never changes the model it came from.
    """

    def __init__(
        self,
        model: WaveGlow,
        precision: str = "fp32",
        fold_upsampler: bool = False,
        cond_all_flows: bool = False,
        device: torch.device | str | None = None,
    ):
        """model: a trained WaveGlow (left unchanged); precision: fp32 | bf16 | fp16 for the coupling
        networks; fold_upsampler: multiply the upsampler into the conditioning (half its work, 2 GB of
        weights in fp32 for the default model, ~0.6 TFLOP once to build); cond_all_flows: the
        conditioning of all flows as one GEMM (when its output fits 1 GiB; not with fold_upsampler);
        device: where the weights are built and kept (default: the model's)."""
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        cfg, audio = model.model_cfg, model.audio_cfg
        self.model_cfg, self.audio_cfg, self.precision = cfg, audio, precision
        dtype = PRECISIONS[precision]
        g, n_mel, hop = cfg.n_group, cfg.n_mel_channels, audio.hop_length
        self.foldable = hop % g == 0
        if fold_upsampler and not self.foldable:
            raise ValueError(f"fold_upsampler needs hop_length ({hop}) to be a multiple of n_group ({g})")
        self.fold_upsampler, self.cond_all_flows = fold_upsampler, cond_all_flows
        self._reverse_fn, self._graphs = self._reverse, None
        self.n_taps = math.ceil(audio.win_length / hop)
        self.steps_per_frame = hop // g if self.foldable else 0
        f64 = torch.float64
        device = torch.device(device) if device is not None else model.upsample.weight.device
        with torch.no_grad():
            # Build on the target device; the cheap folds in float64, the 1x1 inverses too.
            inverses = [
                torch.linalg.inv(conv.conv.weight.detach().squeeze(-1).to(f64)) for conv in model.convinv
            ]
            self.flows = nn.ModuleList(
                FastCoupling(wn, inverse, dtype).to(device) for wn, inverse in zip(model.WN, inverses)
            )
            n_cond = 2 * cfg.n_channels * cfg.n_layers
            # cond_layer weights of all flows, columns (flow, O), rows ordered (j, mel bin) to match the
            # time-major upsampled mel; biases hold cond_layer's and the in_layers' biases.
            cond_w = torch.cat(
                [
                    wn.cond_layer.weight.detach()
                    .to(device, f64)
                    .squeeze(-1)
                    .view(n_cond, n_mel, g)
                    .transpose(1, 2)
                    for wn in model.WN
                ]
            ).reshape(cfg.n_flows * n_cond, g * n_mel)  # (n_flows*O, g*n_mel)
            cond_b = torch.cat(
                [
                    wn.cond_layer.bias.detach().to(device, f64) + flow.in_bias
                    for wn, flow in zip(model.WN, self.flows)
                ]
            )
            up_w = model.upsample.weight.detach().to(device, f64)  # (n_mel_in, n_mel_out, win)
            up_b = model.upsample.bias.detach().to(device, f64)
            if not self.foldable:
                self.register_buffer("up_w", up_w.to(dtype))
                self.register_buffer("up_b", up_b.to(dtype))
                self.register_buffer("cond_w", cond_w.T.contiguous().to(dtype))
                self.register_buffer("cond_b", cond_b.to(dtype))
                return
            # The upsampler as one GEMM: frame row f of stacked mel [mel[f], mel[f-1], ...] (n_taps*n_mel)
            # times up_gemm gives the hop samples of frame f, columns (sample s, mel bin).
            up_pad = F.pad(up_w, (0, self.n_taps * hop - audio.win_length))
            up_gemm = up_pad.view(n_mel, n_mel, self.n_taps, hop).permute(2, 0, 3, 1)  # (d, m', s, m)
            up_gemm = up_gemm.reshape(self.n_taps * n_mel, hop * n_mel)
            if fold_upsampler:
                # ~0.6 TFLOP for the default model, so in float32 (products of 640 terms, error ~1e-7
                # relative) and flow by flow into the final buffer to keep the peak memory at its size.
                S, n_flows = self.steps_per_frame, cfg.n_flows
                steps = up_gemm.float().view(self.n_taps * n_mel, S, g * n_mel).transpose(0, 1)
                # (n_flows, S, n_taps*n_mel, O): one contiguous (inputs, O) matrix per flow and step phase
                folded = torch.empty(n_flows, S, self.n_taps * n_mel, n_cond, dtype=dtype, device=device)
                for k in range(n_flows):
                    flow_w = cond_w[k * n_cond : (k + 1) * n_cond].float().T  # (g*n_mel, O)
                    folded[k] = torch.matmul(steps, flow_w)  # (S, n_taps*n_mel, O)
                self.register_buffer("cond_w", folded)
                self.register_buffer("cond_b", (cond_b + cond_w @ up_b.repeat(g)).to(dtype))
            else:
                self.register_buffer("up_w", up_gemm.to(dtype))
                self.register_buffer("up_b", up_b.repeat(hop).to(dtype))
                self.register_buffer("cond_w", cond_w.T.contiguous().to(dtype))  # (g*n_mel, n_flows*O)
                self.register_buffer("cond_b", cond_b.to(dtype))

    @classmethod
    def from_model(cls, model: WaveGlow, **options) -> FastWaveGlow:
        """Build from a trained model (see ``FastWaveGlow.__init__`` for options)."""
        return cls(model, **options)

    @property
    def hop_length(self) -> int:
        return self.audio_cfg.hop_length

    @property
    def compute_dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]

    # ------------------------------------------------------------------------------------ conditioning
    def _stacked_mel(self, mel: torch.Tensor, n_frames: int) -> torch.Tensor:
        """mel (B, n_mel, F) -> (B, n_frames, n_taps*n_mel), row f = [mel[f], mel[f-1], ...], zero outside."""
        n_taps = self.n_taps
        mel_t = F.pad(mel, (n_taps - 1, max(0, n_frames - mel.shape[2]))).transpose(1, 2)  # (B, F', n_mel)
        taps = [mel_t[:, n_taps - 1 - d : n_taps - 1 - d + n_frames] for d in range(n_taps)]
        return torch.cat(taps, dim=2).to(self.compute_dtype)

    def _conditioning_input(self, mel: torch.Tensor, length: int, rows: int) -> torch.Tensor:
        """What every flow's conditioning is computed from, in the stacked layout (B blocks of ``rows``
        rows, the first ``length`` real; M = (B-1)*rows + length rows computed): with the fold, the
        stacked mel (ceil(M/S), n_taps*n_mel); otherwise the upsampled mel (M, g*n_mel), or with
        ``cond_all_flows`` (when it fits) already every flow's conditioning (M, n_flows*O)."""
        cfg, batch = self.model_cfg, mel.shape[0]
        span = (batch - 1) * rows + length
        dtype = self.compute_dtype
        if self.foldable:
            S = self.steps_per_frame
            frames_per_block = rows // S
            stacked = self._stacked_mel(mel, frames_per_block).reshape(batch * frames_per_block, -1)
            stacked = stacked[: -(-span // S)]  # the frames that reach the rows computed
            if self.fold_upsampler:
                return stacked
            samples = torch.addmm(self.up_b, stacked, self.up_w)  # (frames, hop*n_mel)
            upsampled = samples.view(-1, cfg.n_group * cfg.n_mel_channels)[:span]  # (M, g*n_mel)
        else:
            n_samples = length * cfg.n_group
            up = F.conv_transpose1d(mel.to(dtype), self.up_w, self.up_b, stride=self.hop_length)
            up = up[:, :, :n_samples].transpose(1, 2).reshape(batch, length, -1)  # (B, L, g*n_mel)
            upsampled = F.pad(up, (0, 0, 0, rows - length)).reshape(batch * rows, -1)[:span]
        n_all = cfg.n_flows * 2 * cfg.n_channels * cfg.n_layers
        if self.cond_all_flows and span * n_all * dtype.itemsize <= COND_ALL_FLOWS_MAX_BYTES:
            return torch.addmm(self.cond_b, upsampled, self.cond_w)  # (M, n_flows*O)
        return upsampled

    def _flow_conditioning(
        self, k: int, cond_input: torch.Tensor, span: int, out: torch.Tensor
    ) -> torch.Tensor:
        """Flow k's cond_layer output plus its in_layer biases (span, O), written into ``out`` (rows >=
        span rounded up to whole frames) unless all flows were computed at once."""
        cfg = self.model_cfg
        n_cond = 2 * cfg.n_channels * cfg.n_layers
        columns = slice(k * n_cond, (k + 1) * n_cond)
        if self.fold_upsampler:
            # time step f*S + r is stacked[f] @ cond_w[k, r]: a batch of GEMMs over the step phases r
            # whose rows are the frames (one batched call: S small GEMMs thread poorly one by one)
            n_frames, S = cond_input.shape[0], self.steps_per_frame
            phases = torch.baddbmm(
                self.cond_b[columns], cond_input.expand(S, n_frames, -1), self.cond_w[k]
            )  # (S, frames, O)
            out[: n_frames * S].view(n_frames, S, n_cond).copy_(phases.transpose(0, 1))
            return out[:span]
        if cond_input.shape[1] == cfg.n_flows * n_cond:  # all flows computed at once
            return cond_input[:, columns]
        return torch.addmm(self.cond_b[columns], cond_input, self.cond_w[:, columns], out=out[:span])

    # ------------------------------------------------------------------------------------ synthesis
    def _check_inputs(self, z: torch.Tensor, mel: torch.Tensor, lengths: Sequence[int] | None) -> None:
        cfg = self.model_cfg
        if lengths is not None and (
            len(lengths) != z.shape[0] or not all(1 <= n <= z.shape[2] for n in lengths)
        ):
            raise ValueError(f"lengths {list(lengths)} do not fit z of shape {tuple(z.shape)}")
        if z.dim() != 3 or z.shape[1] != cfg.n_group:
            raise ValueError(f"z must be (B, {cfg.n_group}, L), got {tuple(z.shape)}")
        if mel.dim() != 3 or mel.shape[1] != cfg.n_mel_channels or mel.shape[0] != z.shape[0]:
            raise ValueError(
                f"mel must be ({z.shape[0]}, {cfg.n_mel_channels}, F) to match z, got {tuple(mel.shape)}"
            )
        covered = (mel.shape[2] - 1) * self.hop_length + self.audio_cfg.win_length
        if covered < z.shape[1] * z.shape[2]:
            raise ValueError(
                f"{mel.shape[2]} mel frames cover {covered} samples, fewer than the "
                f"{z.shape[1] * z.shape[2]} needed"
            )

    def _block_rows(self, length: int) -> int:
        """Rows per utterance in the stacked layout: L real rows, then at least ``pad`` zero rows."""
        rows = length + self.flows[0].pad
        if self.foldable:
            rows = -(-rows // self.steps_per_frame) * self.steps_per_frame
        return rows

    def _reverse(
        self, z: torch.Tensor, mel: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``reverse`` without checks; lengths (B,) int64 on z's device, or None when every item fills z. A
        tensor, not ints, so that compiled code and CUDA graphs are reused across batches of other lengths."""
        cfg = self.model_cfg
        batch, _, length = z.shape
        carrier = torch.promote_types(z.dtype, torch.float32)
        dtype, C = self.compute_dtype, cfg.n_channels
        rows = self._block_rows(length)
        span = (batch - 1) * rows + length
        cond_input = self._conditioning_input(mel, length, rows)
        # work buffers shared by all flows
        cond_rows = -(-span // self.steps_per_frame) * self.steps_per_frame if self.foldable else span
        cond_buf = z.new_empty(cond_rows, 2 * C * cfg.n_layers, dtype=dtype)
        max_out = 2 * max(flow.n_in for flow in self.flows)
        hidden = z.new_empty(self.flows[0].pad + batch * rows, C + max_out, dtype=dtype)
        gated = z.new_empty(span, C, dtype=dtype)
        invalid = None
        if lengths is not None:
            steps = torch.arange(rows, device=z.device)
            invalid = (steps[None, :] >= lengths[:, None]).unsqueeze(2)  # (B, R, 1)
        z_t = z.to(carrier).transpose(1, 2)  # (B, L, g), sample g*t + j at [t, j]
        n_early = cfg.n_early_outputs() * cfg.n_early_size
        early = list(torch.split(z_t[:, :, :n_early], cfg.n_early_size, dim=2))
        x = z_t[:, :, n_early:]
        for k in reversed(range(cfg.n_flows)):
            flow = self.flows[k]
            n_half = flow.n_in
            x_a, x_b = x[:, :, :n_half], x[:, :, n_half:]
            cond = self._flow_conditioning(k, cond_input, span, cond_buf)
            out = flow.skip_output(x_a.to(dtype), cond, (batch, rows, length), hidden, gated, invalid)
            x_b = (x_b - out[:, :, :n_half]) * torch.exp(-out[:, :, n_half:])
            x = torch.matmul(torch.cat([x_a, x_b], dim=2), flow.inverse.to(carrier))  # W^-1 x
            if cfg.early_before(k):
                x = torch.cat([early.pop(), x], dim=2)
        return x.reshape(batch, -1)  # (B, T)

    def reverse(
        self, z: torch.Tensor, mel: torch.Tensor, lengths: Sequence[int] | None = None
    ) -> torch.Tensor:
        """z (B, g, L), mel (B, n_mel, F) covering g*L samples -> audio (B, g*L), as ``WaveGlow.reverse``.

        lengths (B,): each utterance's own length in time steps (<= L; None: all L). Utterance i then gets
        exactly the audio it gets alone from z[i, :, :lengths[i]] in its first g*lengths[i] samples, given
        that its mel frames beyond its own are zero; the rest of its row is not meaningful.
        """
        self._check_inputs(z, mel, lengths)
        ragged = None
        if lengths is not None and min(lengths) < z.shape[2]:
            ragged = torch.tensor([int(n) for n in lengths], dtype=torch.int64, device=z.device)
        with torch.inference_mode(), torch.autocast(z.device.type, enabled=False):
            if self._graphs is not None:
                return self._graphs(z, mel, ragged)
            return self._reverse_fn(z, mel, ragged)

    def accelerate(self, compile: bool = False, cuda_graphs: bool = False) -> FastWaveGlow:
        """compile: run the synthesis through ``torch.compile`` (shapes specialised: recompiles per new
        shape; per-item lengths are a tensor input and do not); cuda_graphs: record one CUDA graph per
        (z, mel) shape and replay it (CUDA only; each shape keeps its own memory pool, so bucket lengths, as
        ``Vocoder`` does). Returns self."""
        self._reverse_fn = torch.compile(self._reverse, dynamic=False) if compile else self._reverse
        if cuda_graphs and self.cond_b.device.type != "cuda":
            raise ValueError(f"cuda_graphs needs the model on a CUDA device, not {self.cond_b.device}")
        self._graphs = GraphedReverse(self._reverse_fn) if cuda_graphs else None
        return self

    @torch.inference_mode()
    def infer(
        self, mel: torch.Tensor, sigma: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """mel (B, n_mel, F) -> audio (B, F*hop_length); z drawn exactly as ``WaveGlow.infer`` draws it."""
        n_samples = mel.shape[2] * self.hop_length
        g = self.model_cfg.n_group
        length = -(-n_samples // g)
        z = torch.randn(mel.shape[0], g, length, generator=generator, device=mel.device, dtype=mel.dtype)
        return self.reverse(z * sigma, mel)[:, :n_samples]


def prepare_for_inference(
    model: WaveGlow,
    device: torch.device | str,
    precision: str = "fp32",
    compile: bool = False,
    cuda_graphs: bool = False,
    fold_upsampler: bool = False,
    cond_all_flows: bool = False,
) -> FastWaveGlow:
    """The one call for synthesis: a ``FastWaveGlow`` on ``device`` with ``.infer(mel, sigma, generator)``
    and ``.reverse(z, mel)`` as in ``WaveGlow`` (same z from the same generator; fp32 equal to the plain
    model within float32 rounding). ``model`` is not changed and may still carry weight norm.

    precision: fp32 | bf16 | fp16 (coupling networks in that dtype, the flow itself in float32);
    compile: ``torch.compile`` the synthesis; cuda_graphs: replay a CUDA graph per input shape (CUDA only);
    fold_upsampler, cond_all_flows: see ``FastWaveGlow``.
    """
    fast = FastWaveGlow(
        model,
        precision=precision,
        fold_upsampler=fold_upsampler,
        cond_all_flows=cond_all_flows,
        device=device,
    )
    return fast.eval().accelerate(compile=compile, cuda_graphs=cuda_graphs)
