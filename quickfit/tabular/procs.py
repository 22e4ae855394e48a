"""Tabular preprocessing: fit on the training rows, apply to any rows, state as plain JSON data.

Three processors, each a small class with the same four methods:

- `setup(df, cat_names, cont_names) -> (cat_names, cont_names)` learns its state from the training
  rows and returns the column lists it leaves behind (FillMissing adds `<col>_na` flag columns);
- `__call__(df) -> df` applies that state to any rows (training, validation, test, one row to predict);
- `state() -> dict` and `from_state(dict)` round-trip the state through JSON, which is how an exported
  model carries its preprocessing without pickling anything.

They always run in their `order` (FillMissing, then Categorify, then Normalize) whatever order you
list them in: the `_na` flags FillMissing adds must be categorified, and Normalize must see filled values.

    >>> import pandas as pd
    >>> from quickfit.tabular.procs import Categorify, FillMissing, Normalize, TabularProcessor
    >>> df = pd.DataFrame({"color": ["red", "blue", None, "red"], "size": [1.0, None, 3.0, 5.0]})
    >>> tp = TabularProcessor((Categorify, FillMissing, Normalize), ["color"], ["size"])
    >>> out = tp.fit_transform(df)
    >>> tp.cat_names, tp.cont_names
    (['color', 'size_na'], ['size'])
    >>> out["color"].tolist()   # vocab ['#na#', 'blue', 'red']: missing -> 0
    [2, 1, 0, 2]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from quickfit.data.split import check_columns

__all__ = [
    "NA_TOKEN",
    "Categorify",
    "FillMissing",
    "Normalize",
    "TabularProc",
    "TabularProcessor",
    "proc_from_state",
]

NA_TOKEN = "#na#"  # vocab entry 0 of every categorical column: unknown and missing values map here


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python scalar JSON can hold (np.int64 -> int, np.bool_ -> bool, ...)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_columns(df: pd.DataFrame, names: Sequence[str], what: str) -> None:
    check_columns(df, names, what)  # a ColumnError (a KeyError)


def _numeric_column(df: pd.DataFrame, name: str) -> np.ndarray:
    """Column `name` as float64, NaN where missing; a clear error if it holds text."""
    col = df[name]
    if pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    values = pd.to_numeric(col, errors="coerce")
    bad = col[values.isna() & col.notna()]
    if len(bad):
        raise ValueError(
            f"continuous column {name!r} holds non-numeric values such as {bad.iloc[0]!r}; pass it in cat_names instead"
        )
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _warn_if_type_differs(name: str, vocab: list, col: pd.Series) -> None:
    """Nothing matched the vocab: say so when it is because of a type (e.g. '3' vs 3), not unseen values."""
    values = col.dropna()
    if len(values) and isinstance(values.iloc[0], str) != isinstance(vocab[1], str):
        warnings.warn(
            f"Categorify: no value of column {name!r} is in its training vocab, which holds "
            f"{type(vocab[1]).__name__} values (e.g. {vocab[1]!r}) while these are "
            f"{type(_plain(values.iloc[0])).__name__} (e.g. {values.iloc[0]!r}); all map to #na#",
            stacklevel=3,
        )


class TabularProc:
    """Base of the processors: `setup` on training rows, then `__call__` on any rows."""

    order: int = 0

    def setup(self, df: pd.DataFrame, cat_names: list[str], cont_names: list[str]) -> tuple[list[str], list[str]]:
        raise NotImplementedError

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def state(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict) -> TabularProc:
        raise NotImplementedError


class Categorify(TabularProc):
    """Replace each categorical column by integer codes; 0 is `#na#` (missing, or unseen in training).

    The vocab of a column is `['#na#', *sorted(values seen in the training rows)]`.
    """

    order = 1

    def __init__(self, vocabs: dict[str, list] | None = None) -> None:
        self.vocabs: dict[str, list] = dict(vocabs or {})

    def setup(self, df: pd.DataFrame, cat_names: list[str], cont_names: list[str]) -> tuple[list[str], list[str]]:
        _check_columns(df, cat_names, "Categorify")
        for name in cat_names:
            values = [_plain(v) for v in pd.unique(df[name].dropna())]
            try:
                values = sorted(values)
            except TypeError:  # mixed types (e.g. ints and strings): any fixed order will do
                values = sorted(values, key=lambda v: (type(v).__name__, str(v)))
            self.vocabs[name] = [NA_TOKEN, *values]
        return cat_names, cont_names

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        _check_columns(df, list(self.vocabs), "Categorify")
        out = df.copy()
        for name, vocab in self.vocabs.items():
            # a hash lookup, vectorized; missing values and values outside the vocab get -1, hence 0 (#na#)
            codes = pd.Index(vocab[1:]).get_indexer(df[name]).astype(np.int64) + 1
            if len(vocab) > 1 and not codes.any():
                _warn_if_type_differs(name, vocab, df[name])
            out[name] = codes
        return out

    def decode(self, name: str, codes: Sequence[int]) -> list:
        """The original values of the codes of column `name` (0 decodes to `#na#`)."""
        vocab = self.vocabs[name]
        return [vocab[int(c)] for c in codes]

    def state(self) -> dict:
        return {"vocabs": self.vocabs}

    @classmethod
    def from_state(cls, state: dict) -> Categorify:
        return cls(vocabs=state["vocabs"])


class FillMissing(TabularProc):
    """Fill missing continuous values (median of the training rows by default) and flag them.

    A column with missing values in the training rows gets a `<col>_na` categorical column (True where
    the value was missing). Columns that were complete in training are still filled at prediction time,
    but get no flag, so the model's inputs keep the same shape.
    """

    order = 0
    strategies = ("median", "mean", "constant")

    def __init__(
        self,
        fill_strategy: str = "median",
        fill_val: float = 0.0,
        add_col: bool = True,
        fill_values: dict[str, float] | None = None,
        na_cols: list[str] | None = None,
    ) -> None:
        if fill_strategy not in self.strategies:
            raise ValueError(f"FillMissing: fill_strategy must be one of {self.strategies}, got {fill_strategy!r}")
        self.fill_strategy, self.fill_val, self.add_col = fill_strategy, float(fill_val), add_col
        self.fill_values: dict[str, float] = dict(fill_values or {})
        self.na_cols: list[str] = list(na_cols or [])

    def setup(self, df: pd.DataFrame, cat_names: list[str], cont_names: list[str]) -> tuple[list[str], list[str]]:
        _check_columns(df, cont_names, "FillMissing")
        self.fill_values, self.na_cols = {}, []
        for name in cont_names:
            values = _numeric_column(df, name)
            missing = np.isnan(values)
            if missing.all():
                raise ValueError(
                    f"continuous column {name!r} has no values in the training rows (all missing); "
                    f"drop it or list it in cat_names"
                )
            if self.fill_strategy == "median":
                fill = float(np.median(values[~missing]))
            elif self.fill_strategy == "mean":
                fill = float(values[~missing].mean())
            else:
                fill = self.fill_val
            self.fill_values[name] = fill
            if missing.any():
                self.na_cols.append(name)
        flags = [f"{n}_na" for n in self.na_cols] if self.add_col else []
        clash = [f for f in flags if f in cat_names or f in cont_names]
        if clash:
            raise ValueError(f"FillMissing: flag column(s) {clash} already exist; rename them")
        return [*cat_names, *flags], cont_names

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        _check_columns(df, list(self.fill_values), "FillMissing")
        out = df.copy()
        for name, fill in self.fill_values.items():
            values = _numeric_column(df, name)
            missing = np.isnan(values)
            if self.add_col and name in self.na_cols:
                out[f"{name}_na"] = missing
            out[name] = np.where(missing, fill, values)
        return out

    def state(self) -> dict:
        return {
            "fill_strategy": self.fill_strategy,
            "fill_val": self.fill_val,
            "add_col": self.add_col,
            "fill_values": self.fill_values,
            "na_cols": self.na_cols,
        }

    @classmethod
    def from_state(cls, state: dict) -> FillMissing:
        return cls(**{k: state[k] for k in ("fill_strategy", "fill_val", "add_col", "fill_values", "na_cols")})


class Normalize(TabularProc):
    """Subtract the training mean and divide by the training standard deviation of each continuous column."""

    order = 2

    def __init__(self, means: dict[str, float] | None = None, stds: dict[str, float] | None = None) -> None:
        self.means: dict[str, float] = dict(means or {})
        self.stds: dict[str, float] = dict(stds or {})

    def setup(self, df: pd.DataFrame, cat_names: list[str], cont_names: list[str]) -> tuple[list[str], list[str]]:
        _check_columns(df, cont_names, "Normalize")
        self.means, self.stds = {}, {}
        for name in cont_names:
            values = _numeric_column(df, name)
            if np.isnan(values).all():
                raise ValueError(f"Normalize: continuous column {name!r} has no values in the training rows")
            mean, std = float(np.nanmean(values)), float(np.nanstd(values))
            # a constant column would divide by zero; leave its spread alone
            self.means[name], self.stds[name] = mean, (std if std > 0 and math.isfinite(std) else 1.0)
        return cat_names, cont_names

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        _check_columns(df, list(self.means), "Normalize")
        out = df.copy()
        for name, mean in self.means.items():
            out[name] = (_numeric_column(df, name) - mean) / self.stds[name]
        return out

    def state(self) -> dict:
        return {"means": self.means, "stds": self.stds}

    @classmethod
    def from_state(cls, state: dict) -> Normalize:
        return cls(means=state["means"], stds=state["stds"])


_PROCS: dict[str, type[TabularProc]] = {
    "Categorify": Categorify,
    "FillMissing": FillMissing,
    "Normalize": Normalize,
}


def proc_from_state(entry: dict) -> TabularProc:
    """Rebuild a processor from `{"name": ..., "state": ...}` (only the known names: no code is loaded)."""
    name = entry.get("name")
    if name not in _PROCS:
        raise ValueError(f"unknown tabular processor {name!r}; known: {sorted(_PROCS)}")
    return _PROCS[name].from_state(entry["state"])


class TabularProcessor:
    """Runs a list of processors in their `order`; remembers the final categorical / continuous columns.

    `procs` holds classes (fresh ones are made) or instances (e.g. `FillMissing(fill_strategy="mean")`).
    """

    def __init__(
        self,
        procs: Sequence[type[TabularProc] | TabularProc],
        cat_names: Sequence[str],
        cont_names: Sequence[str],
    ) -> None:
        made = [p() if isinstance(p, type) else p for p in procs]
        bad = [p for p in made if not isinstance(p, TabularProc)]
        if bad:
            raise TypeError(f"procs: {bad!r} is not a TabularProc (Categorify, FillMissing, Normalize)")
        self.procs: list[TabularProc] = sorted(made, key=lambda p: p.order)
        self.cat_names, self.cont_names = list(cat_names), list(cont_names)
        self.is_setup = False

    @property
    def categorify(self) -> Categorify | None:
        return next((p for p in self.procs if isinstance(p, Categorify)), None)

    def fit_transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Fit every processor on `df` (the training rows) in turn and return the processed rows."""
        for proc in self.procs:
            self.cat_names, self.cont_names = proc.setup(df, self.cat_names, self.cont_names)
            df = proc(df)
        self.is_setup = True
        return df

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        if not self.is_setup:
            raise RuntimeError("TabularProcessor: call fit_transform on the training rows first")
        for proc in self.procs:
            df = proc(df)
        return df

    def state(self) -> dict:
        return {
            "cat_names": self.cat_names,
            "cont_names": self.cont_names,
            "procs": [{"name": type(p).__name__, "state": p.state()} for p in self.procs],
        }

    @classmethod
    def from_state(cls, state: dict) -> TabularProcessor:
        tp = cls([proc_from_state(e) for e in state["procs"]], state["cat_names"], state["cont_names"])
        tp.is_setup = True
        return tp
