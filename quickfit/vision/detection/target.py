"""The target of object detection: any number of boxes per image, each with its label.

    Target("boxes", vocab=("Platelets", "RBC", "WBC"))
    # one image's y: boxes [n, 4] (x0, y0, x1, y1) in pixels of the original image, and their labels
    # (names or indices), as a pair (boxes, labels), or as rows [n, 5] (x0, y0, x1, y1, label index)

In a batch the boxes are [B, n, 5] (x0, y0, x1, y1 in [-1, 1] of the transformed image, then the label
index), padded to the image with the most boxes by rows of NaN. A box moved by the augmentation becomes
the box enclosing its moved corners, clipped to the image; a box with nothing left becomes a row of NaN,
label included: a row of NaN is "no box". Without labels (y [n, 4]) the rows are [n, 4].
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from quickfit.vision.core.geometry import boxes_to_unit, warp_boxes
from quickfit.vision.core.targets import Target

__all__ = ["Boxes"]


@dataclass(frozen=True)
class Boxes(Target):
    """Boxes with labels (indices into `vocab`), a variable number per image."""

    kind = "boxes"
    spatial = True
    vocab: tuple[str, ...] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.vocab is not None:  # frozen: the dataclass's own way to set a field after __init__
            object.__setattr__(self, "vocab", tuple(str(v) for v in self.vocab))

    def _labels(self, labels: Any, n: int) -> torch.Tensor:
        if isinstance(labels, torch.Tensor):
            out = labels.float().reshape(-1)
        else:
            values = list(labels)
            if values and isinstance(values[0], str):
                if self.vocab is None or any(v not in self.vocab for v in values):
                    unknown = sorted({v for v in values if self.vocab is None or v not in self.vocab})
                    raise ValueError(f"box labels {unknown} are not in the vocab {list(self.vocab or [])}")
                values = [self.vocab.index(v) for v in values]
            out = torch.tensor(values, dtype=torch.float32).reshape(-1)
        if out.numel() != n:
            raise ValueError(f"{n} boxes but {out.numel()} labels")
        return out

    def item(self, y: Any, tfm: Any, plan: tuple, train: bool, src: Any = None) -> torch.Tensor:
        if isinstance(y, (tuple, list)) and len(y) == 2 and not isinstance(y[0], (int, float)):
            boxes, labels = torch.as_tensor(y[0], dtype=torch.float32).reshape(-1, 4), y[1]
        else:
            rows = torch.as_tensor(y, dtype=torch.float32)
            rows = rows.reshape(-1, rows.shape[-1] if rows.numel() else 4)
            boxes, labels = rows[:, :4], (rows[:, 4] if rows.shape[1] == 5 else None)
        box, out, pad, _ = plan
        unit = boxes_to_unit(boxes, box, out, pad, tfm.size)
        if labels is None:
            return unit
        labels = self._labels(labels, unit.shape[0])
        return torch.cat([unit, torch.where(unit[:, :1].isnan(), float("nan"), labels[:, None])], 1)

    def collate(self, ys: Sequence[torch.Tensor]) -> torch.Tensor:
        n = max(int(y.shape[0]) for y in ys)
        cols = max((int(y.shape[1]) for y in ys if y.dim() == 2), default=4)
        out = torch.full((len(ys), n, cols), float("nan"))
        for i, y in enumerate(ys):
            out[i, : y.shape[0]] = y
        return out

    def warp(self, y: torch.Tensor, mats: torch.Tensor, grid: torch.Tensor | None, pad_mode: str) -> torch.Tensor:
        moved = warp_boxes(y[..., :4], mats)
        if y.shape[-1] == 4:
            return moved
        return torch.cat([moved, torch.where(moved[..., :1].isnan(), float("nan"), y[..., 4:5].float())], -1)

    def split(self, y: torch.Tensor) -> tuple[torch.Tensor, list]:
        """One image's rows -> (boxes [n, 4] without the NaN rows, their label names or indices)."""
        y = torch.as_tensor(y).detach().cpu()
        y = y[~y[:, 0].isnan()] if y.numel() else y.reshape(0, y.shape[-1] if y.dim() == 2 else 4)
        if y.shape[1] < 5:
            return y, []
        idx = [int(i) for i in y[:, 4].tolist()]
        return y[:, :4], [self.vocab[i] for i in idx] if self.vocab is not None else idx

    def decode(self, pred: torch.Tensor, thresh: float = 0.5) -> tuple[Any, Any, torch.Tensor]:
        boxes, labels = self.split(pred)
        return boxes, labels, torch.as_tensor(pred).detach().cpu()

    def text(self, y: torch.Tensor) -> str:
        """The labels, each with its count when it repeats ("14 RBC, WBC"): a title stays one line."""
        boxes, labels = self.split(y)
        counts = Counter(str(label) for label in labels)
        return ", ".join(f"{n} {k}" if n > 1 else k for k, n in counts.items()) if labels else f"{boxes.shape[0]} boxes"

    def predict(self, pred: torch.Tensor, item: Any, item_tfm: Any) -> tuple[torch.Tensor, list, torch.Tensor]:
        """`(boxes, labels, scores)` of one image's detections (rows [k, 6]: x0, y0, x1, y1 in [-1, 1], class
        index, score; NaN rows are none): boxes [n, 4] in the pixels of `item` itself, class names, scores [n]."""
        rows = torch.as_tensor(pred).detach().cpu().float()
        rows = rows[~rows[:, 0].isnan()]
        w, h = item_tfm.original_size(item)
        boxes = item_tfm.points_to_original(rows[:, :4].reshape(-1, 2), item).reshape(-1, 4)
        boxes = torch.minimum(boxes.clamp(min=0), torch.tensor([w, h, w, h], dtype=boxes.dtype))
        scores = rows[:, 5] if rows.shape[1] > 5 else torch.ones(len(rows))
        return boxes, self.split(rows[:, :5])[1], scores

    def show(self, dls: Any, x: torch.Tensor, y: torch.Tensor | None, preds: torch.Tensor | None = None,
             ncols: int | None = None, path: Any = None, min_score: float = 0.5):  # fmt: skip
        """With detections (rows [B, k, 6]: a detector's `get_preds`) each image twice, side by side: its
        boxes, then the predicted ones of at least `min_score` with their scores; `ncols` pairs a row.
        Otherwise as any target."""
        if preds is None or preds.dim() != 3 or preds.shape[-1] != 6:
            return super().show(dls, x, y, preds, ncols, path)
        import matplotlib.pyplot as plt

        n, size = x.shape[0], tuple(x.shape[-2:])
        imgs = dls.normalize.decode(x.float()).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        pairs = ncols or min(n, 2)
        nrows = -(-n // pairs)
        fig, axes = plt.subplots(nrows, 2 * pairs, figsize=(5.6 * pairs, 2.9 * nrows * size[0] / size[1] + 0.4),
                                 squeeze=False)  # fmt: skip
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            k, is_pred = divmod(i, 2)
            if k >= n or (y is None and not is_pred):
                continue
            ax.imshow(imgs[k])
            rows = (preds if is_pred else y)[k].cpu()
            if is_pred:
                rows = rows[rows[:, 5] >= min_score]
            self.draw(ax, rows, size, pred=bool(is_pred))
            count = int((~rows[:, 0].isnan()).sum()) if rows.numel() else 0
            ax.set_title(f"prediction (score >= {min_score:g}): {count}" if is_pred else f"truth: {count}", fontsize=9)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig

    def report(self, result: Any, item: Any, out_dir: Any) -> str:
        boxes, labels = result[0], result[1]
        rows = [
            f"{lab} ({', '.join(f'{v:.0f}' for v in b)})" for b, lab in zip(torch.as_tensor(boxes).tolist(), labels)
        ]
        return f"{len(rows)} boxes: " + "; ".join(rows) if rows else "no boxes"

    def draw(self, ax: Any, y: torch.Tensor, size: tuple[int, int], pred: bool = False) -> None:
        """Each box as a rectangle with its label (and score, for detections): the target's in green, a
        prediction's in red."""
        from matplotlib.patches import Rectangle

        h, w = size
        boxes, labels = self.split(y)
        rows = torch.as_tensor(y).detach().cpu()
        scores = rows[~rows[:, 0].isnan(), 5].tolist() if rows.dim() == 2 and rows.shape[-1] > 5 else None
        colour = "red" if pred else "lime"
        for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            px0, py0 = (x0 + 1) * w / 2, (y0 + 1) * h / 2
            px1, py1 = (x1 + 1) * w / 2, (y1 + 1) * h / 2
            ax.add_patch(Rectangle((px0, py0), px1 - px0, py1 - py0, fill=False, edgecolor=colour, linewidth=1.5))
            if labels:
                text = f"{labels[i]} {scores[i]:.2f}" if scores else str(labels[i])
                ax.text(px0, py0, text, color="black", fontsize=7, va="bottom",
                        bbox=dict(facecolor=colour, alpha=0.7, pad=1, edgecolor="none"))  # fmt: skip
