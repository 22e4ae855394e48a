"""The bytes of an export: a safetensors file whose header carries quickfit's JSON and a SHA-256 of the tensors.

    write_export(model, "model.qf", info)          # atomic; metadata {"quickfit": json, "quickfit_sha256": hex}
    header = read_header("model.qf")               # {"metadata": {...}, "shapes": {name: [dims]}}: no tensor read
    verify_export("model.qf", header)              # the tensors' bytes against the stored digest

A safetensors file is `8-byte header length | JSON header | tensor bytes`. The header (tensor names,
dtypes, shapes, offsets and the metadata) is read on its own, bounded, before anything is built: the
loader compares the shapes the JSON configuration would build with the stored ones first
(quickfit/loading.py). The digest covers the tensor bytes, which do not depend on the header: the file
is written once with a placeholder of the digest's length, then those 64 bytes are patched in place.
Files without a digest (written before it existed) load unchecked.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from torch import nn

from quickfit.io import CorruptFileError, atomic_write, check_regular_file

__all__ = ["write_export", "read_header", "verify_export", "DIGEST_KEY"]

DIGEST_KEY = "quickfit_sha256"
_PLACEHOLDER = "0" * 64
_MAX_HEADER = 100 * 2**20  # safetensors' own limit


def _data_digest(f, start: int) -> str:
    f.seek(start)
    h = hashlib.sha256()
    while chunk := f.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def write_export(model: nn.Module, path: str | Path, info: dict) -> Path:
    """`model`'s weights and `info` (as JSON) in one safetensors file, with the digest of the weights."""
    from safetensors.torch import save_model

    metadata = {"quickfit": json.dumps(info), DIGEST_KEY: _PLACEHOLDER}

    def write(tmp: str) -> None:
        save_model(model, tmp, metadata=metadata)
        with open(tmp, "rb+") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = f.read(n)
            key = f'"{DIGEST_KEY}":"{_PLACEHOLDER}"'.encode()
            at = header.find(key)
            if at < 0:  # safetensors always writes compact JSON; if that ever changes, write no digest
                return
            digest = _data_digest(f, 8 + n)
            f.seek(8 + at + len(key) - 65)
            f.write(digest.encode())

    return atomic_write(path, write)


def read_header(path: str | Path) -> dict:
    """`{"metadata": {str: str}, "shapes": {tensor name: [dims]}, "data_start": offset}` of a safetensors
    file, read without its tensors; anything malformed is a CorruptFileError naming the file."""
    path = check_regular_file(path, "export")
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CorruptFileError(f"{path} is not a quickfit export: {size} bytes, too short for a safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n > min(_MAX_HEADER, size - 8):
            raise CorruptFileError(
                f"{path} is not a quickfit export (a safetensors file): its header length {n} is past the end of the "
                f"file ({size} bytes): truncated, or another kind of file"
            )
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CorruptFileError(f"{path} is not a quickfit export: its header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise CorruptFileError(f"{path} is not a quickfit export: its safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    shapes = {}
    for name, t in header.items():
        ok = isinstance(t, dict) and isinstance(t.get("shape"), list) and isinstance(t.get("data_offsets"), list)
        if not ok or not all(isinstance(d, int) and d >= 0 for d in t["shape"]):
            raise CorruptFileError(f"{path}: the safetensors header's entry {name!r} is malformed")
        if len(t["data_offsets"]) != 2 or not 0 <= t["data_offsets"][0] <= t["data_offsets"][1] <= size - 8 - n:
            raise CorruptFileError(f"{path}: tensor {name!r} lies past the end of the file (truncated?)")
        shapes[name] = t["shape"]
    if not isinstance(metadata, dict):
        raise CorruptFileError(f"{path}: the safetensors metadata is not a JSON object")
    return {"metadata": metadata, "shapes": shapes, "data_start": 8 + n}


def verify_export(path: str | Path, header: dict) -> None:
    """Check the tensor bytes against the digest the file stores (one read); a file without one passes."""
    expected = header["metadata"].get(DIGEST_KEY)
    if expected is None:
        return
    with open(path, "rb") as f:
        digest = _data_digest(f, header["data_start"])
    if digest != expected:
        raise CorruptFileError(
            f"{path} is damaged: its weights do not match the SHA-256 stored in it (bits changed on disk or in "
            "transfer). Export the model again, or copy the file again from its source."
        )
