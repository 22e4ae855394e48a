"""Segmentation metrics, accumulated exactly over the whole validation set.

    from quickfit.vision.segmentation.metrics import pixel_accuracy, mean_iou, dice
    learn = unet_learner(dls, "resnet34", metrics=[pixel_accuracy(void_code=11), mean_iou(void_code=11), dice()])

Each sums counts per batch on the device (correct pixels; per-class intersections and unions) and
computes once at the end, so `mean_iou` is the IoU of the whole set per class (not a mean of batch
or image IoUs), averaged over the classes present (in the targets or the predictions). Predictions
are [B, C, H, W] scores (a single channel [B, 1, H, W] is a binary logit), targets [B, H, W] classes;
pixels whose target is `void_code` count nowhere, and the void class is not averaged (`void_code` is
the name `SegmentationDataLoaders`, `SegmentationLoss` and `Target` use; `ignore=` is its deprecated
old name here).
"""

from __future__ import annotations

import torch

from quickfit.deprecation import renamed_argument
from quickfit.metrics import Metric
from quickfit.vision.segmentation.masks import void_index

__all__ = ["PixelAccuracy", "MeanIoU", "Dice", "pixel_accuracy", "mean_iou", "dice", "confusion_counts"]


def _classes(pred: torch.Tensor, targ: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(predicted class per pixel, number of classes) with the shapes checked."""
    if pred.ndim != 4 or targ.ndim != 3 or pred.shape[0] != targ.shape[0] or pred.shape[2:] != targ.shape[1:]:
        raise ValueError(
            f"segmentation metrics need scores [B, C, H, W] and targets [B, H, W] of the same size; "
            f"got {tuple(pred.shape)} and {tuple(targ.shape)}"
        )
    if pred.shape[1] == 1:
        return (pred[:, 0] > 0).long(), 2
    return pred.argmax(dim=1), int(pred.shape[1])


def _void(void_code: int | str | None, ignore: int | None, where: str) -> int | None:
    void_code = renamed_argument(void_code, ignore, "void_code", "ignore", where, stacklevel=4)
    return void_index(void_code, where=f"{where}: void_code")


def confusion_counts(
    pred_cls: torch.Tensor, targ: torch.Tensor, n: int, void_code: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(intersection, predicted, actual) pixel counts per class [n], over pixels whose target is not `void_code`.

    Weighted index_add instead of boolean indexing and bincount: no CPU-GPU sync per batch."""
    targ = targ.long()
    keep = (targ >= 0) & (targ < n)
    if void_code is not None:
        keep &= targ != void_code
    w = keep.flatten().double()
    p, t = pred_cls.flatten(), targ.clamp(0, n - 1).flatten()
    zeros = lambda: torch.zeros(n, dtype=torch.float64, device=targ.device)
    inter = zeros().index_add_(0, t, w * (p == t))
    return inter, zeros().index_add_(0, p, w), zeros().index_add_(0, t, w)


class PixelAccuracy(Metric):
    """Correct pixels / pixels, void pixels excluded."""

    def __init__(self, void_code: int | None = None) -> None:
        self.void_code, self.name = void_code, "pixel_accuracy"

    def batch_totals(self, pred, targ):
        cls, _ = _classes(pred, targ)
        keep = targ != self.void_code if self.void_code is not None else torch.ones_like(targ, dtype=torch.bool)
        return torch.stack([((cls == targ) & keep).sum(), keep.sum()]).double()

    def compute(self, totals):
        return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")


class _PerClass(Metric):
    """Per-class (intersection, predicted, actual) counts summed over the set; `score` turns them into one value."""

    def __init__(self, void_code: int | None, name: str) -> None:
        self.void_code, self.name = void_code, name

    def batch_totals(self, pred, targ):
        cls, n = _classes(pred, targ)
        return torch.cat(confusion_counts(cls, targ, n, self.void_code)).double()

    def per_class(self, totals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(score per class, bool: the class is present and not void)."""
        inter, pred, actual = totals.view(3, -1)
        present = (pred + actual) > 0
        if self.void_code is not None and 0 <= self.void_code < present.numel():
            present[self.void_code] = False
        return self.score(inter, pred, actual), present

    def compute(self, totals):
        scores, present = self.per_class(totals)
        return float(scores[present].mean()) if present.any() else float("nan")


class MeanIoU(_PerClass):
    """Mean over classes of intersection / union, each summed over the whole set."""

    def __init__(self, void_code: int | None = None) -> None:
        super().__init__(void_code, "mean_iou")

    @staticmethod
    def score(inter, pred, actual):
        return inter / (pred + actual - inter).clamp(min=1)


class Dice(_PerClass):
    """2 |A & B| / (|A| + |B|): of the foreground class for binary masks (one logit channel, or two
    classes, or `binary=True`), else the mean over classes present."""

    def __init__(self, void_code: int | None = None, binary: bool | None = None) -> None:
        super().__init__(void_code, "dice")
        self.binary = binary

    @staticmethod
    def score(inter, pred, actual):
        return 2 * inter / (pred + actual).clamp(min=1)

    def compute(self, totals):
        scores, present = self.per_class(totals)
        n = scores.numel()
        if self.binary or (self.binary is None and n == 2):
            return float(scores[1])
        return float(scores[present].mean()) if present.any() else float("nan")


def pixel_accuracy(void_code: int | None = None, *, ignore: int | None = None) -> PixelAccuracy:
    """Pixel accuracy over the set; pixels of class `void_code` excluded (`ignore`: its deprecated name)."""
    return PixelAccuracy(_void(void_code, ignore, "pixel_accuracy"))


def mean_iou(void_code: int | None = None, *, ignore: int | None = None) -> MeanIoU:
    """Mean intersection over union over the classes present; `void_code` pixels and class excluded."""
    return MeanIoU(_void(void_code, ignore, "mean_iou"))


def dice(void_code: int | None = None, binary: bool | None = None, *, ignore: int | None = None) -> Dice:
    """Dice coefficient: binary (foreground class) or the mean over classes present; `void_code` excluded."""
    return Dice(_void(void_code, ignore, "dice"), binary)
