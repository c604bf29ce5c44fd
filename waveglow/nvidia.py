"""Import of the published NVIDIA WaveGlow checkpoints, without running any pickled code.

Accepted files (found by content, not by name):

- the original repository's train.py output ``{'model': <glow.WaveGlow>, 'iteration', 'optimizer',
  'learning_rate'}`` (release files hold at least ``'model'``), zip or legacy (pre-1.6) torch.save format,
  including the oldest files that pickle ``glow_old.*`` classes;
- plain state dicts, with or without a ``module.`` prefix, and ``{'model': state_dict}``;
- the Deep Learning Examples / torch.hub release ``{'state_dict': ..., 'config': ...}`` (fp16 tensors are
  converted to float32).

Both coupling-network layouts are read: the fused one (``cond_layer``, ``res_skip_layers``) and the older
per-layer one (``cond_layers.i``, ``res_layers.i`` + ``skip_layers.i``), which is fused by concatenating
output rows. Weight norm (dim 0) normalises every output row on its own, so concatenating the rows of
``weight_g`` and ``weight_v`` gives exactly the fused layer. Files with weight norm give a model with weight
norm; files without it give a model without it.

Safety: the pickle is read by ``_RestrictedUnpickler``, which resolves only the globals such files need
and maps NVIDIA's classes (and torch's module classes) to inert stand-ins that only store their pickled
state; any other global is refused before anything is called. Nothing from ``glow`` is ever imported.

The model configuration is inferred from tensor shapes. The audio settings are not in the files: they
default to the published ones (22050 Hz, hop 256, window 1024 = the upsampler's kernel) and can be
overridden with ``AudioConfig`` field names.
"""

from __future__ import annotations

import argparse
import io
import logging
import pickle
import pickletools
import re
import sys
import types
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, save_model
from .config import AudioConfig, Config, ConfigError, ModelConfig
from .model import WaveGlow

logger = logging.getLogger(__name__)

PUBLISHED_AUDIO = AudioConfig()  # 22050 Hz, filter 1024, hop 256, win 1024, 80 mels, 0..8000 Hz
PUBLISHED_KERNEL = 1024  # the original code hard-codes ConvTranspose1d(n_mel, n_mel, 1024, stride=256)


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint's pickle references a global that a WaveGlow checkpoint does not need."""


# ---------------------------------------------------------------------------------------------- unpickling
class _ReadOnlyType(type):
    """Metaclass of the stand-ins: a pickle's BUILD opcode cannot set attributes on the classes (such as
    ``dump_patches``, which would make torch's legacy loader write a patch file)."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise AttributeError(f"{cls.__name__} is read-only")

    def __delattr__(cls, name: str) -> None:
        raise AttributeError(f"{cls.__name__} is read-only")


class _Inert(metaclass=_ReadOnlyType):
    """Stand-in for a class we refuse to import: holds the pickled state, has no behaviour.

    ``pickled_name`` is the global it stands for. ``dump_patches`` stays False so the legacy loader never
    writes source patches for it.
    """

    pickled_name = ""
    dump_patches = False

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "state", state)

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"


def _stand_in(qualified_name: str) -> type:
    return _ReadOnlyType(qualified_name.rsplit(".", 1)[1], (_Inert,), {"pickled_name": qualified_name})


def _sealed(function: Any) -> Any:
    """``function`` behind an object without ``__dict__`` or settable slots: a pickle can call it but cannot
    alter it (BUILD on a plain function would set attributes on torch's own functions)."""

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    name = getattr(function, "__name__", "function")
    return _ReadOnlyType(f"sealed_{name}", (), {"__slots__": (), "__call__": call})()


def _no_backend() -> None:
    """Stand-in for torch.nn.backends.thnn._get_thnn_function_backend (pickled by very old torch)."""
    return None


_NVIDIA_CLASSES = [
    f"{module}.{name}" for module in ("glow", "glow_old") for name in ("WaveGlow", "WN", "Invertible1x1Conv")
]
_TORCH_CLASSES = [
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.conv.Conv1d",
    "torch.nn.modules.conv.ConvTranspose1d",
    "torch.nn.utils.weight_norm.WeightNorm",
]
_STAND_INS: dict[str, type] = {name: _stand_in(name) for name in _NVIDIA_CLASSES + _TORCH_CLASSES}

# Everything a WaveGlow checkpoint's pickle may reference. Storage classes (torch.FloatStorage, ...) are
# resolved by torch.load itself into inert dtype tags before this table is consulted. Built-in types cannot
# be altered by a pickle; functions are sealed.
_ALLOWED_GLOBALS: dict[str, Any] = {
    **_STAND_INS,
    "collections.OrderedDict": OrderedDict,
    "builtins.set": set,
    "__builtin__.set": set,
    "torch._utils._rebuild_tensor": _sealed(torch._utils._rebuild_tensor),
    "torch._utils._rebuild_tensor_v2": _sealed(torch._utils._rebuild_tensor_v2),
    "torch._utils._rebuild_parameter": _sealed(torch._utils._rebuild_parameter),
    "torch.nn.backends.thnn._get_thnn_function_backend": _sealed(_no_backend),
}


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only ``_ALLOWED_GLOBALS``; anything else raises before it is called."""

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        try:
            return _ALLOWED_GLOBALS[qualified]
        except KeyError:
            raise _RefusedGlobal(qualified) from None


def _restricted_pickle_module() -> types.SimpleNamespace:
    """The module-like object torch.load takes as ``pickle_module`` (it subclasses ``Unpickler``)."""

    def load(file: Any, **kwargs: Any) -> Any:
        return _RestrictedUnpickler(file, **kwargs).load()

    return types.SimpleNamespace(
        __name__="waveglow.nvidia.restricted_pickle", Unpickler=_RestrictedUnpickler, load=load
    )


def _file_format(path: Path) -> str:
    """'zip' (torch >= 1.6) or 'legacy' (the older torch.save stream, which starts with a pickle)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("constants.pkl") for name in archive.namelist()):
                # torch.load would hand these to torch.jit.load, outside the restricted unpickler.
                raise CheckpointError(f"{path}: a TorchScript archive, not a checkpoint; refused")
        return "zip"
    with open(path, "rb") as handle:
        head = handle.read(2)
    if head[:1] == b"\x80":
        return "legacy"
    raise CheckpointError(
        f"{path}: not a torch.save file we read (neither a zip archive nor a legacy pickle stream; the pre-0.4 tar format is not supported)"
    )


