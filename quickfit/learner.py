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
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from quickfit import schedules
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
)
from quickfit.callbacks.lr_finder import LRFinder, SuggestedLRs
from quickfit.callbacks.mixed_precision import MixedPrecision
from quickfit.callbacks.progress import ProgressCallback
from quickfit.callbacks.recorder import Recorder
from quickfit.callbacks.resume import ResumeCheckpoint
from quickfit.callbacks.schedule import ParamScheduler
from quickfit.data.core import DataLoaders, to_device
from quickfit.io import atomic_save, atomic_write, safe_load
from quickfit.metrics import as_metric
from quickfit.optim import Adam, get_hyper, lr_per_group, param_groups, set_hyper

__all__ = ["Learner", "load_learner", "default_device", "trainable_params"]

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
_EXPORT_APPS = ("vision", "text", "tabular", "collab")


def default_device() -> torch.device:
    """CUDA when available, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():  # under torchrun, each process its own GPU
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def trainable_params(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _one_group(model: nn.Module) -> list[list[nn.Parameter]]:
    return [list(model.parameters())]


def _activation(loss_func) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation that turns raw outputs into predictions, derived from the loss."""
    act = getattr(loss_func, "activation", None)
    if act is not None:
        return act
    if isinstance(loss_func, nn.CrossEntropyLoss) or loss_func is nn.functional.cross_entropy:
        return lambda x: x.softmax(dim=-1)
    if isinstance(loss_func, nn.BCEWithLogitsLoss) or loss_func is nn.functional.binary_cross_entropy_with_logits:
        return torch.sigmoid
    return lambda x: x


