"""Import of the published NVIDIA WaveGlow checkpoints, without running any pickled code.

Accepted files (found by content, not by name):

- the original repository's train.py output ``{'model': <glow.WaveGlow>, 'iteration', 'optimizer',
  'learning_rate'}`` (release files hold at least ``'model'``), zip or legacy (pre-1.6) torch.save format,
  including the oldest files that pickle ``glow_old.*`` classes;
- plain state dicts, with or without a ``module.`` prefix, and ``{'model': state_dict}``;
- the Deep Learning Examples / torch.hub release ``{'state_dict': ..., 'config': ...}`` (fp16 tensors are
  converted to float32).

Both coupling-network layouts are read (``waveglow.checkpoints.nvidia_layout`` fuses the older per-layer one into ours and
infers the model configuration from the tensor shapes). Files with weight norm give a model with weight
norm; files without it give a model without it. The audio settings are not in the files: they default to
the published ones and can be overridden with ``AudioConfig`` field names.

Safety: the pickle is read by ``restricted_pickle.read_restricted``, which resolves only the globals such
files need and maps NVIDIA's classes (and torch's module classes) to inert stand-ins that only store their
pickled state; any other global is refused before anything is called. Nothing from ``glow`` is ever
imported.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from waveglow.checkpoints.errors import CheckpointError
from waveglow.checkpoints.format import save_model
from waveglow.checkpoints.nvidia_layout import (
    config_hints,
    group_convs,
    infer_audio_config,
    infer_model_config,
    to_our_layout,
    to_state_dict,
    weight_shape,
)
from waveglow.checkpoints.restricted_pickle import (
    Inert,
    file_format,
    pickle_opcodes,
    read_restricted,
)
from waveglow.config import AudioConfig, Config, ModelConfig
from waveglow.model.flow import WaveGlow

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- detection
_KEY_PATTERNS = (
    r"(module\.)?upsample\.weight",
    r"(module\.)?convinv\.\d+\.conv\.weight",
    r"(module\.)?WN\.\d+\..+",
)


@dataclass(frozen=True)
class Sniffed:
    """What a checkpoint file is, read once from its pickle's opcodes (nothing executed).

    ``file_format``: "zip" or "legacy" (``restricted_pickle.file_format``), None when that could not be
    read; ``kind``: "ours" (has ``format_version``), "nvidia" (a published NVIDIA WaveGlow file: pickled
    glow module or its state dict) or "unknown" (anything else, unreadable files included).
    """

    file_format: str | None
    kind: str


def sniff(path: str | Path) -> Sniffed:
    """Classify ``path`` once (see ``Sniffed``); never raises for an unreadable file (kind "unknown")."""
    path = Path(path)
    try:
        known = file_format(path)
        ops = pickle_opcodes(path, known)
    except Exception:  # noqa: BLE001 - anything unreadable is simply of no kind we know
        return Sniffed(None, "unknown")
    strings = {arg for name, arg in ops if isinstance(arg, str) and ("UNICODE" in name or "STRING" in name)}
    if "format_version" in strings:
        return Sniffed(known, "ours")
    modules = {str(arg).split(" ", 1)[0] for name, arg in ops if name == "GLOBAL"}
    if (modules | strings) & {"glow", "glow_old"}:  # GLOBAL (protocol 2) or STACK_GLOBAL (protocol 4+)
        return Sniffed(known, "nvidia")
    if all(any(re.fullmatch(p, s) for s in strings if isinstance(s, str)) for p in _KEY_PATTERNS):
        return Sniffed(known, "nvidia")
    return Sniffed(known, "unknown")


def is_nvidia_checkpoint(path: str | Path) -> bool:
    """True when ``path`` looks like a published NVIDIA WaveGlow file (``sniff(path).kind == "nvidia"``):
    our own checkpoints (with ``format_version``) and unreadable files give False."""
    return sniff(path).kind == "nvidia"


# ---------------------------------------------------------------------------------------------- weights
def _state_of(obj: Inert) -> dict[str, Any]:
    state = obj.__dict__.get("state", {})
    if isinstance(state, tuple):  # (dict, slots) form
        state = state[0] or {}
    return state if isinstance(state, dict) else {}


def _module_tensors(obj: Inert, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict of a pickled module tree: its ``_parameters`` and ``_buffers``, recursively."""
    state = _state_of(obj)
    out: dict[str, torch.Tensor] = {}
    for section in ("_parameters", "_buffers"):
        for name, tensor in (state.get(section) or {}).items():
            if isinstance(tensor, torch.Tensor):
                out[prefix + name] = tensor.detach()
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, Inert):
            out.update(_module_tensors(child, f"{prefix}{name}."))
    return out


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _weights_among(obj: Any) -> dict[str, torch.Tensor]:
    """The tensors of a dict that also holds other values, when they include WaveGlow weights; else {}."""
    if not isinstance(obj, dict):
        return {}
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    keys = [key.removeprefix("module.") for key in tensors]
    if all(any(re.fullmatch(p, key) for key in keys) for p in _KEY_PATTERNS):
        return tensors
    return {}


