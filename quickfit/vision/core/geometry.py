"""The shared geometry of an image and its target: where a pixel of the original image lands after the
item transform (crop, resize, pad) and after the batch augmentation (a sampling matrix per image).

Coordinates of points and boxes are carried in [-1, 1] of the transformed image: -1 is the left / top
edge, 1 the right / bottom one (grid_sample's `align_corners=False`). A sampling matrix maps output
coordinates to input ones, so points go through its inverse; masks and images are resampled on the grid
of the matrix (`sampling_grid`), once for the image and its target. Each target kind
(quickfit/vision/core/targets.py) uses these to move with its image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "resize_mask",
    "points_to_unit",
    "unit_to_pixels",
    "boxes_to_unit",
    "clip_boxes",
    "outside",
    "warp_mask",
    "warp_points",
    "warp_boxes",
    "sampling_grid",
]


# ---- item level: numpy / PIL, in the loader workers --------------------------------------------------


def resize_mask(arr: np.ndarray, box, out: tuple[int, int], pad: tuple[int, int, int, int], pad_mode: str, fill: int):
    """The item transform's crop + resize + pad of a mask, nearest-neighbour: a uint8 / int32 array."""
    small = arr.dtype == np.uint8 or (arr.size and arr.max() < 256 and arr.min() >= 0)
    img = Image.fromarray(arr.astype(np.uint8 if small else np.int32))
    res = np.asarray(img.resize(out, Image.Resampling.NEAREST, box=box))
    if any(pad):
        left, top, right, bottom = pad
        widths = ((top, bottom), (left, right))
        res = (
            np.pad(res, widths, mode="reflect")
            if pad_mode == "reflection"
            else np.pad(res, widths, constant_values=fill)
        )
    return res


