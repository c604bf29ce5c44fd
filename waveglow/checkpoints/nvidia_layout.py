"""NVIDIA's WaveGlow tensors in our layout, and the configuration read from their shapes.

Both coupling-network layouts are read: the fused one (``cond_layer``, ``res_skip_layers``) and the older
per-layer one (``cond_layers.i``, ``res_layers.i`` + ``skip_layers.i``), which is fused by concatenating
output rows. Weight norm (dim 0) normalises every output row on its own, so concatenating the rows of
``weight_g`` and ``weight_v`` gives exactly the fused layer.

The model configuration is inferred from tensor shapes. The audio settings are not in the files: they
default to the published ones (22050 Hz, hop 256, window 1024 = the upsampler's kernel) and can be
overridden with ``AudioConfig`` field names.
"""

from __future__ import annotations

import logging
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from waveglow.checkpoints.errors import CheckpointError
from waveglow.config import AudioConfig, ConfigError, ModelConfig
from waveglow.model.layers import WEIGHT_NORMED

logger = logging.getLogger(__name__)

PUBLISHED_AUDIO = AudioConfig()  # 22050 Hz, filter 1024, hop 256, win 1024, 80 mels, 0..8000 Hz
PUBLISHED_KERNEL = 1024  # the original code hard-codes ConvTranspose1d(n_mel, n_mel, 1024, stride=256)


# ---------------------------------------------------------------------------------------------- weights
_SUFFIXES = {
    "weight_g": "weight_g",
    "weight_v": "weight_v",
    "parametrizations.weight.original0": "weight_g",
    "parametrizations.weight.original1": "weight_v",
    "weight": "weight",
    "bias": "bias",
}
_SUFFIX_RE = re.compile(r"^(.*)\.(" + "|".join(re.escape(s) for s in _SUFFIXES) + r")$")

Conv = dict[str, torch.Tensor]  # {"weight_g", "weight_v", "bias"} or {"weight", "bias"}


def group_convs(state: dict[str, torch.Tensor], path: Path) -> dict[str, Conv]:
    """The tensors grouped by conv name, with the weight-norm suffixes of both APIs as weight_g/weight_v."""
    convs: dict[str, Conv] = {}
    for key, tensor in state.items():
        match = _SUFFIX_RE.match(key)
        if not match:
            raise CheckpointError(f"{path}: unexpected tensor {key!r} for a WaveGlow checkpoint")
        convs.setdefault(match.group(1), {})[_SUFFIXES[match.group(2)]] = tensor
    for name, conv in convs.items():
        if "weight" not in conv and not {"weight_g", "weight_v"} <= set(conv):
            raise CheckpointError(f"{path}: {name} has no complete weight (only {', '.join(sorted(conv))})")
    return convs


def _plain_weight(conv: Conv) -> torch.Tensor:
    if "weight" in conv:
        return conv["weight"]
    return torch._weight_norm(conv["weight_v"], conv["weight_g"], 0)  # the formula both implementations use


def _fuse_rows(parts: list[Conv]) -> Conv:
    """Concatenate the output rows of several convs with the same input (exact under weight norm dim 0)."""
    fused: Conv = {"bias": torch.cat([p["bias"] for p in parts])}
    if all("weight_g" in p for p in parts):
        fused["weight_g"] = torch.cat([p["weight_g"] for p in parts])
        fused["weight_v"] = torch.cat([p["weight_v"] for p in parts])
    else:
        fused["weight"] = torch.cat([_plain_weight(p) for p in parts])
    return fused


