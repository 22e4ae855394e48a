"""Anchors: the boxes a detector starts from, several per cell of each feature map it predicts on.

    from quickfit.vision.detection.anchors import anchor_boxes
    anchors = anchor_boxes(grids=[(30, 40), (15, 20)], strides=[(8, 8), (16, 16)], sizes=[(32, 32), (64, 64)],
                           image_size=(240, 320))   # [(1200 + 300) * 9, 4] corners in [-1, 1]

Each cell (row i, column j) of a level's grid is centred at ((j + 0.5) * stride_x, (i + 0.5) * stride_y)
pixels and holds one anchor per (scale, aspect ratio): `size * scale` wide and high for ratio 1, the
same area for the others (width / height = ratio). The lesson's 9 per cell are RetinaNet's three scales
(1, 2^(1/3), 2^(2/3)) by three ratios (1/2, 1, 2). Anchors are in [-1, 1] of the image, like the
targets (quickfit/vision/detection/target.py), ordered level by level, cell by cell (rows first), then
scale by scale and ratio by ratio: the order in which `RetinaNet` lays out its predictions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["SCALES", "RATIOS", "cell_anchors", "anchor_boxes"]

SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
RATIOS = (0.5, 1.0, 2.0)


def cell_anchors(size: tuple[float, float], scales: Sequence[float] = SCALES, ratios: Sequence[float] = RATIOS):
    """The (w, h) [k, 2] in pixels of the k = len(scales) * len(ratios) anchors of one cell of `size` (h, w)."""
    h, w = size
    return torch.tensor(
        [[w * s * math.sqrt(r), h * s / math.sqrt(r)] for s in scales for r in ratios], dtype=torch.float32
    )


def anchor_boxes(
    grids: Sequence[tuple[int, int]],
    strides: Sequence[tuple[float, float]],
    sizes: Sequence[tuple[float, float]],
    image_size: tuple[int, int],
    scales: Sequence[float] = SCALES,
    ratios: Sequence[float] = RATIOS,
) -> torch.Tensor:
    """Every anchor of every level: [sum(h * w) * k, 4] corners in [-1, 1] of an image of `image_size` (h, w).

    Per level: `grids` (h, w) cells, `strides` (y, x) pixels between cell centres, `sizes` (h, w) pixels
    of the anchors of scale 1 and ratio 1."""
    if not (len(grids) == len(strides) == len(sizes)):
        raise ValueError(f"anchor_boxes: {len(grids)} grids, {len(strides)} strides and {len(sizes)} sizes")
    img_h, img_w = image_size
    to_unit = torch.tensor([2 / img_w, 2 / img_h, 2 / img_w, 2 / img_h])
    levels = []
    for (gh, gw), (sy, sx), size in zip(grids, strides, sizes):
        cy = (torch.arange(gh, dtype=torch.float32) + 0.5) * sy
        cx = (torch.arange(gw, dtype=torch.float32) + 0.5) * sx
        centres = torch.stack(torch.meshgrid(cx, cy, indexing="xy"), -1).reshape(-1, 1, 2)  # rows first
        wh = cell_anchors(size, scales, ratios)[None]
        boxes = torch.cat([centres - wh / 2, centres + wh / 2], -1).reshape(-1, 4)
        levels.append(boxes * to_unit - 1)
    return torch.cat(levels)
