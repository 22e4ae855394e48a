"""The detector's loss: anchors matched to the boxes by IoU, focal loss on the classes, smooth L1 on the offsets.

    from quickfit.vision.detection.loss import DetectionLoss
    loss_func = DetectionLoss(anchors)           # anchors [A, 4] in [-1, 1] (model.anchors())
    loss = loss_func(out, y)                     # out [B, A, 4 + C] (offsets, class logits), y [B, n, 5]
    detections = loss_func.activation(out)       # [B, max_det, 6] after NMS (quickfit/vision/detection/nms.py)

Matching (RetinaNet's): an anchor whose best IoU with a box is at least `pos_iou` (0.5) learns that box
and its class, one below `neg_iou` (0.4) learns "nothing here" (every class 0), one in between is
ignored; and every box gets its best anchor, however low their IoU. The classes are independent sigmoids
(no background class) under the focal loss (gamma 2, alpha 0.25): the many easy background anchors add
little. The offsets of the positive anchors (box_ops.encode_boxes) learn under smooth L1. Both sums are
divided by the number of positive anchors in the batch. Everything is batched tensor work: no loop over
images or boxes, and no CPU-GPU sync.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from quickfit.vision.detection.box_ops import box_iou, encode_boxes
from quickfit.vision.detection.nms import decode_detections, decoded_outputs

__all__ = ["match_anchors", "focal_loss", "DetectionLoss", "IGNORE", "BACKGROUND"]

BACKGROUND, IGNORE = -1, -2


def match_anchors(anchors: torch.Tensor, boxes: torch.Tensor, pos_iou: float = 0.5, neg_iou: float = 0.4):
    """For each anchor [A, 4] the index of the box [B, n, 4] (NaN rows: no box) it learns: [B, A] int64,
    `BACKGROUND` (-1) below `neg_iou`, `IGNORE` (-2) between `neg_iou` and `pos_iou`.

    Each box also gets its single best anchor (an anchor that two boxes want takes the one it overlaps most)."""
    b, n = boxes.shape[:2]
    if n == 0:
        return torch.full((b, anchors.shape[0]), BACKGROUND, dtype=torch.long, device=boxes.device)
    valid = ~boxes[..., 0].isnan()  # [B, n]
    iou = box_iou(anchors[None].to(boxes.dtype), boxes.nan_to_num(0.0))  # [B, A, n]
    iou.masked_fill_(~valid[:, None, :], -1.0)
    best_iou, best_box = iou.max(dim=2)  # per anchor
    matched = torch.where(best_iou >= pos_iou, best_box, torch.where(best_iou < neg_iou, BACKGROUND, IGNORE))
    # every box's own best anchor is positive too (a missing box marks a spare column, then dropped); an
    # anchor that two boxes want takes the one it overlaps most, as for the others
    slot = torch.where(valid, iou.argmax(dim=1), anchors.shape[0])  # [B, n]
    forced = torch.zeros(b, anchors.shape[0] + 1, dtype=torch.bool, device=boxes.device)
    forced = forced.scatter(1, slot, True)[:, :-1]
    return torch.where(forced, best_box, matched)


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Elementwise -alpha_t (1 - p_t)^gamma log(p_t) of sigmoid probabilities (Lin et al., 2017), with
    p_t = p for a target of 1 and 1 - p for 0, alpha_t = alpha and 1 - alpha (alpha < 0: no weighting)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # -log(p_t), stable
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


class DetectionLoss(nn.Module):
    """Focal loss on the classes plus `box_weight` times smooth L1 (`beta`) on the offsets of the anchors
    matched by `match_anchors`; see the module docstring. Its `activation` turns a model's output into
    detections: boxes, classes and scores after a `score_thresh`, per-class NMS at `nms_iou`, `max_det` kept
    per image (`decode_detections`)."""

    def __init__(
        self,
        anchors: torch.Tensor,
        pos_iou: float = 0.5,
        neg_iou: float = 0.4,
        alpha: float = 0.25,
        gamma: float = 2.0,
        box_weight: float = 1.0,
        beta: float = 1 / 9,
        weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        score_thresh: float = 0.05,
        nms_iou: float = 0.5,
        max_det: int = 100,
        pre_nms: int = 1000,
    ) -> None:
        super().__init__()
        if not 0 < neg_iou <= pos_iou <= 1:
            raise ValueError(f"DetectionLoss: need 0 < neg_iou <= pos_iou <= 1, got {neg_iou} and {pos_iou}")
        self.register_buffer("anchors", torch.as_tensor(anchors, dtype=torch.float32).reshape(-1, 4), persistent=False)
        self.pos_iou, self.neg_iou, self.alpha, self.gamma = pos_iou, neg_iou, alpha, gamma
        self.box_weight, self.beta, self.weights = box_weight, beta, tuple(float(w) for w in weights)
        self.score_thresh, self.nms_iou, self.max_det, self.pre_nms = score_thresh, nms_iou, max_det, pre_nms
        self._last: tuple = (lambda: None, -1, None)  # (weak reference to an output, its version, detections)

    def _anchors_for(self, out: torch.Tensor) -> torch.Tensor:
        if out.shape[1] != self.anchors.shape[0]:
            raise ValueError(
                f"DetectionLoss: the model predicts for {out.shape[1]} anchors, the loss has {self.anchors.shape[0]}: "
                "the images are not of the size the detector was built for"
            )
        if self.anchors.device != out.device:  # the Learner moves the model, not the loss
            self.anchors = self.anchors.to(out.device)
        return self.anchors

    def forward(self, out: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        anchors = self._anchors_for(out)
        out, targ = out.float(), targ.float()
        n_classes = out.shape[-1] - 4
        if targ.shape[-1] != 5:
            raise ValueError(f"DetectionLoss: targets are [B, n, 5] (x0, y0, x1, y1, label), not {tuple(targ.shape)}")
        matched = match_anchors(anchors, targ[..., :4], self.pos_iou, self.neg_iou)  # [B, A]
        pos = matched >= 0
        gathered = targ.gather(1, matched.clamp(min=0)[..., None].expand(-1, -1, 5)).nan_to_num(0.0)  # [B, A, 5]
        n_pos = pos.sum().clamp(min=1).float()
        onehot = F.one_hot(gathered[..., 4].long().clamp(0, n_classes - 1), n_classes).float() * pos[..., None]
        cls = focal_loss(out[..., 4:], onehot, self.alpha, self.gamma) * (matched != IGNORE)[..., None]
        offsets = encode_boxes(gathered[..., :4], anchors.expand_as(gathered[..., :4]), self.weights)
        offsets = torch.where(pos[..., None], offsets, out[..., :4].detach())  # no loss where not positive
        box = F.smooth_l1_loss(out[..., :4], offsets, beta=self.beta, reduction="none") * pos[..., None]
        return (cls.sum() + self.box_weight * box.sum()) / n_pos

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """Detections [B, max_det, 6] (x0, y0, x1, y1 in [-1, 1], class index, score), NaN rows padding.

        The last result is kept for the same output tensor: two mAP metrics of one batch decode it once."""
        ref, version, result = self._last
        if ref() is out and version == out._version:
            return result
        result = decode_detections(
            out, self._anchors_for(out), self.score_thresh, self.nms_iou, self.max_det, self.pre_nms, self.weights
        )
        self._last = (weakref.ref(out), out._version, result)
        return result

    def onnx_activation(self, out: torch.Tensor) -> torch.Tensor:
        """What an ONNX export ends with: every anchor's box and class probabilities [B, A, 4 + C] (no NMS, whose
        data-dependent loop does not trace; docs/onnx.md runs it after the graph)."""
        return decoded_outputs(out, self._anchors_for(out), self.weights)

    def settings(self) -> dict:
        """The loss's and decoding's settings, as JSON values (what an export records)."""
        keys = ("pos_iou", "neg_iou", "alpha", "gamma", "box_weight", "beta", "score_thresh", "nms_iou", "max_det",
                "pre_nms")  # fmt: skip
        return {**{k: getattr(self, k) for k in keys}, "weights": list(self.weights)}
