"""Stochastic weight averaging (Izmailov et al. 2018): average the weights of the last epochs.

    learn.fit_one_cycle(20, 1e-3, cbs=[qf.SWA(start_epoch=15, lr=1e-4)])
    learn.validate()                          # the averaged model, BatchNorm statistics recomputed

From `start_epoch` on, every group's learning rate is held at `lr` (None: the schedule's own rates)
and the weights are averaged at the end of each epoch: `avg += (w - avg) / (n + 1)`, the mean of the
`n + 1` snapshots. At the end of the fit the averaged weights replace the model's, and BatchNorm's
running statistics, which belong to no snapshot, are recomputed with one pass over the training data
(no gradients, cumulative averages; frozen BatchNorms of a pretrained body keep theirs). The epoch
table shows the last snapshot, not the average: validate after the fit. Costs one copy of the weights
in memory and one pass over the training data.
"""

from __future__ import annotations

import torch
from torch import nn

from quickfit.callbacks.core import Callback, Order
from quickfit.data.core import to_device

__all__ = ["SWA", "recompute_bn_stats"]


@torch.no_grad()
def recompute_bn_stats(learn, dl=None) -> None:
    """Reset the running mean and variance of every trained BatchNorm and recompute them over `dl`
    (default the training data) as exact averages over its batches. A frozen BatchNorm (its weight
    does not train: a pretrained body's) keeps its statistics; the model runs in eval mode otherwise
    (no dropout), as it will predict."""
    model = learn.model
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and m.track_running_stats
        and (m.weight is None or m.weight.requires_grad)
    ]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    was_training = model.training
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the pass, not an exponential one
        m.train()
    n_inp = getattr(learn.dls, "n_inp", 1)
    try:
        for batch in dl if dl is not None else learn.dls.train:
            xb = to_device(tuple(batch), learn.device)[:n_inp]
            model(*xb)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)


class SWA(Callback):
    """Average the weights of every epoch from `start_epoch` on, at learning rate `lr` (see above)."""

    order = Order.PHASES + 1  # before each batch: right after the phases set the rates, which it replaces

    def __init__(self, start_epoch: int, lr: float | None = None):
        if isinstance(start_epoch, bool) or not isinstance(start_epoch, int) or start_epoch < 0:
            raise ValueError(f"SWA: start_epoch must be a whole number >= 0, got {start_epoch!r}")
        if lr is not None and not lr > 0:
            raise ValueError(f"SWA: lr must be > 0 or None, got {lr!r}")
        self.start_epoch, self.lr = start_epoch, lr
        self.avg: list[torch.Tensor] | None = None
        self.n_averaged = 0

    def before_fit(self, learn) -> None:
        self.avg, self.n_averaged = None, 0

    def before_batch(self, learn) -> None:
        if learn.training and self.lr is not None and learn.epoch >= self.start_epoch:
            for group in learn.opts.param_groups:
                group["lr"] = self.lr

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Add the model's current weights to the average."""
        params = [p.detach() for p in model.parameters()]
        if self.avg is None:
            self.avg = [p.clone().float() for p in params]
        else:
            for a, p in zip(self.avg, params):
                a.add_((p.float() - a) / (self.n_averaged + 1))
        self.n_averaged += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Put the averaged weights into `model`."""
        for p, a in zip(model.parameters(), self.avg):
            p.copy_(a.to(p.dtype))

    def after_epoch(self, learn) -> None:
        if learn.epoch >= self.start_epoch:
            self.update(learn.model)

    def after_fit(self, learn) -> None:
        if self.avg is None:
            return
        self.copy_to(learn.model)
        recompute_bn_stats(learn)

    def state_dict(self) -> dict:  # what a resumed fit needs to go on averaging
        return {"n_averaged": self.n_averaged, "avg": self.avg}

    def load_state_dict(self, state: dict) -> None:
        self.n_averaged, self.avg = state["n_averaged"], state["avg"]
