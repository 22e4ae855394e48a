"""The target of image-to-image tasks: another image, moved with the input pixel for pixel.

    Target("image")                   # e.g. the high-resolution original of a crappified photo
    Target("image", lighting=True)    # the input's lighting change applies to the target too

It gets the same relative crop as its input (at its own size) in the item transform, and is resampled
bilinearly on the input's grid by the batch augmentation. `lighting`: whether the input's lighting change
applies to it (a colourization task would not); `normalize`: whether it is normalized like the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from quickfit.vision.core.geometry import sampling_grid
from quickfit.vision.core.targets import Target

__all__ = ["ImageTarget"]


@dataclass(frozen=True)
class ImageTarget(Target):
    """Another image per image."""

    kind = "image"
    spatial = True
    lighting: bool = False
    normalize: bool = True

    def item(self, y: Any, tfm: Any, plan: tuple, train: bool, src: Any = None) -> torch.Tensor:
        return tfm.load_with_plan(y, train, plan)

    def collate(self, ys: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(ys))

    def prepare(self, y: torch.Tensor) -> torch.Tensor:
        return y.float().div_(255) if y.dtype == torch.uint8 else y

    def warp(self, y: torch.Tensor, mats: torch.Tensor, grid: torch.Tensor | None, pad_mode: str) -> torch.Tensor:
        h, w = y.shape[-2:]
        if grid is None or tuple(grid.shape[1:3]) != (h, w):
            grid = sampling_grid(mats.to(device=y.device, dtype=torch.float32), h, w)
        return F.grid_sample(y, grid.to(y.dtype), mode="bilinear", padding_mode=pad_mode, align_corners=False)

    def relight(self, y: torch.Tensor, coefficients: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if not self.lighting:
            return y
        c, o = coefficients
        return torch.addcmul(o.to(y.dtype), y, c.to(y.dtype)).clamp_(0.0, 1.0)

    def normalized(self, y: torch.Tensor, normalize: Any) -> torch.Tensor:
        return normalize(y) if self.normalize else y

    def loss(self, dls: Any = None) -> nn.Module:
        return nn.L1Loss()

    def text(self, y: torch.Tensor) -> str:
        return ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "lighting": self.lighting, "normalize": self.normalize}
