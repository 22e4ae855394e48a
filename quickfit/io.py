"""Safe files: atomic writes and loads that never unpickle code.

    from quickfit.io import atomic_save, safe_load
    atomic_save({"model": model.state_dict()}, "models/stage1.pth")
    state = safe_load("models/stage1.pth")

A crash (or a kill) during a write leaves the previous file untouched: we write a temporary file
in the same folder, flush it to disk, then `os.replace` it over the target, which is atomic on
POSIX and Windows.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_write", "atomic_save", "safe_load", "UnsafeCheckpointError"]


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint asked to unpickle something other than tensors and plain data."""


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)`, then move the finished file onto `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:  # the data must be on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_save(obj: Any, path: str | Path) -> Path:
    """`torch.save(obj, path)`, atomically. `obj` should hold only tensors and plain data."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def safe_load(path: str | Path, map_location: Any = "cpu") -> Any:
    """`torch.load` with `weights_only=True`: tensors and plain containers only, never code."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"refused to load {path}: it contains pickled objects other than tensors and plain data "
            f"(only weights-only checkpoints are loaded; {str(e).splitlines()[0]})"
        ) from None
