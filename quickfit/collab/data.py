"""Ratings data for collaborative filtering: ids mapped to indices once, batches sliced from tensors.

A batch is `(x, y)` with `x` a LongTensor `(bs, 2)` of `[user_index, item_index]` and `y` a float
tensor `(bs,)` of ratings (`n_inp=1`, as in fastai), so any model taking `x` plugs in. Index 0 of
both vocabularies is reserved for an unknown id (`dls.classes["user"][0] == "#na#"`).

Usage:
    import pandas as pd
    from quickfit.collab import CollabDataLoaders

    ratings = pd.DataFrame({"user": ["ann", "bob", "ann"], "item": [10, 10, 20], "rating": [4.0, 2.0, 5.0]})
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.34, seed=0, bs=2)
    x, y = next(iter(dls.train))          # x: (2, 2) indices, y: (2,) ratings
    test = dls.test_dl([("ann", 10)])     # batches of (x,) for learn.get_preds(dl=test)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from quickfit.data.batches import TensorBatches
from quickfit.data.core import DataLoaders
from quickfit.data.split import ColumnError, check_columns, split_rows

__all__ = [
    "UNKNOWN",
    "UnknownIdError",
    "MissingColumnError",
    "RatingsLoader",
    "CollabDataLoaders",
    "encode_ids",
]

UNKNOWN = "#na#"


class _MessageKeyError(KeyError):
    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


class UnknownIdError(_MessageKeyError):
    """A user or item id not seen in the training data."""


MissingColumnError = ColumnError  # the name this module had for it; one error type for every application


class RatingsLoader(TensorBatches):
    """Batches `(x, y)` (or `(x,)` without ratings) sliced from tensors prepared once.

    Shuffling permutes the whole tensors once per epoch (one `randperm` and one gather), then every
    batch is a view: no per-row Python, no collate. `to(device)` moves the tensors once, so a GPU
    run does no host-to-device copy per batch. Sharding for torchrun: `quickfit.data.TensorBatches`.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        bs: int = 64,
        shuffle: bool = False,
        drop_last: bool = False,
    ) -> None:
        if y is not None and len(y) != len(x):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        super().__init__(*((x,) if y is None else (x, y)), bs=bs, shuffle=shuffle, drop_last=drop_last)

    @property
    def x(self) -> torch.Tensor:
        return self.tensors[0]

    @property
    def y(self) -> torch.Tensor | None:
        return self.tensors[1] if len(self.tensors) > 1 else None


def _sorted_unique(values: pd.Series) -> list:
    uniq = pd.unique(values).tolist()  # .tolist() gives Python ints/strs, which JSON keeps as they are
    try:
        return sorted(uniq)
    except TypeError:  # mixed types (e.g. 3 and "3"): any stable order will do
        return sorted(uniq, key=lambda v: (type(v).__name__, str(v)))


def encode_ids(
    values: pd.Series | Sequence[Any], classes: Sequence[Any], column: str, unknown: str = "error"
) -> np.ndarray:
    """Map original ids to indices into `classes` (whose index 0 is the unknown id).

    `unknown="error"` raises an `UnknownIdError` (a `KeyError`) naming the first unknown ids and the column;
    `unknown="index"` maps them to 0.
    """
    if unknown not in ("error", "index"):
        raise ValueError(f'unknown must be "error" or "index", got {unknown!r}')
    values = pd.Series(values)
    codes = pd.Index(list(classes[1:])).get_indexer(values) + 1
    if unknown == "error" and (codes == 0).any():
        bad = pd.unique(values[codes == 0]).tolist()
        shown = ", ".join(repr(v) for v in bad[:5]) + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
        raise UnknownIdError(
            f"unknown {column} id(s) {shown}: not seen in the training data "
            f'(pass unknown="index" to map them to the unknown index 0)'
        )
    return codes.astype(np.int64)