class Learner:
    """Trains `model` on `dls` with `loss_func`; see the module docstring.

    `lr` is the default learning rate of every `fit*` call; `wd` the weight decay (None keeps the
    optimizer's default); `splitter(model)` returns the layer groups (one group by default);
    `train_bn` keeps normalization layers trainable in frozen groups; `slice_div` is the divisor of
    `slice(hi)` learning rates (the groups before the last get `hi / slice_div`); `device` defaults
    to CUDA when available.
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
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
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
        self.opt: torch.optim.Optimizer | None = None
        self.export_info: dict = {}
        self.autocast = contextlib.nullcontext()  # set by the MixedPrecision callback
        self.scaler: torch.amp.GradScaler | None = None
        self.is_main_process = int(os.environ.get("RANK", 0)) == 0
        self.training, self.epoch, self.n_epoch, self.start_epoch, self.iter = False, 0, 1, 0, 0
        self.loss = self.loss_grad = self.pred = self.xb = self.yb = None
        self.cbs: list[Callback] = []
        self.recorder, self.progress_cb = Recorder(), ProgressCallback(progress)
        self.add_cbs([self.recorder, self.progress_cb, *cbs])

    # ---- callbacks -------------------------------------------------------------------------
    def add_cbs(self, cbs: Iterable[Callback]) -> Learner:
        for cb in cbs:
            if isinstance(cb, type):
                raise TypeError(f"pass a callback instance, not the class {cb.__name__}")
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
        self.n_iter = len(self.dl)
        n_inp = getattr(self.dls, "n_inp", 1)
        for self.iter, batch in enumerate(self.dl):
            batch = to_device(tuple(batch), self.device)
            self.xb, self.yb = batch[:n_inp], (batch[n_inp] if len(batch) > n_inp else None)
            self._with_events(self._one_batch, "batch", CancelBatchException)

    def _one_batch(self) -> None:
        with self.autocast:
            self.pred = self.model(*self.xb)
            self("after_pred")
            if self.yb is None:  # a test batch: predictions only
                return
            self.loss = self.loss_grad = self._compute_loss(self.pred, self.yb)
        self("after_loss")
        if not self.training:
            return
        self._with_events(self._backward, "backward", CancelBackwardException)
        self._with_events(self._step, "step", CancelStepException)

    def _backward(self) -> None:
        self.loss_grad.backward()

    def _step(self) -> None:
        if self.scaler is None:
            self.opt.step()
        else:  # fp16: unscale, skip the step if any gradient overflowed, adapt the scale
            self.scaler.step(self.opt)
            self.scaler.update()
        self.opt.zero_grad(set_to_none=True)

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
        lrs = lr_per_group(self.lr, len(groups) // 2, self.slice_div)
        for g in groups:
            g["lr"] = lrs[g["layer_group"]]
        self.opt = self.opt_func(groups, lr=float(lrs[-1]), **({} if self.wd is None else {"wd": self.wd}))
        return self.opt

    def hypers(self, name: str) -> list[float]:
        """The current value of `name` ("lr", "mom", "wd") for each layer group, first to last."""
        if self.opt is None:
            self.create_opt()
        return get_hyper(self.opt, name)

    def set_hypers(self, name: str, values) -> None:
        if self.opt is None:
            self.create_opt()
        set_hyper(self.opt, name, values)

    def _fit(self, n_epoch, lr, scheds: dict, cbs, wd, checkpoint, resume, kind: str) -> None:
        if self.opt is None:
            self.create_opt()
        if wd is not None:
            set_hyper(self.opt, "wd", wd)
        lr_max = lr_per_group(self.lr if lr is None else lr, len(self.hypers("lr")), self.slice_div)
        fit_cbs = [ParamScheduler(lr_max, scheds), *cbs]
        if checkpoint is not None:
            fit_cbs.append(ResumeCheckpoint(checkpoint, resume=resume, kind=kind))
        elif resume:
            raise ValueError("resume=True needs checkpoint='name' (the checkpoint to resume from)")
        if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not any(_is_ddp(cb) for cb in self.cbs):
            from quickfit.callbacks.distributed import DistributedCallback

            fit_cbs.append(DistributedCallback())
        self.n_epoch, self.start_epoch = int(math.ceil(n_epoch)), 0
        with self.added_cbs(fit_cbs):
            try:
                self._with_events(self._do_fit, "fit", CancelFitException)
            finally:
                self("cleanup_fit")

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
        self._fit(n_epoch, lr, {"lr": schedules.constant(1.0)}, cbs, wd, checkpoint, resume, "fit")

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
        """One cycle (Smith): lr from lr_max/div up to lr_max and down to lr_max/div_final, momentum inverse."""
        scheds = {"lr": lambda p: schedules.one_cycle_lr(p, div, div_final, pct_start)}
        if moms is not None:
            scheds["mom"] = lambda p: schedules.one_cycle_mom(p, moms, pct_start)
        self._fit(n_epoch, lr_max, scheds, cbs, wd, checkpoint, resume, "fit_one_cycle")

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
        scheds = {"lr": lambda p: schedules.flat_cos_lr(p, pct_start)}
        self._fit(n_epoch, lr, scheds, cbs, wd, checkpoint, resume, "fit_flat_cos")

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
        n_epoch = schedules.sgdr_epochs(n_cycles, cycle_len, cycle_mult)
        if n_epoch != int(n_epoch):
            raise ValueError(f"fit_sgdr needs a whole number of epochs, got {n_epoch}")
        cbs = list(cbs)
        if snapshot is not None:
            from quickfit.callbacks.checkpoint import SnapshotCallback

            ends = [int(s) - 1 for s in schedules.cycle_starts(n_cycles, cycle_len, cycle_mult)[1:]]
            cbs.append(SnapshotCallback(snapshot, [*ends, int(n_epoch) - 1]))
        scheds = {"lr": lambda p: schedules.sgdr_lr(p, n_cycles, cycle_len, cycle_mult)}
        self._fit(int(n_epoch), lr_max, scheds, cbs, wd, checkpoint, resume, "fit_sgdr")

    def lr_find(
        self,
        start_lr: float = 1e-7,
        end_lr: float = 10,
        num_it: int = 100,
        stop_div: bool = True,
        show_plot: bool = True,
    ) -> SuggestedLRs:
        """Exponential learning-rate sweep; restores the weights and optimizer afterwards."""
        finder = LRFinder(start_lr, end_lr, num_it, stop_div)
        n_epoch = max(1, math.ceil(num_it / max(1, len(self.dls.train))))
        self._fit(n_epoch, start_lr, {}, [finder], None, None, False, "lr_find")
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

    # ---- predictions --------------------------------------------------------------------------------
    def get_preds(
        self,
        dl: Iterable | None = None,
        with_loss: bool = False,
        act: Callable | None = None,
        progress: bool | None = None,
    ):
        """Predictions on `dl` (the validation set by default): `(preds, targets[, losses])`.

        Predictions pass through the loss's activation (softmax for cross-entropy, sigmoid for BCE with
        logits) unless `act` is given. Targets are None for a test set without labels.
        """
        from quickfit.callbacks.gather import GatherPreds

        gather = GatherPreds(act or _activation(self.loss_func), with_loss)
        was = self.progress_cb.enabled
        self.progress_cb.enabled = was if progress is None else progress
        try:
            with self.added_cbs([gather]), self._no_logging():
                self._run_phase(train=False, dl=dl)
        finally:
            self.progress_cb.enabled = was
        return gather.result()

    def validate(self, dl: Iterable | None = None) -> list[float]:
        """`[valid_loss, *metrics]` on `dl` (the validation set by default)."""
        with self._no_logging():
            self._run_phase(train=False, dl=dl)
        return self.recorder.last_valid

    def predict(self, item):
        """Prediction for one item, decoded by the data (e.g. `(label, index, probabilities)`)."""
        if hasattr(self.dls, "test_dl"):
            dl = self.dls.test_dl([item])
        else:
            dl = [(torch.as_tensor(item)[None],)]
        preds, _ = self.get_preds(dl=dl, progress=False)
        return self.dls.decode_pred(preds[0]) if hasattr(self.dls, "decode_pred") else preds[0]

    @contextlib.contextmanager
    def _no_logging(self):
        was = self.recorder.log_table
        self.recorder.log_table = False
        try:
            yield
        finally:
            self.recorder.log_table = was

    def snapshot_ensemble_preds(self, name: str, dl: Iterable | None = None):
        """Average the predictions of the weights `fit_sgdr(snapshot=name)` saved; restores the weights."""
        files = sorted(
            self.path.joinpath(self.model_dir).glob(f"{name}_*.pth"),
            key=lambda f: int(f.stem.rsplit("_", 1)[1]),
        )
        if not files:
            raise FileNotFoundError(f"no snapshots named {name}_<i>.pth in {self.path / self.model_dir}")
        current = {k: v.clone() for k, v in self._unwrapped().state_dict().items()}
        preds, targs = [], None
        try:
            for f in files:
                self._unwrapped().load_state_dict(safe_load(f, self.device)["model"])
                p, targs = self.get_preds(dl=dl)
                preds.append(p)
        finally:
            self._unwrapped().load_state_dict(current)
        return torch.stack(preds).mean(0), targs

    # ---- saving -----------------------------------------------------------------------------------
    def _unwrapped(self) -> nn.Module:
        return getattr(self.model, "module", self.model)  # DDP / DataParallel wrap the model

    def _file(self, name: str) -> Path:
        return self.path / self.model_dir / f"{name}.pth"

    def save(self, name: str, with_opt: bool = True) -> Path | None:
        """Save the weights (and optimizer state) to `path/model_dir/name.pth`, atomically; rank 0 only."""
        if not self.is_main_process:
            return None
        state = {"model": self._unwrapped().state_dict()}
        if with_opt and self.opt is not None:
            state["opt"] = self.opt.state_dict()
        return atomic_save(state, self._file(name))

    def load(self, name: str | Path, with_opt: bool = True, strict: bool = True) -> Learner:
        """Load weights saved by `save` (`name` or a path). Never unpickles code."""
        f = Path(name) if str(name).endswith(".pth") else self._file(str(name))
        state = safe_load(f, map_location=self.device)
        if not isinstance(state, dict) or "model" not in state:
            raise ValueError(f"{f} is not a quickfit checkpoint (no 'model' entry)")
        self._unwrapped().load_state_dict(state["model"], strict=strict)
        if with_opt and "opt" in state:
            if self.opt is None:
                self.create_opt()
            self.opt.load_state_dict(state["opt"])
        return self

    def export(self, fname: str | Path = "export.qf") -> Path:
        """Weights (safetensors) + a JSON description of model and data processing in one file; no pickle."""
        from safetensors.torch import save_model

        f = self.path / fname
        if not self.is_main_process:
            return f
        info = {"format": 1, **self.export_info}
        if "data" not in info and hasattr(self.dls, "export_info"):
            info["data"] = self.dls.export_info()
        metadata = {"quickfit": json.dumps(info)}
        atomic_write(f, lambda tmp: save_model(self._unwrapped(), tmp, metadata=metadata))
        return f

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

    def __repr__(self) -> str:
        return f"Learner(model={type(self._unwrapped()).__name__}, dls={self.dls!r}, device={self.device})"


def _is_ddp(cb: Callback) -> bool:
    return type(cb).__name__ == "DistributedCallback"


def load_learner(
    fname: str | Path,
    model: nn.Module | None = None,
    loss_func: Callable | None = None,
    device: torch.device | str | None = "cpu",
) -> Learner:
    """Load a file written by `Learner.export`. No pickle: weights from safetensors, the rest from JSON.

    Files of quickfit's applications rebuild their model and data processing themselves; for a
    plain `Learner`, pass the `model` (and `loss_func`) to load the weights into.
    """
    from safetensors import safe_open
    from safetensors.torch import load_model

    fname = Path(fname)
    if not fname.exists():
        raise FileNotFoundError(f"no exported learner at {fname}")
    try:
        with safe_open(str(fname), framework="pt") as f:
            info = json.loads((f.metadata() or {}).get("quickfit", "{}"))
    except Exception as e:
        raise ValueError(f"{fname} is not a quickfit export (a safetensors file with quickfit metadata): {e}") from None
    app = info.get("app")
    if model is None and app is not None:
        if app not in _EXPORT_APPS:
            raise ValueError(f"{fname} names an unknown application {app!r} (known: {', '.join(_EXPORT_APPS)})")
        import importlib

        learn = importlib.import_module(f"quickfit.{app}").learner_from_export(info)
    elif model is not None:
        learn = Learner(DataLoaders([], None), model, loss_func, device=device)
        learn.export_info = info
    else:
        raise ValueError(f"{fname} was exported from a plain Learner: pass model= to load its weights into")
    learn.model.to("cpu")
    load_model(learn._unwrapped(), str(fname), strict=True)
    if device is not None:
        learn.device = torch.device(device)
        learn.model.to(learn.device)
    return learn
