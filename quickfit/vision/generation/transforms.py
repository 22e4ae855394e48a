"""The image-to-image steps of the one image pipeline: crops of a pair on the workers, the upsampling on the device.

    from quickfit.vision.generation.transforms import PairCrop, Upsample, WholeImage

    tfm = PairCrop(size=128, scale=2)
    x, y = tfm.pair("lr/a.jpg", "hr/a.png", Target("image", lighting=False, normalize=False), train=True)
    # x: uint8 [3, 64, 64], a random crop of the input; y: uint8 [3, 128, 128], the same region of the target
    x = WholeImage()("photo.jpg")                      # a test image as it is, any size
    Upsample(2)(x[None].float() / 255)                 # [1, 3, 2H, 2W]: bicubic, clamped to [0, 1]

Both item transforms plan their crop in the input's pixels; the target's box is that box times `scale`,
so the two crops cover the same region to the pixel (a target a pixel larger than `scale` times its
input, from an odd size, loses that last row or column). Nothing is resampled unless an image is smaller
than the crop (then both are stretched up to it). `quickfit.vision.core.loader.ImageLoader` runs them:
the item transform in its workers, `Upsample` first among the batch transforms, so the geometric
augmentation then moves the upsampled input and its target on one sampling grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from quickfit.vision.core.augment import BatchTransform
from quickfit.vision.core.image import SourceImage
from quickfit.vision.core.targets import Target
from quickfit.vision.core.transforms import ItemTransform
from quickfit.vision.generation.target import ImageTarget

__all__ = ["PairCrop", "WholeImage", "Upsample", "IMAGE_TARGET"]

# What an image-to-image batch's `y` is: an image moved with its input, without the input's lighting
# change or normalization (the generator predicts [0, 1] pixels).
IMAGE_TARGET = ImageTarget(lighting=False, normalize=False)

Box = tuple[float, float, float, float]  # (left, top, right, bottom) in pixels
Source = str | Path | Image.Image | SourceImage


class PairCrop(ItemTransform):
    """A `size / scale` square of the input (random in training, centered in validation) and, with
    `pair`, the `size` square of its target over the same region. `size` must be a multiple of `scale`."""

    def __init__(self, size: int, scale: int) -> None:
        if size % scale:
            raise ValueError(f"size ({size}) must be a multiple of the scale ({scale})")
        side = size // scale
        self.size, self.scale = (side, side), int(scale)  # `size`: the input's (height, width)

    def plan(self, w: int, h: int, train: bool) -> tuple[Box, tuple[int, int], tuple[int, int, int, int]]:
        side = self.size[0]
        cw, ch = min(side, w), min(side, h)  # an image smaller than the crop: all of it, stretched up
        if train:  # whole input pixels, so that the target's box is whole pixels too
            x0 = int(torch.randint(0, w - cw + 1, ()))  # torch's RNG: seeded per DataLoader worker
            y0 = int(torch.randint(0, h - ch + 1, ()))
        else:
            x0, y0 = (w - cw) // 2, (h - ch) // 2
        return (float(x0), float(y0), float(x0 + cw), float(y0 + ch)), (side, side), (0, 0, 0, 0)

    def pair(self, src: Source, y: Any, target: Target, train: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The input's crop and the target image `y`'s crop of the same region, `scale` times its size."""
        x, (box, out, _, _) = self._load(src, train)
        k = self.scale
        region = _Region(tuple(v * k for v in box), (out[0] * k, out[1] * k))
        return x, region(y, train)

    def __repr__(self) -> str:
        return f"PairCrop(size={self.size[0] * self.scale}, scale={self.scale})"


class _Region(ItemTransform):
    """A given box of the image (in its pixels) resized to `out` (width, height): a target's part of a pair."""

    def __init__(self, box: Box, out: tuple[int, int]) -> None:
        self.box, self.out, self.size = box, out, (out[1], out[0])

    def plan(self, w: int, h: int, train: bool) -> tuple[Box, tuple[int, int], tuple[int, int, int, int]]:
        return self.box, self.out, (0, 0, 0, 0)


class WholeImage(ItemTransform):
    """The image as it is, at its own size (test images of an image-to-image model, which takes any size)."""

    def plan(self, w: int, h: int, train: bool) -> tuple[Box, tuple[int, int], tuple[int, int, int, int]]:
        return (0.0, 0.0, float(w), float(h)), (w, h), (0, 0, 0, 0)

    def __repr__(self) -> str:
        return "WholeImage()"


class Upsample(BatchTransform):
    """Bicubic upsampling by `scale`, clamped to [0, 1]: the input a super-resolution model must beat.

    It runs on every batch (not an augmentation) and moves nothing: an image target, already at the
    upsampled size, is left as it is (`BatchTransform.pair`)."""

    train_only = False
    spatial = False

    def __init__(self, scale: int) -> None:
        if scale < 1:
            raise ValueError(f"Upsample: scale must be a positive whole number, got {scale!r}")
        self.scale = int(scale)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return x
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp_(0, 1)

    def to_dict(self) -> dict:
        return {"name": "Upsample", "scale": self.scale}

    def __repr__(self) -> str:
        return f"Upsample({self.scale})"
