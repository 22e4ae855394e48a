"""Loggers: the training history written to a CSV file or to TensorBoard while training runs.

    import quickfit as qf
    learn = qf.Learner(dls, model, loss_func, metrics=[qf.accuracy],
                       cbs=[qf.CSVLogger("history.csv"), qf.TensorBoardLogger("runs/exp1")])
    learn.fit_one_cycle(5, 1e-3)      # history.csv: epoch,train_loss,valid_loss,accuracy,time
    # tensorboard --logdir runs       (pip install "quickfit[tensorboard]")

Both read what the Recorder measured (they run after it in each event), so the files hold exactly
the numbers of `learn.recorder.values` / `.losses` / `.lrs`, and add no device sync of their own.
Paths are relative to `learn.path`. Only the main process writes (distributed training). The
learning-rate finder's sweep is not logged.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from quickfit.callbacks.core import Callback, Order
from quickfit.callbacks.lr_finder import LRFinder
from quickfit.callbacks.schedule import ParamScheduler

__all__ = ["CSVLogger", "TensorBoardLogger"]


def _in_lr_find(learn) -> bool:
    return any(isinstance(cb, LRFinder) for cb in learn.cbs)


class CSVLogger(Callback):
    """The epoch table as CSV at `learn.path / fname`: one row per epoch, written (and flushed) at its end.

    Columns are the Recorder's (`epoch, train_loss, valid_loss, <metrics>, time`), numbers at full
    precision, `time` in seconds, an empty cell where there was no validation. The logger's first fit
    starts a new file (unless `append=True`); its later fits append (so `fine_tune`'s two stages are one
    table, as in `learn.recorder.values`), with a new header line when the columns change. `epoch` counts
    on across a learner's fits (the row's index in `learn.recorder.values`, TensorBoardLogger's step:
    the two logs agree), where the printed table starts each fit at 0. A fit resumed from a checkpoint
    (`resume=True`) appends, after dropping rows the interrupted run wrote past its last checkpoint.
    """

    order = Order.RECORDER + 5  # after the Recorder has written the epoch's row

    def __init__(self, fname: str | Path = "history.csv", append: bool = False) -> None:
        self.fname, self.append = Path(fname), append
        self._started, self._wrote = False, False  # this fit / any fit has written

    @property
    def path(self) -> Path | None:
        return getattr(self, "_path", None)

    def before_fit(self, learn) -> None:
        self._active = learn.is_main_process and not _in_lr_find(learn)
        self._path, self._started = learn.path / self.fname, False

    def _start(self, learn, earlier: int) -> None:
        # decided at the first epoch's end: by then a resumed fit knows where it starts
        names = learn.recorder.names
        f = self._path
        f.parent.mkdir(parents=True, exist_ok=True)
        if learn.start_epoch > 0 and f.exists():
            with open(f, newline="") as fh:
                rows = list(csv.reader(fh))
            while rows and rows[-1] != names and _epoch_of(rows[-1]) >= earlier + learn.start_epoch:
                rows.pop()  # written by the interrupted run after its last checkpoint
            with open(f, "w", newline="") as fh:
                csv.writer(fh).writerows(rows or [names])
        elif not ((self.append or self._wrote) and f.exists() and f.stat().st_size > 0):
            with open(f, "w", newline="") as fh:
                csv.writer(fh).writerow(names)
        elif _last_header(f) != names:  # appending other columns (another metric): say which they are
            with open(f, "a", newline="") as fh:
                csv.writer(fh).writerow(names)
        self._started = self._wrote = True

    def after_epoch(self, learn) -> None:
        if not self._active:
            return
        if not learn.recorder.epoch_logged:  # an epoch cancelled before it trained has no row
            return
        step = len(learn.recorder.values) - 1  # the epochs of earlier fits, plus this one's
        row = learn.recorder.values[-1]
        if not self._started:
            self._start(learn, earlier=step - row[0])
        cells = [str(step)] + [
            "" if v is None else (repr(float(v)) if isinstance(v, float) else str(v)) for v in row[1:]
        ]
        with open(self._path, "a", newline="") as fh:
            csv.writer(fh).writerow(cells)


def _last_header(f: Path) -> list[str] | None:
    with open(f, newline="") as fh:
        headers = [r for r in csv.reader(fh) if r and r[0] == "epoch"]
    return headers[-1] if headers else None


def _epoch_of(row: list[str]) -> float:
    try:
        return int(row[0])
    except (ValueError, IndexError):
        return -math.inf  # a header or a blank line: keep it


class TensorBoardLogger(Callback):
    """Losses, metrics, learning rates and momentums to TensorBoard event files in `learn.path / log_dir`.

    Per training batch: `train/loss`, `train/lr` and `train/mom` (the last layer group's, as the
    Recorder has them) and `train/lr_group<i>` for every layer group when there are several, at step =
    the batch's index in the Recorder's history. Per epoch: `epoch/train_loss`, `epoch/valid_loss` and
    `epoch/<metric>`, at step = the epoch's index in `learn.recorder.values` (so successive fits, as
    in `fine_tune`, continue the curves). At the end of each fit, the hyper-parameters (epochs, peak
    learning rates, weight decay, batch size, optimizer, loss, model) with the final validation values
    (the HPARAMS tab). Batches are written at each epoch's end, from values the Recorder already read.
    """

    order = Order.RECORDER + 5

    def __init__(self, log_dir: str | Path = "runs", hparams: bool = True) -> None:
        from quickfit.extras import require

        require("tensorboard", package="tensorboard", extra="tensorboard", what="TensorBoardLogger")
        self.log_dir, self.hparams = Path(log_dir), hparams
        self.writer = None

    def before_fit(self, learn) -> None:
        self._active = learn.is_main_process and not _in_lr_find(learn)
        if not self._active:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(learn.path / self.log_dir))
        self._written = len(learn.recorder.losses)  # batches of earlier fits are in earlier files
        self._group_lrs: list[list[float]] = []
        self._per_group = len(learn.hypers("lr")) > 1

    def after_batch(self, learn) -> None:
        if self._active and learn.training and self._per_group:
            self._group_lrs.append(learn.hypers("lr"))  # Python floats: no device sync

    def _write_batches(self, learn) -> None:
        rec, w = learn.recorder, self.writer
        start = self._written
        for i in range(start, len(rec.losses)):
            w.add_scalar("train/loss", rec.losses[i], i)
            w.add_scalar("train/lr", rec.lrs[i], i)
            w.add_scalar("train/mom", rec.moms[i], i)
        first = len(rec.losses) - len(self._group_lrs)
        for i, lrs in enumerate(self._group_lrs):
            for g, lr in enumerate(lrs):
                w.add_scalar(f"train/lr_group{g}", lr, first + i)
        self._group_lrs, self._written = [], len(rec.losses)

    def after_epoch(self, learn) -> None:
        if not self._active:
            return
        self._write_batches(learn)
        rec = learn.recorder
        if not rec.epoch_logged:  # an epoch cancelled before it trained has no row
            return
        step = len(rec.values) - 1
        for name, v in zip(rec.names[1:-1], rec.values[-1][1:-1]):
            if v is not None and math.isfinite(v):
                self.writer.add_scalar(f"epoch/{name}", v, step)
        self.writer.flush()

    def after_fit(self, learn) -> None:
        if not self._active:
            return
        self._write_batches(learn)
        if self.hparams and learn.recorder.values:
            from torch.utils.tensorboard.summary import hparams

            final = _final_values(learn)
            step = len(learn.recorder.values) - 1
            for summary in hparams(_hparams(learn), final):  # in this run's folder, not a new one
                self.writer.file_writer.add_summary(summary, step)
            for name, v in final.items():
                self.writer.add_scalar(name, v, step)
        self.writer.flush()

    def cleanup_fit(self, learn) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _hparams(learn) -> dict:
    sched = next((cb for cb in learn.cbs if isinstance(cb, ParamScheduler)), None)
    lrs = sched.lr_max if sched is not None else learn.hypers("lr")
    wd = [v for v in learn.hypers("wd") if v is not None]
    loss = learn.loss_func
    out = {
        "n_epoch": learn.n_epoch,
        "lr_max": float(lrs[-1]),
        "lr_min_group": float(min(lrs)),
        "wd": float(wd[-1]) if wd else 0.0,
        "opt": getattr(learn.opt_func, "__name__", type(learn.opt).__name__),
        "loss": type(loss).__name__ if hasattr(loss, "forward") else getattr(loss, "__name__", str(loss)),
        "model": type(learn._unwrapped()).__name__,
    }
    bs = getattr(learn.dls.train, "bs", getattr(learn.dls.train, "batch_size", None))
    if isinstance(bs, int):
        out["bs"] = bs
    return out


def _final_values(learn) -> dict:
    rec = learn.recorder
    pairs = zip(rec.names[1:-1], rec.values[-1][1:-1])
    return {f"hparam/{n}": float(v) for n, v in pairs if v is not None and math.isfinite(v)}
