"""Boxes as tensors: areas, IoU, and the offsets a detector learns (a box relative to its anchor).

    from quickfit.vision.detection.box_ops import box_iou, encode_boxes, decode_boxes
    iou = box_iou(anchors, gt)                  # [A, 4] x [n, 4] -> [A, n]; batched: [B, A, 4] x [B, n, 4]
    t = encode_boxes(gt_per_anchor, anchors)    # [..., 4] offsets (dx, dy, dw, dh)
    decode_boxes(t, anchors)                    # the boxes back

Boxes are corners (x0, y0, x1, y1), in any unit: IoU and the offsets are ratios of lengths, so a box in
[-1, 1] of a non-square image has the IoU and offsets it has in pixels. The offsets are Faster R-CNN's:
the centre's shift in anchor widths / heights and the log of the size ratios, divided by `weights`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["box_area", "box_iou", "to_center", "to_corners", "encode_boxes", "decode_boxes"]

# exp() of a decoded log-size is capped: an untrained head's large outputs would otherwise overflow
_MAX_LOG_RATIO = math.log(1000.0 / 16)


def box_area(b: torch.Tensor) -> torch.Tensor:
    """Areas of boxes [..., 4] (0 for an inverted box)."""
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every box of `a` [..., n, 4] with every box of `b` [..., m, 4]: [..., n, m].

    Leading dimensions broadcast (a batch of images). A pair of empty boxes has IoU 0, a NaN box NaN. The
    [..., n, m] temporaries are few and updated in place (matching a batch to its anchors makes millions of
    pairs, and on a CPU allocating them costs more than the arithmetic)."""
    a, b = a[..., :, None, :], b[..., None, :, :]
    inter = torch.minimum(a[..., 2], b[..., 2]).sub_(torch.maximum(a[..., 0], b[..., 0])).clamp_(min=0)
    inter.mul_(torch.minimum(a[..., 3], b[..., 3]).sub_(torch.maximum(a[..., 1], b[..., 1])).clamp_(min=0))
    union = (box_area(a) + box_area(b)).sub_(inter)
    return inter.div_(union.clamp_(min=torch.finfo(union.dtype).tiny))


def to_center(b: torch.Tensor) -> torch.Tensor:
    """(x0, y0, x1, y1) -> (cx, cy, w, h)."""
    return torch.cat([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], -1)


def to_corners(c: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) -> (x0, y0, x1, y1)."""
    return torch.cat([c[..., :2] - c[..., 2:] / 2, c[..., :2] + c[..., 2:] / 2], -1)


def encode_boxes(boxes: torch.Tensor, anchors: torch.Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)):
    """The offsets [..., 4] that take each anchor to its box (both [..., 4] corners, broadcasting)."""
    b, a = to_center(boxes), to_center(anchors)
    w = torch.as_tensor(weights, dtype=b.dtype, device=b.device)
    d = torch.cat([(b[..., :2] - a[..., :2]) / a[..., 2:], torch.log(b[..., 2:] / a[..., 2:])], -1)
    return d * w


def decode_boxes(offsets: torch.Tensor, anchors: torch.Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)):
    """The boxes (corners) the `offsets` [..., 4] make of the `anchors` [..., 4]: `encode_boxes` undone."""
    a = to_center(anchors.to(offsets.dtype))
    d = offsets / torch.as_tensor(weights, dtype=offsets.dtype, device=offsets.device)
    centre = a[..., :2] + d[..., :2] * a[..., 2:]
    size = a[..., 2:] * torch.exp(d[..., 2:].clamp(max=_MAX_LOG_RATIO))
    return to_corners(torch.cat([centre, size], -1))
