"""DivergenceCheck: warn (a DivergenceWarning) when the validation loss explodes after `unfreeze()`.

A Learner has this callback by default. Fine-tuning a pretrained body at the rate that suited the
head alone is the classic way to wreck it: the loss jumps to many times its value and accuracy drops
to chance. When, after more parameters were made trainable, an epoch's validation loss is more than
`factor` times the last one measured before (or not finite), one warning says so, names the likely
cause and the fix:

    learn.fit_one_cycle(1, 1e-2)          # the head, body frozen: valid_loss 0.12
    learn.unfreeze()
    learn.fit_one_cycle(3, 1e-2)          # DivergenceWarning: ... 23x its value before unfreeze() ...
    lrs = learn.lr_find()                 # the fix: a new sweep for the unfrozen network
    learn.fit_one_cycle(3, slice(lrs.valley / 100, lrs.valley))

Remove it with `learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, qf.DivergenceCheck)])`
or filter the warning class with `warnings.filterwarnings("ignore", category=qf.DivergenceWarning)`.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

from quickfit.callbacks.core import Callback, Order
from quickfit.callbacks.lr_finder import LRFinder
from quickfit.callbacks.schedule import ParamScheduler

__all__ = ["DivergenceCheck", "DivergenceWarning"]


class DivergenceWarning(UserWarning):
    """The validation loss exploded after an unfreeze (what DivergenceCheck warns; filter it by this class)."""


_PACKAGE = str(Path(__file__).resolve().parents[1])


def _user_stacklevel() -> int:
    """The stack level of the first frame outside quickfit: the user's `fit` call, not this file."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


class DivergenceCheck(Callback):
    """Warns once per unfreeze when the validation loss passes `factor` times its value before it."""

    order = Order.RECORDER + 5  # after the Recorder has written the epoch's row

    def __init__(self, factor: float = 5.0) -> None:
        if not factor > 1:
            raise ValueError(f"factor must be > 1, got {factor!r}")
        self.factor = float(factor)
        self.before: tuple[float, int] | None = None  # (valid loss, trainable params) before the unfreeze
        self.warned = False

    def before_fit(self, learn) -> None:
        self._active = not any(isinstance(cb, LRFinder) for cb in learn.cbs)

    def after_epoch(self, learn) -> None:
        row = learn.recorder.values[-1] if learn.recorder.epoch_logged else None
        if not self._active or row is None or row[2] is None:
            return
        loss = float(row[2])
        params = list(learn.model.parameters())
        n_trainable = sum(p.numel() for p in params if p.requires_grad)
        if self.before is None or n_trainable <= self.before[1]:
            # as frozen as before (or more): this epoch is the reference; fully trainable from the start is not
            if n_trainable < sum(p.numel() for p in params):
                self.before, self.warned = (loss, n_trainable), False
            return
        if self.warned:  # once per unfreeze
            return
        ref = self.before[0]
        if math.isfinite(loss) and loss <= self.factor * ref:
            return
        self.warned = True
        if not learn.is_main_process:
            return
        ratio = f"{loss / ref:.0f}x" if math.isfinite(loss) and ref > 0 else "far above"
        sched = next((cb for cb in learn.cbs if isinstance(cb, ParamScheduler)), None)
        lr = max(sched.lr_max) if sched is not None else max(learn.hypers("lr"))  # the peak, not today's rate
        warnings.warn(
            f"validation loss {loss:.4g} at epoch {learn.epoch} is {ratio} its value before unfreeze() ({ref:.4g}): "
            f"the learning rate (up to {lr:.2g}) is likely too high for the pretrained body. Run learn.lr_find() "
            "again now that the body is unfrozen and fine-tune below its suggestion with discriminative rates, "
            "e.g. learn.fit_one_cycle(n, slice(lrs.valley / 100, lrs.valley)) (or learn.fine_tune(n)).",
            DivergenceWarning,
            stacklevel=_user_stacklevel(),
        )
