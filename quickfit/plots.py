"""Plots of a Recorder: loss, schedule, lr_find. Each returns a matplotlib Figure (works headless)."""

from __future__ import annotations

import matplotlib

if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
    import os

    if not os.environ.get("DISPLAY") and os.name != "nt":
        matplotlib.use("Agg")  # no screen: draw to files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_loss", "plot_schedule", "plot_lr_find", "plot_metrics"]


def plot_loss(recorder, skip_start: int = 5, with_valid: bool = True):
    fig, ax = plt.subplots(figsize=(6, 4))
    losses = recorder.losses[skip_start:]
    ax.plot(np.arange(skip_start, skip_start + len(losses)), losses, label="train")
    rows = [r for r in recorder.values if r[2] is not None]
    if with_valid and rows and recorder.losses:
        per_epoch = len(recorder.losses) / max(1, len(recorder.values))
        ax.plot(
            [(i + 1) * per_epoch for i, _ in enumerate(recorder.values) if recorder.values[i][2] is not None],
            [r[2] for r in rows],
            marker="o",
            label="valid",
        )
    ax.set_xlabel("batch")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_schedule(recorder):
    fig, (ax_lr, ax_mom) = plt.subplots(1, 2, figsize=(10, 4))
    ax_lr.plot(recorder.lrs)
    ax_lr.set_xlabel("batch")
    ax_lr.set_ylabel("learning rate")
    ax_mom.plot(recorder.moms)
    ax_mom.set_xlabel("batch")
    ax_mom.set_ylabel("momentum")
    fig.tight_layout()
    return fig


def plot_lr_find(recorder, skip_end: int = 0):
    if not recorder.lr_find_lrs:
        raise RuntimeError("no lr_find results yet: call learn.lr_find() first")
    lrs, losses = recorder.lr_find_lrs, recorder.lr_find_losses
    if skip_end:
        lrs, losses = lrs[:-skip_end] or lrs, losses[:-skip_end] or losses
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    sugg = recorder.lr_find_suggestions
    if sugg is not None:
        for (name, lr), marker in zip(sugg._asdict().items(), ("o", "^", "s")):
            y = np.interp(np.log(lr), np.log(lrs), losses)
            ax.plot([lr], [y], marker, markersize=8, label=f"{name}: {lr:.2e}")
        ax.legend()
    fig.tight_layout()
    return fig


def plot_metrics(recorder, nrows: int | None = None, ncols: int | None = None, figsize=None):
    """One panel per column of the epoch table: the losses (train and valid) together, then each metric."""
    if not recorder.values:
        raise RuntimeError("no epochs recorded yet: call learn.fit_one_cycle(...) (or another fit) first")
    names = list(recorder.names[1:-1])  # between "epoch" and "time"
    rows = [r[1:-1] for r in recorder.values]
    epochs = np.arange(len(rows))  # the row's index: successive fits (fine_tune's two stages) continue the axis
    panels = [("loss", [i for i, n in enumerate(names) if n in ("train_loss", "valid_loss")])]
    panels += [(n, [i]) for i, n in enumerate(names) if n not in ("train_loss", "valid_loss")]
    ncols = ncols or min(3, len(panels))
    nrows = nrows or -(-len(panels) // ncols)
    if nrows * ncols < len(panels):
        raise ValueError(f"nrows={nrows} x ncols={ncols} panels are too few for {len(panels)} plots (loss + metrics)")
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize or (4 * ncols, 3 * nrows), squeeze=False)
    for ax, (title, cols) in zip(axes.flat, panels):
        for i in cols:
            # rows of fits with other metrics are shorter: a gap
            ys = np.array([np.nan if i >= len(r) or r[i] is None else float(r[i]) for r in rows])
            ax.plot(epochs, ys, marker="o", label=names[i])
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if len(cols) > 1:
            ax.legend()
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