def _indexed(convs: dict[str, Conv], prefix: str) -> list[Conv]:
    """convs named ``{prefix}0``, ``{prefix}1``, ... in order."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)$")
    found = {int(m.group(1)): conv for name, conv in convs.items() if (m := pattern.match(name))}
    return [found[i] for i in sorted(found)]


def to_our_layout(convs: dict[str, Conv], path: Path) -> tuple[dict[str, Conv], str]:
    """Rename and fuse into our conv names; returns (convs, layout name)."""
    ours: dict[str, Conv] = {}
    layout = "fused"
    for name, conv in convs.items():
        if not re.match(r"WN\.\d+\.(cond_layers|res_layers|skip_layers)\.\d+$", name):
            ours[name] = conv
    for k in sorted({int(m.group(1)) for n in convs if (m := re.match(r"WN\.(\d+)\.", n))}):
        cond_layers = _indexed(convs, f"WN.{k}.cond_layers.")
        if cond_layers:
            layout = "per-layer conditioning"
            if f"WN.{k}.cond_layer" in convs:
                raise CheckpointError(f"{path}: WN.{k} has both cond_layer and cond_layers")
            ours[f"WN.{k}.cond_layer"] = _fuse_rows(cond_layers)
        res_layers = _indexed(convs, f"WN.{k}.res_layers.")
        skip_layers = _indexed(convs, f"WN.{k}.skip_layers.")
        if res_layers and not skip_layers:
            raise CheckpointError(f"{path}: WN.{k} has res_layers but no skip_layers")
        if skip_layers:
            layout = "per-layer conditioning, separate residual/skip convs"
            if len(res_layers) != len(skip_layers) - 1:
                raise CheckpointError(
                    f"{path}: WN.{k} has {len(res_layers)} res_layers for {len(skip_layers)} skip_layers "
                    "(expected one fewer)"
                )
            for i, skip in enumerate(skip_layers):
                parts = [res_layers[i], skip] if i < len(res_layers) else [skip]
                ours[f"WN.{k}.res_skip_layers.{i}"] = _fuse_rows(parts)
    return ours, layout


def weight_shape(conv: Conv) -> tuple[int, ...]:
    """The shape of the conv's weight, (out, in, kernel), whether weight-normed or not."""
    return tuple((conv["weight"] if "weight" in conv else conv["weight_v"]).shape)


def _weight_normed(name: str) -> bool:
    """Whether our conv ``name`` (``WN.<k>.<attribute>...``) carries weight norm (``WEIGHT_NORMED``)."""
    parts = name.split(".")
    return len(parts) > 2 and parts[0] == "WN" and parts[2] in WEIGHT_NORMED


def to_state_dict(convs: dict[str, Conv]) -> tuple[dict[str, torch.Tensor], bool]:
    """Our state-dict keys; weight norm is kept only when every weight-normed conv of ours has it."""
    normed = [n for n in convs if _weight_normed(n)]
    weight_norm = bool(normed) and all("weight_g" in convs[n] for n in normed)
    state: dict[str, torch.Tensor] = {}
    for name, conv in convs.items():
        if "bias" in conv:
            state[f"{name}.bias"] = conv["bias"]
        if name in normed and weight_norm:
            state[f"{name}.parametrizations.weight.original0"] = conv["weight_g"]
            state[f"{name}.parametrizations.weight.original1"] = conv["weight_v"]
        else:
            state[f"{name}.weight"] = _plain_weight(conv)
    return state, weight_norm


# ---------------------------------------------------------------------------------------------- config
def _require(convs: dict[str, Conv], name: str, path: Path) -> Conv:
    if name not in convs:
        raise CheckpointError(f"{path}: missing {name!r}; not a WaveGlow checkpoint")
    return convs[name]


