"""Schedules: pure functions of training progress `pos` in [0, 1].

    from quickfit.schedules import one_cycle_lr
    [one_cycle_lr(p) for p in (0, 0.25, 1)]   # -> [0.04, 1.0, 1e-05], multipliers of lr_max

Learning-rate schedules return a multiplier of the peak rate, so every layer group (each with its
own peak, for discriminative learning rates) is scaled together. Momentum schedules return values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = [
    "cos_anneal",
    "one_cycle_lr",
    "one_cycle_mom",
    "flat_cos_lr",
    "sgdr_lr",
    "sgdr_epochs",
    "cycle_starts",
    "constant",
    "Sched",
    "SchedLin",
    "SchedCos",
    "SchedNo",
    "SchedExp",
    "SchedPoly",
    "CombinedSched",
    "combine_scheds",
    "combined_cos",
    "SGDRSched",
    "ScaledSched",
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


# ---- schedules as values ------------------------------------------------------------------------
# The names and meanings of the course library's `SchedLin`, `SchedCos`, ..., `combine_scheds`, so that its
# users' code carries over; each is an object called on the progress `pos` through its phase, from 0 to 1.


def _check_ends(name: str, **values) -> None:
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise TypeError(f"{name}: {k} must be a finite number, got {v!r}")


class Sched:
    """A value as a function of progress `pos` in [0, 1] (a training phase's start to its end).

    Multiplying by a peak gives per-layer-group values of that shape: `slice(1e-5, 1e-3) * SchedCos(1, 0)`
    anneals every group from its own rate of the slice to 0 (discriminative rates keep their ratios).
    """

    __array_ufunc__ = None  # `np.array([...]) * sched` calls our __rmul__, not an elementwise loop

    def __call__(self, pos: float) -> float:
        raise NotImplementedError

    def __mul__(self, peak) -> ScaledSched:
        return ScaledSched(peak, self)

    __rmul__ = __mul__


class _StartEnd(Sched):
    def __init__(self, start: float, end: float):
        _check_ends(type(self).__name__, start=start, end=end)
        self.start, self.end = float(start), float(end)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.start:g}, {self.end:g})"


class SchedLin(_StartEnd):
    """A straight line from `start` to `end`."""

    def __call__(self, pos: float) -> float:
        return self.start + pos * (self.end - self.start)


class SchedCos(_StartEnd):
    """Half a cosine from `start` to `end`: slow at both ends (the one-cycle and SGDR shape)."""

    def __call__(self, pos: float) -> float:
        return cos_anneal(self.start, self.end, pos)


class SchedNo(_StartEnd):
    """Constant at `start` (`end` is ignored: the signature of the others)."""

    def __call__(self, pos: float) -> float:
        return self.start


class SchedExp(_StartEnd):
    """Geometric from `start` to `end` (both > 0): a straight line on a log scale, as in lr_find."""

    def __init__(self, start: float, end: float):
        super().__init__(start, end)
        if self.start <= 0 or self.end <= 0:
            raise ValueError(f"SchedExp needs start > 0 and end > 0, got {start!r}, {end!r}")

    def __call__(self, pos: float) -> float:
        return self.start * (self.end / self.start) ** pos


class SchedPoly(_StartEnd):
    """`start + (end - start) * pos**power`: power 1 is linear, 2 starts slow, 0.5 starts fast."""

    def __init__(self, start: float, end: float, power: float):
        super().__init__(start, end)
        _check_ends("SchedPoly", power=power)
        self.power = float(power)

    def __call__(self, pos: float) -> float:
        return self.start + (self.end - self.start) * pos**self.power

    def __repr__(self) -> str:
        return f"SchedPoly({self.start:g}, {self.end:g}, {self.power:g})"


class CombinedSched(Sched):
    """`scheds[i]` over the fraction `pcts[i]` of the progress, one after the other (see `combine_scheds`)."""

    def __init__(self, pcts, scheds):
        pcts, scheds = list(pcts), list(scheds)
        if not pcts or len(pcts) != len(scheds):
            raise ValueError(f"combine_scheds needs as many fractions as schedules, got {len(pcts)} and {len(scheds)}")
        for i, (p, s) in enumerate(zip(pcts, scheds)):
            _check_ends("combine_scheds", **{f"pcts[{i}]": p})
            if p < 0:
                raise ValueError(f"combine_scheds: pcts[{i}] must be >= 0, got {p!r}")
            if not callable(s):
                raise TypeError(f"combine_scheds: scheds[{i}] must be callable on the progress, got {s!r}")
        if abs(sum(pcts) - 1) > 1e-6:
            raise ValueError(f"combine_scheds: the fractions must add up to 1, got {pcts} (sum {sum(pcts):g})")
        self.pcts, self.scheds = [float(p) for p in pcts], scheds
        # where each part starts; its width is its own fraction (not a difference of sums: the one-cycle
        # parts then compute exactly `(pos - pct) / (1 - pct)`, as the closed forms above)
        self.starts = [sum(self.pcts[:i]) for i in range(len(self.pcts))]

    def __call__(self, pos: float) -> float:
        i = len(self.starts) - 1
        while i > 0 and pos < self.starts[i]:
            i -= 1
        width = self.pcts[i]
        return self.scheds[i](min(1.0, (pos - self.starts[i]) / width) if width > 0 else 0.0)

    def __repr__(self) -> str:
        parts = ", ".join(f"{p:g}: {s!r}" for p, s in zip(self.pcts, self.scheds))
        return f"combine_scheds({parts})"


def combine_scheds(pcts, scheds) -> CombinedSched:
    """One schedule made of several: `scheds[i]` runs over the fraction `pcts[i]` of the progress (they add to 1)."""
    return CombinedSched(pcts, scheds)


def combined_cos(pct: float, start: float, middle: float, end: float) -> CombinedSched:
    """The one-cycle shape: a cosine from `start` to `middle` over `pct` of the phase, then to `end`."""
    _check_ends("combined_cos", pct=pct)
    if not 0 <= pct <= 1:
        raise ValueError(f"combined_cos: pct must be in [0, 1], got {pct!r}")
    return CombinedSched([pct, 1 - pct], [SchedCos(start, middle), SchedCos(middle, end)])


class SGDRSched(Sched):
    """Cosine annealing from 1 to 0 in each of `n_cycles` cycles of cycle_len * cycle_mult**i epochs (`sgdr_lr`)."""

    def __init__(self, n_cycles: int, cycle_len: float = 1, cycle_mult: float = 1):
        self.n_cycles, self.cycle_len, self.cycle_mult = n_cycles, cycle_len, cycle_mult

    def __call__(self, pos: float) -> float:
        return sgdr_lr(pos, self.n_cycles, self.cycle_len, self.cycle_mult)

    def __repr__(self) -> str:
        return f"SGDRSched({self.n_cycles}, {self.cycle_len:g}, {self.cycle_mult:g})"


class ScaledSched(Sched):
    """`peak * shape(pos)`, with `peak` per layer group: a number, `slice(hi)`, `slice(lo, hi)` or one per group.

    Written `peak * shape`; the learner spreads the peak over its groups as it does any rate (`lr_per_group`).
    """

    def __init__(self, peak, shape: Sched):
        if isinstance(peak, Sched) or not callable(shape):
            raise TypeError(f"a schedule multiplies a rate (a number, slice or list), got {peak!r} * {shape!r}")
        self.peak, self.shape = peak, shape

    def __call__(self, pos: float) -> float:
        if isinstance(self.peak, slice) or np.ndim(self.peak) > 0:
            raise TypeError("a schedule of per-group rates gives one value per group: use values(pos, n_groups)")
        return float(self.peak) * self.shape(pos)

    def __mul__(self, other) -> ScaledSched:
        raise TypeError(f"{self!r} is already scaled by a rate")

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"{self.peak!r} * {self.shape!r}"
