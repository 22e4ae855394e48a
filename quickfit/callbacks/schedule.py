"""ParamScheduler: runs a fit's phases, setting hyper-parameters before every training batch.

    ParamScheduler([Phase(3, lr=slice(1e-4, 1e-3) * combined_cos(0.25, 1 / 25, 1, 1e-5), mom=...)])

Every `fit*` is a list of phases (quickfit/phases.py) driven by this callback. At a phase's first epoch
it switches the data (`learn.set_data`) and the optimizer when the phase brings them, and spreads the
phase's peak rate over the layer groups (`lr_max`, one per group). Before each training batch it sets
each group's rate to `lr_max[group] * shape(pos)`, with `pos` the progress through the phase counted in
batches, so discriminative rates keep their ratios; momentum and weight-decay schedules give values.
A step's own optimizers (a GAN's critic, see quickfit/step.py) are part of `learn.opts` and follow the
same shape, each group at its `"lr_max"`. A phase of fractional epochs shortens its last epoch (`learn.epoch_batches`).
"""

from __future__ import annotations

from collections.abc import Sequence

from quickfit.callbacks.core import Callback, Order
from quickfit.optim import lr_per_group, set_hyper
from quickfit.phases import Phase, phase_epochs, split_lr

__all__ = ["ParamScheduler"]


class ParamScheduler(Callback):
    order = Order.PHASES

    def __init__(self, phases: Sequence[Phase]):
        self.phases = list(phases)
        spans = phase_epochs(self.phases)
        self.first_epochs = [sum(spans[:i]) for i in range(len(spans))]
        self.n_epoch = sum(spans)
        self.current: int | None = None
        self.lr_max: list[float] = []

    def phase_at(self, epoch: int) -> int:
        """The index of the phase that trains epoch `epoch` (the last one past the end: lr_find's extra epochs)."""
        i = len(self.first_epochs) - 1
        while i > 0 and epoch < self.first_epochs[i]:
            i -= 1
        return i

    def before_fit(self, learn) -> None:
        self.current = None
        self._enter(learn, self.phase_at(learn.start_epoch))

    def before_epoch(self, learn) -> None:
        i = self.phase_at(learn.epoch)
        if i != self.current:
            self._enter(learn, i)

    def _enter(self, learn, i: int) -> None:
        phase, self.current = self.phases[i], i
        if phase.dls is not None and phase.dls is not learn.dls:
            learn.set_data(phase.dls)
        if not hasattr(learn.dls.train, "__len__"):
            raise TypeError("the training data must have a len() so schedules know how long training is")
        if len(learn.dls.train) == 0:
            raise ValueError(f"the training data of phase {i} is empty: no batches to train on")
        if phase.opt_func is not None:
            learn.use_opt_func(phase.opt_func)
        elif learn.opt is None:
            learn.create_opt()
        peak, self.shape = split_lr(phase.lr, learn.lr)
        # a list of floats, not an array: scaling it runs before every batch, and NumPy is slower at this size
        self.lr_max = [float(v) for v in lr_per_group(peak, len(learn.hypers("lr")), learn.slice_div)]
        learn.step.start_fit(learn, self.lr_max)
        self.opts = learn.opts
        # each group's peak: its layer group's, or the "lr_max" a step gave the groups of its own optimizers.
        # Kept by position, not by group dict: loading a checkpoint (resume) replaces the dicts.
        groups = self.opts.param_groups
        self.peaks = [g["lr_max"] if "lr_max" in g else self.lr_max[g.get("layer_group", 0)] for g in groups]
        self.scheds = {"lr": self.shape or _one}
        for name in ("mom", "wd"):
            value = getattr(phase, name)
            if callable(value):
                self.scheds[name] = value
            elif value is not None and name == "wd":
                set_hyper(learn.opt, "wd", value)  # a constant decay: the model's optimizer, once
            elif value is not None:
                self.scheds[name] = _constant(value)
        self.n_train = len(learn.dls.train)
        self._set(0.0)

    def before_train(self, learn) -> None:
        # measured here, after a DistributedCallback has sharded this phase's data (before_epoch)
        phase, first = self.phases[self.current], self.first_epochs[self.current]
        self.n_train = len(learn.dls.train)
        self.total = max(1, round(phase.epochs * self.n_train))
        done = (learn.epoch - first) * self.n_train
        left = self.total - done
        learn.epoch_batches = left if 0 < left < self.n_train else None

    def before_batch(self, learn) -> None:
        if learn.training:
            done = (learn.epoch - self.first_epochs[self.current]) * self.n_train + learn.iter
            self._set(min(done / self.total, 1.0))

    def after_fit(self, learn) -> None:
        learn.epoch_batches = None

    cleanup_fit = after_fit

    def _set(self, pos: float) -> None:
        for name, sched in self.scheds.items():
            value = sched(pos)
            if name == "lr":
                for group, peak in zip(self.opts.param_groups, self.peaks):
                    group["lr"] = peak * value
            else:
                set_hyper(self.opts, name, value)


def _one(pos: float) -> float:
    return 1.0


def _constant(value: float):
    return lambda pos: value
