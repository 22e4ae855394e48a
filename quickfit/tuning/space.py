"""Search spaces: what `qf.tune` may choose for each hyper-parameter.

    import quickfit as qf
    space = {
        "lr": qf.LogUniform(1e-4, 1e-1),       # uniform in log scale: 1e-4..1e-3 as likely as 1e-2..1e-1
        "emb_drop": qf.Uniform(0.0, 0.5),
        "epochs": qf.Int(3, 10),
        "layers": qf.Choice([[200, 100], [400, 200], [1000, 500]]),
    }

Each dimension becomes one Optuna distribution (`suggest`). A `Choice` of values Optuna cannot store
(lists, tuples, dicts) is stored as the values' `repr` and turned back into the values in the
objective's `params`, so `layers` above arrives as a list. A bad space is refused before any trial
runs, with an error naming the parameter.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Choice", "Int", "LogUniform", "Uniform", "check_space", "suggest"]

_STORABLE = (type(None), bool, int, float, str)  # what Optuna keeps as a categorical choice as it is


def _bounds(kind: str, lo, hi, integer: bool = False) -> None:
    ok = numbers.Integral if integer else numbers.Real
    for end, v in (("low", lo), ("high", hi)):
        if isinstance(v, bool) or not isinstance(v, ok) or not math.isfinite(v):
            raise TypeError(f"{kind}: {end} must be a finite {'whole ' if integer else ''}number, got {v!r}")
    if lo > hi:
        raise ValueError(f"{kind}: low ({lo!r}) is above high ({hi!r})")


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly in [low, high]."""

    low: float
    high: float

    def __post_init__(self):
        _bounds("Uniform", self.low, self.high)


@dataclass(frozen=True)
class LogUniform:
    """A float drawn uniformly in log scale in [low, high] (both > 0): rates, weight decays."""

    low: float
    high: float

    def __post_init__(self):
        _bounds("LogUniform", self.low, self.high)
        if self.low <= 0:
            raise ValueError(f"LogUniform: low must be > 0 (a log scale), got {self.low!r}")


@dataclass(frozen=True)
class Int:
    """A whole number in [low, high], both included; `log=True` for sizes spanning decades."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self):
        _bounds("Int", self.low, self.high, integer=True)
        if self.log and self.low < 1:
            raise ValueError(f"Int(log=True): low must be >= 1, got {self.low!r}")


@dataclass(frozen=True)
class Choice:
    """One of `values` (any values: numbers, strings, lists of layer sizes)."""

    values: Sequence[Any]

    def __post_init__(self):
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Sequence):
            raise TypeError(f"Choice takes a list of values, got {self.values!r}")
        if len(self.values) == 0:
            raise ValueError("Choice: the list of values is empty")
        labels = self.labels
        if len(set(labels)) < len(labels):
            raise ValueError(f"Choice: the values {list(self.values)} repeat one")

    @property
    def stored_as_is(self) -> bool:
        return all(isinstance(v, _STORABLE) for v in self.values)

    @property
    def labels(self) -> list:
        """What Optuna stores for each value: the value itself, or its repr for a list / tuple / dict."""
        return list(self.values) if self.stored_as_is else [repr(v) for v in self.values]


DIMENSIONS = (Uniform, LogUniform, Int, Choice)


def check_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """`space` as a dict, or an error naming the parameter that is not a dimension."""
    if not isinstance(space, Mapping):
        raise TypeError(f"space must be a dict of name -> qf.Uniform / LogUniform / Int / Choice, got {space!r}")
    if not space:
        raise ValueError("space is empty: give at least one parameter to search")
    for name, dim in space.items():
        if not isinstance(name, str):
            raise TypeError(f"space: parameter names must be strings, got {name!r}")
        if not isinstance(dim, DIMENSIONS):
            hint = " (wrap a list of values in qf.Choice)" if isinstance(dim, (list, tuple)) else ""
            raise TypeError(
                f"space[{name!r}] must be qf.Uniform, qf.LogUniform, qf.Int or qf.Choice, got {dim!r}{hint}"
            )
    return dict(space)


def suggest(trial, name: str, dim) -> Any:
    """Ask `trial` (an Optuna trial) for parameter `name` of dimension `dim`; returns the value itself."""
    if isinstance(dim, Uniform):
        return trial.suggest_float(name, dim.low, dim.high)
    if isinstance(dim, LogUniform):
        return trial.suggest_float(name, dim.low, dim.high, log=True)
    if isinstance(dim, Int):
        return trial.suggest_int(name, dim.low, dim.high, log=dim.log)
    label = trial.suggest_categorical(name, dim.labels)
    return dim.values[dim.labels.index(label)]


def decode(space: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's stored params -> the values the objective received (Choice labels back to values)."""
    out = {}
    for name, v in stored.items():
        dim = space.get(name)
        out[name] = dim.values[dim.labels.index(v)] if isinstance(dim, Choice) and v in dim.labels else v
    return out
