"""The target of keypoints: n (x, y) points per image, moved with it.

    Target("points", flip_pairs=((0, 1),))     # a mirror swaps point 0 (left eye) and 1 (right eye)

Points are given in pixels of the original image ((0, 0) its top-left corner, (W, H) its bottom-right
one) and carried in [-1, 1] of the transformed image (quickfit/vision/core/geometry.py). The batch
augmentation moves them by the inverse of the image's sampling matrix. A point that leaves the image keeps
its coordinates beyond +-1 (`outside(points)` flags it); nothing is clipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from quickfit.vision.core.geometry import outside, points_to_unit, warp_points
from quickfit.vision.core.targets import Target

__all__ = ["Points", "PointsLoss"]


@dataclass(frozen=True)
class Points(Target):
    """[n, 2] (x, y) per image; `flip_pairs`: index pairs swapped when an image is mirrored."""

    kind = "points"
    spatial = True
    flip_pairs: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        pairs = tuple(tuple(int(i) for i in p) for p in self.flip_pairs)
        for pair in pairs:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(f"flip_pairs must be pairs of two different point indices, got {pair!r}")
        object.__setattr__(self, "flip_pairs", pairs)  # frozen: the dataclass's way to set a field here

    def item(self, y: Any, tfm: Any, plan: tuple, train: bool, src: Any = None) -> torch.Tensor:
        box, out, pad, _ = plan
        return points_to_unit(y, box, out, pad, tfm.size)

    def collate(self, ys: Sequence[torch.Tensor]) -> torch.Tensor:
        shapes = sorted({tuple(y.shape) for y in ys})
        if len(shapes) > 1:
            raise ValueError(f"every image needs the same number of points; this batch has shapes {shapes}")
        return torch.stack(list(ys))

    def warp(self, y: torch.Tensor, mats: torch.Tensor, grid: torch.Tensor | None, pad_mode: str) -> torch.Tensor:
        return warp_points(y, mats, self.flip_pairs)

    def loss(self, dls: Any = None) -> nn.Module:
        return PointsLoss()

    def decode(self, pred: torch.Tensor, thresh: float = 0.5) -> tuple[Any, Any, torch.Tensor]:
        pred = pred.detach().cpu().reshape(-1, 2)
        return pred, None, pred

    def text(self, y: torch.Tensor) -> str:
        return ""  # the points are drawn

    def predict(self, pred: torch.Tensor, item: Any, item_tfm: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """`(points, raw)`: points [k, 2] in the original image's pixels, raw [k, 2] in [-1, 1]."""
        unit = pred.detach().cpu().reshape(-1, 2)
        return item_tfm.points_to_original(unit, item), unit

    def report(self, result: Any, item: Any, out_dir: Any) -> str:
        points, _ = result
        return "points (x, y) in pixels: " + ", ".join(f"({x:.1f}, {y:.1f})" for x, y in points.tolist())

    def draw(self, ax: Any, y: torch.Tensor, size: tuple[int, int], pred: bool = False) -> None:
        """The points inside the image: a target's as green +, a prediction's as red x."""
        h, w = size
        p = torch.as_tensor(y).detach().cpu().float().reshape(-1, 2)
        p = p[~outside(p)]
        style = dict(c="red", marker="x") if pred else dict(c="lime", marker="+")
        ax.scatter((p[:, 0] + 1) * w / 2 - 0.5, (p[:, 1] + 1) * h / 2 - 0.5, s=40, **style)


class PointsLoss(nn.Module):
    """Mean squared error between predicted [B, 2k] and target [B, k, 2] points (in [-1, 1]).

    `ignore_outside=True` leaves out points that the augmentation moved off the image."""

    def __init__(self, ignore_outside: bool = False) -> None:
        super().__init__()
        self.ignore_outside = ignore_outside

    def forward(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        if pred.numel() != targ.numel():
            raise ValueError(f"PointsLoss: {tuple(pred.shape)} predictions for {tuple(targ.shape)} points")
        pred = pred.reshape(targ.shape).float()
        if not self.ignore_outside:
            return F.mse_loss(pred, targ.float())
        keep = (~outside(targ)).unsqueeze(-1).float()
        return ((pred - targ) ** 2 * keep).sum() / (keep.sum() * 2).clamp(min=1)
