"""Pictures of predictions, as PNG data URLs a page shows in an <img> and a JSON client decodes.

image_url(tensor_3hw_in_0_1)                     # an image-to-image or GAN output
points_url(photo, points_xy)                     # keypoints drawn on the photo (pixels)
mask_urls(photo, mask, n_classes)                # (the mask of class indices, the photo with it overlaid)
"""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image, ImageDraw

__all__ = ["png_url", "image_url", "to_uint8", "points_url", "mask_urls", "palette", "decode_url"]


def png_url(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def decode_url(url: str) -> Image.Image:
    """The image of a data URL (what tests and clients do with the JSON)."""
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[C, H, W] floats in [0, 1] -> [H, W, C] bytes (rounded; one channel -> grayscale)."""
    arr = (img.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def image_url(img: torch.Tensor) -> str:
    return png_url(Image.fromarray(to_uint8(img)))


def palette(n: int) -> np.ndarray:
    """`n` distinct colours, [n, 3] bytes (golden-angle hues: neighbours never look alike)."""
    import colorsys

    return np.array(
        [[round(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1, 0.75, 0.95)] for i in range(n)],
        dtype=np.uint8,
    )


def points_url(photo: Image.Image, points: torch.Tensor) -> str:
    """`photo` with a cross at each point [k, 2] (x, y in its pixels), numbered."""
    img = photo.convert("RGB")
    draw = ImageDraw.Draw(img)
    r = max(3, round(min(img.size) / 60))
    colors = palette(len(points))
    for i, (x, y) in enumerate(points.tolist()):
        c = tuple(int(v) for v in colors[i])
        draw.line([(x - r, y - r), (x + r, y + r)], fill=c, width=max(1, r // 2))
        draw.line([(x - r, y + r), (x + r, y - r)], fill=c, width=max(1, r // 2))
        draw.text((x + r + 1, y - r), str(i), fill=c)
    return png_url(img)


def mask_urls(photo: Image.Image, mask: torch.Tensor, n_classes: int, alpha: float = 0.5) -> tuple[str, str]:
    """(the mask as a PNG of class indices, `photo` with each class's colour blended in at `alpha`)."""
    m = mask.cpu().numpy().astype(np.uint8)
    colors = palette(n_classes)
    rgb = np.asarray(photo.convert("RGB").resize((m.shape[1], m.shape[0])), dtype=np.float32)
    overlay = (rgb * (1 - alpha) + colors[m].astype(np.float32) * alpha).round().astype(np.uint8)
    return png_url(Image.fromarray(m)), png_url(Image.fromarray(overlay))
