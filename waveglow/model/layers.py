"""Building blocks of the flow: the invertible 1x1 convolution and the WN coupling network.

Submodule and parameter names follow the published NVIDIA model (``conv``, ``start``, ``in_layers``,
``res_skip_layers``, ``cond_layer``, ``end``), so its weights map onto ours by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize

# The attributes of ``WN`` whose convolutions carry weight norm, as named in state dicts (``WN.<k>.<name>...``).
WEIGHT_NORMED = ("start", "cond_layer", "in_layers", "res_skip_layers")


def _weight_norm(conv: nn.Conv1d) -> nn.Conv1d:
    return parametrizations.weight_norm(conv, name="weight", dim=0)


def _remove_weight_norm(conv: nn.Module) -> None:
    if parametrize.is_parametrized(conv, "weight"):
        parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)


class Invertible1x1Conv(nn.Module):
    """A learned rotation of the channels: z = W x with W (C, C), det W > 0 at initialisation.

    The weight is stored as ``conv.weight`` (C, C, 1), as in the published model. The inverse is computed
    on every call from the current weight (in float32), so it can never go stale after an update.
    """

    def __init__(self, channels: int, permutation: torch.Tensor | None = None):
        """Starts as a random rotation (WaveGlow's), or with ``permutation`` (channels,) as that permutation of
        the channels (output i = input permutation[i]), one sign flipped where needed for det +1."""
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size=1, bias=False)
        with torch.no_grad():
            if permutation is None:
                weight = torch.linalg.qr(torch.randn(channels, channels))[0]
            else:
                if sorted(permutation.tolist()) != list(range(channels)):
                    raise ValueError(f"not a permutation of {channels} channels: {permutation.tolist()}")
                weight = torch.eye(channels)[permutation]
            if torch.det(weight) < 0:
                weight[:, 0] = -weight[:, 0]
            self.conv.weight.copy_(weight.unsqueeze(-1))

    def _matrix(self) -> torch.Tensor:
        weight = self.conv.weight.squeeze(-1)  # (C, C)
        return weight.to(torch.promote_types(weight.dtype, torch.float32))

    def log_det(self) -> torch.Tensor:
        """log|det W| in float32 or wider (a scalar); the flow adds it once per time step."""
        return torch.linalg.slogdet(self._matrix())[1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, L) -> (W x (B, C, L), log|det W| scalar). Runs outside autocast, in x's dtype."""
        with torch.autocast(x.device.type, enabled=False):
            return F.conv1d(x, self.conv.weight.to(x.dtype)), self.log_det()

    def inverse_weight(self) -> torch.Tensor:
        """W^-1 as a (C, C, 1) tensor, inverted in float32 or wider."""
        return torch.linalg.inv(self._matrix()).unsqueeze(-1)

    def reverse(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, C, L) -> W^-1 z (B, C, L)."""
        with torch.autocast(z.device.type, enabled=False):
            return F.conv1d(z, self.inverse_weight().to(z.dtype))


def gated_activation(x: torch.Tensor, cond: torch.Tensor, n_channels: int) -> torch.Tensor:
    """tanh(a) * sigmoid(b) where [a; b] = x + cond, both (B, 2*n_channels, L) -> (B, n_channels, L)."""
    acts = x + cond
    return torch.tanh(acts[:, :n_channels]) * torch.sigmoid(acts[:, n_channels:])


class WN(nn.Module):
    """WaveNet-like coupling network: (x_a (B, n_in, L), cond (B, n_cond, L)) -> (B, 2*n_in, L).

    Non-causal dilated convolutions (dilation 2^i) with gated units, one 1x1 conditioning conv shared by all
    layers, residual and skip connections, and a zero-initialised ``end`` conv so that the coupling starts
    as the identity. The output's first n_in channels are the shift b, the last n_in are log_s.
    """

    def __init__(
        self, n_in_channels: int, n_cond_channels: int, n_layers: int, n_channels: int, kernel_size: int
    ):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.n_layers = n_layers
        self.n_channels = n_channels
        self.start = _weight_norm(nn.Conv1d(n_in_channels, n_channels, 1))
        self.end = nn.Conv1d(n_channels, 2 * n_in_channels, 1)
        nn.init.zeros_(self.end.weight)
        nn.init.zeros_(self.end.bias)
        self.cond_layer = _weight_norm(nn.Conv1d(n_cond_channels, 2 * n_channels * n_layers, 1))
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = 2**i
            padding = (kernel_size * dilation - dilation) // 2
            self.in_layers.append(
                _weight_norm(
                    nn.Conv1d(n_channels, 2 * n_channels, kernel_size, dilation=dilation, padding=padding)
                )
            )
            res_skip_channels = 2 * n_channels if i < n_layers - 1 else n_channels
            self.res_skip_layers.append(_weight_norm(nn.Conv1d(n_channels, res_skip_channels, 1)))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, n_in, L), cond (B, n_cond, L) -> (B, 2*n_in, L)."""
        hidden = self.start(x)  # (B, n_channels, L)
        cond = self.cond_layer(cond)  # (B, 2*n_channels*n_layers, L)
        return self.end(self.skip_sum(hidden, cond))

    def skip_sum(self, hidden: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The WaveNet stack on ``start``'s output (B, n_channels, L) and the projected conditioning
        (B, 2*n_channels*n_layers, L); returns the sum of skip outputs (B, n_channels, L)."""
        n_channels = self.n_channels
        output = None
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            cond_i = cond[:, 2 * n_channels * i : 2 * n_channels * (i + 1)]
            acts = gated_activation(in_layer(hidden), cond_i, n_channels)
            res_skip = res_skip_layer(acts)
            if i < self.n_layers - 1:
                hidden = hidden + res_skip[:, :n_channels]
                skip = res_skip[:, n_channels:]
            else:
                skip = res_skip
            output = skip if output is None else output + skip
        return output

    def weight_normed_convs(self) -> list[nn.Conv1d]:
        """The convolutions that carry weight norm (those named in ``WEIGHT_NORMED``; ``end`` never does)."""
        return [self.start, self.cond_layer, *self.in_layers, *self.res_skip_layers]

    def apply_weight_norm(self) -> None:
        """Put weight norm on plain convolutions (outputs unchanged): the inverse of ``remove_weight_norm``."""
        for conv in self.weight_normed_convs():
            _weight_norm(conv)

    def remove_weight_norm(self) -> None:
        """Fold weight norm into plain weights (outputs unchanged)."""
        for conv in self.weight_normed_convs():
            _remove_weight_norm(conv)