def points_to_unit(
    points: torch.Tensor, box, out: tuple[int, int], pad: tuple[int, int, int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Pixel (x, y) of the original image -> [-1, 1] of the item transform's output.

    `box` (x0, y0, x1, y1) is resized to `out` (width, height), padded by `pad` (left, top, ...)
    to `size` (height, width)."""
    p = torch.as_tensor(points, dtype=torch.float32).reshape(-1, 2)
    scale = torch.tensor([out[0] / (box[2] - box[0]), out[1] / (box[3] - box[1])])
    shift = torch.tensor([pad[0] - box[0] * scale[0], pad[1] - box[1] * scale[1]])
    h, w = size
    return (p * scale + shift) * torch.tensor([2 / w, 2 / h]) - 1


def unit_to_pixels(points: torch.Tensor, box, out, pad, size) -> torch.Tensor:
    """The inverse of `points_to_unit`: [-1, 1] of the transformed image -> pixels of the original."""
    p = torch.as_tensor(points, dtype=torch.float32)
    h, w = size
    scale = torch.tensor([out[0] / (box[2] - box[0]), out[1] / (box[3] - box[1])])
    shift = torch.tensor([pad[0] - box[0] * scale[0], pad[1] - box[1] * scale[1]])
    return ((p + 1) * torch.tensor([w / 2, h / 2]) - shift) / scale


def boxes_to_unit(boxes: torch.Tensor, box, out, pad, size) -> torch.Tensor:
    """Pixel boxes (x0, y0, x1, y1) -> [-1, 1], clipped to the output; empty ones become NaN."""
    b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    corners = points_to_unit(b.reshape(-1, 2), box, out, pad, size).reshape(-1, 4)
    return clip_boxes(corners)


def clip_boxes(b: torch.Tensor) -> torch.Tensor:
    b = b.clamp(-1, 1)
    empty = (b[..., 2] <= b[..., 0]) | (b[..., 3] <= b[..., 1])
    return torch.where(empty[..., None], torch.full_like(b, float("nan")), b)


def outside(points: torch.Tensor) -> torch.Tensor:
    """bool [..., n]: the points (in [-1, 1] coordinates) that lie outside the image."""
    return (points.abs() > 1).any(dim=-1)


# ---- batch level: torch, on the device ----------------------------------------------------------------


def warp_mask(mask: torch.Tensor, grid: torch.Tensor, pad_mode: str = "reflection", fill: int = 0) -> torch.Tensor:
    """Resample integer masks [B, H, W] on `grid` nearest-neighbour: int64 [B, H', W'].

    With "zeros" padding, pixels from outside the image get `fill` (the void code), not class 0."""
    m = mask.to(torch.float32)[:, None]
    if pad_mode == "zeros":  # shift by one so that 0 marks "outside", then put `fill` there
        out = F.grid_sample(m + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0]
        return torch.where(out > 0, out - 1, torch.full_like(out, float(fill))).long()
    return F.grid_sample(m, grid, mode="nearest", padding_mode=pad_mode, align_corners=False)[:, 0].long()


def warp_points(points: torch.Tensor, mats: torch.Tensor, flip_pairs: Sequence[tuple[int, int]] = ()) -> torch.Tensor:
    """Move points [B, n, 2] (in [-1, 1]) as the images resampled by `mats` [B, 3, 3] move.

    A sampling matrix maps output coordinates to input ones, so points go through its inverse
    (`inv_ex`: no error check, hence no CPU-GPU sync). Mirrored images (negative determinant) swap
    the points of `flip_pairs`."""
    mats = mats.to(device=points.device, dtype=torch.float32)
    inv = torch.linalg.inv_ex(mats)[0]
    p = torch.cat([points.float(), torch.ones_like(points[..., :1], dtype=torch.float32)], dim=-1)
    q = p @ inv.transpose(1, 2)
    out = q[..., :2] / q[..., 2:]
    if flip_pairs:
        perm = list(range(points.shape[1]))
        for a, b in flip_pairs:
            perm[a], perm[b] = b, a
        mirrored = torch.linalg.det(mats) < 0
        out = torch.where(mirrored[:, None, None], out[:, perm], out)
    return out


def warp_boxes(boxes: torch.Tensor, mats: torch.Tensor) -> torch.Tensor:
    """Move boxes [B, n, 4]: the box enclosing the four moved corners, clipped; empty -> NaN."""
    b, n = boxes.shape[:2]
    x0, y0, x1, y1 = boxes.float().unbind(-1)
    corners = torch.stack([x0, y0, x1, y0, x0, y1, x1, y1], dim=-1).view(b, n * 4, 2)
    moved = warp_points(corners, mats).view(b, n, 4, 2)
    return clip_boxes(torch.cat([moved.amin(dim=2), moved.amax(dim=2)], dim=-1))


def _centers(n: int, device: torch.device) -> torch.Tensor:
    """Normalized coordinates of n pixel centers (align_corners=False)."""
    return (torch.arange(n, device=device, dtype=torch.float32) * 2 + 1) / n - 1


def sampling_grid(mats: torch.Tensor, h: int, w: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """The grid_sample grid [B, H, W, 2] of the sampling matrices `mats` [B, 3, 3].

    Each row of a matrix is a plane a*x + b*y + c, built as an outer sum of a row and a column
    vector: a few cheap passes instead of a batched [H*W, 3] x [3, 3] matmul (3-4x slower on CPU).
    `out` may be a reusable [B, H, W, 2] buffer."""
    device, b = mats.device, mats.shape[0]
    xs, ys = _centers(w, device), _centers(h, device)
    out = torch.empty(b, h, w, 2, device=device) if out is None else out

    def plane(i: int) -> torch.Tensor:
        return mats[:, i, 0, None, None] * xs + (mats[:, i, 1, None] * ys + mats[:, i, 2, None])[:, :, None]

    # The perspective divide; for affine matrices it divides by 1 (checking would sync a GPU).
    den = plane(2)
    torch.div(plane(0), den, out=out[..., 0])
    torch.div(plane(1), den, out=out[..., 1])
    return out
