"""The targets of image classification and regression: labels that do not move with their image.

Target("category", vocab=("ants", "bees"))    # y: a class index; cross-entropy, softmax
Target("multi_category", vocab=("cat", "dog"))  # y: a multi-hot vector; binary cross-entropy, sigmoid
Target("float")                                # y: float values; mean squared error
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quickfit.vision.core.targets import Target

__all__ = ["Category", "MultiCategory", "Regression"]


def _top(vocab: tuple[str, ...], probs: torch.Tensor, k: int = 5) -> str:
    """The `k` most probable classes with their probabilities: "bees 0.970, ants 0.030"."""
    top = torch.argsort(probs, descending=True)[:k].tolist()
    return ", ".join(f"{vocab[i]} {float(probs[i]):.3f}" for i in top)


def _vocab(target: Target) -> None:
    if target.vocab is not None:  # frozen: the dataclass's own way to set a field after __init__
        object.__setattr__(target, "vocab", tuple(str(v) for v in target.vocab))


@dataclass(frozen=True)
class Category(Target):
    """One class per image (an int64 index into `vocab`)."""

    kind = "category"
    vocab: tuple[str, ...] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _vocab(self)

    def loss(self, dls: Any = None) -> nn.Module:
        return nn.CrossEntropyLoss()

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        return out.softmax(-1)

    def decode(self, pred: torch.Tensor, thresh: float = 0.5) -> tuple[Any, Any, torch.Tensor]:
        pred = pred.detach().cpu()
        idx = int(pred.argmax())
        return self.vocab[idx], idx, pred

    def text(self, y: torch.Tensor) -> str:
        return self.vocab[int(y)]

    def caption(self, pred: torch.Tensor, thresh: float = 0.5) -> str:
        label, idx, probs = self.decode(pred, thresh)
        return f"{label} {float(probs[idx]):.2f}"

    def matches(self, y_text: str, pred_text: str) -> bool:
        return y_text == pred_text.rsplit(" ", 1)[0]

    def report(self, result: Any, item: Any, out_dir: Path) -> str:
        label, idx, probs = result
        return f"{label} (probability {float(probs[idx]):.3f})  [{_top(self.vocab, probs)}]"


@dataclass(frozen=True)
class MultiCategory(Target):
    """Any number of classes per image (a float multi-hot vector over `vocab`)."""

    kind = "multi_category"
    vocab: tuple[str, ...] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _vocab(self)

    def loss(self, dls: Any = None) -> nn.Module:
        return nn.BCEWithLogitsLoss()

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        return out.sigmoid()

    def decode(self, pred: torch.Tensor, thresh: float = 0.5) -> tuple[Any, Any, torch.Tensor]:
        pred = pred.detach().cpu()
        mask = pred > thresh
        return [self.vocab[i] for i in mask.nonzero().flatten().tolist()], mask, pred

    def text(self, y: torch.Tensor) -> str:
        return ";".join(self.vocab[i] for i in torch.as_tensor(y).nonzero().flatten().tolist())

    def caption(self, pred: torch.Tensor, thresh: float = 0.5) -> str:
        return ";".join(self.decode(pred, thresh)[0]) or "(none)"

    def matches(self, y_text: str, pred_text: str) -> bool:
        return y_text == pred_text

    def report(self, result: Any, item: Any, out_dir: Path) -> str:
        labels, _, probs = result
        return f"{labels}  [{_top(self.vocab, probs)}]"


@dataclass(frozen=True)
class Regression(Target):
    """Float values per image (one, or a row of several)."""

    kind = "float"
    aliases = ("regression",)

    def loss(self, dls: Any = None) -> nn.Module:
        return nn.MSELoss()

    def decode(self, pred: torch.Tensor, thresh: float = 0.5) -> tuple[Any, Any, torch.Tensor]:
        pred = pred.detach().cpu()
        return (pred.item() if pred.numel() == 1 else pred.tolist()), None, pred

    def report(self, result: Any, item: Any, out_dir: Path) -> str:
        return str(result[0])