def read_restricted(path: str | Path) -> Any:
    """Unpickle a torch.save file onto the CPU with the restricted unpickler; runs no pickled code.

    NVIDIA's classes come back as inert stand-ins holding their state. Raises UnsafeCheckpointError (naming
    the global) for any pickle that needs something else, CheckpointError for unreadable files.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    _file_format(path)
    try:
        with warnings.catch_warnings():
            # The legacy format compares each module class's source with the saved one; ours never match.
            warnings.simplefilter("ignore", torch.serialization.SourceChangeWarning)
            warnings.filterwarnings("ignore", message="Couldn't retrieve source code for container")
            return torch.load(
                path, map_location="cpu", pickle_module=_restricted_pickle_module(), weights_only=False
            )
    except _RefusedGlobal as exc:
        raise UnsafeCheckpointError(
            f"{path}: refused: its pickle references {exc.name!r}, which a WaveGlow checkpoint does not "
            "need and which could run code; nothing was executed"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any reader error becomes one message naming the file
        raise CheckpointError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from exc


# ---------------------------------------------------------------------------------------------- detection
def _pickle_opcodes(path: Path) -> list[tuple[str, Any]]:
    """(opcode name, argument) of the checkpoint's main pickle, read without executing it."""
    if _file_format(path) == "zip":
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(names) != 1:
                return []
            stream: Any = io.BytesIO(archive.read(names[0]))
            return [(op.name, arg) for op, arg, _ in pickletools.genops(stream)]
    with open(path, "rb") as stream:
        for _ in range(3):  # magic number, protocol version, system info
            for _ in pickletools.genops(stream):
                pass
        return [(op.name, arg) for op, arg, _ in pickletools.genops(stream)]


_KEY_PATTERNS = (
    r"(module\.)?upsample\.weight",
    r"(module\.)?convinv\.\d+\.conv\.weight",
    r"(module\.)?WN\.\d+\..+",
)


def is_nvidia_checkpoint(path: str | Path) -> bool:
    """True when ``path`` looks like a published NVIDIA WaveGlow file (pickled glow module or state dict).

    Reads only the pickle's opcodes (nothing is executed); our own checkpoints (with ``format_version``)
    and unreadable files give False.
    """
    try:
        ops = _pickle_opcodes(Path(path))
    except Exception:  # noqa: BLE001 - anything unreadable is simply not an NVIDIA checkpoint
        return False
    strings = {arg for name, arg in ops if isinstance(arg, str) and ("UNICODE" in name or "STRING" in name)}
    if "format_version" in strings:
        return False
    modules = {str(arg).split(" ", 1)[0] for name, arg in ops if name == "GLOBAL"}
    if (modules | strings) & {"glow", "glow_old"}:  # GLOBAL (protocol 2) or STACK_GLOBAL (protocol 4+)
        return True
    return all(any(re.fullmatch(p, s) for s in strings if isinstance(s, str)) for p in _KEY_PATTERNS)


