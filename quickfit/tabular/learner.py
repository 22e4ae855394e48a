"""tabular_learner: a TabularModel sized from the data, with the right loss and metric, ready to fit.

    import quickfit as qf
    from quickfit.tabular import TabularDataLoaders, tabular_learner
    dls = TabularDataLoaders.from_csv("adult.csv", "salary", valid_pct=0.2, seed=42)
    learn = tabular_learner(dls)                 # accuracy is the default metric for classification
    learn.fit_one_cycle(3, 1e-2)
    learn.predict({"age": 49, "workclass": " Private", ...})   # ('>=50k', 1, tensor([0.3, 0.7]))
    learn.export("adult.qf")
    learn = qf.load_learner("adult.qf")          # processors and vocab come back from JSON

Classification trains with cross-entropy (predictions are softmax probabilities), regression with
mean squared error on a target normalized by the training rows' mean and standard deviation (the model
outputs values on the target's scale: predictions, metrics and exports need no decoding).
`y_range=(lo, hi)` squashes regression outputs into that range instead; `log_y=True` learns a positive,
skewed target (prices, counts) as its logarithm (the loss is the mean squared error of the logs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd
import torch
from torch import nn

from quickfit.configs import Task, check_outputs, export_record
from quickfit.learner import Learner
from quickfit.metrics import accuracy, rmse
from quickfit.optim import Adam
from quickfit.tabular.batches import TabularBatches
from quickfit.tabular.data import TabularDataLoaders
from quickfit.tabular.model import TabularModelConfig, get_emb_szs

__all__ = ["LogMSELoss", "TabularLearner", "tabular_learner", "TabularTask"]


class LogMSELoss(nn.Module):
    """Mean squared error of the logarithms: `mse(log(pred), log(targ))` (both positive)."""

    def forward(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        tiny = torch.finfo(pred.dtype).tiny
        return nn.functional.mse_loss(pred.clamp_min(tiny).log(), targ.clamp_min(tiny).log())


class TabularLearner(Learner):
    """A `Learner` over a table: adds `show_results` (rows with their target and prediction)."""

    def show_results(self, max_n: int = 10, dl: TabularBatches | None = None, show: bool = True) -> pd.DataFrame:
        """The first `max_n` rows of `dl` (the validation set by default) decoded, with the target and
        the prediction (`<target>_pred`; for a classification also its `probability`). Printed when
        `show`, and returned as a DataFrame."""
        dl = self.dls.valid if dl is None else dl
        if not isinstance(dl, TabularBatches):
            raise TypeError(f"show_results: dl must be TabularBatches (dls.valid, dls.test_dl(...)), got {type(dl)}")
        if dl.n == 0:
            raise ValueError("show_results: the loader has no rows")
        if max_n < 1:
            raise ValueError(f"show_results: max_n must be at least 1, got {max_n}")
        rows = TabularBatches(*(t[:max_n] for t in dl.tensors), bs=max_n)
        preds, _ = self.get_preds(dl=rows, progress=False)
        df = self.dls.decode_batch(rows.tensors)
        if self.dls.is_classification:
            probs, idx = preds.max(1)
            df = df.assign(**self.dls._decode_targets(idx, "_pred"), probability=probs.cpu().numpy())
        else:
            df = df.assign(**self.dls._decode_targets(preds, "_pred"))
        if show:
            print(df.to_string())
        return df


def _target_stats(dls: TabularDataLoaders, log_y: bool) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each regression target over the training rows (of its log with `log_y`)."""
    y = dls.train.y.double().reshape(dls.train.n, -1)
    if log_y:
        lowest, col = y.min(0)
        bad = (lowest <= 0).nonzero().flatten().tolist()
        if bad:
            name = dls.y_names[bad[0]]
            raise ValueError(
                f"log_y=True needs positive targets; column {name!r} has {float(lowest[bad[0]])!r} "
                f"(training row {int(col[bad[0]])}): use log_y=False"
            )
        y = y.log()
    means, stds = y.mean(0), y.std(0) if y.shape[0] > 1 else torch.ones(y.shape[1])
    stds = torch.where(stds > 0, stds, torch.ones_like(stds))  # a constant target: scale 1
    return means.tolist(), stds.tolist()


def _model_config(
    dls: TabularDataLoaders,
    layers: Sequence[int],
    emb_szs: dict[str, int] | None,
    ps: float | Sequence[float],
    embed_p: float,
    y_range: tuple[float, float] | None,
    y_norm: tuple[list[float], list[float]] | None = None,
    log_y: bool = False,
) -> TabularModelConfig:
    """The model for `dls` (its columns, target and category counts) with these arguments."""
    return TabularModelConfig(
        emb_szs=[list(e) for e in get_emb_szs(dls.cat_names, dls.cardinalities, emb_szs)],
        n_cont=len(dls.cont_names),
        out_sz=dls.c,
        layers=list(layers),
        ps=ps if isinstance(ps, (int, float)) else list(ps),
        embed_p=embed_p,
        y_range=None if y_range is None else [float(y_range[0]), float(y_range[1])],
        y_norm=None if y_norm is None else [list(y_norm[0]), list(y_norm[1])],
        log_y=bool(log_y),
    )


