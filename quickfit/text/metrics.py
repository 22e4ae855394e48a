"""Language-model loss and metrics: cross-entropy over every token, and perplexity.

Usage::

    import torch
    from quickfit.text.metrics import CrossEntropyFlat, perplexity

    pred, targ = torch.randn(4, 10, 100), torch.randint(0, 100, (4, 10))  # (batch, seq, vocab), (batch, seq)
    loss = CrossEntropyFlat()(pred, targ)        # mean over the 40 tokens
    perplexity(pred, targ)                       # exp(mean loss) == loss.exp()

``perplexity`` sums the token losses and counts the tokens over the whole validation set, so its
value is ``exp`` of the exact per-token mean, whatever the batch and sequence lengths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from quickfit.metrics import Metric

__all__ = ["CrossEntropyFlat", "Perplexity", "perplexity"]


class CrossEntropyFlat(nn.CrossEntropyLoss):
    """Cross-entropy of (..., n_classes) scores against (...) targets, flattened over the leading dims.

    A subclass of ``nn.CrossEntropyLoss``, so the Learner applies softmax in ``get_preds``; with
    ``reduction="none"`` the losses keep the targets' shape.
    """

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        loss = super().forward(pred.reshape(-1, pred.size(-1)), targ.reshape(-1))
        return loss.view(targ.shape) if self.reduction == "none" else loss


class Perplexity(Metric):
    """``exp`` of the mean cross-entropy per token over the whole set (targets equal to ``ignore_index`` skipped)."""

    name = "perplexity"

    def __init__(self, ignore_index: int = -100) -> None:
        self.ignore_index = ignore_index

    def batch_totals(self, pred: Tensor, targ: Tensor) -> Tensor:
        flat_targ = targ.reshape(-1)
        losses = F.cross_entropy(
            pred.reshape(-1, pred.size(-1)).float(), flat_targ, ignore_index=self.ignore_index, reduction="sum"
        )
        n_tokens = (flat_targ != self.ignore_index).sum()
        return torch.stack([losses.double(), n_tokens.double()])

    def compute(self, totals: Tensor) -> float:
        return float(torch.exp(totals[0] / totals[1]))


perplexity = Perplexity()
