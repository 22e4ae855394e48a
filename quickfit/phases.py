"""Training phases (the course's lesson 13): a fit is a list of phases, each with its own length, rates and data.

    import quickfit as qf
    learn.fit_phases([
        qf.Phase(1, lr=qf.SchedLin(1e-4, 1e-2), opt_func=qf.SGD),                     # warm up with SGD
        qf.Phase(2, lr=slice(1e-4, 1e-2) * qf.SchedCos(1, 0.01), mom=0.9, opt_func=qf.Adam),
        qf.Phase(1.5, lr=1e-3 * qf.SchedCos(1, 0), dls=dls_224),                       # bigger images
    ])

`lr` is a rate (a number, `slice(hi)`, `slice(lo, hi)` or one per layer group, constant over the phase),
a schedule of the rate (`qf.SchedCos(1e-3, 1e-5)`: every group the same), or a rate times a schedule's
shape (`slice(1e-5, 1e-3) * qf.SchedCos(1, 0)`: each group its own peak, one shape). `mom` and `wd` are a
number or a schedule; None leaves them as they are. `epochs` may be fractional: a phase of 0.5 epochs
trains on the first half of an epoch's batches, then validates. `dls` switches the data at the phase's
start (`learn.set_data`: the learner keeps the last phase's data). `opt_func` switches the optimizer:
its state (momentum buffers, Adam's moments) carries over when it builds the same optimizer type as
the one in use, and starts fresh otherwise.

Every built-in fit is one list of phases: `fit` one constant phase, `fit_one_cycle` one phase of
`lr_max * combined_cos(pct_start, 1/div, 1, 1/div_final)`, `fit_flat_cos` and `fit_sgdr` likewise.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quickfit.schedules import ScaledSched, Sched

__all__ = ["Phase", "check_phases", "phase_epochs", "split_lr"]


@dataclass
class Phase:
    """One part of a fit: `epochs` (may be fractional) with its rate, momentum and weight-decay shapes,
    optionally its own optimizer (`opt_func`) and data (`dls`). See the module docstring."""

    epochs: float
    lr: float | slice | Sequence[float] | Callable[[float], float] | None = None
    mom: float | Callable[[float], float] | None = None
    wd: float | Callable[[float], float] | None = None
    opt_func: Callable | None = None
    dls: Any = None


def split_lr(lr, default) -> tuple[Any, Callable[[float], float] | None]:
    """A phase's `lr` as (peak per group, shape): `peak * shape(pos)` is each group's rate; shape None: constant."""
    if lr is None:
        return default, None
    if isinstance(lr, ScaledSched):
        return lr.peak, lr.shape
    if isinstance(lr, Sched) or (callable(lr) and not isinstance(lr, type)):
        return 1.0, lr  # absolute values, the same for every group
    return lr, None


def phase_epochs(phases: Sequence[Phase]) -> list[int]:
    """How many epochs (rows of the epoch table) each phase spans: a fraction rounds up."""
    return [math.ceil(p.epochs - 1e-9) for p in phases]


def _number_or_sched(where: str, name: str, value, low: float, high: float | None) -> None:
    if value is None or isinstance(value, Sched) or (callable(value) and not isinstance(value, type)):
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{where}: {name} must be a number or a schedule (called on the progress), got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise ValueError(f"{where}: {name} must be {bound}, got {value!r}")


def check_phases(phases, current_dls, check_lr: Callable[[str, Any], None], same_targets) -> list[Phase]:
    """`phases` as a list, or an error naming the phase and the argument that is wrong."""
    if isinstance(phases, Phase):
        raise TypeError("fit_phases takes a list of phases: fit_phases([qf.Phase(...), ...])")
    try:
        phases = list(phases)
    except TypeError:
        raise TypeError(f"fit_phases takes a list of qf.Phase, got {phases!r}") from None
    if not phases:
        raise ValueError("fit_phases needs at least one phase, got an empty list")
    for i, p in enumerate(phases):
        where = f"phase {i}"
        if not isinstance(p, Phase):
            raise TypeError(f"{where} must be a qf.Phase(epochs, lr=..., ...), got {p!r}")
        e = p.epochs
        if isinstance(e, bool) or not isinstance(e, numbers.Real) or not math.isfinite(e):
            raise TypeError(f"{where}: epochs must be a positive number, got {e!r}")
        if e <= 0:
            raise ValueError(f"{where}: epochs must be > 0, got {e!r}")
        peak, shape = split_lr(p.lr, None)
        if isinstance(p.lr, (str, bytes)) or (shape is None and p.lr is not None and np.ndim(peak) == 0):
            check_lr(f"{where}: lr", p.lr)  # a number (or something that is not one: named)
        elif peak is not None:
            check_lr(f"{where}: lr", peak)
        _number_or_sched(where, "mom", p.mom, 0.0, 1.0)
        _number_or_sched(where, "wd", p.wd, 0.0, None)
        if p.opt_func is not None and not callable(p.opt_func):
            raise TypeError(f"{where}: opt_func must build an optimizer (e.g. qf.SGD, qf.Adam), got {p.opt_func!r}")
        if p.dls is not None:
            train = getattr(p.dls, "train", None)
            if train is None or not hasattr(train, "__len__"):
                raise TypeError(f"{where}: dls must be DataLoaders whose train loader has a len(), got {p.dls!r}")
            problem = same_targets(current_dls, p.dls)
            if problem:
                raise ValueError(f"{where}: dls {problem}")
    return phases