def _learner(
    dls: TabularDataLoaders, model: nn.Module, log_y: bool, metrics, loss_func, opt_func, lr, wd, cbs, path, progress,
    device, model_dir="models", train_bn=True, slice_div=3.0,
) -> TabularLearner:  # fmt: skip
    if loss_func is None:
        if dls.is_classification:
            loss_func = nn.CrossEntropyLoss()
        else:
            loss_func = LogMSELoss() if log_y else nn.MSELoss()
    if metrics is None:
        metrics = [accuracy] if dls.is_classification else [rmse]
    return TabularLearner(dls, model, loss_func, opt_func=opt_func, lr=lr, wd=wd, metrics=metrics, cbs=cbs, path=path,
                          model_dir=model_dir, train_bn=train_bn, slice_div=slice_div, progress=progress,
                          device=device)  # fmt: skip


def tabular_learner(
    dls: TabularDataLoaders,
    layers: Sequence[int] = (200, 100),
    metrics: Iterable | None = None,
    y_range: tuple[float, float] | None = None,
    log_y: bool = False,
    norm_y: bool = True,
    emb_szs: dict[str, int] | None = None,
    ps: float | Sequence[float] = 0.0,
    embed_p: float = 0.0,
    loss_func: Callable | None = None,
    opt_func: Callable = Adam,
    lr: float = 1e-3,
    wd: float | None = None,
    cbs: Iterable = (),
    path: str | Path = ".",
    model_dir: str | Path = "models",
    train_bn: bool = True,
    slice_div: float = 3.0,
    progress: bool | None = None,
    device: torch.device | str | None = None,
) -> TabularLearner:
    """A `TabularLearner` over a `TabularModel` built for `dls`.

    `layers`: hidden sizes; `emb_szs`: `{column: size}` overriding the embedding size rule; `ps`:
    dropout after each hidden layer; `embed_p`: embedding dropout.

    A regression's output is on the target's scale: by default (`norm_y=True`) the network learns the
    target normalized by the training rows' mean and standard deviation; `y_range=(lo, hi)` uses a
    scaled sigmoid into that range instead. `log_y=True` (positive, skewed targets such as prices)
    learns the logarithm: the normalization (or `y_range`, then given in log units) applies to
    `log(y)`, the model outputs `exp` of it, and the loss is `LogMSELoss`. `metrics=None` gives
    accuracy (classification) or RMSE (regression, on the target's scale); pass `()` for none.
    `loss_func=None` gives cross-entropy or mean squared error. The rest go to `Learner`
    (`progress=False` silences the progress bars; `device` defaults to CUDA when available).
    """
    if not isinstance(dls, TabularDataLoaders):
        raise TypeError(f"tabular_learner needs TabularDataLoaders, got {type(dls).__name__}")
    if y_range is not None and dls.is_classification:
        raise ValueError("y_range is for regression; this target is classification (y_block='category')")
    if log_y and dls.is_classification:
        raise ValueError("log_y is for regression; this target is classification (y_block='category')")
    y_norm = None
    if not dls.is_classification and norm_y and y_range is None:
        y_norm = _target_stats(dls, log_y)
    elif log_y:
        _target_stats(dls, log_y)  # checks that the targets are positive
    config = _model_config(dls, layers, emb_szs, ps, embed_p, y_range, y_norm, log_y)
    learn = _learner(dls, config.build(), config.log_y, metrics, loss_func, opt_func, lr, wd, cbs, path, progress,
                     device, model_dir, train_bn, slice_div)  # fmt: skip
    learn.export_info = export_record("tabular", TabularTask(), config)
    return learn


@dataclass
class TabularTask(Task):
    """Rows of a table in, a class or values out: a `TabularLearner` (loss and metric from the data)."""

    type: ClassVar[str] = "tabular"

    def data(self, info: dict | None) -> TabularDataLoaders:
        if not info:
            raise ValueError("not a tabular export: the metadata lacks the data processing")
        return TabularDataLoaders.from_export(info)

    def learner(self, dls, model: nn.Module, config: TabularModelConfig) -> TabularLearner:
        # on the CPU: load_learner moves the model where it is asked; batches follow the model
        check_outputs(dls.y_vocab if dls.is_classification else None, config.out_sz, "out_sz")
        return _learner(dls, model, config.log_y, None, None, Adam, 1e-3, None, (), ".", None, "cpu")  # default metrics
