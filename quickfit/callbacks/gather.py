"""GatherPreds: collects predictions (and targets, per-item losses) during a validation pass."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from quickfit.callbacks.core import Callback, Order

__all__ = ["GatherPreds"]


class GatherPreds(Callback):
    order = Order.GATHER

    def __init__(self, act: Callable, with_loss: bool = False):
        self.act, self.with_loss = act, with_loss
        self.preds, self.targs, self.losses = [], [], []

    def after_batch(self, learn) -> None:
        self.preds.append(self.act(learn.pred.detach().float()).cpu())
        if learn.yb is not None:
            self.targs.append(learn.yb.detach().cpu())
            if self.with_loss:
                self.losses.append(_per_item_loss(learn.loss_func, learn.pred.detach(), learn.yb).float().cpu())

    def result(self):
        preds = torch.cat(self.preds) if self.preds else torch.empty(0)
        targs = _cat_padded(self.targs) if self.targs else None
        if self.with_loss:
            return preds, targs, (torch.cat(self.losses) if self.losses else None)
        return preds, targs


def _cat_padded(ts: list[torch.Tensor]) -> torch.Tensor:
    """Batches as one tensor; float targets of a varying count per item (boxes [B, n, 5] with NaN rows for
    none) padded with NaN rows to the batch with the most."""
    n = max(t.shape[1] if t.dim() > 1 else 0 for t in ts)
    if all(t.dim() > 1 and t.is_floating_point() for t in ts) and any(t.shape[1] != n for t in ts):
        ts = [torch.cat([t, t.new_full((t.shape[0], n - t.shape[1], *t.shape[2:]), float("nan"))], 1) for t in ts]
    return torch.cat(ts)


def _per_item_loss(loss_func, pred, targ) -> torch.Tensor:
    if hasattr(loss_func, "reduction"):  # torch loss modules: ask for one loss per item
        unreduced = copy.copy(loss_func)
        unreduced.reduction = "none"
        loss = unreduced(pred, targ)
        return loss.reshape(loss.shape[0], -1).mean(1) if loss.ndim > 1 else loss
    return torch.stack([loss_func(pred[i : i + 1], targ[i : i + 1]) for i in range(pred.shape[0])])
