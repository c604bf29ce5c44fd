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

Shapes: B batch, g = n_group, L = T // g time steps, F mel frames, C = n_channels, O = 2*C*n_layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import AudioConfig, ModelConfig
from .model import WaveGlow

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# Above this many bytes the all-flows conditioning falls back to one GEMM per flow.
COND_ALL_FLOWS_MAX_BYTES = 1 << 30


# ---------------------------------------------------------------------------------------------- FLOPs
def _n_in_per_flow(cfg: ModelConfig) -> list[int]:
    """Channels entering each flow's WN (half the channels still in the flow)."""
    remaining, sizes = cfg.n_group, []
    for k in range(cfg.n_flows):
        if k > 0 and k % cfg.n_early_every == 0:
            remaining -= cfg.n_early_size
        sizes.append(remaining // 2)
    return sizes


def model_flops_per_sample(model_cfg: ModelConfig, audio_cfg: AudioConfig) -> float:
    """FLOPs (multiply-add = 2) per output sample of the plain ``WaveGlow.reverse``.

    Counts every matrix product: the upsampler (each output sample receives win/hop frames), and per flow
    the 1x1 inverse, ``start``, ``cond_layer``, the dilated ``in_layers``, ``res_skip_layers`` and ``end``.
    About 20.3 MFLOP for the default model; elementwise work (tanh, sigmoid, exp) is not counted.
    """
    cfg, C, g = model_cfg, model_cfg.n_channels, model_cfg.n_group
    per_step = 0.0  # per time step (g samples)
    remaining = cfg.n_group
    for k, n_in in enumerate(_n_in_per_flow(cfg)):
        if k > 0 and k % cfg.n_early_every == 0:
            remaining -= cfg.n_early_size
        per_step += 2 * remaining * remaining  # 1x1 inverse
        per_step += 2 * n_in * C  # start
        per_step += 2 * cfg.n_mel_channels * g * 2 * C * cfg.n_layers  # cond_layer
        per_step += cfg.n_layers * 2 * C * 2 * C * cfg.kernel_size  # in_layers
        per_step += (cfg.n_layers - 1) * 2 * C * 2 * C + 2 * C * C  # res_skip_layers
        per_step += 2 * C * 2 * n_in  # end
    upsample = 2 * cfg.n_mel_channels**2 * audio_cfg.win_length / audio_cfg.hop_length
    return per_step / g + upsample


def fast_flops_per_sample(
    model_cfg: ModelConfig, audio_cfg: AudioConfig, fold_upsampler: bool = False
) -> float:
    """FLOPs per output sample that ``FastWaveGlow`` executes (for batch 1; batches add the zero rows
    between utterances, ``(B-1) * pad`` rows per layer)."""
    cfg, C, g = model_cfg, model_cfg.n_channels, model_cfg.n_group
    n_mel, n_cond_out = cfg.n_mel_channels, 2 * C * cfg.n_layers
    n_taps = math.ceil(audio_cfg.win_length / audio_cfg.hop_length)
    foldable = audio_cfg.hop_length % g == 0
    per_step, remaining = 0.0, cfg.n_group
    for k, n_in in enumerate(_n_in_per_flow(cfg)):
        if k > 0 and k % cfg.n_early_every == 0:
            remaining -= cfg.n_early_size
        n_out = 2 * n_in
        per_step += 2 * remaining * remaining + 2 * n_in * C
        cond_in = n_taps * n_mel if (fold_upsampler and foldable) else n_mel * g
        per_step += 2 * cond_in * n_cond_out
        per_step += 2 * cfg.kernel_size * (n_in + 1) * 2 * C  # first in_layer with start folded in
        per_step += (cfg.n_layers - 1) * 2 * C * 2 * C * cfg.kernel_size
        per_step += (cfg.n_layers - 1) * 2 * C * (C + n_out) + 2 * C * n_out  # residual + folded skips
    upsample = 0.0 if (fold_upsampler and foldable) else 2 * n_mel * n_taps * n_mel
    return per_step / g + upsample / g


# ---------------------------------------------------------------------------------------------- weights
class _FastCoupling(nn.Module):
    """One flow's coupling network in matrix form (weights (in, out), ready for ``x @ W``)."""

    def __init__(self, wn: nn.Module, inverse: torch.Tensor, dtype: torch.dtype):
        super().__init__()
        C, n_layers = wn.n_channels, wn.n_layers
        f64 = torch.float64
        start_w = wn.start.weight.detach().to(f64).squeeze(-1)  # (C, n_in)
        start_b = wn.start.bias.detach().to(f64)
        end_w = wn.end.weight.detach().to(f64).squeeze(-1)  # (2 n_in, C)
        end_b = wn.end.bias.detach().to(f64)
        n_in = start_w.shape[1]
        self.n_in, self.n_channels, self.n_layers = n_in, C, n_layers
        kernel_size = wn.in_layers[0].kernel_size[0]
        self.kernel_size = kernel_size
        self.dilations = [conv.dilation[0] for conv in wn.in_layers]
        in_bias = []
        in_w = []
        for i, conv in enumerate(wn.in_layers):
            weight = conv.weight.detach().to(f64)  # (2C, C, k)
            in_bias.append(conv.bias.detach().to(f64))
            if i == 0:
                # start folded in: taps act on [x_a, 1]; the ones column carries start's bias and is zero in
                # the padding, exactly like the zero padding of start's output in the plain model.
                taps = [
                    torch.cat([weight[:, :, t] @ start_w, (weight[:, :, t] @ start_b)[:, None]], dim=1).T
                    for t in range(kernel_size)
                ]
                in_w.append(torch.cat(taps, dim=0))  # (k*(n_in+1), 2C)
            else:
                in_w.append(torch.stack([weight[:, :, t].T for t in range(kernel_size)]))  # (k, C, 2C)
        res_w, skip_b = [], torch.zeros(C, dtype=f64)
        for i, conv in enumerate(wn.res_skip_layers):
            weight = conv.weight.detach().to(f64).squeeze(-1)
            bias = conv.bias.detach().to(f64)
            if i < n_layers - 1:
                skip = end_w @ weight[C:]  # (2 n_in, C): end folded into the skip half
                res_w.append(torch.cat([weight[:C], skip], dim=0).T)  # (C, C + 2 n_in)
                self.register_buffer(f"res_bias{i}", bias[:C].to(dtype))
                skip_b = skip_b + bias[C:]
            else:
                res_w.append((end_w @ weight).T)  # (C, 2 n_in)
                skip_b = skip_b + bias
        self.register_buffer("start_w", start_w.T.to(dtype))  # (n_in, C)
        self.register_buffer("start_b", start_b.to(dtype))
        self.register_buffer("in_bias", torch.cat(in_bias).to(f64))  # (O,), folded into the conditioning
        for i in range(n_layers):
            self.register_buffer(f"in_w{i}", in_w[i].to(dtype))
            self.register_buffer(f"res_w{i}", res_w[i].to(dtype))
        self.register_buffer("out_bias", (end_b + end_w @ skip_b).float())  # (2 n_in,)
        self.register_buffer("inverse", inverse.T.float())  # (c, c): x @ W^-T
        self.pad = (kernel_size - 1) // 2 * max(self.dilations)

    def skip_output(
        self,
        x_a: torch.Tensor,
        cond: torch.Tensor,
        blocks: tuple[int, int, int],
        hidden: torch.Tensor,
        gated: torch.Tensor,
        invalid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """end(WN(x_a, cond)) -> (B, L, 2*n_in) float32.

        x_a (B, L, n_in) in the compute dtype; cond (M, O) this flow's conditioning in the stacked layout
        (consumed in place); blocks (B, R, L): B utterances of R rows each, the first L real,
        M = (B-1)*R + L; hidden (pad + B*R, >= C + 2*n_in) and gated (M, C): work buffers, reused across
        flows so that no large tensor is allocated (and page-faulted in) per flow; invalid (B, R, 1) bool:
        the rows beyond each utterance's own length (None when all have length L), kept zero in every
        dilated conv's input as the conv's zero padding keeps them for an utterance that runs alone.
        """
        batch, rows, length = blocks
        C, n_out, pad = self.n_channels, 2 * self.n_in, self.pad
        span = (batch - 1) * rows + length  # rows computed: from the first real row to the last
        # hidden (C columns) and the running sum of end(skip) (n_out columns), zero rows around each utterance
        hidden = hidden[:, : C + n_out].zero_()
        real = hidden[pad : pad + batch * rows].unflatten(0, (batch, rows))  # (B, R, C + n_out)
        real[:, :length, :C] = torch.matmul(x_a, self.start_w).add_(self.start_b)
        x_one = x_a.new_zeros(pad + batch * rows, self.n_in + 1)
        x_one_real = x_one[pad:].view(batch, rows, self.n_in + 1)
        x_one_real[:, :length, : self.n_in] = x_a
        x_one_real[:, :length, self.n_in] = 1
        if invalid is not None:  # masked_fill, not a product: NaN or inf in a padded tail stays out
            real[:, :, :C].masked_fill_(invalid, 0)
            x_one_real.masked_fill_(invalid, 0)
        k_half = (self.kernel_size - 1) // 2
        for i, dilation in enumerate(self.dilations):
            acts = cond[:, 2 * C * i : 2 * C * (i + 1)]  # (span, 2C) view, holds cond + in_layer bias
            offsets = [(t - k_half) * dilation for t in range(self.kernel_size)]
            if i == 0:
                cols = torch.cat([x_one[pad + o : pad + o + span] for o in offsets], dim=1)
                acts.addmm_(cols, self.in_w0)
            else:
                weight = getattr(self, f"in_w{i}")
                for t, o in enumerate(offsets):
                    acts.addmm_(hidden[pad + o : pad + o + span, :C], weight[t])
            # tanh(a) = 2 sigmoid(2a) - 1: one sigmoid pass over both halves (tanh is ~3x slower on CPU)
            acts[:, :C].mul_(2)
            acts.sigmoid_()
            torch.mul(acts[:, :C].mul_(2).sub_(1), acts[:, C:], out=gated)  # (span, C)
            if i < self.n_layers - 1:
                hidden[pad : pad + span].addmm_(gated, getattr(self, f"res_w{i}"))
                hidden[pad : pad + span, :C].add_(getattr(self, f"res_bias{i}"))
                if invalid is not None:
                    real[:, :, :C].masked_fill_(invalid, 0)  # each utterance's padded tail stays zero
                elif batch > 1:
                    real[:, length:, :C].zero_()  # keep the padding between utterances zero
            else:
                hidden[pad : pad + span, C:].addmm_(gated, getattr(self, f"res_w{i}"))
        return real[:, :length, C:].float() + self.out_bias  # (B, L, 2 n_in)


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
                _FastCoupling(wn, inverse, dtype).to(device) for wn, inverse in zip(model.WN, inverses)
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
        self, z: torch.Tensor, mel: torch.Tensor, lengths: tuple[int, ...] | None = None
    ) -> torch.Tensor:
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
        if lengths is not None and min(lengths) < length:
            steps = torch.arange(rows, device=z.device)  # compared with ints: no host copy (CUDA graphs)
            invalid = torch.stack([steps >= n for n in lengths]).unsqueeze(2)  # (B, R, 1)
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
            if k > 0 and k % cfg.n_early_every == 0:
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
        key = tuple(int(n) for n in lengths) if lengths is not None else None
        with torch.inference_mode(), torch.autocast(z.device.type, enabled=False):
            if self._graphs is not None:
                return self._graphs(z, mel, key)
            return self._reverse_fn(z, mel, key)

    def accelerate(self, compile: bool = False, cuda_graphs: bool = False) -> FastWaveGlow:
        """compile: run the synthesis through ``torch.compile`` (shapes and lengths specialised: recompiles
        per new shape); cuda_graphs: record one CUDA graph per (z, mel) shape and replay it (CUDA only; each
        shape keeps its own memory pool, so bucket lengths). Returns self."""
        self._reverse_fn = torch.compile(self._reverse, dynamic=False) if compile else self._reverse
        if cuda_graphs and self.cond_b.device.type != "cuda":
            raise ValueError(f"cuda_graphs needs the model on a CUDA device, not {self.cond_b.device}")
        self._graphs = _GraphedReverse(self._reverse_fn) if cuda_graphs else None
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


class _GraphedReverse:
    """Replays one CUDA graph per input shape; inputs are copied into the graph's static tensors and the
    output is cloned out of it (the next replay overwrites it)."""

    def __init__(self, reverse_fn):
        self.reverse_fn = reverse_fn
        self.graphs: dict[tuple, tuple] = {}

    def __call__(
        self, z: torch.Tensor, mel: torch.Tensor, lengths: tuple[int, ...] | None = None
    ) -> torch.Tensor:
        key = (tuple(z.shape), tuple(mel.shape), z.dtype, mel.dtype, z.device, lengths)
        if key not in self.graphs:
            static_z, static_mel = z.clone(), mel.clone()
            side = torch.cuda.Stream(device=z.device)
            side.wait_stream(torch.cuda.current_stream(z.device))
            with torch.cuda.stream(side):  # warm-up (and compilation) off the capture
                for _ in range(2):
                    self.reverse_fn(static_z, static_mel, lengths)
            torch.cuda.current_stream(z.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.reverse_fn(static_z, static_mel, lengths)
            self.graphs[key] = (graph, static_z, static_mel, static_out)
        graph, static_z, static_mel, static_out = self.graphs[key]
        static_z.copy_(z)
        static_mel.copy_(mel)
        graph.replay()
        return static_out.clone()


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
