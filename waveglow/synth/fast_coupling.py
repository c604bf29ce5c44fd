"""One flow's coupling network (WN with its ``start`` and ``end``) in the matrix form ``FastWaveGlow`` runs.

The layout and the folds are those listed in ``waveglow.synth.fast``: time-major activations, each dilated conv as
``kernel_size`` products on shifted rows of one padded buffer, ``start`` folded into the first dilated conv
and ``end`` into every skip output. The folds are computed in float64, then cast to the compute dtype.

Shapes: B batch, L time steps, C = n_channels, O = 2*C*n_layers, n_in = channels entering the WN.
"""

from __future__ import annotations

import torch
from torch import nn


class FastCoupling(nn.Module):
    """One flow's coupling network in matrix form (weights (in, out), ready for ``x @ W``)."""

    def __init__(self, wn: nn.Module, inverse: torch.Tensor, dtype: torch.dtype):
        """wn: one flow's WN (read through ``.weight``, so weight norm may still be on); inverse (c, c):
        the inverse of its 1x1 convolution's weight; dtype: the compute dtype of the products."""
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
        res_w, skip_b = [], torch.zeros(C, dtype=f64, device=end_w.device)
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
