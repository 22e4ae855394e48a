"""Callbacks: plain classes with an `order`, whose methods are named after the events of the loop.

    import quickfit as qf

    class PrintLoss(qf.Callback):
        order = 50
        def after_batch(self, learn):
            if learn.training:
                print(learn.iter, learn.loss.item())

Each method receives the learner. Events come in pairs around each stage of the loop: fit, epoch,
train, validate, batch; inside a batch there are after_pred, after_loss, after_backward,
before_step / after_step. Raising a stage's Cancel exception skips the rest of that stage and runs
its `after_cancel_<stage>` event, then its `after_<stage>` event; callbacks run in increasing `order`.
`cleanup_fit` runs last, even when training fails with an error: put the undoing of what
`before_fit` did there (unwrapping the model, restoring the data).

A method named like an event that is not one (`after_batchs`) is refused when the callback is
added, so a typo never silently does nothing. The built-in callbacks' orders are named in `Order`.
"""

from __future__ import annotations

__all__ = [
    "Callback",
    "EVENTS",
    "Order",
    "check_event_names",
    "CancelFitException",
    "CancelEpochException",
    "CancelTrainException",
    "CancelValidException",
    "CancelBatchException",
    "CancelBackwardException",
    "CancelStepException",
]

EVENTS = (
    "before_fit", "after_fit", "after_cancel_fit", "cleanup_fit",
    "before_epoch", "after_epoch", "after_cancel_epoch",
    "before_train", "after_train", "after_cancel_train",
    "before_validate", "after_validate", "after_cancel_validate",
    "before_batch", "after_batch", "after_cancel_batch",
    "after_pred", "after_loss",
    "before_backward", "after_backward", "after_cancel_backward",
    "before_step", "after_step", "after_cancel_step",
)  # fmt: skip


class Order:
    """Where each built-in callback runs in an event, lowest first (a custom callback's default is 0)."""

    PHASES = -40  # enters a phase (its data, its optimizer) before DDP shards the data and the bars wrap it
    DISTRIBUTED = -30  # shards the data before the scheduler measures an epoch in batches
    PROGRESS = -20  # wraps learn.dl before anything iterates it
    LR_FINDER = -10  # a diverged batch cancels before the Recorder checks it
    DEFAULT = 0
    GRAD_ACCUMULATION = 5  # decides whether this batch steps
    MIXED_PRECISION = 10  # unscales gradients before clipping looks at them
    GRAD_CLIP = 20
    RECORDER = 50
    SAVE_BEST = 60  # after the Recorder has written the epoch's row
    SNAPSHOT = 60
    EARLY_STOPPING = 70  # after SaveBest, so the best weights are on disk when it stops
    RESUME = 80  # after the Recorder, SaveBest and EarlyStopping have updated their state
    GATHER = 90  # sees the final predictions of a batch


_EVENT_PREFIXES = ("before_", "after_", "cleanup_")


def check_event_names(cb) -> None:
    """Refuse a callback with a method named like an event that is not one (`after_batchs`)."""
    events = set(EVENTS)
    for name in dir(type(cb)):
        if name.startswith(_EVENT_PREFIXES) and name not in events and callable(getattr(type(cb), name, None)):
            close = [e for e in EVENTS if e.startswith(name.split("_")[0] + "_")]
            close = sorted(close, key=lambda e: _distance(e, name))[:1]
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(
                f"{type(cb).__name__}.{name} is named like an event but is not one{hint} (events: {', '.join(EVENTS)})"
            )


def _distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


class Callback:
    """Base class. Override any event method (the names in `EVENTS`); a lower `order` runs first."""

    events = EVENTS
    order: int = Order.DEFAULT

    def __repr__(self) -> str:
        return f"{type(self).__name__}(order={self.order})"


class CancelFitException(Exception):
    """Stop training now (after_cancel_fit, then after_fit run)."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch."""


class CancelTrainException(Exception):
    """Skip the rest of this epoch's training phase."""


class CancelValidException(Exception):
    """Skip the rest of this epoch's validation."""


class CancelBatchException(Exception):
    """Skip the rest of this batch."""


class CancelBackwardException(Exception):
    """Skip the backward pass of this batch."""


class CancelStepException(Exception):
    """Skip the optimizer step (and zero_grad) of this batch."""
