"""Faults to put in files, for tests/test_files.py and tests/test_file_fuzz.py: edited export metadata, flipped
bits at chosen places, runs in a child process under a memory cap."""

from __future__ import annotations

import json
import resource
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import quickfit as qf
from tests.fixtures.make_exports import register_tiny_arch

FIXTURES = Path(__file__).parent / "fixtures" / "exports_v1"
ROOT = Path(__file__).resolve().parents[1]


def format2_export(case: str, dst: Path) -> Path:
    """The fixture export of `case` written again by today's code (format 2, with its checksum)."""
    register_tiny_arch()
    learn = qf.load_learner(FIXTURES / f"{case}.qf")
    learn.path = dst.parent
    return learn.export(dst.name)


def read_info(path: Path) -> dict:
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    return json.loads(json.loads(path.read_bytes()[8 : 8 + n])["__metadata__"]["quickfit"])


def with_metadata(src: Path, dst: Path, edit: Callable[[dict], object], raw: bool = False) -> Path:
    """A copy of export `src` whose safetensors metadata is edited (`edit(info)` returns the new quickfit
    JSON; `raw`: `edit(metadata)` edits the metadata strings themselves). Tensors and checksum are kept."""
    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header["__metadata__"]
    if raw:
        edit(meta)
    else:
        meta["quickfit"] = json.dumps(edit(json.loads(meta["quickfit"])))
    new = json.dumps(header, separators=(",", ":")).encode()
    new += b" " * (-len(new) % 8)
    dst.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + n :])
    return dst


def record_span(path: Path, suffix: str) -> tuple[int, int]:
    """(start, size) of the bytes of the zip record whose name ends with `suffix` (a torch.save file)."""
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(suffix))
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def largest_tensor_record(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        return max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size).filename


def flip(path: Path, offset: int, mask: int = 1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def run_capped(code: str, cap_bytes: int = 3 * 2**30, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `code` in a child Python (the project on its path) whose address space is capped at `cap_bytes`:
    an allocation the size the files ask for fails there instead of swapping this machine."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))

    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=cap,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
