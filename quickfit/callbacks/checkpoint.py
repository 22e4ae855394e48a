"""Checkpoints during training: keep the best epoch, stop when progress stops, snapshot each cycle.

    learn.fit_one_cycle(10, 1e-3, cbs=[qf.SaveBest("accuracy"), qf.EarlyStopping("valid_loss", patience=2)])

`monitor` names a column of the epoch table (`valid_loss`, `train_loss` or a metric name); by default
a name with "loss" or "error" in it is better when lower, anything else when higher.
"""

from __future__ import annotations

import difflib
import math

from tqdm.auto import tqdm

from quickfit.callbacks.core import Callback, CancelFitException, Order

__all__ = ["SaveBest", "EarlyStopping", "SnapshotCallback"]


class _Monitor(Callback):
    def __init__(self, monitor: str, mode: str | None, min_delta: float):
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or None (guess from the name), got {mode!r}")
        self.monitor, self.min_delta = monitor, abs(min_delta)
        self.lower_is_better = mode == "min" if mode else any(w in monitor for w in ("loss", "error", "rmse", "mae"))
        self.best = math.inf if self.lower_is_better else -math.inf

    def before_fit(self, learn) -> None:
        """A misspelt or absent column is refused now, not after the first epoch's training."""
        names = ["train_loss", "valid_loss", *[m.name for m in learn.metrics]]
        if self.monitor not in names:
            close = difflib.get_close_matches(self.monitor, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{type(self).__name__} cannot monitor {self.monitor!r}{hint}: the epoch table has "
                             f"{', '.join(names)}")  # fmt: skip
        if self.monitor != "train_loss" and getattr(learn.dls, "valid", None) is None:
            raise ValueError(f"{type(self).__name__} monitors {self.monitor!r}, but the data has no validation set "
                             "(valid_pct=0?): monitor 'train_loss', or keep some validation data")  # fmt: skip

    def _current(self, learn) -> float | None:
        names = learn.recorder.names
        if self.monitor not in names:
            raise ValueError(f"cannot monitor {self.monitor!r}: the epoch table has {', '.join(names[1:-1])}")
        if not learn.recorder.epoch_logged:  # an epoch cancelled before it trained: no row to judge
            return None
        value = learn.recorder.values[-1][names.index(self.monitor)]
        if value is None:
            raise ValueError(f"{self.monitor!r} has no value this epoch (no validation set?)")
        return value

    def _improved(self, value: float) -> bool:
        if self.lower_is_better:
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k in ("best", "wait", "best_epoch")}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


class SaveBest(_Monitor):
    """Save the weights whenever `monitor` improves; load the best weights at the end of fit."""

    order = Order.SAVE_BEST

    def __init__(
        self,
        monitor: str = "valid_loss",
        mode: str | None = None,
        min_delta: float = 0.0,
        fname: str = "best",
        with_opt: bool = False,
        load_best: bool = True,
    ):
        super().__init__(monitor, mode, min_delta)
        self.fname, self.with_opt, self.load_best, self.best_epoch = fname, with_opt, load_best, None

    def after_epoch(self, learn) -> None:
        value = self._current(learn)
        if value is not None and self._improved(value):
            self.best, self.best_epoch = value, learn.epoch
            learn.save(self.fname, with_opt=self.with_opt)

    def after_fit(self, learn) -> None:
        if self.load_best and self.best_epoch is not None and learn._file(self.fname).exists():
            learn.load(self.fname, with_opt=False)


class EarlyStopping(_Monitor):
    """Stop training when `monitor` has not improved for `patience` epochs."""

    order = Order.EARLY_STOPPING

    def __init__(self, monitor: str = "valid_loss", mode: str | None = None, min_delta: float = 0.0, patience: int = 1):
        super().__init__(monitor, mode, min_delta)
        self.patience, self.wait = patience, 0

    def after_epoch(self, learn) -> None:
        value = self._current(learn)
        if value is None:
            return
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            if learn.is_main_process:
                tqdm.write(f"No improvement in {self.monitor} for {self.wait} epochs: stopping at epoch {learn.epoch}.")
            raise CancelFitException()


class SnapshotCallback(Callback):
    """Save the weights as `name_0`, `name_1`, ... at the given epochs (the ends of SGDR cycles)."""

    order = Order.SNAPSHOT

    def __init__(self, name: str, epochs: list[int]):
        self.name, self.epochs = name, list(epochs)

    def after_epoch(self, learn) -> None:
        if learn.epoch in self.epochs:
            learn.save(f"{self.name}_{self.epochs.index(learn.epoch)}", with_opt=False)
