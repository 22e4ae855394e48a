"""Item transforms: one image file in, one uint8 CHW tensor of a fixed size out.

They run per item in the DataLoader workers and do the only work that cannot wait for the batch:
decode and bring every image to one size. Each transform first *plans* a crop box from the image
header, so the JPEG decoder can work at draft scale, and torch resizes the box of the decoded pixels
(crop + resize in one antialiased pass, vectorized on uint8). In training the crop position is
random; in validation it is the center. Everything else (flips, rotation, zoom, lighting) happens
later on the whole batch, on the device (see `quickfit.vision.core.augment`).

    from quickfit.vision.core.transforms import Resize, RandomResizedCrop

    tfm = Resize(224)                        # scale the short side to 224, crop the rest
    x = tfm("photo.jpg", train=False)        # uint8 tensor [3, 224, 224], the center crop
    x = RandomResizedCrop(224)("photo.jpg", train=True)   # a random 35%-100% area crop
    x, mask = tfm.pair("photo.jpg", "photo_mask.png", Target("mask", n_codes=12), train=True)  # same crop

`pair` runs the same plan on a target (see `quickfit.vision.core.targets`): a mask nearest-neighbour,
points and boxes by the same scale and shift, an image target by the same relative crop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from quickfit.configs import check_image_size
from quickfit.vision.core.geometry import unit_to_pixels
from quickfit.vision.core.image import SourceImage
from quickfit.vision.core.targets import Target

__all__ = ["ItemTransform", "Resize", "RandomResizedCrop", "item_tfm_from_dict"]

Box = tuple[float, float, float, float]
# (box, out, pad, (w, h)): the source box in the upright image of w x h, resized to out (w, h), padded.
Plan = tuple[Box, tuple[int, int], tuple[int, int, int, int], tuple[int, int]]


def _clip(box: Box, w: int, h: int) -> Box:
    return (max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3]))


def _whole(box: Box, w: int, h: int) -> tuple[int, int, int, int]:
    """`box` in whole pixels of a w x h image: the position rounded, the size rounded, at least 1 pixel.

    Why: torch's resize (`_apply`) takes no fractional box; the crop moves by at most half a pixel of the
    decoded image (0.3 output pixels at 224 px from a 375 px photo), and its targets move with it."""
    x0, y0, x1, y1 = _clip(box, w, h)
    left, top = min(math.floor(x0 + 0.5), w - 1), min(math.floor(y0 + 0.5), h - 1)
    width, height = max(1, math.floor(x1 - x0 + 0.5)), max(1, math.floor(y1 - y0 + 0.5))
    return left, top, min(w, left + width), min(h, top + height)


def _scaled(plan: Plan, w: int, h: int) -> tuple[Box, tuple[int, int], tuple[int, int, int, int]]:
    """`plan` made for another image, applied to one of w x h: the same box relative to the size."""
    box, out, pad, (pw, ph) = plan
    sx, sy = w / pw, h / ph
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy), out, pad


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) from an int or a (height, width) pair."""
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return int(h), int(w)