def _extract(raw: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(flat state dict, info) from whatever the file holds."""
    info: dict[str, Any] = {}
    if isinstance(raw, dict) and "format_version" in raw:
        raise CheckpointError(
            f"{path}: this is one of our checkpoints, not NVIDIA's; load it with load_model"
        )
    inner = raw
    if isinstance(raw, dict) and not _is_state_dict(raw):
        for key in ("model", "state_dict"):
            if key in raw:
                inner = raw[key]
                info["container"] = f"dict with {key!r}"
                break
        for key in ("iteration", "epoch", "learning_rate"):
            if isinstance(raw.get(key), (int, float)):
                info[key] = raw[key]
        if isinstance(raw.get("config"), dict):
            info["config"] = raw["config"]
    if isinstance(inner, Inert):
        info["pickled_class"] = inner.pickled_name
        return _module_tensors(inner), info
    if _is_state_dict(inner):
        info.setdefault("container", "state dict")
        return dict(inner), info
    tensors = _weights_among(inner)
    if tensors:  # a state dict with a few non-tensor entries (a version number, notes): those are ignored
        ignored = sorted(str(key) for key in inner if key not in tensors)
        logger.warning("%s: ignoring non-tensor entries %s beside the weights", path, ignored[:10])
        info.setdefault("container", "state dict")
        info["ignored"] = ignored
        return tensors, info
    found = sorted(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
    raise CheckpointError(
        f"{path}: no WaveGlow weights found (expected a glow.WaveGlow module or a state dict; found {found})"
    )


# ---------------------------------------------------------------------------------------------- import
@dataclass
class NvidiaImport:
    """What ``read_nvidia_checkpoint`` found: configs, our state dict, and facts for ``inspect``."""

    model_cfg: ModelConfig
    audio_cfg: AudioConfig
    state: dict[str, torch.Tensor]
    weight_norm: bool
    info: dict[str, Any] = field(default_factory=dict)


def read_nvidia_checkpoint(
    path: str | Path, known_format: str | None = None, **audio_overrides: Any
) -> NvidiaImport:
    """Read a published NVIDIA file safely into our layout (float32 CPU tensors); builds no model.

    ``known_format``: the file's format when ``sniff`` has read it already (not read again)."""
    path = Path(path)
    known_format = known_format or file_format(path)
    raw = read_restricted(path, known_format)
    state, info = _extract(raw, path)
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    info["file_format"] = known_format
    info["dtypes"] = sorted({str(t.dtype).replace("torch.", "") for t in state.values()})
    integers = [key for key, t in state.items() if not t.is_floating_point()]
    if integers:
        raise CheckpointError(
            f"{path}: non-floating-point tensors among the weights ({', '.join(integers[:5])}; dtypes "
            f"{', '.join(info['dtypes'])}): not a WaveGlow state dict as published"
        )
    state = {key: value.float() for key, value in state.items()}
    try:
        convs, info["layout"] = to_our_layout(group_convs(state, path), path)
        model_cfg = infer_model_config(convs, config_hints(info.get("config")), path)
        ours, weight_norm = to_state_dict(convs)
    except (KeyError, RuntimeError) as exc:  # a conv without its weight or bias, rows that do not stack
        raise CheckpointError(f"{path}: incomplete or inconsistent WaveGlow weights ({exc})") from exc
    kernel = weight_shape(convs["upsample"])[-1]
    audio_cfg = infer_audio_config(model_cfg.n_mel_channels, kernel, dict(audio_overrides), path)
    return NvidiaImport(model_cfg, audio_cfg, ours, weight_norm, info)


def load_nvidia_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    known_format: str | None = None,
    **audio_overrides: Any,
) -> WaveGlow:
    """A published NVIDIA WaveGlow file -> our WaveGlow in float32 on ``map_location``, in eval mode.

    The model keeps weight norm when the file has it (weight_g -> original0, weight_v -> original1) and has
    none when the file had it removed. ``audio_overrides`` are AudioConfig fields (sampling_rate,
    hop_length, filter_length, mel_fmin, mel_fmax) for settings the file does not store.
    Raises UnsafeCheckpointError for pickles that reference anything else, CheckpointError otherwise.
    """
    imported = read_nvidia_checkpoint(path, known_format, **audio_overrides)
    with torch.random.fork_rng(devices=[]):  # building the model draws random init; leave the caller's RNG
        model = WaveGlow(imported.model_cfg, imported.audio_cfg)
    if not imported.weight_norm:
        model.remove_weight_norm()
    try:
        model.load_state_dict(imported.state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())  # torch's message spans lines
        raise CheckpointError(f"{path}: weights do not fit the inferred WaveGlow ({detail})") from exc
    logger.info(
        "%s: imported NVIDIA WaveGlow (%s, %s layout, weight norm %s)",
        path,
        imported.info.get("container", "?"),
        imported.info["layout"],
        imported.weight_norm,
    )
    return model.to(map_location).eval()


def convert(
    src: str | Path, dst: str | Path, remove_weight_norm: bool = False, **audio_overrides: Any
) -> Config:
    """Write a published NVIDIA file as one of our checkpoints (atomically); returns its Config."""
    model = load_nvidia_checkpoint(src, **audio_overrides)
    if remove_weight_norm:
        model.remove_weight_norm()
    config = Config(model=model.model_cfg, audio=model.audio_cfg)
    save_model(model, config, dst)
    return config
