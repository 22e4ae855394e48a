"""The demo: a small CNN learns scikit-learn's handwritten digits (1,797 real 8x8 images, no download).

    from quickfit.demo import run_demo
    result = run_demo(epochs=8, seed=42, out="quickfit-demo")   # prints lr_find and the epoch table
    result["accuracy"]                                          # ~0.99 on the validation set

The steps are the course's: look at the learning-rate finder, train with one cycle at its `valley`
suggestion, read the epoch table, look at the loss and schedule plots (saved as PNG in `out`).
`quickfit demo` on the command line runs the same function.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from quickfit.data.core import DataLoaders, random_split
from quickfit.extras import require
from quickfit.learner import Learner
from quickfit.metrics import accuracy
from quickfit.seed import set_seed

__all__ = ["digits_dataloaders", "digits_cnn", "digits_learner", "run_demo", "save_figure"]


def digits_dataloaders(valid_pct: float = 0.2, seed: int = 42, bs: int = 64) -> DataLoaders:
    """scikit-learn's digits as `(1x8x8 image, label)` batches: a seeded random split, normalized with
    the training set's mean and std. Needs the `demo` extra (scikit-learn)."""
    datasets = require("sklearn.datasets", package="scikit-learn", extra="demo", what="the quickfit demo")
    digits = datasets.load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)  # (1797, 1, 8, 8), values 0..16
    y = torch.tensor(digits.target, dtype=torch.long)
    valid_idx = random_split(len(x), valid_pct, seed)
    is_train = np.ones(len(x), dtype=bool)
    is_train[valid_idx] = False
    train_idx = np.flatnonzero(is_train)
    mean, std = x[train_idx].mean(), x[train_idx].std()  # statistics of the training set only
    x = (x - mean) / std
    shuffle = torch.Generator().manual_seed(seed)
    train = DataLoader(
        TensorDataset(x[train_idx], y[train_idx]), batch_size=bs, shuffle=True, drop_last=True, generator=shuffle
    )
    valid = DataLoader(TensorDataset(x[valid_idx], y[valid_idx]), batch_size=4 * bs)
    return DataLoaders(train, valid)


def _conv(n_in: int, n_out: int, stride: int = 1) -> nn.Sequential:
    # no conv bias: the BatchNorm right after it has its own
    return nn.Sequential(
        nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(n_out), nn.ReLU()
    )


def digits_cnn(n_classes: int = 10) -> nn.Sequential:
    """Three conv-BN-ReLU blocks on 1x8x8 (8x8 -> 4x4 -> 2x2), average pooling and a linear head."""
    return nn.Sequential(
        _conv(1, 32),
        _conv(32, 64, stride=2),
        _conv(64, 128, stride=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, n_classes),
    )


def digits_learner(seed: int = 42, bs: int = 64, progress: bool | None = None) -> Learner:
    """A Learner for the digits CNN on CPU (a model this small gains nothing from a GPU)."""
    set_seed(seed)
    dls = digits_dataloaders(seed=seed, bs=bs)
    return Learner(dls, digits_cnn(), nn.CrossEntropyLoss(), metrics=[accuracy], progress=progress, device="cpu")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread, then restore the setting.

    Each batch of this model is ~1 ms of work: splitting it across threads costs more in
    synchronization than it saves, and on a busy machine competing threads made it 5-30x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def save_figure(fig, path: Path) -> Path:
    """Save a matplotlib figure as PNG and free it (figures are kept alive by pyplot until closed)."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_demo(
    epochs: int = 8,
    seed: int = 42,
    out: str | Path = "quickfit-demo",
    progress: bool | None = None,
    lr: float | None = None,
) -> dict:
    """Train the digits CNN: lr_find, `fit_one_cycle(epochs, valley)`, plots saved in `out`.

    `lr` skips the finder's suggestion (the finder still runs, for its plot). Returns the final
    metrics: `accuracy`, `valid_loss`, `train_loss`, the `lr` used, the `lr_find` suggestions,
    `seconds` and the `plots` written (name -> path).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    out = Path(out)
    start = time.perf_counter()
    with one_thread():
        learn = digits_learner(seed=seed, progress=progress)
        n_train, n_valid = len(learn.dls.train.dataset), len(learn.dls.valid.dataset)
        print(f"digits: {n_train} training and {n_valid} validation images (8x8), seed {seed}")
        suggested = learn.lr_find(show_plot=False)
        print(f"lr_find: valley {suggested.valley:.2e}  steep {suggested.steep:.2e}  minimum {suggested.minimum:.2e}")
        lr = suggested.valley if lr is None else lr
        print(f"fit_one_cycle({epochs}, lr_max={lr:.2e})")
        learn.fit_one_cycle(epochs, lr)
    valid_loss, acc = learn.recorder.values[-1][2:4]
    plots = {
        "loss": save_figure(learn.recorder.plot_loss(), out / "loss.png"),
        "schedule": save_figure(learn.recorder.plot_schedule(), out / "schedule.png"),
        "lr_find": save_figure(learn.recorder.plot_lr_find(), out / "lr_find.png"),
    }
    seconds = time.perf_counter() - start
    print(f"validation accuracy {acc:.4f} after {epochs} epochs ({seconds:.1f} s)")
    print(f"plots saved in {out.resolve()}: " + ", ".join(p.name for p in plots.values()))
    return {
        "accuracy": acc,
        "valid_loss": valid_loss,
        "train_loss": learn.recorder.values[-1][1],
        "lr": lr,
        "lr_find": suggested._asdict(),
        "epochs": epochs,
        "seconds": seconds,
        "plots": plots,
    }
