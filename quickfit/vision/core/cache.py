"""A cache of decoded images, shared by a loader's worker processes: each file is decoded once.

For small data sets trained for many epochs, decoding a JPEG costs more than everything else the
workers do (2.4 ms of the 4 ms an image costs here). The cache keeps every image decoded as uint8
[H, W, 3] in ONE shared-memory tensor, so the worker processes fill it together and read each other's
images, and it is bounded: the images are laid out in dataset order, from their headers, until
`max_bytes` is reached; the rest are decoded every time.

    from quickfit.vision.core.cache import DecodeCache
    from quickfit.vision.core.transforms import RandomResizedCrop

    tfm = RandomResizedCrop(224)
    cache = DecodeCache(files, cover=tfm.cover_size, max_bytes=2**30)   # reads the headers only
    x = tfm(cache.source(0, files[0]), train=True)      # decodes files[0] and keeps it
    x = tfm(cache.source(0, files[0]), train=True)      # a new random crop of the kept pixels

A JPEG is kept at the smallest draft scale that covers every crop the item transform can make
(`cover`), so a cached item is never blurrier than a fresh draft decode (it can be sharper).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from quickfit.vision.core.image import _TRANSPOSED_ORIENTATIONS, LOAD_ERRORS, SourceImage, _orientation, open_image

__all__ = ["DecodeCache", "default_cache_bytes"]

Cover = Callable[[int, int], "tuple[int, int] | None"]


def default_cache_bytes() -> int:
    """A quarter of the memory available now, at most 4 GiB (Linux; 1 GiB where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return min(info["MemAvailable"] // 4, 4 << 30)
    except (OSError, KeyError, ValueError):
        return 1 << 30


def _decoded_size(path: str | Path, cover: Cover | None) -> tuple[tuple[int, int], tuple[int, int]]:
    """((width, height) upright, (width, height) a decode at `cover`'s draft scale will have), from the header."""
    with open_image(path) as img:
        orientation = _orientation(img)
        w, h = img.size
        upright = (h, w) if orientation in _TRANSPOSED_ORIENTATIONS else (w, h)
        req = cover(*upright) if cover is not None else None
        if req is not None and img.format == "JPEG":
            if orientation in _TRANSPOSED_ORIENTATIONS:
                req = (req[1], req[0])
            img.draft(img.mode, tuple(max(1, int(s)) for s in req))  # sets the draft size, decodes nothing
            w, h = img.size
        return upright, ((h, w) if orientation in _TRANSPOSED_ORIENTATIONS else (w, h))


class _Cached:
    """What the item transforms read (see `SourceImage`): kept pixels, or the file decoded and kept."""

    def __init__(self, cache: DecodeCache, i: int, src: str | Path) -> None:
        self.cache, self.i, self.src = cache, i, src
        row = cache.index[i].tolist()
        self.size = (row[3], row[4])

    def pixels(self, min_size: tuple[int, int] | None = None) -> np.ndarray:
        """The kept pixels, uint8 [H, W, 3] (a view of the cache: do not write to it), or the file's,
        decoded now at the cache's scale and kept."""
        offset, h, w, _, _, filled = self.cache.index[self.i].tolist()
        kept = self.cache.data[offset : offset + h * w * 3].numpy().reshape(h, w, 3)
        if filled:
            return kept
        with SourceImage(self.src) as img:
            arr = img.pixels(self.cache.cover(*self.size) if self.cache.cover is not None else None)
        if arr.shape[:2] == (h, w):  # else the header lied about the decoded size: not kept
            kept[:] = arr
            # Set after the pixels: another worker reading the flag then finds them written.
            self.cache.index[self.i, 5] = 1
        return arr

    def decode(self, min_size: tuple[int, int] | None = None) -> Image.Image:
        """`pixels` as a PIL image (a copy)."""
        return Image.fromarray(self.pixels(min_size))

    def __enter__(self) -> _Cached:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class DecodeCache:
    """Decoded uint8 images of `paths` in shared memory (see the module docstring).

    `cover(w, h)`: the decode size an upright w x h image needs (None: full size). Items that are
    PIL images, that do not fit in `max_bytes`, or whose header does not open are not cached."""

    def __init__(self, paths: Sequence[str | Path | Image.Image], cover: Cover | None, max_bytes: int) -> None:
        self.cover = cover
        # per item: offset, height, width (as kept), upright width, height of the file, filled
        index = torch.zeros(len(paths), 6, dtype=torch.int64)
        top = 0
        for i, p in enumerate(paths):
            if isinstance(p, Image.Image):
                continue
            try:
                (w0, h0), (w, h) = _decoded_size(p, cover)
            except LOAD_ERRORS:
                continue  # a broken file: decoded (and reported) by the loader each time
            if top + w * h * 3 > max_bytes:
                break
            index[i] = torch.tensor([top, h, w, w0, h0, 0])
            top += w * h * 3
        self.n_cached = int((index[:, 1] > 0).sum())
        self.nbytes = top
        # Shared memory: worker processes (forked or spawned) write into and read the same pages.
        self.data = torch.empty(max(top, 1), dtype=torch.uint8).share_memory_()
        self.index = index.share_memory_()

    def source(self, i: int, src: str | Path | Image.Image) -> SourceImage | _Cached:
        """Item `i` (whose file is `src`) for an item transform: from the cache when it has a place there."""
        if isinstance(src, Image.Image) or self.index[i, 1] == 0:
            return SourceImage(src)
        return _Cached(self, i, src)

    def pixels(self, i: int, src: str | Path) -> np.ndarray:
        """Item `i`'s upright RGB pixels, uint8 [H, W, 3]: a read-only view of the cache once kept."""
        if self.index[i, 1] > 0 and self.index[i, 5]:
            offset, h, w = self.index[i, :3].tolist()
            arr = self.data[offset : offset + h * w * 3].numpy().reshape(h, w, 3)
            arr.flags.writeable = False
            return arr
        with self.source(i, src) as img:
            return img.pixels(self.cover(*img.size) if self.cover is not None else None)

    def __len__(self) -> int:
        """How many images are kept now."""
        return self.filled

    @property
    def filled(self) -> int:
        """How many images are kept now (by all processes)."""
        return int(self.index[:, 5].sum())

    def __repr__(self) -> str:
        return f"DecodeCache({self.n_cached} of {len(self.index)} images, {math.ceil(self.nbytes / 2**20)} MiB)"
