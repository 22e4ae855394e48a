"""Plots of a search: the optimization history and the parameters' importance (matplotlib Figures)."""

from __future__ import annotations

import numpy as np

from quickfit.plots import plt

__all__ = ["plot_history", "plot_importance", "best_so_far"]


def best_so_far(values, maximize: bool = True) -> np.ndarray:
    """The running best of `values` (NaN entries, unfinished trials, are skipped)."""
    out, best = [], np.nan
    for v in values:
        if v == v and (best != best or (v > best if maximize else v < best)):
            best = v
        out.append(best)
    return np.array(out)


def plot_history(study, ax=None):
    """Each complete trial's value (dots) and the best so far (a step line) against the trial number."""
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4))
    numbers, values = [t.number for t in done], [t.value for t in done]
    ax.plot(numbers, values, "o", alpha=0.5, label="trial")
    ax.step(numbers, best_so_far(values, study.direction.name == "MAXIMIZE"), where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_importance(study, ax=None):
    """Optuna's fANOVA importance of each parameter (needs a few complete trials and scikit-learn)."""
    import optuna

    importance = optuna.importance.get_param_importances(study)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 0.5 + 0.4 * max(1, len(importance))))
    names = list(importance)[::-1]
    ax.barh(names, [importance[n] for n in names])
    ax.set_xlabel("importance (fANOVA)")
    fig.tight_layout()
    return fig
