"""The models that ship inside the package (``waveglow/pretrained/<name>.pt``), found by name."""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parents[1] / "pretrained"


def list_pretrained() -> list[str]:
    """The names of the models that ship with this package, e.g. ``["allison-light"]``."""
    return sorted(path.stem for path in FOLDER.glob("*.pt"))


def pretrained_path(name: str) -> Path | None:
    """The file of the shipped model ``name``, or None when no shipped model has that name."""
    if "/" in name or "\\" in name or name.endswith(".pt"):
        return None
    path = FOLDER / f"{name}.pt"
    return path if path.is_file() else None
