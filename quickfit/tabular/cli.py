"""The tabular half of the `quickfit` command: `quickfit train data.csv --target COLUMN` and `lr-find`.

    quickfit train housing.csv --target median_house_value      # regression: prints the validation RMSE
    quickfit train adult.csv --target salary --epochs 5 --out adult.qf
    quickfit predict adult.qf new_people.csv                     # one prediction per row

`quickfit.cli` finds these through the tabular application's `AppCLI` (quickfit/tabular/app.py);
`train_csv` also works from Python.
"""

from __future__ import annotations

import contextlib
import csv
import math
from pathlib import Path

import pandas as pd
import torch

from quickfit.cli_hooks import CommandError, TrainRequest
from quickfit.learner import Learner
from quickfit.seed import set_seed
from quickfit.tabular.data import TabularDataLoaders
from quickfit.tabular.learner import tabular_learner

__all__ = ["csv_learner", "train_csv", "train_request", "lr_find_request", "tune_request"]


def _columns(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return next(csv.reader(f), [])


def _y_block(df: pd.DataFrame, target: str, y_block: str | None) -> str | None:
    """An integer target with many distinct values (prices, counts) is a regression, not thousands of classes."""
    if y_block is not None:
        return y_block
    col = df[target]
    if pd.api.types.is_integer_dtype(col.dtype) and col.nunique() > 20:
        return "regression"
    return None


def csv_learner(
    path: str | Path,
    target: str | None,
    seed: int = 42,
    progress: bool | None = None,
    log_y: bool = False,
    y_block: str | None = None,
    bs: int | None = None,
) -> Learner:
    """`tabular_learner` on a CSV (a random 20% of the rows for validation), the columns' types inferred.

    `bs=None` picks the batch size from the number of rows: 256, or less for a small file so that an
    epoch still has about 25 batches (at 3 batches an epoch, 5 epochs are 15 steps: not enough)."""
    path = Path(path)
    columns = _columns(path)
    if target is None:
        raise CommandError(f"a CSV needs --target COLUMN, the column to predict ({path} has columns {columns})")
    if target not in columns:
        raise CommandError(f"--target {target!r} is not a column of {path} (its columns: {columns})")
    try:
        df = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as e:  # pandas' ParserError is a ValueError
        raise CommandError(f"{path} could not be read as a CSV file: {' '.join(str(e).split())}", code=1) from None
    if df[target].isna().any():
        if df[target].isna().all():
            raise CommandError(f"--target {target!r}: the column has no values in {path} ({len(df)} rows, all empty)")
        df = df.dropna(subset=[target])
    if bs is None:
        n_train = 0.8 * len(df)
        bs = int(min(256, max(16, 2 ** math.floor(math.log2(max(n_train / 25, 1))))))
    set_seed(seed)
    dls = TabularDataLoaders.from_df(df, target, seed=seed, bs=bs, y_block=_y_block(df, target, y_block))
    if log_y and dls.is_classification:
        raise CommandError(f"--log-y is for a regression; {target!r} is a classification into {dls.c} classes")
    learn = tabular_learner(dls, log_y=log_y)
    learn.progress_cb.enabled = progress
    return learn


@contextlib.contextmanager
def _cpu_threads(learn: Learner, n: int = 1):
    """Small tabular models train fastest on one CPU thread (see docs/tabular.md); nothing on CUDA."""
    if learn.device.type != "cpu":
        yield
        return
    was = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(was)


def train_csv(
    path: str | Path,
    target: str,
    epochs: int = 5,
    out: str | Path = "model.qf",
    seed: int = 42,
    lr: float | None = None,
    progress: bool | None = None,
    log_y: bool = False,
    y_block: str | None = None,
) -> dict:
    """Train a tabular model on a CSV, print the validation metrics, export it to `out`.

    The learning rate is lr_find's `valley` unless `lr` is given. Returns the final `valid_loss`, the
    metric (`accuracy` for classification, `rmse` for regression, on the target's scale), the `lr` and
    the `model` path.
    """
    learn = csv_learner(path, target, seed, progress, log_y=log_y, y_block=y_block)
    with _cpu_threads(learn):
        if lr is None:
            lr = learn.lr_find(show_plot=False).valley
            print(f"lr_find: valley {lr:.2e}", flush=True)
        print(f"fit_one_cycle({epochs}, lr_max={lr:.2e}), batch size {learn.dls.bs}", flush=True)
        learn.fit_one_cycle(epochs, lr)
    names = learn.recorder.names[2:-1]  # valid_loss and the metrics
    result = dict(zip(names, learn.recorder.values[-1][2:-1]))
    dls = learn.dls
    for name in names[1:]:
        line = f"validation {name}: {result[name]:,.6g}" if result[name] is not None else f"validation {name}: -"
        if name == "rmse":
            y = dls.valid.y.double()
            baseline = float(((y - dls.train.y.double().mean(0)) ** 2).mean().sqrt())
            line += f" (predicting the training mean: {baseline:,.6g})"
        print(line, flush=True)
    model = learn.export(out)
    print(f"model saved to {model.resolve()}", flush=True)
    return {**result, "lr": lr, "model": model}


def train_request(req: TrainRequest) -> dict:
    """The `train` hook of the tabular application's `AppCLI`."""
    o = req.options
    return train_csv(
        req.path, o["target"], req.epochs, req.out, req.seed, req.lr, req.progress, bool(o["log_y"]), o["y_block"]
    )


def tune_request(req: TrainRequest):
    """The `tune` hook: each trial trains `tabular_learner` on the CSV (read and split once) for
    `req.epochs` epochs of one cycle; searched: the rate, weight decay, dropouts and layer sizes."""
    from quickfit.cli_hooks import TuneSpec
    from quickfit.tuning import Choice, LogUniform, Uniform, learner_objective

    o = req.options
    base = csv_learner(req.path, o["target"], req.seed, False, bool(o["log_y"]), o["y_block"])
    dls, log_y = base.dls, bool(o["log_y"])
    metric = "accuracy" if dls.is_classification else "rmse"

    def make(layers=(200, 100), ps=0.0, embed_p=0.0, wd=None):
        learn = tabular_learner(dls, layers=layers, ps=ps, embed_p=embed_p, wd=wd, log_y=log_y, progress=False)
        learn.recorder.log_table = False  # the search prints one line per trial instead
        return learn

    space = {
        "lr": LogUniform(1e-4, 3e-2),
        "wd": LogUniform(1e-6, 0.3),
        "ps": Uniform(0.0, 0.5),
        "embed_p": Uniform(0.0, 0.5),
        "layers": Choice([[200, 100], [400, 200], [1000, 500], [200, 200, 100]]),
    }
    objective = learner_objective(make, metric=metric, epochs=req.epochs, seed=req.seed)

    def one_thread(params: dict) -> float:
        with _cpu_threads(base):
            return objective(params)

    return TuneSpec(one_thread, space, metric, "maximize" if metric == "accuracy" else "minimize")


def lr_find_request(req: TrainRequest) -> Learner:
    """The `lr_find` hook: the learner `quickfit lr-find data.csv --target COLUMN` sweeps."""
    o = req.options
    return csv_learner(req.path, o["target"], req.seed, req.progress, bool(o["log_y"]), o["y_block"])
