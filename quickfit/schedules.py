"""Schedules: pure functions of training progress `pos` in [0, 1].

    from quickfit.schedules import one_cycle_lr
    [one_cycle_lr(p) for p in (0, 0.25, 1)]   # -> [0.04, 1.0, 1e-05], multipliers of lr_max

Learning-rate schedules return a multiplier of the peak rate, so every layer group (each with its
own peak, for discriminative learning rates) is scaled together. Momentum schedules return values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = [
    "cos_anneal",
    "one_cycle_lr",
    "one_cycle_mom",
    "flat_cos_lr",
    "sgdr_lr",
    "sgdr_epochs",
    "cycle_starts",
    "constant",
]

Schedule = Callable[[float], float]


def cos_anneal(start: float, end: float, pos: float) -> float:
    """Half a cosine from `start` (pos=0) to `end` (pos=1)."""
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pos))


def _two_phase(first: tuple[float, float], second: tuple[float, float], pct: float, pos: float) -> float:
    if pos < pct:
        return cos_anneal(*first, pos / pct)
    return cos_anneal(*second, (pos - pct) / (1 - pct)) if pct < 1 else second[0]


def one_cycle_lr(pos: float, div: float = 25.0, div_final: float = 1e5, pct_start: float = 0.25) -> float:
    """Warm up from 1/div to 1 over `pct_start` of training, then anneal to 1/div_final."""
    return _two_phase((1 / div, 1.0), (1.0, 1 / div_final), pct_start, pos)


def one_cycle_mom(pos: float, moms: tuple[float, float, float] = (0.95, 0.85, 0.95), pct_start: float = 0.25) -> float:
    """Momentum goes down while the learning rate goes up, and back up while it comes down."""
    return _two_phase((moms[0], moms[1]), (moms[1], moms[2]), pct_start, pos)


def flat_cos_lr(pos: float, pct_start: float = 0.75) -> float:
    """Flat at 1 for `pct_start` of training, then a cosine down to 0."""
    return 1.0 if pos < pct_start else cos_anneal(1.0, 0.0, (pos - pct_start) / (1 - pct_start))


def sgdr_epochs(n_cycles: int, cycle_len: float = 1, cycle_mult: float = 1) -> float:
    """Total epochs of SGDR: cycle_len * (1 + mult + mult**2 + ...), n_cycles terms."""
    return sum(cycle_len * cycle_mult**i for i in range(n_cycles))


def cycle_starts(n_cycles: int, cycle_len: float = 1, cycle_mult: float = 1) -> list[float]:
    """The epoch at which each cycle starts (the restarts)."""
    return [sgdr_epochs(i, cycle_len, cycle_mult) for i in range(n_cycles)]


def sgdr_lr(pos: float, n_cycles: int, cycle_len: float = 1, cycle_mult: float = 1) -> float:
    """Cosine annealing from 1 to 0 within each cycle, restarting at 1 (Loshchilov & Hutter)."""
    epoch = pos * sgdr_epochs(n_cycles, cycle_len, cycle_mult)
    starts = cycle_starts(n_cycles, cycle_len, cycle_mult)
    i = max(j for j, s in enumerate(starts) if s <= epoch + 1e-12)
    length = cycle_len * cycle_mult**i
    return cos_anneal(1.0, 0.0, min(1.0, (epoch - starts[i]) / length))


def constant(value: float = 1.0) -> Schedule:
    return lambda pos: value
