"""ParamScheduler: sets hyper-parameters before every training batch from schedules of progress.

    ParamScheduler(lr_max=np.array([1e-4, 1e-3]), scheds={"lr": one_cycle_lr, "mom": one_cycle_mom})

"lr" schedules return a multiplier of each group's peak rate (`lr_max`), so discriminative rates
keep their ratios; other schedules ("mom", "wd") return the value itself. A step's own optimizers
(a GAN's critic, see quickfit/step.py) follow the same schedules, each group at its `"lr_max"`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from quickfit.callbacks.core import Callback, Order
from quickfit.optim import set_hyper

__all__ = ["ParamScheduler"]


class ParamScheduler(Callback):
    order = Order.SCHEDULER

    def __init__(self, lr_max: np.ndarray, scheds: dict[str, Callable[[float], float]]):
        # a list of floats, not an array: scaling it runs before every batch, and NumPy is slower at this size
        self.lr_max, self.scheds = np.asarray(lr_max, dtype=float).reshape(-1).tolist(), scheds

    def before_fit(self, learn) -> None:
        if not hasattr(learn.dls.train, "__len__"):
            raise TypeError("the training data must have a len() so schedules know how long training is")
        self.n_train = len(learn.dls.train)
        if self.n_train == 0:
            raise ValueError("the training data is empty: no batches to train on")
        self.total = learn.n_epoch * self.n_train
        extra = learn.step.extra_opts(learn)
        self.targets = [(learn.opt, self.lr_max)]
        self.targets += [(opt, [g.get("lr_max", g["lr"]) for g in opt.param_groups]) for opt in extra]
        self._set(learn, 0.0)

    def before_batch(self, learn) -> None:
        if learn.training:
            self._set(learn, (learn.epoch * self.n_train + learn.iter) / self.total)

    def _set(self, learn, pos: float) -> None:
        pos = min(pos, 1.0)
        for name, sched in self.scheds.items():
            value = sched(pos)
            for opt, lr_max in self.targets:
                set_hyper(opt, name, [lr * value for lr in lr_max] if name == "lr" else value)