# ---------------------------------------------------------------------------------------------- weights
def _state_of(obj: _Inert) -> dict[str, Any]:
    state = obj.__dict__.get("state", {})
    if isinstance(state, tuple):  # (dict, slots) form
        state = state[0] or {}
    return state if isinstance(state, dict) else {}


def _module_tensors(obj: _Inert, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict of a pickled module tree: its ``_parameters`` and ``_buffers``, recursively."""
    state = _state_of(obj)
    out: dict[str, torch.Tensor] = {}
    for section in ("_parameters", "_buffers"):
        for name, tensor in (state.get(section) or {}).items():
            if isinstance(tensor, torch.Tensor):
                out[prefix + name] = tensor.detach()
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, _Inert):
            out.update(_module_tensors(child, f"{prefix}{name}."))
    return out


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


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
    if isinstance(inner, _Inert):
        info["pickled_class"] = inner.pickled_name
        return _module_tensors(inner), info
    if _is_state_dict(inner):
        info.setdefault("container", "state dict")
        return dict(inner), info
    found = sorted(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
    raise CheckpointError(
        f"{path}: no WaveGlow weights found (expected a glow.WaveGlow module or a state dict; found {found})"
    )


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


def _group_convs(state: dict[str, torch.Tensor], path: Path) -> dict[str, Conv]:
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


def _to_our_layout(convs: dict[str, Conv], path: Path) -> tuple[dict[str, Conv], str]:
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


def _weight_shape(conv: Conv) -> tuple[int, ...]:
    return tuple((conv["weight"] if "weight" in conv else conv["weight_v"]).shape)


def _to_state_dict(convs: dict[str, Conv]) -> tuple[dict[str, torch.Tensor], bool]:
    """Our state-dict keys; weight norm is kept only when every weight-normed conv of ours has it."""
    normed = [n for n in convs if n.startswith("WN.") and not n.endswith(".end")]
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


def _infer_model_config(convs: dict[str, Conv], hints: dict[str, Any], path: Path) -> ModelConfig:
    """n_flows, n_group, early outputs, n_layers, n_channels, kernel size and mel bins from shapes."""
    n_mel = _weight_shape(_require(convs, "upsample", path))[0]
    n_flows = len({m.group(1) for n in convs if (m := re.match(r"WN\.(\d+)\.", n))})
    n_convinv = len(
        _indexed({n[: -len(".conv")]: c for n, c in convs.items() if n.endswith(".conv")}, "convinv.")
    )
    if n_flows == 0 or n_convinv != n_flows:
        raise CheckpointError(f"{path}: {n_flows} WN blocks but {n_convinv} convinv layers")
    channels = [_weight_shape(_require(convs, f"convinv.{k}.conv", path))[0] for k in range(n_flows)]
    first = _require(convs, "WN.0.start", path)
    n_layers = len(_indexed(convs, "WN.0.in_layers."))
    values = {
        "n_mel_channels": n_mel,
        "n_flows": n_flows,
        "n_group": channels[0],
        "n_layers": n_layers,
        "n_channels": _weight_shape(first)[0],
        "kernel_size": _weight_shape(_require(convs, "WN.0.in_layers.0", path))[-1],
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
        if _flow_channels(cfg) == channels:
            stated = {k: hints[k] for k in values if k in hints and hints[k] != values[k]}
            if stated:
                logger.warning(
                    "%s: the file's config says %s; the weights' shapes say otherwise", path, stated
                )
            return cfg
    raise CheckpointError(f"{path}: the 1x1 convs' channel counts {channels} fit no WaveGlow configuration")


def _flow_channels(cfg: ModelConfig) -> list[int]:
    remaining, out = cfg.n_group, []
    for k in range(cfg.n_flows):
        if k > 0 and k % cfg.n_early_every == 0:
            remaining -= cfg.n_early_size
        out.append(remaining)
    return out


def _config_hints(config: dict[str, Any] | None) -> dict[str, Any]:
    """Model settings from a Deep Learning Examples ``config`` dict (flat or with ``WN_config``)."""
    if not isinstance(config, dict):
        return {}
    flat = {**config, **(config.get("WN_config") or {})}
    return {k: v for k, v in flat.items() if isinstance(v, int) and not isinstance(v, bool)}


def _infer_audio_config(n_mel: int, kernel: int, overrides: dict[str, Any], path: Path) -> AudioConfig:
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


# ---------------------------------------------------------------------------------------------- import
@dataclass
class NvidiaImport:
    """What ``read_nvidia_checkpoint`` found: configs, our state dict, and facts for ``inspect``."""

    model_cfg: ModelConfig
    audio_cfg: AudioConfig
    state: dict[str, torch.Tensor]
    weight_norm: bool
    info: dict[str, Any] = field(default_factory=dict)


def read_nvidia_checkpoint(path: str | Path, **audio_overrides: Any) -> NvidiaImport:
    """Read a published NVIDIA file safely into our layout (float32 CPU tensors); builds no model."""
    path = Path(path)
    raw = read_restricted(path)
    state, info = _extract(raw, path)
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    info["file_format"] = _file_format(path)
    info["dtypes"] = sorted({str(t.dtype).replace("torch.", "") for t in state.values()})
    if not all(t.is_floating_point() for t in state.values()):
        raise CheckpointError(f"{path}: non-floating-point weights ({', '.join(info['dtypes'])})")
    state = {key: value.float() for key, value in state.items()}
    try:
        convs, info["layout"] = _to_our_layout(_group_convs(state, path), path)
        model_cfg = _infer_model_config(convs, _config_hints(info.get("config")), path)
        ours, weight_norm = _to_state_dict(convs)
    except (KeyError, RuntimeError) as exc:  # a conv without its weight or bias, rows that do not stack
        raise CheckpointError(f"{path}: incomplete or inconsistent WaveGlow weights ({exc})") from exc
    kernel = _weight_shape(convs["upsample"])[-1]
    audio_cfg = _infer_audio_config(model_cfg.n_mel_channels, kernel, dict(audio_overrides), path)
    return NvidiaImport(model_cfg, audio_cfg, ours, weight_norm, info)


def load_nvidia_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", **audio_overrides: Any
) -> WaveGlow:
    """A published NVIDIA WaveGlow file -> our WaveGlow in float32 on ``map_location``, in eval mode.

    The model keeps weight norm when the file has it (weight_g -> original0, weight_v -> original1) and has
    none when the file had it removed. ``audio_overrides`` are AudioConfig fields (sampling_rate,
    hop_length, filter_length, mel_fmin, mel_fmax) for settings the file does not store.
    Raises UnsafeCheckpointError for pickles that reference anything else, CheckpointError otherwise.
    """
    imported = read_nvidia_checkpoint(path, **audio_overrides)
    with torch.random.fork_rng(devices=[]):  # building the model draws random init; leave the caller's RNG
        model = WaveGlow(imported.model_cfg, imported.audio_cfg)
    if not imported.weight_norm:
        model.remove_weight_norm()
    try:
        model.load_state_dict(imported.state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the inferred WaveGlow ({exc})") from exc
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


# ---------------------------------------------------------------------------------------------- CLI
def add_audio_override_args(parser: argparse.ArgumentParser, note: str = "") -> None:
    """The flags that set a published NVIDIA file's audio settings (``note`` is added to each help)."""
    parser.add_argument("--sampling-rate", type=int, help=f"Hz (default 22050){note}")
    parser.add_argument("--hop-length", type=int, help=f"upsampler stride in samples (default 256){note}")
    parser.add_argument("--filter-length", type=int, help=f"STFT size (default 1024){note}")
    parser.add_argument("--mel-fmin", type=float, help=f"Hz (default 0){note}")
    parser.add_argument("--mel-fmax", type=float, help=f"Hz (default 8000){note}")


def audio_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The AudioConfig fields given by ``add_audio_override_args`` flags."""
    names = ("sampling_rate", "hop_length", "filter_length", "mel_fmin", "mel_fmax")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m waveglow.nvidia", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    conv = commands.add_parser("convert", help="write a published NVIDIA file as our checkpoint")
    conv.add_argument("src")
    conv.add_argument("dst")
    conv.add_argument("--remove-weight-norm", action="store_true", help="fold weight norm (inference only)")
    add_audio_override_args(conv)
    insp = commands.add_parser("inspect", help="describe a published NVIDIA file without converting it")
    insp.add_argument("src")
    add_audio_override_args(insp)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "convert":
            config = convert(args.src, args.dst, args.remove_weight_norm, **audio_overrides(args))
            print(f"wrote {args.dst}: {config.model} {config.audio}")
        else:
            imported = read_nvidia_checkpoint(args.src, **audio_overrides(args))
            n_params = sum(t.numel() for t in imported.state.values())
            print(f"{args.src}:")
            for key, value in imported.info.items():
                print(f"  {key}: {value}")
            print(
                f"  weight_norm: {imported.weight_norm}\n  tensors: {len(imported.state)} ({n_params:,} values)"
            )
            print(f"  model: {imported.model_cfg}\n  audio: {imported.audio_cfg}")
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
