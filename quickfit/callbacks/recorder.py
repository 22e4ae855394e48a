"""Recorder: per-batch loss, learning rate and momentum; the epoch table; validation loss and metrics.

    learn.fit_one_cycle(3, 1e-3)
    learn.recorder.values          # one row per epoch: [epoch, train_loss, valid_loss, *metrics, time]
    learn.recorder.plot_loss().savefig("loss.png")
    learn.recorder.plot_metrics().savefig("metrics.png")   # losses and each metric per epoch

Losses stay on the device and are read in chunks of `sync_every` batches: reading a CUDA tensor
(`.item()`) waits for the GPU, and doing it every batch stalls the pipeline. A non-finite loss is
therefore seen up to 15 steps late: `last_good` (quickfit/callbacks/last_good.py) puts back the weights
and optimizer state of the last read whose losses were finite before NonFiniteLossError is raised.
"""

from __future__ import annotations

import math
import time

import torch
from tqdm.auto import tqdm

from quickfit.callbacks.core import Callback, Order
from quickfit.callbacks.last_good import LastGoodState
from quickfit.data.core import batch_size_of

__all__ = ["Recorder", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _number(v: float) -> str:
    """A table cell of at most 10 characters (a sign aside), so the columns stay aligned for any value:
    6 decimals below 1,000 (`0.693147`), 2 up to 10 million (`233849.50`), then `5.5500e+10`."""
    size = abs(v)
    if not math.isfinite(v) or size < 1e3:
        return f"{v:.6f}"
    return f"{v:.2f}" if size < 1e7 else f"{v:.4e}"


class Recorder(Callback):
    order = Order.RECORDER
    sync_every = 16

    def __init__(self):
        self.losses, self.lrs, self.moms, self.values = [], [], [], []
        self.log_table, self.check_finite, self.epoch_logged = True, True, False
        self.last_good: LastGoodState | None = LastGoodState()  # None: no copy (a model too big to hold twice)
        self.last_valid: list[float] = []
        self.lr_find_lrs, self.lr_find_losses, self.lr_find_suggestions = [], [], None
        self._pending: list[tuple[int, int, torch.Tensor]] = []
        self._valid_totals: torch.Tensor | None = None
        self._metrics: list = []

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self._metrics]

    def before_fit(self, learn) -> None:
        self._metrics = learn.metrics
        self.names = ["epoch", "train_loss", "valid_loss", *[m.name for m in learn.metrics], "time"]
        self._header_printed = False

    def before_epoch(self, learn) -> None:
        self._start, self._epoch_losses, self.last_valid = time.perf_counter(), [], []
        self._open_epoch = learn.epoch  # an epoch cancelled before this ran gets no row (nothing to show)

    def before_validate(self, learn) -> None:
        self._metrics = learn.metrics
        self._valid_totals = None
        for m in learn.metrics:
            m.reset()

    def after_batch(self, learn) -> None:
        if learn.loss is None:  # cancelled before its loss (CancelBatchException in before_batch / after_pred)
            return
        if learn.training:
            self._pending.append((learn.epoch, learn.iter, learn.loss.detach()))
            group = learn.opt.param_groups[-1]
            self.lrs.append(group["lr"])
            self.moms.append(group["betas"][0] if "betas" in group else group.get("momentum", 0.0))
            if len(self._pending) >= self.sync_every:
                self.flush(learn)
        elif learn.yb is not None:
            n = batch_size_of((learn.yb,))
            totals = torch.stack(
                [
                    learn.loss.detach().double() * n,
                    torch.tensor(float(n), device=learn.loss.device, dtype=torch.float64),
                ]
            )
            self._valid_totals = totals if self._valid_totals is None else self._valid_totals + totals
            for m in learn.metrics:
                m.accumulate(learn.pred, learn.yb)

    def before_train(self, learn) -> None:
        if self.check_finite and self.last_good is not None:  # the state the first steps start from
            self.last_good.save(learn, (learn.epoch, -1))

    def flush(self, learn=None) -> None:
        """Read the pending losses from the device and check they are finite (with `learn`, in training:
        keep a copy of the state they came to, or put the last good one back if one is not)."""
        if not self._pending:
            return
        values = torch.stack([loss for _, _, loss in self._pending]).float().cpu().tolist()
        pending, self._pending = self._pending, []
        for (epoch, i, _), v in zip(pending, values):
            if self.check_finite and not math.isfinite(v):  # a Python float: no tensor per value
                raise NonFiniteLossError(
                    f"the training loss became {v} at epoch {epoch}, batch {i}; training stopped. "
                    f"{self._restored(learn)}Lower the learning rate (try learn.lr_find()), clip gradients "
                    "(GradientClip) or check the data of that batch for NaN/inf values."
                )
        if learn is not None and learn.training and self.check_finite and self.last_good is not None:
            self.last_good.save(learn, pending[-1][:2])
        self.losses.extend(values)
        if hasattr(self, "_epoch_losses"):
            self._epoch_losses.extend(values)

    def _restored(self, learn) -> str:
        """What the error says of the learner's state: restored (and where from) and the checkpoints kept."""
        from quickfit.callbacks.resume import ResumeCheckpoint

        kept = [f"{learn._file(cb.name)}" for cb in learn.cbs if isinstance(cb, ResumeCheckpoint)] if learn else []
        ckpt = f"The last checkpoint ({kept[0]}) is intact" if kept else "Checkpoints saved before are intact"
        ckpt += ": no epoch with a non-finite loss is saved. "
        good = self.last_good
        if learn is None or good is None or not learn.training:
            return ckpt
        if not good.restore(learn):
            return f"The weights could not be put back to finite values. {ckpt}"
        epoch, batch = good.where
        at = f"at the start of epoch {epoch}" if batch < 0 else f"after epoch {epoch}, batch {batch}"
        return f"The weights and optimizer state are back to those {at} (the last finite losses). {ckpt}"

    @property
    def last_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None

    def after_train(self, learn) -> None:
        self.flush(learn)

    def after_validate(self, learn) -> None:
        from quickfit.callbacks.distributed import all_reduce_sum

        if self._valid_totals is None:
            self.last_valid = []
            return
        totals, self._valid_totals = all_reduce_sum(self._valid_totals).cpu(), None
        values = [float(totals[0] / totals[1])]
        for m in learn.metrics:
            m.totals = all_reduce_sum(m.totals) if m.totals is not None else None
            values.append(m.value)
        self.last_valid = values

    def after_epoch(self, learn) -> None:
        self.flush(learn)
        # epoch_logged: whether this epoch has a row (values[-1]); later callbacks read the row only then
        # (no row for an epoch cancelled before it trained a batch or validated: nothing happened in it)
        started = getattr(self, "_open_epoch", None) == learn.epoch
        self.epoch_logged = started and bool(self._epoch_losses or self.last_valid)
        if not self.epoch_logged:
            return
        self._open_epoch = None
        from quickfit.callbacks.distributed import all_reduce_sum

        # every rank records its own batches' losses: the table shows the mean over all of them
        total = all_reduce_sum(torch.tensor([sum(self._epoch_losses), len(self._epoch_losses)], dtype=torch.float64))
        train_loss = float(total[0] / total[1]) if total[1] else float("nan")
        valid = self.last_valid if learn.dls.valid is not None else []
        valid = valid + [None] * (1 + len(learn.metrics) - len(valid))
        row = [learn.epoch, train_loss, *valid, time.perf_counter() - self._start]
        self.values.append(row)
        if self.log_table and learn.is_main_process:
            if not self._header_printed:
                tqdm.write(self._format(self.names))
                self._header_printed = True
            tqdm.write(self._format(row))

    def _format(self, row: list) -> str:
        cells = []
        for name, v in zip(self.names, row):
            if isinstance(v, str):
                text = v
            elif name == "time":
                text = f"{int(v // 60):02d}:{int(v % 60):02d}"
            elif name == "epoch":
                text = str(v)
            else:
                text = "" if v is None else _number(v)
            cells.append(text.ljust(max(len(name), 10)))
        return "  ".join(cells).rstrip()

    # ---- state, for exact resume --------------------------------------------------------
    def state_dict(self) -> dict:
        self.flush()
        return {"losses": self.losses, "lrs": self.lrs, "moms": self.moms, "values": self.values}

    def load_state_dict(self, state: dict) -> None:
        self.losses, self.lrs, self.moms = list(state["losses"]), list(state["lrs"]), list(state["moms"])
        self.values = [list(r) for r in state["values"]]

    # ---- plots ------------------------------------------------------------------------------
    def plot_loss(self, skip_start: int = 5, with_valid: bool = True):
        """Training loss per batch (and validation loss per epoch); returns a matplotlib Figure."""
        from quickfit.plots import plot_loss

        return plot_loss(self, skip_start, with_valid)

    def plot_schedule(self):
        """Learning rate and momentum per batch; returns a matplotlib Figure."""
        from quickfit.plots import plot_schedule

        return plot_schedule(self)

    def plot_metrics(self, nrows: int | None = None, ncols: int | None = None, figsize=None):
        """The epoch table as curves: train and valid loss in one panel, one panel per metric; returns the Figure."""
        from quickfit.plots import plot_metrics

        return plot_metrics(self, nrows, ncols, figsize)

    def plot_lr_find(self, skip_end: int = 5):
        """Loss against learning rate (log scale) from the last lr_find, suggestions marked."""
        from quickfit.plots import plot_lr_find

        return plot_lr_find(self, skip_end)
