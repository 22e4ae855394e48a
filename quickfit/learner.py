"""The Learner: a model, its data, a loss and an optimizer, and the loop that trains them.

    import torch, quickfit as qf
    from torch import nn
    learn = qf.Learner(dls, nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2)),
                       nn.CrossEntropyLoss(), metrics=[qf.accuracy])
    learn.lr_find()                      # SuggestedLRs(valley=..., steep=..., minimum=...)
    learn.fit_one_cycle(3, 1e-2)         # prints: epoch  train_loss  valid_loss  accuracy  time

The loop is `fit -> epoch -> (train, validate) -> batch`, every stage wrapped in before / after events
that callbacks (see `quickfit.callbacks`) hook into. Everything else (schedules, recording, progress,
mixed precision, checkpoints, distributed training) is a callback.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from quickfit import env, schedules
from quickfit.callbacks.core import (
    EVENTS,
    Callback,
    CancelBackwardException,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
    check_event_names,
)
from quickfit.callbacks.distributed import DistributedCallback
from quickfit.callbacks.divergence import DivergenceCheck
from quickfit.callbacks.lr_finder import LRFinder, SuggestedLRs
from quickfit.callbacks.mixed_precision import MixedPrecision
from quickfit.callbacks.progress import ProgressCallback
from quickfit.callbacks.recorder import Recorder
from quickfit.callbacks.resume import ResumeCheckpoint
from quickfit.callbacks.schedule import ParamScheduler
from quickfit.contracts import check_task_data
from quickfit.data.core import DataLoaders, to_device
from quickfit.inference import InferenceMixin
from quickfit.metrics import as_metric
from quickfit.optim import Adam, Optimizers, get_hyper, lr_per_group, param_groups, set_hyper
from quickfit.phases import Phase, check_phases
from quickfit.saving import SavingMixin
from quickfit.step import BasicStep, TrainStep

__all__ = ["Learner", "default_device", "trainable_params"]

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def default_device() -> torch.device:
    """CUDA when available, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():  # under torchrun, each process its own GPU
        return torch.device("cuda", env.local_rank())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def trainable_params(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _check_number(name: str, value, low: float | None = 0.0, high: float | None = None, open_low=True) -> float:
    """`value` as a float, or a ValueError / TypeError naming the argument and the value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        else:
            kind = "a string" if isinstance(value, str) else type(value).__name__
            raise TypeError(f"{name} must be a number, not {kind}: got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value <= low if open_low else value < low):
        raise ValueError(f"{name} must be {'>' if open_low else '>='} {low:g}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high:g}, got {value!r}")
    return value


def _check_count(name: str, value, allow_float: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Integral if not allow_float else numbers.Real)
    if not ok or value <= 0:
        kind = "a positive number" if allow_float else "a positive whole number"
        hint = " (not a string)" if isinstance(value, str) else ""
        raise (ValueError if ok else TypeError)(f"{name} must be {kind}{hint}, got {value!r}")


def _check_cbs(cbs) -> list:
    """`cbs` as a list, or a TypeError naming it (a single callback, None or a string is a common slip)."""
    if isinstance(cbs, (str, bytes)) or not isinstance(cbs, Iterable):
        raise TypeError(f"cbs must be a list of callbacks (cbs=[...]), got {cbs!r}")
    return list(cbs)


def _check_lr(name: str, lr) -> None:
    """A learning rate: None, a positive number, `slice(hi)` / `slice(lo, hi)`, or one positive number per group."""
    if lr is None:
        return
    if isinstance(lr, slice):
        parts = [("start", lr.start), ("stop", lr.stop)]
        for part, v in parts:
            if v is not None:
                _check_number(f"{name} ({part} of the slice)", v, open_low=False)
        if lr.stop is None:
            raise ValueError(f"{name}=slice(...) needs a stop (the last group's rate), got {lr!r}")
        if lr.step is not None:
            raise ValueError(f"{name}: a learning-rate slice takes no step, got {lr!r}")
        return
    if isinstance(lr, (str, bytes)) or np.ndim(lr) == 0:  # one rate (or something that is not one: named)
        _check_number(name, lr, open_low=False)  # 0 is allowed (nothing moves); negative is gradient ascent
        return
    for i, v in enumerate(list(lr)):
        _check_number(f"{name}[{i}]", v, open_low=False)


def _one_group(model: nn.Module) -> list[list[nn.Parameter]]:
    return [list(model.parameters())]


class Learner(InferenceMixin, SavingMixin):
    """Trains `model` on `dls` with `loss_func`; see the module docstring.

    `lr` is the default learning rate of every `fit*` call; `wd` the weight decay (None keeps the
    optimizer's default); `splitter(model)` returns the layer groups (one group by default);
    `train_bn` keeps normalization layers trainable in frozen groups; `slice_div` is the divisor of
    `slice(hi)` learning rates (the groups before the last get `hi / slice_div`); `device` defaults
    to CUDA when available; `step` is what one training batch does (`quickfit.step.BasicStep`:
    forward, loss, backward, optimizer step), replaceable for GANs, teacher forcing, extra losses.
    Inference (`get_preds`, `predict`, `validate`) lives in quickfit/inference.py, saving (`save`,
    `load`, `export`) in quickfit/saving.py.
    """

    def __init__(
        self,
        dls: DataLoaders,
        model: nn.Module,
        loss_func: Callable | None = None,
        opt_func: Callable = Adam,
        lr: float | slice | Sequence[float] = 1e-3,
        wd: float | None = None,
        metrics: Iterable = (),
        splitter: Callable[[nn.Module], list] | None = None,
        cbs: Iterable[Callback] = (),
        path: str | Path = ".",
        model_dir: str | Path = "models",
        train_bn: bool = True,
        slice_div: float = 3.0,
        progress: bool | None = None,
        device: torch.device | str | None = None,
        step: TrainStep | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        check_task_data(dls)  # names what dls lacks (quickfit/contracts.py), not an AttributeError mid-fit
        if loss_func is None:
            loss_func = getattr(dls, "loss_func", None)
        self.dls, self.loss_func, self.opt_func, self.lr, self.wd = dls, loss_func, opt_func, lr, wd
        self.splitter, self.train_bn, self.slice_div = splitter or _one_group, train_bn, slice_div
        self.path, self.model_dir = Path(path), Path(model_dir)
        self.metrics = [as_metric(m) for m in metrics]
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device)
        if hasattr(dls, "to"):
            dls.to(self.device)
        if step is not None and not callable(step):
            raise TypeError(f"step must be a TrainStep (called with the learner once per batch), got {step!r}")
        self.step: TrainStep = step if step is not None else BasicStep()
        self.opt: torch.optim.Optimizer | None = None
        self.export_info: dict = {}
        self.autocast = contextlib.nullcontext()  # set by the MixedPrecision callback
        self.scaler: torch.amp.GradScaler | None = None
        self.is_main_process = env.is_main_process()
        self.training, self.epoch, self.n_epoch, self.start_epoch, self.iter = False, 0, 1, 0, 0
        self.epoch_batches: int | None = None  # training batches of this epoch; None: all (a phase may stop early)
        self.loss = self.loss_grad = self.pred = self.xb = self.yb = None
        self.cbs: list[Callback] = []
        self.recorder, self.progress_cb = Recorder(), ProgressCallback(progress)
        self.add_cbs([self.recorder, self.progress_cb, DivergenceCheck(), *cbs])

    # ---- callbacks -------------------------------------------------------------------------
    def add_cbs(self, cbs: Iterable[Callback]) -> Learner:
        for cb in cbs:
            if isinstance(cb, type):
                raise TypeError(f"pass a callback instance, not the class {cb.__name__}")
            check_event_names(cb)
            self.cbs.append(cb)
        self._index_handlers()
        return self

    def remove_cbs(self, cbs: Iterable[Callback]) -> Learner:
        for cb in cbs:
            if cb in self.cbs:
                self.cbs.remove(cb)
        self._index_handlers()
        return self

    @contextlib.contextmanager
    def added_cbs(self, cbs: Iterable[Callback]):
        cbs = list(cbs)
        self.add_cbs(cbs)
        try:
            yield self
        finally:
            self.remove_cbs(cbs)

    def _index_handlers(self) -> None:
        # Resolved once per change of callbacks, so dispatching an event costs a list walk, no getattr.
        ordered = sorted(self.cbs, key=lambda cb: cb.order)
        self._handlers = {e: [getattr(cb, e) for cb in ordered if hasattr(cb, e)] for e in EVENTS}

    def __call__(self, event: str) -> None:
        for handler in self._handlers[event]:
            handler(self)

    def _with_events(self, fn: Callable[[], None], stage: str, cancel: type[Exception]) -> None:
        try:
            self(f"before_{stage}")
            fn()
        except cancel:
            self(f"after_cancel_{stage}")
        self(f"after_{stage}")

    # ---- the loop --------------------------------------------------------------------------
    def _do_fit(self) -> None:
        for self.epoch in range(self.start_epoch, self.n_epoch):
            self._with_events(self._do_epoch, "epoch", CancelEpochException)

    def _do_epoch(self) -> None:
        self._run_phase(train=True)
        if self.dls.valid is not None:
            self._run_phase(train=False)

    def _run_phase(self, train: bool, dl: Iterable | None = None) -> None:
        self.training = train
        self.model.train(train)
        self.dl = dl if dl is not None else (self.dls.train if train else self.dls.valid)
        stage, cancel = ("train", CancelTrainException) if train else ("validate", CancelValidException)
        with torch.set_grad_enabled(train):
            self._with_events(self._all_batches, stage, cancel)

    def _all_batches(self) -> None:
        self.n_iter, dl = len(self.dl), self.dl
        if self.training and self.epoch_batches is not None and self.epoch_batches < self.n_iter:
            self.n_iter, dl = self.epoch_batches, itertools.islice(dl, self.epoch_batches)  # a fractional phase
        n_inp = getattr(self.dls, "n_inp", 1)
        for self.iter, batch in enumerate(dl):
            self.loss = self.loss_grad = self.pred = None  # a batch cancelled early leaves none of the last one's
            batch = to_device(tuple(batch), self.device)
            self.xb, self.yb = batch[:n_inp], (batch[n_inp] if len(batch) > n_inp else None)
            self._with_events(self._one_batch, "batch", CancelBatchException)

    def _one_batch(self) -> None:
        self.step(self)

    # ---- what a step calls ---------------------------------------------------------------------
    def backward(self) -> None:
        """Back-propagate `self.loss_grad`, inside the before_backward / after_backward events."""
        self._with_events(self._backward, "backward", CancelBackwardException)

    def opt_step(self, opt: torch.optim.Optimizer | None = None) -> None:
        """Step `opt` (default `self.opt`) and zero its gradients, inside the before_step / after_step events.

        `self.stepping_opt` tells the step's callbacks (loss unscaling, gradient clipping) which one it is.
        """
        self.stepping_opt = self.opt if opt is None else opt
        self._with_events(self._step, "step", CancelStepException)

    def _backward(self) -> None:
        self.loss_grad.backward()

    def _step(self) -> None:
        opt = self.stepping_opt
        if self.scaler is None:
            opt.step()
        else:  # fp16: unscale, skip the step if any gradient overflowed, adapt the scale
            self.scaler.step(opt)
            self.scaler.update()
        opt.zero_grad(set_to_none=True)

    def compute_loss(self, pred, targ) -> torch.Tensor:
        """`loss_func(pred, targ)`; on a pass's first batch, shape mistakes become a clear error."""
        return self._compute_loss(pred, targ)

    def _compute_loss(self, pred, targ) -> torch.Tensor:
        if self.loss_func is None:
            raise ValueError("this Learner has no loss_func: pass loss_func= to train or validate it")
        if self.iter > 0:
            return self.loss_func(pred, targ)
        # First batch of a pass: turn silent broadcasting (a warning from torch) into a clear error.
        shapes = f"predictions of shape {tuple(getattr(pred, 'shape', ()))} and targets of shape " + str(
            tuple(getattr(targ, "shape", ()))
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*target size.*different to the input size.*")
            try:
                loss = self.loss_func(pred, targ)
            except (RuntimeError, ValueError, IndexError, UserWarning) as e:
                raise ValueError(f"loss_func failed on {shapes}: {e}") from e
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise ValueError(
                f"loss_func must return a scalar tensor; it returned {type(loss).__name__} "
                f"of shape {tuple(getattr(loss, 'shape', ()))} for {shapes}"
            )
        return loss

    # ---- fitting -------------------------------------------------------------------------------
    @property
    def layer_groups(self) -> list[list[nn.Parameter]]:
        return [list(g) for g in self.splitter(self.model)]

    def create_opt(self) -> torch.optim.Optimizer:
        """Build the optimizer over the layer groups (done by the first `fit*` call)."""
        groups = param_groups(self.layer_groups)
        lrs = lr_per_group(self.lr, len(groups), self.slice_div)  # one torch group per layer group
        for g in groups:
            g["lr"] = lrs[g["layer_group"]]
        self.opt = self.opt_func(groups, lr=float(lrs[-1]), **({} if self.wd is None else {"wd": self.wd}))
        self.stepping_opt = self.opt
        self.step.create_opts(self)
        return self.opt

    @property
    def opts(self) -> Optimizers:
        """Every optimizer of this learner as one: `self.opt` and those its step owns (a GAN's critic).
        What the engine schedules, checkpoints and restores (quickfit/optim.py)."""
        if self.opt is None:
            self.create_opt()
        return Optimizers([self.opt, *self.step.extra_opts(self)])

    def use_opt_func(self, opt_func: Callable) -> torch.optim.Optimizer:
        """Train on with the optimizer `opt_func` builds (a phase's `opt_func`). Its state (momentum
        buffers, Adam's moments, hyper-parameters) carries over when it is of the type in use; a new
        type starts fresh."""
        if self.opt is not None and opt_func is self.opt_func:
            return self.opt
        old, self.opt_func = self.opt, opt_func
        opt = self.create_opt()
        if old is not None and type(old) is type(opt):  # the buffers only: the new one's settings stay
            state = opt.state_dict()
            state["state"] = old.state_dict()["state"]
            opt.load_state_dict(state)
        return opt

    def set_data(self, dls) -> Learner:
        """Continue training the same model on other data (progressive resizing: larger images). The
        new data must have the model's classes; a phase with `dls=` calls this at its start."""
        problem = _same_targets(self.dls, dls)
        if problem:
            raise ValueError(f"set_data: the new data {problem}")
        self.dls = dls
        if hasattr(dls, "to"):
            dls.to(self.device)
        return self

    def hypers(self, name: str) -> list[float]:
        """The current value of `name` ("lr", "mom", "wd") for each layer group, first to last."""
        if self.opt is None:
            self.create_opt()
        return get_hyper(self.opt, name)

    def set_hypers(self, name: str, values) -> None:
        if self.opt is None:
            self.create_opt()
        set_hyper(self.opt, name, values)

    def _fit(self, n_epoch: int, scheduler: ParamScheduler | None, cbs, checkpoint, resume, kind: str) -> None:
        """Run the loop for `n_epoch` epochs with the fit's callbacks (its phases' scheduler first)."""
        cbs = _check_cbs(cbs)
        if checkpoint is not None and not isinstance(checkpoint, str):
            raise TypeError(f"checkpoint must be a name (a string) or None, got {checkpoint!r}")
        if self.opt is None:
            self.create_opt()
        fit_cbs = [*([scheduler] if scheduler is not None else []), *cbs]
        self.n_epoch, self.start_epoch = n_epoch, 0
        if checkpoint is not None:
            resumer = ResumeCheckpoint(checkpoint, resume=resume, kind=kind)
            self.start_epoch = resumer.start_epoch(self)  # before the phases enter the one it resumes in
            fit_cbs.append(resumer)
        elif resume:
            raise ValueError("resume=True needs checkpoint='name' (the checkpoint to resume from)")
        if env.world_size() > 1 and not any(isinstance(cb, DistributedCallback) for cb in self.cbs):
            fit_cbs.append(DistributedCallback())
        with self.added_cbs(fit_cbs):
            try:
                self._with_events(self._do_fit, "fit", CancelFitException)
            except KeyboardInterrupt:
                self._say_interrupted(checkpoint)
                raise
            finally:
                self("cleanup_fit")

    def _say_interrupted(self, checkpoint: str | None) -> None:
        """Ctrl-C: what was kept, and how to go on (the learner stays usable; checkpoints are atomic)."""
        if not self.is_main_process:
            return
        msg = (f"\nInterrupted at epoch {self.epoch}, batch {self.iter}: the learner keeps the weights of that moment "
               "(usable: learn.predict, learn.validate, learn.save). ")  # fmt: skip
        if checkpoint is not None and self._file(checkpoint).exists():
            msg += (f"{self._file(checkpoint)} holds the last finished epoch: run the same fit call with resume=True "
                    "to continue from it.")  # fmt: skip
        else:
            msg += "To be able to resume an interrupted fit, pass checkpoint='name' (and resume=True to continue)."
        print(msg, flush=True)

    def fit_phases(
        self,
        phases: Sequence[Phase],
        cbs: Iterable[Callback] = (),
        checkpoint: str | None = None,
        resume: bool = False,
        kind: str = "fit_phases",
    ) -> None:
        """Train through `phases` in order (quickfit/phases.py): each its own length, rate, momentum and
        weight-decay shapes, optimizer and data. `checkpoint="name"` saves every epoch; `resume=True`
        continues an interrupted run (also mid-phase). `kind` names the fit in checkpoints."""
        phases = check_phases(phases, self.dls, _check_lr, _same_targets)
        scheduler = ParamScheduler(phases)
        self._fit(scheduler.n_epoch, scheduler, cbs, checkpoint, resume, kind)

    def _checked_phase(self, n_epoch, rate, wd, rate_name: str = "lr", **phase) -> Phase:
        """The one phase of a built-in fit, its arguments checked under the names the user typed."""
        _check_count("n_epoch", n_epoch, allow_float=True)
        if n_epoch != int(n_epoch):  # a fraction would silently train the whole last epoch
            raise ValueError(f"n_epoch must be a whole number of epochs, got {n_epoch!r}")
        _check_lr(rate_name, rate)
        if wd is not None:
            _check_number("wd", wd, low=0.0, open_low=False)
        return Phase(int(n_epoch), wd=wd, **phase)

    def fit(
        self,
        n_epoch: int,
        lr=None,
        wd: float | None = None,
        cbs: Iterable[Callback] = (),
        checkpoint: str | None = None,
        resume: bool = False,
    ) -> None:
        """Train `n_epoch` epochs at a constant learning rate (a float, slice or one per group)."""
        phase = self._checked_phase(n_epoch, lr, wd, lr=lr)
        self.fit_phases([phase], cbs, checkpoint, resume, kind="fit")

    def fit_one_cycle(
        self,
        n_epoch: int,
        lr_max=None,
        div: float = 25.0,
        div_final: float = 1e5,
        pct_start: float = 0.25,
        moms: tuple[float, float, float] | None = (0.95, 0.85, 0.95),
        wd: float | None = None,
        cbs: Iterable[Callback] = (),
        checkpoint: str | None = None,
        resume: bool = False,
    ) -> None:
        """One cycle (Smith): lr from lr_max/div up to lr_max and down to lr_max/div_final, momentum inverse.

        One phase: `lr_max * combined_cos(pct_start, 1/div, 1, 1/div_final)`, `mom=combined_cos(pct_start, *moms)`.
        """
        _check_number("div", div)
        _check_number("div_final", div_final)
        _check_number("pct_start", pct_start, low=0.0, high=1.0, open_low=False)
        if moms is not None:
            if isinstance(moms, (str, bytes)) or len(moms) != 3:
                raise ValueError(f"moms must be three momentums (start, middle, end) or None, got {moms!r}")
            for i, m in enumerate(moms):
                _check_number(f"moms[{i}]", m, low=0.0, high=1.0, open_low=False)
        lr_max = self.lr if lr_max is None else lr_max
        shape = schedules.combined_cos(pct_start, 1 / div, 1.0, 1 / div_final)
        mom = None if moms is None else schedules.combined_cos(pct_start, *moms)
        phase = self._checked_phase(n_epoch, lr_max, wd, "lr_max", lr=lr_max * shape, mom=mom)
        self.fit_phases([phase], cbs, checkpoint, resume, kind="fit_one_cycle")

    def fit_flat_cos(
        self,
        n_epoch: int,
        lr=None,
        pct_start: float = 0.75,
        wd: float | None = None,
        cbs: Iterable[Callback] = (),
        checkpoint: str | None = None,
        resume: bool = False,
    ) -> None:
        """Flat at `lr` for `pct_start` of training, then cosine annealing to 0."""
        _check_number("pct_start", pct_start, low=0.0, high=1.0, open_low=False)
        lr = self.lr if lr is None else lr
        shape = schedules.combine_scheds(
            [pct_start, 1 - pct_start], [schedules.SchedNo(1, 1), schedules.SchedCos(1, 0)]
        )
        self.fit_phases([self._checked_phase(n_epoch, lr, wd, lr=lr * shape)], cbs, checkpoint, resume, "fit_flat_cos")

    def fit_sgdr(
        self,
        n_cycles: int,
        cycle_len: int = 1,
        lr_max=None,
        cycle_mult: int = 1,
        snapshot: str | None = None,
        wd: float | None = None,
        cbs: Iterable[Callback] = (),
        checkpoint: str | None = None,
        resume: bool = False,
    ) -> None:
        """Cosine annealing with warm restarts: `n_cycles` cycles of cycle_len * cycle_mult**i epochs.

        With `snapshot="name"` the weights are saved as `name_0`, `name_1`, ... at the end of every
        cycle; `snapshot_ensemble_preds("name")` averages their predictions.
        """
        _check_count("n_cycles", n_cycles)
        _check_count("cycle_len", cycle_len, allow_float=True)
        _check_count("cycle_mult", cycle_mult, allow_float=True)
        n_epoch = schedules.sgdr_epochs(n_cycles, cycle_len, cycle_mult)
        if n_epoch != int(n_epoch):
            raise ValueError(f"fit_sgdr needs a whole number of epochs, got {n_epoch}")
        cbs = _check_cbs(cbs)
        if snapshot is not None:
            from quickfit.callbacks.checkpoint import SnapshotCallback

            ends = [int(s) - 1 for s in schedules.cycle_starts(n_cycles, cycle_len, cycle_mult)[1:]]
            cbs.append(SnapshotCallback(snapshot, [*ends, int(n_epoch) - 1]))
        lr_max = self.lr if lr_max is None else lr_max
        shape = schedules.SGDRSched(n_cycles, cycle_len, cycle_mult)
        phase = self._checked_phase(int(n_epoch), lr_max, wd, "lr_max", lr=lr_max * shape)
        self.fit_phases([phase], cbs, checkpoint, resume, kind="fit_sgdr")

    def fine_tune(
        self,
        epochs: int,
        base_lr: float = 2e-3,
        freeze_epochs: int = 1,
        lr_mult: float = 100.0,
        pct_start: float = 0.3,
        div: float = 5.0,
        wd: float | None = None,
        cbs: Iterable[Callback] = (),
    ) -> None:
        """The course's transfer-learning recipe in one call.

        The head alone (body frozen) for `freeze_epochs` one-cycle epochs at `base_lr`, then every
        layer for `epochs` epochs with discriminative rates `slice(base_lr / 2 / lr_mult, base_lr / 2)`
        (the first group `lr_mult` times slower than the head). A model with one layer group trains
        whole in both stages.
        """
        _check_count("epochs", epochs)
        if freeze_epochs != 0:
            _check_count("freeze_epochs", freeze_epochs)
        base_lr = _check_number("base_lr", base_lr)
        lr_mult = _check_number("lr_mult", lr_mult)
        cbs = _check_cbs(cbs)  # used by both stages: a generator would be empty in the second
        # checked before the first stage trains, not when the second one starts
        _check_number("pct_start", pct_start, low=0.0, high=1.0, open_low=False)
        _check_number("div", div)
        if wd is not None:
            _check_number("wd", wd, low=0.0, open_low=False)
        if freeze_epochs:
            self.freeze()
            self.fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99, wd=wd, cbs=cbs)
        self.unfreeze()
        base_lr /= 2
        self.fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr), pct_start=pct_start, div=div, wd=wd, cbs=cbs)

    def lr_find(
        self,
        start_lr: float = 1e-7,
        end_lr: float = 10,
        num_it: int = 100,
        stop_div: bool = True,
        show_plot: bool = True,
    ) -> SuggestedLRs:
        """Exponential learning-rate sweep; restores the weights and optimizer afterwards."""
        start_lr = _check_number("start_lr", start_lr)
        end_lr = _check_number("end_lr", end_lr)
        if end_lr <= start_lr:
            raise ValueError(f"end_lr must be above start_lr, got start_lr={start_lr!r}, end_lr={end_lr!r}")
        _check_count("num_it", num_it)
        if num_it < 2:
            raise ValueError(f"num_it must be at least 2 (a sweep needs two rates), got {num_it!r}")
        finder = LRFinder(start_lr, end_lr, num_it, stop_div)
        n_epoch = max(1, math.ceil(num_it / max(1, len(self.dls.train))))
        self._fit(n_epoch, None, [finder], None, False, "lr_find")  # no phases: the finder sets the rates
        if show_plot and self.is_main_process:
            import matplotlib
            import matplotlib.pyplot as plt

            fig = self.recorder.plot_lr_find()
            if matplotlib.get_backend().lower() == "agg":  # no screen: nobody sees it, free it
                plt.close(fig)
        return finder.suggestions

    # ---- layer groups ----------------------------------------------------------------------------
    def freeze_to(self, n: int) -> None:
        """Train only the layer groups from `n` on (negative counts from the end); norm layers stay trainable."""
        groups = self.layer_groups
        n = n % len(groups) if n < 0 else min(n, len(groups))
        norm_params = {id(p) for m in self.model.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters()}
        for i, group in enumerate(groups):
            for p in group:
                p.requires_grad_(i >= n or (self.train_bn and id(p) in norm_params))
                if not p.requires_grad:  # frozen: no gradient, no optimizer state
                    p.grad = None
                    if self.opt is not None:
                        self.opt.state.pop(p, None)

    def freeze(self) -> None:
        """Train only the last layer group (the head)."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        self.freeze_to(0)

    # ---- mixed precision ---------------------------------------------------------------------------
    def _set_precision(self, dtype: torch.dtype | None) -> Learner:
        self.remove_cbs([cb for cb in self.cbs if isinstance(cb, MixedPrecision)])
        if dtype is not None:
            self.add_cbs([MixedPrecision(dtype)])
        return self

    def to_fp16(self) -> Learner:
        """float16 autocast with loss scaling (CUDA)."""
        return self._set_precision(torch.float16)

    def to_bf16(self) -> Learner:
        """bfloat16 autocast (CUDA or CPU; no loss scaling needed)."""
        return self._set_precision(torch.bfloat16)

    def to_fp32(self) -> Learner:
        return self._set_precision(None)

    # ---- conveniences (each in its own module) ---------------------------------------------------
    def summary(self, xb=None, depth: int | None = None):
        """Layers, output shapes for one batch, parameter counts, trainable or frozen, layer groups (summary.py)."""
        from quickfit.summary import summary

        return summary(self, xb, depth)

    def export_onnx(self, fname: str | Path = "model.onnx", xb=None, opset: int | None = None, activation=True) -> Path:
        """The model as ONNX with a dynamic batch axis, for onnxruntime (quickfit/onnx_export.py, docs/onnx.md)."""
        from quickfit.onnx_export import export_onnx

        return export_onnx(self, fname, xb, opset, activation)

    def __repr__(self) -> str:
        return f"Learner(model={type(self._unwrapped()).__name__}, dls={self.dls!r}, device={self.device})"


def _same_targets(old, new) -> str | None:
    """Why data `new` cannot replace `old` under the same model (other classes), or None."""
    old_vocab, new_vocab = getattr(old, "vocab", None), getattr(new, "vocab", None)
    if old_vocab is not None and new_vocab is not None and list(old_vocab) != list(new_vocab):
        return f"has other classes than the model's: {_short(new_vocab)} instead of {_short(old_vocab)}"
    old_c, new_c = getattr(old, "c", None), getattr(new, "c", None)
    if isinstance(old_c, int) and isinstance(new_c, int) and old_c != new_c:
        return f"has {new_c} classes or targets, the model predicts {old_c}"
    return None


def _short(values) -> str:
    values = list(values)
    return repr(values) if len(values) <= 6 else f"{values[:5]!r}... ({len(values)} in all)"