def infer_model_config(convs: dict[str, Conv], hints: dict[str, Any], path: Path) -> ModelConfig:
    """n_flows, n_group, early outputs, n_layers, n_channels, kernel size and mel bins from shapes."""
    n_mel = weight_shape(_require(convs, "upsample", path))[0]
    n_flows = len({m.group(1) for n in convs if (m := re.match(r"WN\.(\d+)\.", n))})
    n_convinv = len(
        _indexed({n[: -len(".conv")]: c for n, c in convs.items() if n.endswith(".conv")}, "convinv.")
    )
    if n_flows == 0 or n_convinv != n_flows:
        raise CheckpointError(f"{path}: {n_flows} WN blocks but {n_convinv} convinv layers")
    channels = [weight_shape(_require(convs, f"convinv.{k}.conv", path))[0] for k in range(n_flows)]
    first = _require(convs, "WN.0.start", path)
    n_layers = len(_indexed(convs, "WN.0.in_layers."))
    values = {
        "n_mel_channels": n_mel,
        "n_flows": n_flows,
        "n_group": channels[0],
        "n_layers": n_layers,
        "n_channels": weight_shape(first)[0],
        "kernel_size": weight_shape(_require(convs, "WN.0.in_layers.0", path))[-1],
    }
    drops = [(k, channels[k - 1] - channels[k]) for k in range(1, n_flows) if channels[k] != channels[k - 1]]
    candidates = []
    if hints.get("n_early_every") and hints.get("n_early_size"):
        candidates.append((hints["n_early_every"], hints["n_early_size"]))
    if drops:
        candidates.append(drops[0])
    candidates.append((n_flows, 2))  # no early output at all
    for every, size in candidates:
        cfg = ModelConfig(**values, n_early_every=int(every), n_early_size=int(size))
        try:
            cfg.validate()
        except ConfigError:
            continue
        if cfg.flow_channels() == channels:
            stated = {k: hints[k] for k in values if k in hints and hints[k] != values[k]}
            if stated:
                logger.warning(
                    "%s: the file's config says %s; the weights' shapes say otherwise", path, stated
                )
            return cfg
    raise CheckpointError(f"{path}: the 1x1 convs' channel counts {channels} fit no WaveGlow configuration")


def config_hints(config: dict[str, Any] | None) -> dict[str, Any]:
    """Model settings from a Deep Learning Examples ``config`` dict (flat or with ``WN_config``)."""
    if not isinstance(config, dict):
        return {}
    flat = {**config, **(config.get("WN_config") or {})}
    return {k: v for k, v in flat.items() if isinstance(v, int) and not isinstance(v, bool)}


def infer_audio_config(n_mel: int, kernel: int, overrides: dict[str, Any], path: Path) -> AudioConfig:
    """The published audio settings fitted to the upsampler (``kernel`` samples), with ``overrides``."""
    known = {f.name for f in fields(AudioConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise CheckpointError(
            f"{path}: unknown audio setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    overrides = {k: v for k, v in overrides.items() if v is not None or k == "mel_fmax"}
    if overrides.get("n_mel_channels", n_mel) != n_mel:
        raise CheckpointError(
            f"{path}: the model has {n_mel} mel bins, not n_mel_channels={overrides['n_mel_channels']}"
        )
    if overrides.get("win_length", kernel) != kernel:
        raise CheckpointError(
            f"{path}: win_length={overrides['win_length']} does not fit the upsampler, whose kernel is "
            f"{kernel} samples (our model ties the kernel to win_length)"
        )
    hop = PUBLISHED_AUDIO.hop_length if kernel == PUBLISHED_KERNEL else kernel // 4
    if "hop_length" not in overrides and kernel != PUBLISHED_KERNEL:
        logger.warning(
            "%s: upsampler kernel %d is not the published 1024; assuming hop_length %d (pass "
            "hop_length to override)",
            path,
            kernel,
            hop,
        )
    values = {
        **{f.name: getattr(PUBLISHED_AUDIO, f.name) for f in fields(AudioConfig)},
        "filter_length": max(PUBLISHED_AUDIO.filter_length, kernel),
        "hop_length": hop,
        "win_length": kernel,
        "n_mel_channels": n_mel,
        **overrides,
    }
    audio = AudioConfig(**values)
    try:
        audio.validate()
    except ConfigError as exc:
        raise CheckpointError(f"{path}: audio settings {exc}") from exc
    return audio
