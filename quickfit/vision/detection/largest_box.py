"""The target of the course's lesson 8: the largest object of each image, one box and its class.

    Target("largest_box", vocab=("chair", "couch", "tv"))
    # one image's y: its one box as rows [1, 5] (x0, y0, x1, y1 in pixels of the original image, label)

The data is `Boxes` with one box per image (`DetectionDataLoaders(..., largest_only=True)`): a batch's y is
[B, 1, 5] (x0, y0, x1, y1 in [-1, 1] of the transformed image, label index), a row of NaN where the
augmentation moved the box off the image. The model (any classifier with 4 + c outputs) predicts 4 raw
box values and c class scores. `BBoxLoss` is the lesson's combined loss; as in the lesson, it squashes
the box into the image with a scaled sigmoid (the lesson's `sigmoid * 224`, here into [-1, 1]). Its
activation (what `get_preds` and an ONNX export apply) squashes the box and turns the scores into
probabilities: a prediction is [4 + c] = (box in [-1, 1], class probabilities). `predict` answers in the
original image's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from quickfit.vision.detection.target import Boxes

__all__ = ["LargestBox", "BBoxLoss"]


@dataclass(frozen=True)
class LargestBox(Boxes):
    """One box with its label per image; predictions are (box, class probabilities) [4 + c]."""

    kind = "largest_box"

    def loss(self, dls: Any = None) -> nn.Module:
        return BBoxLoss()

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        return BBoxLoss.activation(out)

    def decode(self, pred: torch.Tensor, thresh: float = 0.5) -> tuple[torch.Tensor, Any, float]:
        """A prediction [4 + c] -> (box [4] in [-1, 1] of the transformed image, class name, probability)."""
        pred = pred.detach().cpu().float()
        probs = pred[4:]
        idx = int(probs.argmax())
        return pred[:4], self.vocab[idx] if self.vocab is not None else idx, float(probs[idx])

    def predict(self, pred: torch.Tensor, item: Any, item_tfm: Any) -> tuple[torch.Tensor, Any, float]:
        """`(box, class name, probability)`: the box [4] (x0, y0, x1, y1) in the pixels of `item` itself."""
        unit, label, prob = self.decode(pred)
        return item_tfm.points_to_original(unit.view(2, 2), item).view(4), label, prob

    def report(self, result: Any, item: Any, out_dir: Any) -> str:
        box, label, prob = result
        return f"{label} {prob:.2f} ({', '.join(f'{v:.0f}' for v in torch.as_tensor(box).tolist())})"

    def caption(self, pred: torch.Tensor, thresh: float = 0.5) -> str:
        _, label, prob = self.decode(pred)
        return f"{label} {prob:.2f}"

    def matches(self, y_text: str, pred_text: str) -> bool:
        return y_text == pred_text.rsplit(" ", 1)[0]

    def draw(self, ax: Any, y: torch.Tensor, size: tuple[int, int], pred: bool = False) -> None:
        """The target's box in green; a prediction's in red, labelled with its class and probability."""
        if not pred:
            return super().draw(ax, y, size)
        box, label, prob = self.decode(y)
        row = torch.cat([box, torch.zeros(1)])[None]  # drawn as one labelled box of a one-class vocab
        Boxes(vocab=(f"{label} {prob:.2f}",)).draw(ax, row, size, pred=True)


class BBoxLoss(nn.Module):
    """The lesson's combined loss: `box_weight` * L1 on the box (in [-1, 1] of the image, mean of the 4
    coordinates) + cross-entropy on the class. The course weighted pixels (L1 of about 20 at 224 px)
    against a cross-entropy times 20; `box_weight=5` is about that ratio in [-1, 1] units.

    `out` [B, 4 + c]; `y` [B, 1, 5] (or [B, 5]); a NaN row (a box the augmentation moved off the
    image) counts for nothing. The masks are arithmetic, not indexing: no CPU-GPU sync per batch."""

    def __init__(self, box_weight: float = 5.0) -> None:
        super().__init__()
        if not box_weight >= 0:
            raise ValueError(f"BBoxLoss: box_weight must be >= 0, got {box_weight!r}")
        self.box_weight = float(box_weight)

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = _one_row(y, out)
        keep = ~t[:, 0].isnan()
        n = keep.sum().clamp(min=1)
        l1 = (_squash(out[:, :4].float()) - t[:, :4].nan_to_num()).abs().mean(dim=1)
        labels = t[:, 4].nan_to_num().long()
        ce = F.cross_entropy(out[:, 4:].float(), labels, reduction="none")
        return ((self.box_weight * l1 + ce) * keep).sum() / n

    @staticmethod
    def activation(out: torch.Tensor) -> torch.Tensor:
        """Raw [B, 4 + c] -> (box, class probabilities): what `get_preds` returns."""
        return torch.cat([_squash(out[:, :4]), out[:, 4:].softmax(dim=-1)], dim=-1)

    def extra_repr(self) -> str:
        return f"box_weight={self.box_weight}"


def _squash(box: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(box) * 2 - 1


def _one_row(y: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The batch's one box per image as [B, 5]; a clear error for data with several boxes per image."""
    if y.dim() == 3:
        if y.shape[1] != 1:
            raise ValueError(
                f"the largest-object loss takes one box per image, got {y.shape[1]} per image: "
                "build the data with largest_only=True"
            )
        y = y[:, 0]
    if y.dim() != 2 or y.shape[1] != 5 or out.dim() != 2 or out.shape[0] != y.shape[0] or out.shape[1] < 5:
        raise ValueError(
            f"BBoxLoss: outputs [B, 4 + classes] and boxes [B, 1, 5] expected, "
            f"got {tuple(out.shape)} and {tuple(y.shape)}"
        )
    return y.to(out.device)
