"""Non-maximum suppression, per class and batched, in plain torch; a detector's output -> its detections.

    from quickfit.vision.detection.nms import nms, decode_detections
    keep = nms(boxes, scores, 0.5, labels)          # [B, k, 4], [B, k], [B, k] -> bool [B, k]
    dets = decode_detections(out, anchors)          # [B, 100, 6]: x0, y0, x1, y1, class, score; NaN rows pad

Greedy NMS keeps a box unless a kept box of higher score (and the same class) overlaps it by more than
`iou_thresh`. It is sequential by definition, but "kept" is the only fixed point of
keep[j] = not any(keep[i] and overlaps[i, j] for i ranked before j): start from "all kept" and apply that
rule to every box at once (one batched matrix product) until nothing changes. After t rounds the t best
boxes are settled, and in practice chains of suppression are short, so it takes a handful of rounds
(each a CPU-GPU sync to test for the end) instead of one Python step per box. The result is exactly the
sequential algorithm's (tests/vision/test_detection_parts.py checks it against one).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from quickfit.vision.detection.box_ops import box_iou, decode_boxes

__all__ = ["nms", "decoded_outputs", "decode_detections"]


def nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_thresh: float = 0.5,
    labels: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Which boxes [..., k, 4] greedy NMS keeps: bool [..., k], in the input's order.

    `labels` [..., k]: boxes of different labels never suppress each other (per-class NMS). `valid`
    [..., k]: boxes to consider at all (the others are neither kept nor suppress)."""
    squeeze = boxes.dim() == 2
    if squeeze:
        boxes, scores = boxes[None], scores[None]
        labels = labels[None] if labels is not None else None
        valid = valid[None] if valid is not None else None
    k = boxes.shape[1]
    valid = torch.ones_like(scores, dtype=torch.bool) if valid is None else valid.bool()
    order = scores.argsort(dim=1, descending=True, stable=True)
    b = boxes.gather(1, order[..., None].expand(-1, -1, 4)).float()
    ok = valid.gather(1, order)
    overlaps = box_iou(b, b) > iou_thresh  # [B, k, k]: i (higher score) may suppress j
    if labels is not None:
        lab = labels.gather(1, order)
        overlaps &= lab[:, :, None] == lab[:, None, :]
    overlaps &= torch.ones(k, k, dtype=torch.bool, device=b.device).triu(1)
    overlaps &= ok[:, :, None]
    suppressors = overlaps.float()
    keep = ok
    for _ in range(k + 1):
        suppressed = (keep.float()[:, None, :] @ suppressors)[:, 0] > 0
        new = ok & ~suppressed
        if torch.equal(new, keep):
            break
        keep = new
    out = torch.zeros_like(keep).scatter(1, order, keep)
    return out[0] if squeeze else out


def decoded_outputs(out: torch.Tensor, anchors: torch.Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)):
    """A detector's raw output [B, A, 4 + C] (offsets, class logits) -> [B, A, 4 + C]: every anchor's box
    (corners in [-1, 1], clipped to the image) and its class probabilities. No NMS yet: what an ONNX
    export computes (docs/onnx.md runs the NMS after it)."""
    boxes = decode_boxes(out[..., :4].float(), anchors.to(out.device), weights).clamp(-1, 1)
    return torch.cat([boxes, torch.sigmoid(out[..., 4:].float())], -1)


def decode_detections(
    out: torch.Tensor,
    anchors: torch.Tensor,
    score_thresh: float = 0.05,
    nms_iou: float = 0.5,
    max_det: int = 100,
    pre_nms: int = 1000,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
) -> torch.Tensor:
    """A detector's raw output [B, A, 4 + C] -> detections [B, max_det, 6]: (x0, y0, x1, y1) in [-1, 1], class
    index, score; best first, rows of NaN after the last.

    Every (anchor, class) pair is a candidate (an anchor may hold two classes); the `pre_nms` best above
    `score_thresh` go through per-class NMS at `nms_iou`, and the `max_det` best survivors are kept."""
    b, a, width = out.shape
    n_classes = width - 4
    probs = torch.sigmoid(out[..., 4:].float()).reshape(b, a * n_classes)
    # how many candidates the batch needs at most: one sync, and NMS then works on no more than that
    above = int((probs > score_thresh).sum(1).max()) if probs.numel() else 0
    k = max(1, min(pre_nms, a * n_classes, above))
    scores, idx = probs.topk(k, dim=1)
    anchor_idx, labels = idx // n_classes, idx % n_classes
    offsets = out[..., :4].float().gather(1, anchor_idx[..., None].expand(-1, -1, 4))
    boxes = decode_boxes(offsets, anchors.to(out.device)[anchor_idx], weights).clamp(-1, 1)
    valid = (scores > score_thresh) & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    keep = nms(boxes, scores, nms_iou, labels, valid)
    ranked, pick = torch.where(keep, scores, -1.0).topk(min(max_det, k), dim=1)
    rows = torch.cat([boxes.gather(1, pick[..., None].expand(-1, -1, 4)), labels.gather(1, pick)[..., None].float(),
                      scores.gather(1, pick)[..., None]], -1)  # fmt: skip
    rows = torch.where((ranked >= 0)[..., None], rows, float("nan"))
    pad = torch.full((b, max_det - rows.shape[1], 6), float("nan"), device=rows.device)
    return torch.cat([rows, pad], 1)