def _need(box: Box, out: tuple[int, int], w: int, h: int) -> tuple[int, int]:
    """The (width, height) of the whole image at which `box` has `out` pixels."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    return math.ceil(w * out[0] / bw), math.ceil(h * out[1] / bh)


def _uniform(lo: float, hi: float) -> float:
    # torch's global RNG: each DataLoader worker gets its own seed from it, so runs seeded with
    # torch.manual_seed are reproducible with or without workers.
    return lo + (hi - lo) * torch.rand(()).item()


class ItemTransform:
    """Base class: subclasses implement `plan` (where to crop, what size to produce)."""

    size: tuple[int, int]  # (height, width) of the output
    pad_mode: str = "zeros"

    def plan(self, w: int, h: int, train: bool) -> tuple[Box, tuple[int, int], tuple[int, int, int, int]]:
        """For an upright image of `w` x `h`: the source box, the (width, height) it is resized to,
        and the (left, top, right, bottom) padding that brings that to `size`."""
        raise NotImplementedError

    def __call__(self, src: str | Path | Image.Image | SourceImage, train: bool = False) -> torch.Tensor:
        return self._load(src, train)[0]

    def cover_size(self, w: int, h: int) -> tuple[int, int] | None:
        """The smallest (width, height) a decode of an upright `w` x `h` image needs for every plan this
        transform can make (what the decode cache keeps); None: the full size."""
        return None

    def _load(
        self, src: str | Path | Image.Image | SourceImage, train: bool, plan: Plan | None = None
    ) -> tuple[torch.Tensor, Plan]:
        """The image and its plan: (box, out, pad, (w, h)) in the upright image's pixels. `src` is a file,
        a PIL image, or an opened source (`SourceImage`, or the decode cache's)."""
        with src if hasattr(src, "decode") else SourceImage(src) as source:
            w, h = source.size
            box, out, pad = self.plan(w, h, train) if plan is None else _scaled(plan, w, h)
            # Decode at the smallest draft scale at which the box still has `out` pixels or more.
            pixels = source.pixels(_need(box, out, w, h))
            sx, sy = pixels.shape[1] / w, pixels.shape[0] / h
            px = _whole((box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy), pixels.shape[1], pixels.shape[0])
            x = self._apply(pixels, px, out, pad)
            # The box the image shows, in the upright image's pixels: what its targets are cut by.
            return x, ((px[0] / sx, px[1] / sy, px[2] / sx, px[3] / sy), out, pad, (w, h))

    def pair(self, src: str | Path | Image.Image, y, target: Target, train: bool = False) -> tuple[torch.Tensor, Any]:
        """The image and its target `y` through the same crop, resize and padding: the target's kind
        moves it by the image's plan (`target.item`; quickfit/vision/core/targets.py). Masks come out
        as [H', W'] indices, points and boxes in [-1, 1] of the output, an image target with the same
        relative crop at the output's size; labels pass through."""
        x, plan = self._load(src, train)
        return x, target.item(y, self, plan, train, src)

    def load_with_plan(self, src: Any, train: bool, plan: Plan) -> torch.Tensor:
        """`src` (an image target) cut by the plan of its input: the same relative crop, at the output's size."""
        return self._load(src, train, plan)[0]

    def _apply(
        self, arr: np.ndarray, box: tuple[int, int, int, int], out: tuple[int, int], pad: tuple[int, int, int, int]
    ) -> torch.Tensor:
        """uint8 pixels [H, W, 3] -> the box (whole pixels) resized to `out` (width, height) and padded:
        uint8 [3, H', W']."""
        left, top, right, bottom = box
        # A contiguous, writable copy of the crop (the resize reads it twice as fast as a view) as a
        # [1, 3, h, w] channels-last tensor; the item never shares the decoder's or the cache's memory.
        x = torch.from_numpy(np.array(arr[top:bottom, left:right]))[None].permute(0, 3, 1, 2)
        if x.shape[2:] != (out[1], out[0]):
            # torch's uint8 antialiased bilinear resize, vectorized for channels-last images (the same
            # filter as Pillow's): 0.4 ms from a 375 px crop to 224 px, against Pillow's 1.5 ms here.
            x = F.interpolate(x, size=(out[1], out[0]), mode="bilinear", antialias=True, align_corners=False)
        x = x[0]
        if any(pad):
            left, top, right, bottom = pad
            mode = "reflect" if self.pad_mode == "reflection" else "constant"
            x = torch.from_numpy(np.pad(x.permute(1, 2, 0).numpy(), ((top, bottom), (left, right), (0, 0)), mode=mode))
            x = x.permute(2, 0, 1)
        # [3, H, W] with channels-last strides (as Pillow and the decode cache keep pixels): the loader's
        # collate copies it into the batch as it is, and the float conversion reads that order
        # (quickfit.vision.core.loader).
        return x

    def original_size(self, item: Any) -> tuple[int, int]:
        """(width, height) of `item` (a path or PIL image) upright, from the file's header alone."""
        if isinstance(item, Image.Image):
            return item.size
        with SourceImage(item) as f:
            return f.size

    def points_to_original(self, points: torch.Tensor, item: Any) -> torch.Tensor:
        """Points [k, 2] in [-1, 1] of `item` as the validation plan makes it -> its original pixels."""
        w, h = self.original_size(item)
        box, out, pad = self.plan(w, h, False)
        return unit_to_pixels(points, box, out, pad, self.size)

    def dense_to_original(self, scores: torch.Tensor, item: Any) -> torch.Tensor:
        """Per-pixel scores [C, h, w] of the validation plan's output -> [C, H, W] of the original image.

        The plan (box, resize, padding) is undone with one bilinear resample at every original pixel's
        center; with `Resize(method="crop")` the pixels outside the crop take the nearest predicted ones."""
        w0, h0 = self.original_size(item)
        box, out, pad = self.plan(w0, h0, False)
        _, h, w = scores.shape
        xs = (torch.arange(w0, dtype=torch.float32) + 0.5 - box[0]) * out[0] / (box[2] - box[0]) + pad[0]
        ys = (torch.arange(h0, dtype=torch.float32) + 0.5 - box[1]) * out[1] / (box[3] - box[1]) + pad[1]
        gx, gy = xs * 2 / w - 1, ys * 2 / h - 1  # continuous pixel coordinates -> grid_sample's [-1, 1]
        grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), dim=-1)[None].to(scores.device)
        return F.grid_sample(scores[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)[0]

    def resized(self, size: int | tuple[int, int]) -> ItemTransform:
        """The same transform producing `size` (for progressive resizing)."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """JSON-serializable settings; `item_tfm_from_dict` rebuilds the transform."""
        raise NotImplementedError


def _crop_box(w: int, h: int, out_w: int, out_h: int, train: bool) -> Box:
    """The largest box of the output's aspect ratio; random position in training, else centered."""
    scale = max(out_w / w, out_h / h)
    cw, ch = min(w, out_w / scale), min(h, out_h / scale)
    fx, fy = (_uniform(0, 1), _uniform(0, 1)) if train else (0.5, 0.5)
    x0, y0 = (w - cw) * fx, (h - ch) * fy
    return (x0, y0, x0 + cw, y0 + ch)


class Resize(ItemTransform):
    """Bring every image to `size` ((height, width) or an int for a square).

    method: "crop" scales the short side to fit and crops the rest (random position in training,
    center in validation); "squish" stretches the whole image; "pad" scales the long side to fit and
    pads the rest ("reflection" mirrors the border, "zeros" adds black), keeping the whole image.
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        method: Literal["crop", "squish", "pad"] = "crop",
        pad_mode: Literal["reflection", "zeros"] = "reflection",
    ) -> None:
        if method not in ("crop", "squish", "pad"):
            raise ValueError(f"Resize method must be 'crop', 'squish' or 'pad', got {method!r}")
        if pad_mode not in ("reflection", "zeros"):
            raise ValueError(f"Resize pad_mode must be 'reflection' or 'zeros', got {pad_mode!r}")
        self.size, self.method, self.pad_mode = _pair(size), method, pad_mode

    def plan(self, w: int, h: int, train: bool) -> tuple[Box, tuple[int, int], tuple[int, int, int, int]]:
        out_h, out_w = self.size
        full: Box = (0.0, 0.0, float(w), float(h))
        if self.method == "squish":
            return full, (out_w, out_h), (0, 0, 0, 0)
        if self.method == "crop":
            return _crop_box(w, h, out_w, out_h, train), (out_w, out_h), (0, 0, 0, 0)
        scale = min(out_w / w, out_h / h)
        cw, ch = max(1, min(out_w, round(w * scale))), max(1, min(out_h, round(h * scale)))
        left, top = (out_w - cw) // 2, (out_h - ch) // 2
        return full, (cw, ch), (left, top, out_w - cw - left, out_h - ch - top)

    def cover_size(self, w: int, h: int) -> tuple[int, int] | None:
        box, out, _ = self.plan(w, h, False)  # training moves the box, never changes its size
        return _need(box, out, w, h)

    def resized(self, size: int | tuple[int, int]) -> Resize:
        return Resize(size, self.method, self.pad_mode)

    def to_dict(self) -> dict:
        return {"name": "Resize", "size": list(self.size), "method": self.method, "pad_mode": self.pad_mode}

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, method={self.method!r}, pad_mode={self.pad_mode!r})"


class RandomResizedCrop(ItemTransform):
    """In training, a random crop covering `min_scale` to 100% of the area, with an aspect ratio within
    `ratio` of the output's, resized to `size`; in validation the center crop (as `Resize(size)`).

    It zooms in more than the batch augmentation's `max_zoom`, which helps on small datasets.
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        min_scale: float = 0.35,
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
    ) -> None:
        if not 0 < min_scale <= 1:
            raise ValueError(f"RandomResizedCrop min_scale must be in (0, 1], got {min_scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomResizedCrop ratio must be (low, high) with 0 < low <= high, got {ratio}")
        self.size, self.min_scale, self.ratio = _pair(size), float(min_scale), (float(ratio[0]), float(ratio[1]))

    def plan(self, w: int, h: int, train: bool) -> tuple[Box, tuple[int, int], tuple[int, int, int, int]]:
        out_h, out_w = self.size
        if train:
            for _ in range(10):  # rejection sampling, as torchvision: a few tries, then the center crop
                area = w * h * _uniform(self.min_scale, 1.0)
                aspect = (out_w / out_h) * math.exp(_uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
                cw, ch = math.sqrt(area * aspect), math.sqrt(area / aspect)
                if cw <= w and ch <= h:
                    x0, y0 = _uniform(0, w - cw), _uniform(0, h - ch)
                    return (x0, y0, x0 + cw, y0 + ch), (out_w, out_h), (0, 0, 0, 0)
        return _crop_box(w, h, out_w, out_h, train=False), (out_w, out_h), (0, 0, 0, 0)

    def cover_size(self, w: int, h: int) -> tuple[int, int] | None:
        # The smallest crops (min_scale of the area) at the two extreme aspect ratios need the most pixels.
        out_h, out_w = self.size
        area, scale = w * h * self.min_scale, 0.0
        for r in self.ratio:
            aspect = (out_w / out_h) * r
            scale = max(scale, out_w / math.sqrt(area * aspect), out_h / math.sqrt(area / aspect))
        return math.ceil(w * scale), math.ceil(h * scale)

    def resized(self, size: int | tuple[int, int]) -> RandomResizedCrop:
        return RandomResizedCrop(size, self.min_scale, self.ratio)

    def to_dict(self) -> dict:
        return {
            "name": "RandomResizedCrop",
            "size": list(self.size),
            "min_scale": self.min_scale,
            "ratio": list(self.ratio),
        }

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, min_scale={self.min_scale}, ratio={self.ratio})"


