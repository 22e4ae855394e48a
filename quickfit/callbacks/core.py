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
"""

from __future__ import annotations

__all__ = [
    "Callback",
    "EVENTS",
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


class Callback:
    """Base class. Override any event method; a lower `order` runs first."""

    order: int = 0

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
