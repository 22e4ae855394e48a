"""The train / validation split and the column checks every application's `from_df` uses.

    import pandas as pd
    from quickfit.data import check_columns, split_rows
    df = pd.DataFrame({"x": range(10), "is_valid": [False] * 8 + [True] * 2})
    check_columns(df, ["x"], "from_df")                 # ColumnError (a KeyError) naming what is missing
    train_idx, valid_idx = split_rows(df, valid_col="is_valid")   # [0..7], [8, 9]
    train_idx, valid_idx = split_rows(len(df), valid_pct=0.2, seed=42)

One rule: `valid_col` (a boolean column: true means validation) wins, else `valid_idx` (row
positions as in `df.iloc`, repeats ignored), else a random `valid_pct` of the rows, the same for
the same `seed`. Both index arrays come back sorted; a split that leaves no training row is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from quickfit.data.core import random_split

if TYPE_CHECKING:  # pandas is imported by the applications that read tables, not by `import quickfit`
    import pandas as pd

__all__ = ["ColumnError", "check_columns", "split_rows"]


class ColumnError(KeyError):
    """A column named in the arguments is not in the DataFrame."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


def check_columns(df: pd.DataFrame, names: Sequence[str], what: str) -> None:
    """Raise a `ColumnError` naming `what` (the argument or step), the missing columns and those there are."""
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise ColumnError(f"{what}: column(s) {missing} not in the DataFrame (its columns: {list(df.columns)})")


def split_rows(
    data: pd.DataFrame | int,
    valid_pct: float = 0.2,
    valid_idx: Sequence[int] | np.ndarray | None = None,
    valid_col: str | None = None,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`(train_idx, valid_idx)`: sorted int64 row positions of `data` (a DataFrame, or a number of rows)."""
    is_frame = hasattr(data, "columns")
    n = len(data) if is_frame else int(data)
    if valid_col is not None:
        if not is_frame:
            raise TypeError("split_rows: valid_col needs the DataFrame, not a number of rows")
        check_columns(data, [valid_col], "valid_col")
        is_valid = data[valid_col].to_numpy()
        if is_valid.dtype != bool:
            raise TypeError(f"valid_col {valid_col!r} must be a boolean column, got dtype {is_valid.dtype}")
        valid = np.flatnonzero(is_valid)
    elif valid_idx is not None:
        valid = np.unique(np.asarray(valid_idx, dtype=np.int64).reshape(-1))
        if len(valid) and (valid[0] < 0 or valid[-1] >= n):
            bad = valid[0] if valid[0] < 0 else valid[-1]
            raise IndexError(f"valid_idx must hold row positions in [0, {n}); got {bad}")
    else:
        valid = random_split(n, valid_pct, seed).astype(np.int64)
    is_train = np.ones(n, dtype=bool)
    is_train[valid] = False
    train = np.flatnonzero(is_train)
    if n and len(train) == 0:
        what = "valid_col" if valid_col is not None else "valid_idx" if valid_idx is not None else "valid_pct"
        raise ValueError(f"the split leaves no training rows ({what} selects all {n} rows)")
    return train, valid
