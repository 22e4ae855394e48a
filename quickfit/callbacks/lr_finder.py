"""LRFinder: the learning-rate range test (Smith 2015), as the course teaches it.

The learning rate grows exponentially from `start_lr` to `end_lr` over `num_it` batches while the
(exponentially smoothed) loss is recorded; the sweep stops early once the loss passes 4x its best.
Weights and optimizer state are restored afterwards, so lr_find can be called at any time.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import numpy as np
import torch

from quickfit.callbacks.core import Callback, CancelFitException, CancelValidException, Order
from quickfit.optim import set_hyper

__all__ = ["LRFinder", "SuggestedLRs", "suggest_lrs"]


class SuggestedLRs(NamedTuple):
    valley: float
    steep: float
    minimum: float


def suggest_lrs(lrs: list[float], losses: list[float]) -> SuggestedLRs:
    """`valley`: 2/3 down the longest stretch of falling loss, but never above `minimum`; `steep`: the
    steepest fall (per log lr); `minimum`: a tenth of the rate with the lowest loss.

    Why the cap: a network that is already trained (a pretrained body unfrozen after its head was
    fitted) has nothing left to fall; its curve is flat, then climbs. The longest falling stretch of a
    flat, noisy curve can end anywhere, often right where the climb starts, and fine-tuning at that
    rate undoes the head's work. A tenth of the rate of the lowest loss is the course's rule for such
    curves, and for a fresh network (a clear fall, then a climb) it is above the valley anyway."""
    lrs_arr, losses_arr = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    if len(lrs_arr) < 3:
        raise ValueError("lr_find recorded fewer than 3 points; use more batches (num_it) or more data")
    minimum = float(lrs_arr[int(np.nanargmin(losses_arr))] / 10)
    slopes = np.gradient(losses_arr, np.log(lrs_arr))
    skip = len(slopes) // 10  # the first smoothed values average only a few batches: noisy slopes
    steep = float(lrs_arr[skip + int(np.nanargmin(slopes[skip:]))])
    # longest decreasing subsequence, O(n^2) on ~100 points
    n = len(losses_arr)
    length, start_of = np.ones(n, dtype=int), np.arange(n)
    for i in range(1, n):
        for j in range(i):
            if losses_arr[i] < losses_arr[j] and length[j] + 1 > length[i]:
                length[i], start_of[i] = length[j] + 1, start_of[j]
    end = int(np.argmax(length))
    start = int(start_of[end])
    idx = start + int(round((end - start) * 2 / 3))
    return SuggestedLRs(valley=min(float(lrs_arr[idx]), minimum), steep=steep, minimum=minimum)


class LRFinder(Callback):
    order = Order.LR_FINDER

    def __init__(
        self,
        start_lr: float = 1e-7,
        end_lr: float = 10,
        num_it: int = 100,
        stop_div: bool = True,
        beta: float = 0.98,
    ):
        if not 0 < start_lr < end_lr:
            raise ValueError(f"lr_find needs 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
        # A short sweep (e.g. 3 epochs of a small dataset) with beta 0.98 would average nearly its whole
        # history into every point, so the curve would lag the rate by many steps: smooth over ~num_it/2.
        beta = min(beta, 1 - 2 / max(num_it, 4))
        self.start_lr, self.end_lr, self.num_it, self.stop_div, self.beta = (
            start_lr,
            end_lr,
            num_it,
            stop_div,
            beta,
        )

    def before_fit(self, learn) -> None:
        # enough epochs for num_it batches, counted on the data as this fit sees it (a DDP shard is shorter)
        learn.n_epoch = max(learn.n_epoch, math.ceil(self.num_it / max(1, len(learn.dls.train))))
        # deep copies: state_dict() returns the live tensors, which training would overwrite
        self.model_state = copy.deepcopy(learn._unwrapped().state_dict())
        self.opt_state = copy.deepcopy(learn.opts.state_dict())
        self.rng = torch.get_rng_state()
        self.lrs, self.losses, self.best, self.avg, self.count = [], [], math.inf, 0.0, 0
        rec = learn.recorder
        self.history_len = [len(rec.losses), len(rec.lrs), len(rec.moms), len(rec.values)]
        self.was_logging, learn.recorder.log_table = learn.recorder.log_table, False
        learn.recorder.check_finite = False

    def before_batch(self, learn) -> None:
        if learn.training:
            lr = self.start_lr * (self.end_lr / self.start_lr) ** (self.count / max(1, self.num_it - 1))
            set_hyper(learn.opts, "lr", lr)  # a step's own optimizers (a GAN's critic) sweep alongside

    def after_batch(self, learn) -> None:
        if not learn.training:
            return
        loss = learn.loss.detach().float().item()  # one sync per batch: the sweep needs each value now
        self.count += 1
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        smooth = self.avg / (1 - self.beta**self.count)
        self.lrs.append(learn.opt.param_groups[-1]["lr"])
        self.losses.append(smooth)
        self.best = min(self.best, smooth)
        diverged = not math.isfinite(smooth) or smooth > 4 * self.best
        if (self.stop_div and diverged) or self.count >= self.num_it:
            raise CancelFitException()

    def before_validate(self, learn) -> None:
        raise CancelValidException()

    def after_fit(self, learn) -> None:
        learn._unwrapped().load_state_dict(self.model_state)
        opts = learn.opts
        opts.load_state_dict(self.opt_state)
        opts.zero_grad(set_to_none=True)
        torch.set_rng_state(self.rng)
        learn.recorder.log_table, learn.recorder.check_finite = self.was_logging, True
        rec = learn.recorder
        rec._pending.clear()  # the sweep is not part of the training history
        for values, n in zip((rec.losses, rec.lrs, rec.moms, rec.values), self.history_len):
            del values[n:]
        # the last points are usually the divergence itself: leave them out of the suggestions
        keep = [i for i, v in enumerate(self.losses) if math.isfinite(v)]
        lrs, losses = [self.lrs[i] for i in keep], [self.losses[i] for i in keep]
        if self.stop_div and len(losses) > 8:
            lrs, losses = lrs[:-3], losses[:-3]
        self.suggestions = suggest_lrs(lrs, losses)
        learn.recorder.lr_find_lrs, learn.recorder.lr_find_losses = lrs, losses
        learn.recorder.lr_find_suggestions = self.suggestions
