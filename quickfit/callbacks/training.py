"""Gradient clipping and gradient accumulation.

    learn.fit_one_cycle(3, 1e-3, cbs=[qf.GradientClip(1.0), qf.GradientAccumulation(4)])

With accumulation over `n_acc` batches each loss is divided by `n_acc` and the optimizer steps every
`n_acc` batches: with a mean-reduced loss and equal batches this is the gradient of one batch
`n_acc` times larger (up to BatchNorm statistics, which still see the small batches).
"""

from __future__ import annotations

import torch

from quickfit.callbacks.core import Callback, CancelStepException, Order

__all__ = ["GradientClip", "GradientAccumulation"]


class GradientClip(Callback):
    """Clip the global gradient norm to `max_norm` before each optimizer step."""

    order = Order.GRAD_CLIP

    def __init__(self, max_norm: float = 1.0):
        self.max_norm = max_norm

    def before_step(self, learn) -> None:
        torch.nn.utils.clip_grad_norm_([p for p in learn.model.parameters() if p.grad is not None], self.max_norm)


class GradientAccumulation(Callback):
    """Accumulate gradients over `n_acc` batches before each optimizer step."""

    order = Order.GRAD_ACCUMULATION

    def __init__(self, n_acc: int = 2):
        if n_acc < 1:
            raise ValueError(f"n_acc must be >= 1, got {n_acc}")
        self.n_acc = n_acc

    def before_fit(self, learn) -> None:
        self.count = 0

    def after_loss(self, learn) -> None:
        if learn.training:
            learn.loss_grad = learn.loss_grad / self.n_acc

    def before_step(self, learn) -> None:
        self.count += 1
        last = learn.iter == learn.n_iter - 1  # never carry gradients over an epoch's end
        if self.count % self.n_acc and not last:
            raise CancelStepException()
        self.count = 0
