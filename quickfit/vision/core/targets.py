"""Targets that move with their images: masks, points, boxes and image targets.

A `Target` says what the `y` of an image batch is. Class labels ("category", "multi_category",
"float") do not move. The spatial kinds get exactly the geometry of their image, in the item
transform (the same crop, resize and padding) and in the batch augmentation (the same sampling
matrix and grid):

- "mask": [H, W] class indices, resampled nearest-neighbour (never blended into a class that is not
  there). Pixels that come from outside the image under "zeros" padding get the `void_code`.
- "points": [n, 2] (x, y), given in pixels of the original image ((0, 0) is its top-left corner,
  (W, H) its bottom-right one) and carried in [-1, 1] of the transformed image: -1 is the left / top
  edge, 1 the right / bottom one (grid_sample's `align_corners=False`). The augmentation moves them by
  the inverse of the image's sampling matrix. A point that leaves the image keeps its coordinates
  beyond +-1: `outside(points)` flags it; nothing is clipped. A mirror swaps the points of
  `flip_pairs` (left eye <-> right eye), and nothing else.
- "boxes": [n, 4] (x0, y0, x1, y1), the same coordinates; a rotated box becomes the box enclosing its
  moved corners, clipped to the image; a box with no area left becomes a row of NaN, as are the rows
  that pad a batch's images to the same number of boxes.
- "image": another image (image-to-image tasks), resampled bilinearly on the same grid; the lighting
  change only when `lighting=True`; the input's normalization when `normalize=True`.

    from quickfit.vision.core.targets import Target, warp_points
    from quickfit.vision.core.augment import compose_matrices

    t = Target("points", flip_pairs=((0, 1),))
    pts = torch.tensor([[[-0.5, 0.0], [0.5, 0.0]]])        # one image, two points
    mirror = compose_matrices(torch.zeros(1), torch.tensor([True]), torch.ones(1),
                              torch.zeros(1, 2), torch.zeros(1, 2), 8, 8)
    warp_points(pts, mirror, t.flip_pairs)                  # x negated, then the pair swapped: unchanged
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from quickfit.deprecation import renamed_argument
from quickfit.vision.core.image import open_image

__all__ = [
    "Target",
    "TargetKind",
    "void_index",
    "MaskError",
    "SPATIAL_KINDS",
    "load_mask",
    "points_to_unit",
    "boxes_to_unit",
    "unit_to_pixels",
    "outside",
    "warp_mask",
    "warp_points",
    "warp_boxes",
    "warp_target",
    "sampling_grid",
    "collate_targets",
]

TargetKind = Literal["category", "multi_category", "float", "mask", "points", "boxes", "image"]
SPATIAL_KINDS = frozenset({"mask", "points", "boxes", "image"})
_KINDS = ("category", "multi_category", "float", "mask", "points", "boxes", "image")


class MaskError(RuntimeError):
    """A mask that loads but cannot be right: values outside the codes, a colour without a class, a
    size that differs from its image. Raised, never skipped (skipping would train on a wrong label)."""


@dataclass(frozen=True)
class Target:
    """What a batch's `y` is and how it moves. See the module docstring for each kind.

    n_codes: masks, the number of classes (values must be in [0, n_codes) or `void_code`);
    void_code: masks, the code the loss and metrics ignore (also what fills pixels from outside the
      image); the same name as in `SegmentationDataLoaders`, `SegmentationLoss` and the metrics
      (`void=` is its deprecated old name);
    palette: masks stored as RGB colours, {(r, g, b): class index};
    flip_pairs: points, index pairs swapped when an image is mirrored;
    lighting / normalize: image targets, whether they get the input's lighting change / normalization.
    """

    kind: TargetKind = "category"
    n_codes: int | None = None
    void_code: int | None = None
    palette: dict[tuple[int, int, int], int] | None = field(default=None, hash=False)
    flip_pairs: tuple[tuple[int, int], ...] = ()
    lighting: bool = False
    normalize: bool = True
    void: InitVar[int | None] = None

    def __post_init__(self, void: int | None) -> None:
        if void is not None:  # frozen: the dataclass's own way to set a field after __init__
            object.__setattr__(
                self, "void_code", renamed_argument(self.void_code, void, "void_code", "void", "Target", 4)
            )
        if self.kind not in _KINDS:
            raise ValueError(f"Target kind must be one of {', '.join(_KINDS)}; got {self.kind!r}")
        for pair in self.flip_pairs:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(f"flip_pairs must be pairs of two different point indices, got {pair!r}")

    @property
    def spatial(self) -> bool:
        """True when the target moves with the image (mask, points, boxes, image)."""
        return self.kind in SPATIAL_KINDS

    @property
    def mask_dtype(self) -> torch.dtype:
        """uint8 when every code (and void) is known to fit in it: a quarter of the bytes to stack and copy."""
        if self.n_codes is None:
            return torch.int32
        return torch.uint8 if max(self.n_codes, (self.void_code or 0) + 1) <= 256 else torch.int32

    def to_dict(self) -> dict:
        d: dict = {"kind": self.kind}
        if self.n_codes is not None:
            d["n_codes"] = self.n_codes
        if self.void_code is not None:
            d["void"] = self.void_code  # the file's key since version 1
        if self.palette:
            d["palette"] = [[*rgb, i] for rgb, i in self.palette.items()]
        if self.flip_pairs:
            d["flip_pairs"] = [list(p) for p in self.flip_pairs]
        if self.kind == "image":
            d["lighting"], d["normalize"] = self.lighting, self.normalize
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Target:
        palette = {tuple(int(v) for v in row[:3]): int(row[3]) for row in d.get("palette", [])} or None
        return cls(
            d.get("kind", "category"),
            d.get("n_codes"),
            d.get("void"),
            palette,
            tuple(tuple(p) for p in d.get("flip_pairs", [])),
            bool(d.get("lighting", False)),
            bool(d.get("normalize", True)),
        )


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


# ---- item level: numpy / PIL, in the loader workers --------------------------------------------------


def load_mask(src: str | Path | Image.Image | np.ndarray | torch.Tensor, target: Target) -> np.ndarray:
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


def _mask_array(img: Image.Image, target: Target, where: str) -> np.ndarray:
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
    return _clip_boxes(corners)


def _clip_boxes(b: torch.Tensor) -> torch.Tensor:
    b = b.clamp(-1, 1)
    empty = (b[..., 2] <= b[..., 0]) | (b[..., 3] <= b[..., 1])
    return torch.where(empty[..., None], torch.full_like(b, float("nan")), b)


def outside(points: torch.Tensor) -> torch.Tensor:
    """bool [..., n]: the points (in [-1, 1] coordinates) that lie outside the image."""
    return (points.abs() > 1).any(dim=-1)


def collate_targets(ys: Sequence[torch.Tensor], target: Target) -> torch.Tensor:
    """Stack one batch's targets; boxes are padded with NaN rows to the largest count."""
    if target.kind == "boxes":
        n = max(int(y.shape[0]) for y in ys)
        out = torch.full((len(ys), n, 4), float("nan"))
        for i, y in enumerate(ys):
            out[i, : y.shape[0]] = y
        return out
    if target.kind == "points" and len({tuple(y.shape) for y in ys}) > 1:
        shapes = sorted({tuple(y.shape) for y in ys})
        raise ValueError(f"every image needs the same number of points; this batch has shapes {shapes}")
    return torch.stack(list(ys))


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
    return _clip_boxes(torch.cat([moved.amin(dim=2), moved.amax(dim=2)], dim=-1))


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


def warp_target(
    y: torch.Tensor, target: Target, mats: torch.Tensor, grid: torch.Tensor | None, pad_mode: str
) -> torch.Tensor:
    """`y` moved like its images, which were resampled by `mats` on `grid` (None: compute it here)."""
    if target.kind in ("mask", "image"):
        h, w = y.shape[-2:]
        if grid is None or tuple(grid.shape[1:3]) != (h, w):
            grid = sampling_grid(mats.to(device=y.device, dtype=torch.float32), h, w)
        if target.kind == "mask":
            return warp_mask(y, grid, pad_mode, 0 if target.void_code is None else target.void_code)
        return F.grid_sample(y, grid, mode="bilinear", padding_mode=pad_mode, align_corners=False)
    if target.kind == "points":
        return warp_points(y, mats, target.flip_pairs)
    if target.kind == "boxes":
        return warp_boxes(y, mats)
    return y
