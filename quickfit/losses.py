"""Losses for classifiers beyond torch's defaults.

    import quickfit as qf
    learn = tabular_learner(dls, loss_func=qf.LabelSmoothingCrossEntropy(0.1))   # any classifier learner

Label smoothing (Szegedy et al. 2016) trains toward `1 - eps + eps / c` for the true class and
`eps / c` for the others instead of a one-hot target: the model stops pushing logits toward infinity,
which usually calibrates it better and regularizes a little. The loss is
`(1 - eps) * cross_entropy + eps * mean over classes of -log p`, torch's `label_smoothing` itself, so
the class is a `nn.CrossEntropyLoss`: predictions get the softmax, metrics and exports treat it as one.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LabelSmoothingCrossEntropy"]


class LabelSmoothingCrossEntropy(nn.CrossEntropyLoss):
    """Cross-entropy toward targets smoothed by `eps` (0 is plain cross-entropy)."""

    def __init__(
        self,
        eps: float = 0.1,
        weight: torch.Tensor | None = None,
        reduction: str = "mean",
        ignore_index: int = -100,
    ):
        if not 0 <= eps < 1:
            raise ValueError(f"LabelSmoothingCrossEntropy: eps must be in [0, 1), got {eps!r}")
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=eps)
        self.eps = eps

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