def item_tfm_from_dict(d: dict) -> ItemTransform:
    """Rebuild an item transform from its `to_dict()` (used when loading an exported learner); the size is
    bounded (quickfit.configs.MAX_IMAGE_SIDE): a file's 30000 x 30000 would take 10 GB per image."""
    if not isinstance(d, dict):
        raise ValueError(f"item_tfm must be a JSON object, got {d!r}")
    check_image_size("item_tfm size", d.get("size"))
    size = tuple(d["size"])
    if d.get("name") == "Resize":
        return Resize(size, d.get("method", "crop"), d.get("pad_mode", "reflection"))
    if d.get("name") == "RandomResizedCrop":
        return RandomResizedCrop(size, d.get("min_scale", 0.35), tuple(d.get("ratio", (3 / 4, 4 / 3))))
    raise ValueError(
        f"unknown item transform {d.get('name')!r} in exported settings (known: Resize, RandomResizedCrop)"
    )


def item_tfm_for(
    item_tfms: ItemTransform | Sequence[ItemTransform] | None, size: int | tuple[int, int] | None
) -> ItemTransform:
    """The one item transform: `item_tfms` (a transform or a one-element list), else Resize(size or 224)."""
    if item_tfms is None:
        return Resize(size if size is not None else 224)
    if isinstance(item_tfms, (list, tuple)) and len(item_tfms) == 1:  # fastai's habit: [Resize(224)]
        item_tfms = item_tfms[0]
    if not isinstance(item_tfms, ItemTransform):
        raise TypeError(
            f"item_tfms must be one item transform such as Resize(224) or RandomResizedCrop(224), got {item_tfms!r}"
        )
    if size is not None and tuple(item_tfms.size) != Resize(size).size:
        raise ValueError(f"size={size} disagrees with item_tfms of size {item_tfms.size}; pass one of them")
    return item_tfms
