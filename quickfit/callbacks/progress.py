"""Progress bars (tqdm) over the batches of training, validation and prediction.

On by default when the output is a terminal; off in logs, in CI and with `progress=False`.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

from quickfit.callbacks.core import Callback, Order

__all__ = ["ProgressCallback"]


def show_progress(progress: bool | None) -> bool:
    """`progress` when given; by default bars only on a terminal (a log file would get every redraw)."""
    return sys.stderr.isatty() if progress is None else bool(progress)


class ProgressCallback(Callback):
    order = Order.PROGRESS

    def __init__(self, enabled: bool | None = None):
        self.enabled, self.bar = enabled, None

    def _on(self, learn) -> bool:
        if self.enabled is not None:
            return self.enabled and learn.is_main_process
        return learn.is_main_process and sys.stderr.isatty()

    def _wrap(self, learn, desc: str) -> None:
        self.bar = None
        if self._on(learn) and not isinstance(learn.dl, tqdm):
            total = len(learn.dl)
            if learn.training and learn.epoch_batches is not None:  # the last epoch of a fractional phase
                total = min(total, learn.epoch_batches)
            self.bar = tqdm(learn.dl, total=total, leave=False, desc=desc, dynamic_ncols=True)
            learn.dl = self.bar

    def before_train(self, learn) -> None:
        self._wrap(learn, f"epoch {learn.epoch}")

    def before_validate(self, learn) -> None:
        self._wrap(learn, "valid")

    def after_batch(self, learn) -> None:
        if self.bar is not None and learn.training and learn.iter % 16 == 0 and learn.recorder.last_loss is not None:
            self.bar.set_postfix(loss=f"{learn.recorder.last_loss:.4f}", refresh=False)

    def _close(self, learn) -> None:
        if getattr(self, "bar", None) is not None:
            self.bar.close()
            self.bar = None

    after_train = after_validate = after_cancel_train = after_cancel_validate = _close
