"""Mean average precision of detections, as COCO computes it (pycocotools' COCOeval, bbox, area "all").

    import quickfit as qf
    from quickfit.vision.detection.metrics import detection_ap, map50, coco_map
    learn = detection_learner(dls)                       # metrics: map50 and coco_map of its own detections
    dets, targs = learn.get_preds()                      # [N, 100, 6] detections, [N, n, 5] boxes
    ap = detection_ap(dets, targs)                       # [10, C]: AP per IoU threshold .5:.95 and class
    ap[0]                                                # each class's AP at IoU 0.5
    ap.nanmean(1).mean()                                 # COCO's mAP (classes without boxes left out)

For each image and class, detections (best first, at most `max_dets`) are matched greedily to the
unmatched box they overlap most, if by at least the IoU threshold; a class's detections of all images,
sorted by score, give its precision-recall curve; its AP is the mean of the interpolated precision at
the 101 recalls 0, 0.01, ..., 1. mAP is the mean over the classes that have boxes (and for COCO's,
over the IoU thresholds .5, .55, ..., .95). The greedy matching is sequential, but like NMS
(quickfit/vision/detection/nms.py) it is the fixed point of a rule applied to all detections at once;
the tests check the values against pycocotools to 1e-6.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from quickfit.metrics import Metric
from quickfit.vision.detection.box_ops import box_iou

__all__ = ["COCO_IOUS", "detection_ap", "DetectionMAP", "map50", "coco_map"]

COCO_IOUS = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))  # COCOeval's own floats
_RECALLS = torch.from_numpy(np.linspace(0.0, 1.0, 101))

Rows = torch.Tensor | Sequence[torch.Tensor]


def _flat(rows: Rows, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image rows ([N, k, w] padded with NaN rows, or a list of [k_i, w]) -> (rows [n, w], image index [n])."""
    if isinstance(rows, torch.Tensor):
        rows = list(rows) if rows.dim() == 3 else [rows]
    rows = [torch.as_tensor(r).detach().cpu().double().reshape(-1, torch.as_tensor(r).shape[-1] if len(r) else width)
            for r in rows]  # fmt: skip
    if any(r.shape[1] < width for r in rows if len(r)):
        raise ValueError(f"detection_ap: rows need {width} columns, got {sorted({r.shape[1] for r in rows})}")
    img = torch.cat([torch.full((len(r),), i, dtype=torch.long) for i, r in enumerate(rows)] + [torch.zeros(0).long()])
    flat = torch.cat([r[:, :width] for r in rows] + [torch.zeros(0, width, dtype=torch.float64)])
    keep = ~flat[:, 0].isnan()
    return flat[keep], img[keep]


def _rank_in_group(group: torch.Tensor) -> torch.Tensor:
    """For sorted group ids, each entry's position within its group."""
    first = torch.searchsorted(group, group, side="left")
    return torch.arange(len(group)) - first


def _greedy_match(iou: torch.Tensor, thresholds: Sequence[float]) -> torch.Tensor:
    """COCO's matching of detections [P, D] (each group's best first) to boxes [P, G] by `iou` [P, D, G]
    (NaN: no pair): for each threshold, the box each detection takes (-1: none) [T, P, D]."""
    t = torch.tensor([min(x, 1 - 1e-10) for x in thresholds], dtype=iou.dtype)
    cand = iou.nan_to_num(-1.0)[None] >= t[:, None, None, None]  # [T, P, D, G]
    n_gt = iou.shape[-1]
    assign = torch.full(cand.shape[:-1], -1, dtype=torch.long)
    for _ in range(iou.shape[1] + 1):  # settles one more detection per round at worst; usually a few rounds
        taken = torch.zeros_like(cand).scatter_(-1, assign.clamp(min=0)[..., None], (assign >= 0)[..., None])
        before = (taken.long().cumsum(2) - taken.long()) > 0  # taken by a better detection of the group
        free = cand & ~before
        best = torch.where(free, iou[None], -1.0).flip(-1).argmax(-1)  # COCOeval keeps the last of equal IoUs
        new = torch.where(free.any(-1), n_gt - 1 - best, -1)
        if torch.equal(new, assign):
            break
        assign = new
    return assign


def _class_ap(tp: torch.Tensor, scores: torch.Tensor, n_gt: int) -> torch.Tensor:
    """AP [T] of one class from its detections' hits `tp` [T, n] (any order) and `scores` [n]."""
    if tp.shape[1] == 0:
        return torch.zeros(tp.shape[0], dtype=torch.float64)
    order = torch.argsort(-scores, stable=True)
    tp = tp[:, order].double()
    tps, fps = tp.cumsum(1), (1 - tp).cumsum(1)
    recall = tps / n_gt
    precision = tps / (tps + fps + np.spacing(1))
    precision = precision.flip(1).cummax(1).values.flip(1)  # the best precision at this recall or beyond
    idx = torch.searchsorted(recall.contiguous(), _RECALLS.expand(len(tp), -1).contiguous(), side="left")
    q = torch.where(idx < tp.shape[1], precision.gather(1, idx.clamp(max=tp.shape[1] - 1)), 0.0)
    return q.mean(1)


