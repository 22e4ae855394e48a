"""Image batches as one grid picture, and image tensors to and from files (Pillow, no plotting library).

from quickfit.image_grid import save_image_grid, image_to_tensor, tensor_to_image
grid = save_image_grid(torch.rand(16, 3, 28, 28), "samples.png")   # 4x4 grid, 2px gaps; returns it
save_image_grid(torch.rand(6, 3, 28, 28), "rows.png", nrow=3, titles=("input", "prediction", "target"))
x = image_to_tensor("photo.jpg")                                     # [3, H, W] floats in [0, 1]
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = ["make_image_grid", "save_image_grid", "image_to_tensor", "tensor_to_image"]


def make_image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> torch.Tensor:
    """[N, C, H, W] images in [0, 1] (C = 1 or 3) -> one [3, H', W'] grid, `nrow` images per row
    (default: a square), white gaps of `pad` pixels."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, 1 or 3, H, W], got shape {tuple(images.shape)}")
    images = images.detach().float().clamp(0, 1).cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    n, _, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = torch.ones(3, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = images[
            i
        ]
    return grid


def tensor_to_image(x: torch.Tensor) -> Image.Image:
    """A [3, H, W] (or [1, H, W]) tensor in [0, 1] -> an RGB Pillow image (rounded, clipped)."""
    if x.ndim != 3:
        raise ValueError(f"expected one image [C, H, W], got shape {tuple(x.shape)}")
    arr = (x.detach().float().clamp(0, 1).cpu() * 255).round().to(torch.uint8)
    if arr.shape[0] == 1:
        arr = arr.expand(3, -1, -1)
    return Image.fromarray(np.ascontiguousarray(arr.permute(1, 2, 0).numpy()), mode="RGB")


def image_to_tensor(src: str | Path | Image.Image) -> torch.Tensor:
    """An image file or Pillow image -> [3, H, W] float tensor in [0, 1] (EXIF orientation applied)."""
    from quickfit.vision.core.image import load_image

    arr = np.asarray(load_image(src), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


def _titled(img: Image.Image, titles: tuple[str, ...], nrow: int, pad: int = 2) -> Image.Image:
    """The grid under a white strip naming each column (Pillow's built-in font: no font file needed)."""
    font = ImageFont.load_default()
    strip = 4 + font.getbbox("Ag")[3]
    out = Image.new("RGB", (img.width, img.height + strip), "white")
    out.paste(img, (0, strip))
    draw, cell = ImageDraw.Draw(out), (img.width - pad) // nrow
    for c, title in enumerate(titles[:nrow]):
        draw.text((pad + c * cell + 2, 2), title, fill="black", font=font)
    return out


def save_image_grid(
    images: torch.Tensor,
    path: str | Path | None = None,
    nrow: int | None = None,
    titles: tuple[str, ...] | None = None,
) -> torch.Tensor:
    """`make_image_grid(images, nrow)`, written as a PNG at `path` (folders created) when given, with
    `titles` naming the columns above them (rows of input / prediction / target); returns the grid."""
    grid = make_image_grid(images, nrow)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        img = tensor_to_image(grid)
        (_titled(img, tuple(titles), nrow) if titles and nrow else img).save(path)
    return grid
