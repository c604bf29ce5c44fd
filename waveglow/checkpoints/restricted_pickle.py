"""Restricted unpickling of torch.save files: reads a WaveGlow checkpoint's pickle without running it.

``read_restricted`` resolves only the globals such files need (``collections.OrderedDict``, ``set``, torch's
tensor/parameter rebuild functions) and maps NVIDIA's classes (``glow.*``, ``glow_old.*``) and torch's module
classes to inert stand-ins (``Inert``) that only store their pickled state; any other global is refused
with ``UnsafeCheckpointError`` before anything is called. Nothing from ``glow`` is ever imported.
``pickle_opcodes`` lists a file's pickle opcodes without executing any of them.

Knows nothing of our model: turning the stand-ins into weights is ``waveglow.checkpoints.nvidia``'s job.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import types
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from waveglow.checkpoints.errors import CheckpointError, UnsafeCheckpointError

__all__ = ["Inert", "file_format", "pickle_opcodes", "read_restricted"]


class _ReadOnlyType(type):
    """Metaclass of the stand-ins: a pickle's BUILD opcode cannot set attributes on the classes (such as
    ``dump_patches``, which would make torch's legacy loader write a patch file)."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise AttributeError(f"{cls.__name__} is read-only")

    def __delattr__(cls, name: str) -> None:
        raise AttributeError(f"{cls.__name__} is read-only")


class Inert(metaclass=_ReadOnlyType):
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
    return _ReadOnlyType(qualified_name.rsplit(".", 1)[1], (Inert,), {"pickled_name": qualified_name})


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
        __name__="waveglow.checkpoints.restricted_pickle", Unpickler=_RestrictedUnpickler, load=load
    )


def file_format(path: Path) -> str:
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


def read_restricted(path: str | Path, known_format: str | None = None) -> Any:
    """Unpickle a torch.save file onto the CPU with the restricted unpickler; runs no pickled code.

    ``known_format``: the file's ``file_format`` when the caller has read it already (it is not read again).

    NVIDIA's classes come back as inert stand-ins holding their state. Raises UnsafeCheckpointError (naming
    the global) for any pickle that needs something else, CheckpointError for unreadable files.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if known_format is None:
        file_format(path)  # refuses TorchScript archives and files torch.save did not write
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


def pickle_opcodes(path: Path, known_format: str | None = None) -> list[tuple[str, Any]]:
    """(opcode name, argument) of the checkpoint's main pickle, read without executing it.

    ``known_format``: the file's ``file_format`` when the caller has read it already."""
    if (known_format or file_format(path)) == "zip":
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
