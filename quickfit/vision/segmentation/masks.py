"""Reading masks: a file, PIL image or array of class indices (or RGB colours with a palette), checked
against the classes; and the void class by index or by name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from quickfit.vision.core.image import open_image

__all__ = ["MaskError", "load_mask", "void_index"]


class MaskError(RuntimeError):
    """A mask that loads but cannot be right: values outside the codes, a colour without a class, a
    size that differs from its image. Raised, never skipped (skipping would train on a wrong label)."""


def _name(src: Any) -> str:
    return str(src) if isinstance(src, (str, Path)) else type(src).__name__


def void_index(void_code: int | str | None, codes: Sequence[str] | None = None, where: str = "void_code") -> int | None:
    """The void class as an index: an index as it is, or a class name looked up in `codes` ("Void")."""
    if void_code is None:
        return None
    if isinstance(void_code, str):
        if codes is not None and void_code in codes:
            return list(codes).index(void_code)
        known = (
            f"one of the codes {list(codes)}"
            if codes is not None
            else "a class index (only the data knows the names: pass dls.void_code)"
        )
        raise ValueError(f"{where}={void_code!r} is not {known}")
    if isinstance(void_code, bool) or not isinstance(void_code, (int, np.integer)):
        raise TypeError(f"{where} must be a class index or a class name, got {type(void_code).__name__}")
    if void_code < 0:
        raise ValueError(f"{where} must be a class index (>= 0), got {void_code}")
    return int(void_code)


def load_mask(src: str | Path | Image.Image | np.ndarray | torch.Tensor, target: Any) -> np.ndarray:
    """A mask as an int array [H, W] of class indices, checked against `target.n_codes` / `void_code`.

    Single-channel PNGs (L, I, I;16) hold the indices; palette PNGs (P) their palette indices; RGB(A)
    masks need `target.palette` ({(r, g, b): index}). Raises `MaskError` naming the file and values."""
    where = f"mask {src}" if isinstance(src, (str, Path)) else "mask"
    if isinstance(src, torch.Tensor):
        arr = src.numpy()
    elif isinstance(src, np.ndarray):
        arr = src
    else:
        img = open_image(src)  # the file named when it is not an image
        try:
            arr = _mask_array(img, target, where)
        finally:
            if img is not src:
                img.close()
    if arr.ndim != 2:
        raise MaskError(f"{where} must be one channel of class indices, got an array of shape {arr.shape}")
    if target.n_codes is not None:
        bad = (arr >= target.n_codes) | (arr < 0)
        if target.void_code is not None:
            bad &= arr != target.void_code
        if bad.any():
            values = sorted(int(v) for v in np.unique(arr[bad])[:10])
            void = f" or the void code {target.void_code}" if target.void_code is not None else ""
            raise MaskError(
                f"{where} has values {values} outside the {target.n_codes} codes (0-{target.n_codes - 1}{void})"
            )
    return arr


def _mask_array(img: Image.Image, target: Any, where: str) -> np.ndarray:
    if img.mode in ("RGB", "RGBA"):
        if not target.palette:
            raise MaskError(
                f"{where} is an {img.mode} colour image; pass palette={{(r, g, b): class_index, ...}} to map "
                "its colours to classes (or save masks as single-channel PNGs of class indices)"
            )
        rgb = np.asarray(img.convert("RGB"), dtype=np.int64)
        keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        colours = np.array([(r << 16) | (g << 8) | b for r, g, b in target.palette], dtype=np.int64)
        order = np.argsort(colours)
        pos = np.clip(np.searchsorted(colours[order], keys), 0, len(colours) - 1)
        found = colours[order][pos] == keys
        if not found.all():
            k = int(keys[~found][0])
            raise MaskError(f"{where} has the colour {(k >> 16, (k >> 8) & 255, k & 255)} that is not in the palette")
        return np.array(list(target.palette.values()), dtype=np.int64)[order][pos]
    if img.mode in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
        return np.asarray(img).astype(np.int64 if img.mode.startswith("I") else np.uint8)
    raise MaskError(f"{where} has mode {img.mode}; masks are single-channel (L, P, I) or RGB with a palette")
