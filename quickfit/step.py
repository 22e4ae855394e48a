"""What one training batch does: the replaceable step of the loop.

    import quickfit as qf

    class TwoLossStep(qf.TrainStep):            # e.g. a main loss plus a penalty on the outputs
        def __call__(self, learn):
            with learn.autocast:
                learn.pred = learn.model(*learn.xb)
                learn("after_pred")
                learn.loss = learn.compute_loss(learn.pred, learn.yb)
                learn.loss_grad = learn.loss + 0.1 * learn.pred.pow(2).mean()
            learn("after_loss")
            if learn.training:
                learn.backward()                # before_backward / after_backward events
                learn.opt_step()                # before_step / after_step events, loss scaling, zero_grad

    learn = qf.Learner(dls, model, loss_func, step=TwoLossStep())

The loop (`Learner._all_batches`) calls `learn.step(learn)` once per batch, inside the batch's
events, with `learn.xb` / `learn.yb` on the device. A step sets `learn.pred` and `learn.loss` (the
value logged and averaged) and fires the events it passes through; it may own more models and
optimizers than `learn.model` / `learn.opt` (a GAN's critic): it lists them in `optimizers`, which
schedules, checkpoints, resume and the learning-rate finder then handle like `learn.opt`.
"""

from __future__ import annotations

import torch

__all__ = ["TrainStep", "BasicStep"]


class TrainStep:
    """Base class of a batch step; subclasses implement `__call__(learn)`."""

    def __call__(self, learn) -> None:
        raise NotImplementedError

    def create_opts(self, learn) -> None:
        """Build the step's own optimizers (called once, after `learn.opt` is created)."""

    def start_fit(self, learn, lr_max: list[float]) -> None:
        """Called by every `fit*` (and `lr_find`) before training, with the peak rate of each of
        `learn.opt`'s groups: a step with optimizers of its own sets their `"lr_max"` from it."""

    def extra_opts(self, learn) -> list[torch.optim.Optimizer]:
        """Optimizers the step owns besides `learn.opt`; their param groups carry a `"lr_max"` key that
        the schedules multiply (one schedule per optimizer, each at its own peak rate)."""
        return []

    def state_dict(self) -> dict:
        """What a checkpoint must keep to resume this step exactly (e.g. a GAN switcher's phase)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class BasicStep(TrainStep):
    """One forward, one loss, one backward, one optimizer step (with mixed precision when it is on)."""

    def __call__(self, learn) -> None:
        with learn.autocast:
            learn.pred = learn.model(*learn.xb)
            learn("after_pred")
            if learn.yb is None:  # a test batch: predictions only
                return
            learn.loss = learn.loss_grad = learn.compute_loss(learn.pred, learn.yb)
        learn("after_loss")
        if not learn.training:
            return
        learn.backward()
        learn.opt_step()
