"""ReduceLROnPlateau: divide the learning rate when a monitored value stops improving.

    learn.fit(30, 1e-3, cbs=[qf.ReduceLROnPlateau("valid_loss", patience=2, factor=0.2)])

After each epoch: if `monitor` (a column of the epoch table) improved on its best by more than
`min_delta`, the wait restarts; otherwise, after `patience` epochs without improvement the rates are
multiplied by `factor` and the wait restarts. The callback keeps a scale (1, then `factor`, then
`factor**2`, ...) and applies it before every training batch to the rates the phases have just set:
a one-cycle or cosine schedule keeps its shape at a lower level instead of overwriting the reduction
at the next batch. `min_scale` bounds the reduction. Its state (best, wait, scale) is resumed.
"""

from __future__ import annotations

from tqdm.auto import tqdm

from quickfit.callbacks.checkpoint import _Monitor
from quickfit.callbacks.core import Order

__all__ = ["ReduceLROnPlateau"]


class ReduceLROnPlateau(_Monitor):
    """Multiply the rates by `factor` after `patience` epochs without improvement of `monitor`."""

    # after the Recorder (its after_epoch writes the row read here); before each batch that is still after
    # the phases (Order.PHASES) and SWA set the rates this scales
    order = Order.RECORDER + 1

    def __init__(
        self,
        monitor: str = "valid_loss",
        patience: int = 2,
        factor: float = 0.2,
        mode: str | None = None,
        min_delta: float = 0.0,
        min_scale: float = 0.0,
    ):
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"ReduceLROnPlateau: patience must be a whole number >= 1, got {patience!r}")
        super().__init__(monitor, mode, min_delta)
        self.patience, self.factor, self.min_scale = patience, factor, min_scale
        self.wait, self.scale = 0, 1.0

    def before_fit(self, learn) -> None:
        super().before_fit(learn)  # a column the epoch table lacks is refused before training
        self.wait, self.scale = 0, 1.0
        self.best = float("inf") if self.lower_is_better else float("-inf")

    def before_batch(self, learn) -> None:
        if learn.training and self.scale != 1.0:
            for group in learn.opts.param_groups:
                group["lr"] *= self.scale

    def after_epoch(self, learn) -> None:
        value = self._current(learn)
        if value is None:  # an epoch cancelled before it trained
            return
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.scale = max(self.scale * self.factor, self.min_scale)
            self.wait = 0
            if learn.is_main_process:
                tqdm.write(f"{self.monitor} has not improved for {self.patience} epochs: rates x{self.scale:.3g}")

    def state_dict(self) -> dict:
        return {"best": self.best, "wait": self.wait, "scale": self.scale}
