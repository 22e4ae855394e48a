"""Small images decoded once: into one uint8 tensor (threads over files), their per-channel statistics,
a resize of the whole tensor; and the batch augmentation of the course's CIFAR-10 runs (reflection
padding, random crop, flip, optional cutout)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["SMALL_IMAGE_MAX_SIDE", "is_small_image", "decode_images", "channel_stats", "resize_images", "PadCropFlip"]


SMALL_IMAGE_MAX_SIDE = 64  # up to 64 x 64 px, a whole data set decoded fits in memory (CIFAR: 150 MB)


def is_small_image(path: str | Path) -> bool:
    "Whether an image's sides are both at most SMALL_IMAGE_MAX_SIDE (reads the header only)."
    with Image.open(path) as im:
        return max(im.size) <= SMALL_IMAGE_MAX_SIDE


def _decode_one(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size, size):  # squish to a square once; CIFAR-like sets are square already
            im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
        return np.asarray(im).transpose(2, 0, 1)


def decode_images(paths: Sequence[Path], size: int, threads: int | None = None) -> torch.Tensor:
    """`[len(paths), 3, size, size]` uint8, each file decoded once, in threads."""
    out = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    arr = out.numpy()

    def work(i: int) -> None:
        arr[i] = _decode_one(paths[i], size)

    with ThreadPoolExecutor(threads or min(8, max(1, len(paths) // 256 + 1))) as pool:
        list(pool.map(work, range(len(paths)), chunksize=256))
    return out


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images as [0, 1] pixels (in float64, chunk by chunk)."""
    s = torch.zeros(images.shape[1], dtype=torch.float64)
    s2 = torch.zeros_like(s)
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].to(torch.float64) / 255
        s += x.sum((0, 2, 3))
        s2 += (x * x).sum((0, 2, 3))
    n = images.numel() / images.shape[1]
    mean = s / n
    std = (s2 / n - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def resize_images(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 images resized to `size` x `size` (antialiased bilinear), once."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    parts = []
    for i in range(0, len(images), chunk):
        x = F.interpolate(images[i : i + chunk].float(), size=(size, size), mode="bilinear", antialias=True)
        parts.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(parts) if parts else images.new_empty(0, images.shape[1], size, size)


class PadCropFlip:
    """The standard small-image augmentation of a uint8 batch: reflection padding `pad`, a random crop
    of the original size, a horizontal flip with probability 1/2; `cutout` > 0 zeroes a random
    `cutout` x `cutout` square of each normalized image (DeVries & Taylor 2017; 0 is the mean pixel).

    `draw(b, device)` gives the random offsets and flips; `apply(x, oy, ox, flip)` uses them: the
    crop and the flip are one gather."""

    def __init__(self, pad: int = 4, flip: bool = True, cutout: int = 0) -> None:
        if pad < 0 or cutout < 0:
            raise ValueError(f"PadCropFlip: pad and cutout must be >= 0, got pad={pad}, cutout={cutout}")
        self.pad, self.flip, self.cutout = int(pad), bool(flip), int(cutout)

    def draw(self, b: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        oy = torch.randint(0, 2 * self.pad + 1, (b,), device=device)
        ox = torch.randint(0, 2 * self.pad + 1, (b,), device=device)
        flip = torch.rand(b, device=device) < 0.5 if self.flip else torch.zeros(b, dtype=torch.bool, device=device)
        return oy, ox, flip

    def apply(self, x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.pad
        # reflection padding is defined for float tensors; for a uint8 batch pad its float copy
        xp = F.pad(x.float(), (p, p, p, p), mode="reflect").to(x.dtype) if p else x
        dev = x.device
        rows = oy[:, None] + torch.arange(h, device=dev)  # [b, h]
        cols = ox[:, None] + torch.arange(w, device=dev)  # [b, w]
        cols = torch.where(flip[:, None], cols.flip(1), cols)
        bi = torch.arange(b, device=dev)[:, None, None, None]
        ci = torch.arange(c, device=dev)[None, :, None, None]
        return xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]

    def cutout_mask(self, x: torch.Tensor) -> torch.Tensor:
        """A [b, 1, h, w] mask, 0 inside each image's square (centre anywhere, clipped at the border)."""
        b, _, h, w = x.shape
        cy = torch.randint(0, h, (b, 1, 1), device=x.device)
        cx = torch.randint(0, w, (b, 1, 1), device=x.device)
        ys = torch.arange(h, device=x.device)[None, :, None]
        xs = torch.arange(w, device=x.device)[None, None, :]
        y0, x0 = cy - self.cutout // 2, cx - self.cutout // 2
        inside = (ys >= y0) & (ys < y0 + self.cutout) & (xs >= x0) & (xs < x0 + self.cutout)
        return (~inside)[:, None].to(x.dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, *self.draw(x.shape[0], x.device))

    def to_dict(self) -> dict:
        return {"pad": self.pad, "flip": self.flip, "cutout": self.cutout}

    def __repr__(self) -> str:
        return f"PadCropFlip(pad={self.pad}, flip={self.flip}, cutout={self.cutout})"
