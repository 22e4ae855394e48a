"""Safe files: atomic writes, checked reads, loads that never unpickle code. What is promised: docs/files.md.

    from quickfit.io import atomic_save, safe_load
    atomic_save({"model": model.state_dict()}, "models/stage1.pth")
    state = safe_load("models/stage1.pth")       # CRC-checked; a bad file is named, with what to do

A crash (or a kill) during a write leaves the previous file untouched: we write a temporary file
in the same folder (`.name.PID.XXXXXXXX.tmp`), flush it to disk, `os.replace` it over the target
(atomic on POSIX and Windows) and flush the folder, so that the rename survives a power loss. The
next write of the same target removes the temporary files a killed process left. The file gets the
mode `open` would give it (0666 less the umask), or the mode of the file it replaces.

A checkpoint is a `torch.save` zip archive: torch stores a CRC-32 of every record in it (files
written before this check have them too); `safe_load` verifies them before unpickling, so that a
flipped bit is an error naming the file rather than other weights.
"""

from __future__ import annotations

import errno
import glob
import os
import pickle
import secrets
import shutil
import socket
import stat
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "atomic_write",
    "atomic_save",
    "safe_load",
    "check_regular_file",
    "verify_checkpoint",
    "UnsafeCheckpointError",
    "CorruptFileError",
]

_HOST = socket.gethostname().replace(".", "-")
_ORPHAN_AGE_S = 3600  # a temporary file of another machine (a shared disk), or of an older quickfit


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint asked to unpickle something other than tensors and plain data."""


class CorruptFileError(ValueError):
    """A file that is damaged (truncated, bits flipped, empty) or is not the kind of file expected."""


def check_regular_file(path: str | Path, what: str = "file") -> Path:
    """`path` if it is a regular file (a link to one counts); a FIFO, a device or a folder is refused at
    once: reading one would block forever (a FIFO) or never end (/dev/urandom)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"no {what} at {path}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, a device or a socket)"
        raise CorruptFileError(f"{path} is {kind}: a {what} must be a regular file")
    return path


def _is_orphan(tmp: Path) -> bool:
    """A temporary file of this target that no live writer owns: its process (on this machine) is gone."""
    owner = tmp.name.rsplit(".", 3)[-3] if tmp.name.count(".") >= 3 else ""
    pid, _, host = owner.partition("@")
    try:
        age = time.time() - tmp.stat().st_mtime
    except OSError:
        return False
    if host != _HOST or not pid.isdigit():
        return age > _ORPHAN_AGE_S
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def _remove_orphans(path: Path) -> None:
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if _is_orphan(tmp):
            try:
                tmp.unlink()
            except OSError:
                pass


def _create_temp(path: Path) -> Path:
    """A new temporary file beside `path`, created with `open`'s mode (0666 less the umask): tempfile's 0600
    would make a model unreadable to a server run by another user."""
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}@{_HOST}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows: folders cannot be opened; the rename is durable there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_error(path: Path, e: Exception) -> OSError:
    """An OSError naming `path`; torch's own write errors ("unexpected pos ...") say nothing of a full disk."""
    if isinstance(e, OSError) and e.errno is not None:
        return OSError(e.errno, f"could not write {path}: {e.strerror or e}")
    free = shutil.disk_usage(path.parent).free
    hint = " (the disk is full)" if free < 1 << 20 else f" ({free / 2**20:.0f} MiB free on its disk)"
    return OSError(errno.EIO, f"could not write {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}{hint}")


def atomic_write(path: str | Path, write: Callable[[str], None], keep_previous: str | Path | None = None) -> Path:
    """Call `write(tmp_path)`, then move the finished file onto `path` in one step.

    `keep_previous`: where the file being replaced is kept (a resume checkpoint keeps the one before, so
    that a damaged file leaves a state to resume from)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    tmp = _create_temp(path)
    try:
        mode = stat.S_IMODE((path if path.exists() else tmp).stat().st_mode)  # the umask's, or the file's own
        try:
            write(str(tmp))
            with open(tmp, "rb+") as f:  # the data must be on disk before the rename makes it visible
                os.fsync(f.fileno())
        except (OSError, RuntimeError) as e:
            raise _write_error(path, e) from e
        os.chmod(tmp, mode)  # a writer may have made the file anew (safetensors: 0600)
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_save(obj: Any, path: str | Path, keep_previous: str | Path | None = None) -> Path:
    """`torch.save(obj, path)`, atomically. `obj` should hold only tensors and plain data."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp), keep_previous)


def verify_checkpoint(path: str | Path) -> Path:
    """Check a `torch.save` archive against the CRC-32 its zip records hold (one read of the file); a
    damaged one is a CorruptFileError naming it."""
    path = check_regular_file(path, "checkpoint")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{path} is empty (0 bytes): a write that never finished; delete it")
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except Exception as e:  # BadZipFile, zlib.error (a flipped compression flag), EOFError, ...
        raise CorruptFileError(f"{path} is damaged or not a checkpoint (truncated or overwritten?): {e}") from None
    if bad is not None:
        raise CorruptFileError(f"{path} is damaged: its record {bad!r} fails its CRC check (bits changed on disk)")
    return path


def safe_load(path: str | Path, map_location: Any = "cpu") -> Any:
    """`torch.load` with `weights_only=True` (tensors and plain containers only, never code), after
    `verify_checkpoint`. Every failure names the file."""
    path = check_regular_file(path, "checkpoint")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:1] == b"\x80" and not zipfile.is_zipfile(path):  # a raw pickle, not torch.save's zip archive
        return _torch_load(path, map_location, legacy=True)
    verify_checkpoint(path)
    return _torch_load(path, map_location, legacy=False)


def _torch_load(path: Path, map_location: Any, legacy: bool) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if legacy or "Unsupported global" in str(e):
            raise UnsafeCheckpointError(
                f"refused to load {path}: it contains pickled objects other than tensors and plain data "
                f"(only weights-only checkpoints are loaded; {str(e).splitlines()[0]})"
            ) from None
        raise CorruptFileError(f"{path} is damaged: its pickled part cannot be read ({_first_line(e)})") from None
    except Exception as e:  # torch's reader: RuntimeError, EOFError, UnicodeDecodeError, IndexError, ...
        raise CorruptFileError(f"{path} cannot be read as a checkpoint: {type(e).__name__}: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else type(e).__name__
