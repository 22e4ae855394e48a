"""Where does the U-Net go wrong? Per-class IoU, the worst images, colour-coded overlays.

    from quickfit.vision import SegmentationInterpretation
    interp = SegmentationInterpretation.from_learner(learn)   # validation images, at their original size
    print(interp.iou_table())       # class, IoU, pixel share, predicted share
    interp.mean_iou, interp.pixel_accuracy
    interp.worst(3)                 # [(image path, its mean IoU), ...]
    interp.plot_worst(3)            # image | target | prediction, with a legend of the codes

Predictions are made at the model's size, then brought back to each image's original size (the
item transform undone) and compared with the mask as stored: the numbers are those of the original
masks, void pixels excluded. Counts are summed over the whole set before dividing (as `mean_iou`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from quickfit.vision.segmentation.display import _overlay, code_legend, mask_colours
from quickfit.vision.segmentation.masks import load_mask
from quickfit.vision.segmentation.metrics import confusion_counts

__all__ = ["SegmentationInterpretation"]


class SegmentationInterpretation:
    """Confusion counts and per-image scores of a U-Net on labelled images, at their original size."""

    def __init__(self, learn, paths: list, masks: list, preds: list[np.ndarray], counts: torch.Tensor) -> None:
        self.learn, self.paths, self.masks, self.preds = learn, paths, masks, preds
        self.codes, self.void = list(learn.dls.codes), learn.dls.void_code
        self.counts = counts  # [n_images, 3, C]: intersection, predicted, actual per class

    @classmethod
    def from_learner(cls, learn, items=None, bs: int | None = None) -> SegmentationInterpretation:
        """Run the model over `items` (an `ImageItems` of images and masks; the validation set by default)."""
        items = learn.dls.valid_items if items is None else items
        if items.targets is None:
            raise ValueError("SegmentationInterpretation needs images with masks; these items have none")
        target, n = learn.dls.target, learn.dls.c
        preds, counts = [], []
        for (mask, _), mask_src in zip(learn.predict_many(items.paths, bs=bs), items.targets):
            truth = torch.from_numpy(load_mask(mask_src, target).astype(np.int64))
            counts.append(torch.stack(confusion_counts(mask, truth, n, target.void_code)))
            preds.append(mask.numpy().astype(np.uint8 if n <= 256 else np.int32))
        return cls(learn, list(items.paths), list(items.targets), preds, torch.stack(counts))

    def _classes(self) -> list[int]:
        inter, pred, actual = self.counts.sum(0)
        return [c for c in range(len(self.codes)) if c != self.void and pred[c] + actual[c] > 0]

    def per_class_iou(self) -> dict[str, float]:
        """IoU of each class present (in the masks or the predictions), void excluded."""
        inter, pred, actual = self.counts.sum(0)
        return {self.codes[c]: float(inter[c] / (pred[c] + actual[c] - inter[c])) for c in self._classes()}

    @property
    def mean_iou(self) -> float:
        ious = list(self.per_class_iou().values())
        return float(np.mean(ious)) if ious else float("nan")

    @property
    def pixel_accuracy(self) -> float:
        inter, _, actual = self.counts.sum(0)
        return float(inter.sum() / actual.sum())

    def iou_table(self) -> str:
        """A text table: class, IoU, share of the target pixels, share of the predicted pixels."""
        inter, pred, actual = self.counts.sum(0)
        w = max([14] + [len(self.codes[c]) + 2 for c in self._classes()])  # CartLuggagePram, MotorcycleScooter
        lines = [f"{'class':<{w}}{'IoU':>8}{'pixels':>9}{'predicted':>11}"]
        for c in self._classes():
            iou = inter[c] / (pred[c] + actual[c] - inter[c])
            lines.append(
                f"{self.codes[c]:<{w}}{float(iou):>8.3f}{float(actual[c] / actual.sum()):>9.1%}"
                f"{float(pred[c] / pred.sum()):>11.1%}"
            )
        lines.append(
            f"{'mean IoU':<{w}}{self.mean_iou:>8.3f}   pixel accuracy {self.pixel_accuracy:.1%} (void excluded)"
        )
        return "\n".join(lines)

    def image_iou(self) -> torch.Tensor:
        """Each image's mean IoU over the classes present in it (its mask or its prediction)."""
        inter, pred, actual = self.counts.unbind(1)
        union = pred + actual - inter
        present = union > 0
        if self.void is not None and self.void < present.shape[1]:
            present[:, self.void] = False
        iou = torch.where(present, inter / union.clamp(min=1), torch.zeros_like(inter))
        return iou.sum(1) / present.sum(1).clamp(min=1)

    def worst(self, k: int = 3) -> list[tuple[Path, float]]:
        """The `k` images with the lowest mean IoU, worst first."""
        scores = self.image_iou()
        order = scores.argsort()[:k].tolist()
        return [(self.paths[i], float(scores[i])) for i in order]

    def plot_worst(self, k: int = 3):
        """Image, target and prediction overlays of the `k` worst images, with a legend of the codes."""
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch

        from quickfit.vision.core.image import load_image

        colours = mask_colours(len(self.codes))
        scores = self.image_iou()
        order = scores.argsort()[:k].tolist()
        fig, axes = plt.subplots(len(order), 3, figsize=(10, 2.8 * len(order)), squeeze=False)
        for row, i in zip(axes, order):
            img = np.asarray(load_image(self.paths[i]), dtype=np.float32) / 255
            truth = load_mask(self.masks[i], self.learn.dls.target)
            for ax, (title, m) in zip(row, [("image", None), ("target", truth), ("prediction", self.preds[i])]):
                ax.imshow(img if m is None else _overlay(img, m, colours, self.void))
                ax.set_title(
                    f"{Path(self.paths[i]).name}: IoU {float(scores[i]):.2f}" if m is None else title, fontsize=8
                )
                ax.axis("off")
        handles = [Patch(color=colours[c], label=self.codes[c]) for c in self._classes()]
        code_legend(fig, handles)
        return fig