def detection_ap(
    dets: Rows,
    targs: Rows,
    iou_thresholds: Sequence[float] = COCO_IOUS,
    max_dets: int = 100,
    n_classes: int | None = None,
) -> torch.Tensor:
    """AP [T, C] per IoU threshold and class (NaN for a class without boxes) of detections against boxes.

    `dets`: per image rows (x0, y0, x1, y1, class index, score), as [N, k, 6] padded with NaN rows (what a
    detection learner's `get_preds` returns) or a list of [k_i, 6]; `targs`: per image (x0, y0, x1, y1,
    class index), [N, n, 5] or a list. Boxes in any one unit (IoU is a ratio). At most `max_dets`
    detections per image and class count, as in COCOeval."""
    d, d_img = _flat(dets, 6)
    g, g_img = _flat(targs, 5)
    n_images = [len(r) if not isinstance(r, torch.Tensor) or r.dim() == 3 else 1 for r in (dets, targs)]
    if n_images[0] != n_images[1]:
        raise ValueError(f"detection_ap: detections of {n_images[0]} images but boxes of {n_images[1]}")
    d_lab, g_lab = d[:, 4].long(), g[:, 4].long()
    if n_classes is None:
        n_classes = max(int(d_lab.max()) + 1 if len(d) else 0, int(g_lab.max()) + 1 if len(g) else 0)
    ap = torch.full((len(iou_thresholds), n_classes), float("nan"), dtype=torch.float64)
    if n_classes == 0 or len(g) == 0:
        return ap
    # detections by (image, class) group, best first (ties in their given order), the first max_dets kept
    order = torch.argsort(-d[:, 5], stable=True)
    d, d_img, d_lab = d[order], d_img[order], d_lab[order]
    d_group = d_img * n_classes + d_lab
    order = torch.argsort(d_group, stable=True)
    d, d_img, d_lab, d_group = d[order], d_img[order], d_lab[order], d_group[order]
    d_rank = _rank_in_group(d_group)
    keep = d_rank < max_dets
    d, d_lab, d_group, d_rank = d[keep], d_lab[keep], d_group[keep], d_rank[keep]
    g_group = g_img * n_classes + g_lab
    order = torch.argsort(g_group, stable=True)
    g, g_lab, g_group = g[order], g_lab[order], g_group[order]
    g_rank = _rank_in_group(g_group)
    # dense [groups, detections, boxes] IoU, then the matching
    groups, where = torch.unique(torch.cat([d_group, g_group]), return_inverse=True)
    d_p, g_p = where[: len(d)], where[len(d) :]
    n_d = int(d_rank.max()) + 1 if len(d) else 1
    n_g = int(g_rank.max()) + 1
    dense_d = torch.full((len(groups), n_d, 4), float("nan"), dtype=torch.float64)
    dense_g = torch.full((len(groups), n_g, 4), float("nan"), dtype=torch.float64)
    dense_d[d_p, d_rank] = d[:, :4]
    dense_g[g_p, g_rank] = g[:, :4]
    assign = _greedy_match(box_iou(dense_d, dense_g), iou_thresholds)
    tp = assign[:, d_p, d_rank] >= 0  # [T, detections]
    for c in range(n_classes):
        n_gt = int((g_lab == c).sum())
        if n_gt:
            mine = d_lab == c
            ap[:, c] = _class_ap(tp[:, mine], d[mine, 5], n_gt)
    return ap


class DetectionMAP(Metric):
    """mAP over `iou_thresholds` (COCO's .5:.95 by default; (0.5,) for mAP@0.5) in the epoch table.

    `decode` turns the model's raw output into detections [B, k, 6] (a `DetectionLoss`'s `activation`);
    None: the predictions are detections already. The value is exact over the whole validation set (the
    detections are kept until the end). Under DDP each rank reports its own images' mAP."""

    def __init__(
        self,
        decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
        iou_thresholds: Sequence[float] = COCO_IOUS,
        name: str = "mAP",
        max_dets: int = 100,
    ) -> None:
        self.decode, self.iou_thresholds, self.name, self.max_dets = decode, tuple(iou_thresholds), name, max_dets
        self.reset()

    def reset(self) -> None:
        self.totals = None
        self._dets: list[torch.Tensor] = []
        self._targs: list[torch.Tensor] = []

    def accumulate(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        with torch.no_grad():  # kept on the device until the end: no sync per batch
            self._dets.extend(self.decode(pred) if self.decode is not None else pred.detach())
            self._targs.extend(targ.detach())

    @property
    def value(self) -> float | None:
        if not self._targs:
            return None
        ap = detection_ap(self._dets, self._targs, self.iou_thresholds, self.max_dets)
        per_threshold = ap.nanmean(1)
        return float(per_threshold.mean()) if not per_threshold.isnan().all() else float("nan")

    def __call__(self, pred: torch.Tensor, targ: torch.Tensor) -> float:
        was = (self._dets, self._targs)
        self.reset()
        try:
            self.accumulate(pred, targ)
            return self.value
        finally:
            self._dets, self._targs = was


def map50(decode: Callable[[torch.Tensor], torch.Tensor] | None = None) -> DetectionMAP:
    """mAP at IoU 0.5 (the PASCAL VOC measure, with COCO's 101-point interpolation), named "mAP50"."""
    return DetectionMAP(decode, (0.5,), "mAP50")


def coco_map(decode: Callable[[torch.Tensor], torch.Tensor] | None = None) -> DetectionMAP:
    """COCO's mAP, averaged over IoU 0.5, 0.55, ..., 0.95, named "mAP"."""
    return DetectionMAP(decode, COCO_IOUS, "mAP")