def _ratings(df: pd.DataFrame, column: str) -> np.ndarray:
    try:
        y = df[column].to_numpy(dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TypeError(f"column {column!r} must hold numeric ratings: {e}") from None
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise ValueError(
            f"column {column!r} has {len(bad)} NaN/inf rating(s) (first row positions: "
            f"{bad[:5].tolist()}); drop or fill them first"
        )
    return y


def _split(n: int, valid_idx: Sequence[int] | None, valid_pct: float, seed: int | None) -> np.ndarray:
    """Boolean mask of validation rows (positions, like `df.iloc`): `quickfit.data.split_rows`'s rule."""
    is_valid = np.zeros(n, dtype=bool)
    is_valid[split_rows(n, valid_pct, valid_idx, seed=seed)[1]] = True
    return is_valid


class CollabDataLoaders(DataLoaders):
    """Train / valid `RatingsLoader`s plus the id vocabularies (`classes`) and the column names."""

    def __init__(
        self,
        train: RatingsLoader,
        valid: RatingsLoader,
        classes: dict[str, list],
        user_name: str = "user",
        item_name: str = "item",
        rating_name: str = "rating",
    ) -> None:
        super().__init__(train, valid, n_inp=1)
        self.classes = classes
        self.user_name, self.item_name, self.rating_name = user_name, item_name, rating_name

    @property
    def n_users(self) -> int:
        return len(self.classes["user"])

    @property
    def n_items(self) -> int:
        return len(self.classes["item"])

    @classmethod
    def from_df(
        cls,
        ratings: pd.DataFrame,
        user_name: str = "user",
        item_name: str = "item",
        rating_name: str = "rating",
        valid_idx: Sequence[int] | None = None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        bs: int = 64,
        valid_bs: int | None = None,
    ) -> CollabDataLoaders:
        """Build from a DataFrame with one row per rating.

        The id vocabularies come from the training rows only; validation ids never seen in training
        map to the unknown index 0 (as a new user would at prediction time). `valid_idx` holds row
        positions; otherwise a random `valid_pct` of rows (seeded by `seed`) is held out.
        `valid_bs` defaults to `4 * bs` (no gradients, so bigger batches are free).
        """
        if not isinstance(ratings, pd.DataFrame):
            raise TypeError(f"ratings must be a pandas DataFrame, got {type(ratings).__name__}")
        check_columns(ratings, [user_name, item_name, rating_name], "ratings")
        if len(ratings) == 0:
            raise ValueError("ratings DataFrame is empty: nothing to train on")
        for col in (user_name, item_name):
            n_na = int(ratings[col].isna().sum())
            if n_na:
                raise ValueError(f"column {col!r} has {n_na} missing id(s); drop those rows first")
        y = _ratings(ratings, rating_name)
        is_valid = _split(len(ratings), valid_idx, valid_pct, seed)
        train_rows = ratings[~is_valid]
        classes = {
            "user": [UNKNOWN, *_sorted_unique(train_rows[user_name])],
            "item": [UNKNOWN, *_sorted_unique(train_rows[item_name])],
        }
        users = encode_ids(ratings[user_name], classes["user"], user_name, unknown="index")
        items = encode_ids(ratings[item_name], classes["item"], item_name, unknown="index")
        x = torch.from_numpy(np.stack([users, items], axis=1))
        y_t = torch.from_numpy(y)
        tr, va = torch.from_numpy(~is_valid), torch.from_numpy(is_valid)
        # drop_last: a trailing batch of 1 would break BatchNorm in EmbeddingNN and adds a noisy step.
        train = RatingsLoader(x[tr], y_t[tr], bs=bs, shuffle=True, drop_last=len(train_rows) > bs)
        valid = RatingsLoader(x[va], y_t[va], bs=valid_bs or 4 * bs)
        return cls(train, valid, classes, user_name, item_name, rating_name)

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        user_name: str = "user",
        item_name: str = "item",
        rating_name: str = "rating",
        sep: str = ",",
        names: Sequence[str] | None = None,
        encoding: str | None = None,
        valid_idx: Sequence[int] | None = None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        bs: int = 64,
        valid_bs: int | None = None,
    ) -> CollabDataLoaders:
        """Read a ratings file (header row unless `names` is given, e.g. MovieLens `u.data` with
        `sep="\\t", names=["user", "item", "rating", "timestamp"]`) and call `from_df`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ratings file not found: {path}")
        df = pd.read_csv(path, sep=sep, names=list(names) if names else None, encoding=encoding)
        try:
            return cls.from_df(df, user_name, item_name, rating_name, valid_idx, valid_pct, seed, bs, valid_bs)
        except MissingColumnError as e:
            raise MissingColumnError(f"{path}: {e}") from None

    def encode(self, pairs: pd.DataFrame | Sequence[tuple[Any, Any]], unknown: str = "error") -> torch.Tensor:
        """`(n, 2)` index tensor for `(user, item)` pairs given by original id."""
        if isinstance(pairs, pd.DataFrame):
            check_columns(pairs, [self.user_name, self.item_name], "pairs")
            users, items = pairs[self.user_name], pairs[self.item_name]
        else:
            pairs = list(pairs)
            if any(not isinstance(p, (tuple, list)) or len(p) != 2 for p in pairs):
                raise TypeError("pairs must be a DataFrame or a sequence of (user, item) pairs")
            users, items = [p[0] for p in pairs], [p[1] for p in pairs]
        u = encode_ids(users, self.classes["user"], self.user_name, unknown)
        i = encode_ids(items, self.classes["item"], self.item_name, unknown)
        return torch.from_numpy(np.stack([u, i], axis=1).reshape(-1, 2))

    def test_dl(
        self, pairs: pd.DataFrame | Sequence[tuple[Any, Any]], unknown: str = "error", bs: int | None = None
    ) -> RatingsLoader:
        """Batches for `(user, item)` pairs by original id. A DataFrame that also has the rating
        column gives `(x, y)` batches (so `learn.validate(dl=...)` works), otherwise `(x,)`."""
        x = self.encode(pairs, unknown)
        y = None
        if isinstance(pairs, pd.DataFrame) and self.rating_name in pairs.columns:
            y = torch.from_numpy(_ratings(pairs, self.rating_name))
        return RatingsLoader(x, y, bs=bs or self.valid.bs).to(self.device or self.train.x.device)

    def decode_pred(self, pred: torch.Tensor) -> float:
        """One prediction -> the predicted rating as a float."""
        return float(pred.reshape(-1)[0])

    def export_info(self) -> dict:
        return {
            "classes": self.classes,
            "user_name": self.user_name,
            "item_name": self.item_name,
            "rating_name": self.rating_name,
            "bs": self.train.bs,
        }

    @classmethod
    def from_export(cls, info: dict) -> CollabDataLoaders:
        """Empty loaders with the vocabularies of an exported model: enough to `test_dl` / predict."""
        empty_x, empty_y = torch.zeros(0, 2, dtype=torch.long), torch.zeros(0)
        bs = int(info.get("bs", 64))
        return cls(
            RatingsLoader(empty_x, empty_y, bs=bs, shuffle=True),
            RatingsLoader(empty_x, empty_y, bs=4 * bs),
            {"user": list(info["classes"]["user"]), "item": list(info["classes"]["item"])},
            info["user_name"],
            info["item_name"],
            info["rating_name"],
        )
