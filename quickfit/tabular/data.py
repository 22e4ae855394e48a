"""TabularDataLoaders: a DataFrame (or CSV) of rows -> processed tensors -> `(x_cat, x_cont, y)` batches.

    >>> import numpy as np, pandas as pd
    >>> from quickfit.tabular.data import TabularDataLoaders
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"color": rng.choice(["red", "blue"], 100), "size": rng.normal(size=100)})
    >>> df["big"] = np.where(df["size"] > 0, "yes", "no")
    >>> dls = TabularDataLoaders.from_df(df, "big", cat_names=["color"], cont_names=["size"], seed=0, bs=32)
    >>> x_cat, x_cont, y = next(iter(dls.train))
    >>> x_cat.shape, x_cont.shape, y.shape, dls.y_vocab
    (torch.Size([32, 1]), torch.Size([32, 1]), torch.Size([32]), ['no', 'yes'])

The processors (Categorify, FillMissing, Normalize) are fitted on the training rows only and applied to
the validation rows and to anything later given to `test_dl`. Their state is plain data, returned by
`export_info()`, so an exported learner carries its preprocessing without pickling code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from quickfit import env
from quickfit.data.core import DataLoaders
from quickfit.data.split import check_columns, split_rows
from quickfit.tabular.batches import TabularBatches
from quickfit.tabular.procs import (
    Categorify,
    FillMissing,
    Normalize,
    TabularProc,
    TabularProcessor,
    _plain,
)

__all__ = ["TabularDataLoaders", "cont_cat_split"]

Y_BLOCKS = ("category", "regression")


def cont_cat_split(df: pd.DataFrame, max_card: int = 20, exclude: Sequence[str] = ()) -> tuple[list, list]:
    """Split the columns of `df` (less `exclude`) into `(cont_names, cat_names)`.

    Float columns, and integer columns with more than `max_card` distinct values, are continuous;
    everything else (text, booleans, categories, integers with few values) is categorical.
    """
    cont, cat = [], []
    for name in df.columns:
        if name in exclude:
            continue
        dtype = df[name].dtype
        if pd.api.types.is_bool_dtype(dtype):
            cat.append(name)
        elif pd.api.types.is_float_dtype(dtype) or (
            pd.api.types.is_integer_dtype(dtype) and df[name].nunique() > max_card
        ):
            cont.append(name)
        else:
            cat.append(name)
    return cont, cat


def _as_list(names: str | Sequence[str] | None) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, Sequence | pd.Index | np.ndarray):
        return [names]  # one column name (a string, or e.g. an int before the check that names it)
    return list(names)


def _sorted_values(values: Sequence) -> list:
    values = [_plain(v) for v in values]
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))


def _no_rows(processor: TabularProcessor) -> TabularBatches:
    n_cat, n_cont = len(processor.cat_names), len(processor.cont_names)
    return TabularBatches(torch.empty(0, n_cat, dtype=torch.long), torch.empty(0, n_cont))


def _rows_as_frame(items: Any, what: str) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a dict / Series (one row), or a sequence of dicts / Series."""
    if isinstance(items, pd.DataFrame):
        return items
    if isinstance(items, (Mapping, pd.Series)):
        items = [items]
    if isinstance(items, Sequence) and all(isinstance(r, (Mapping, pd.Series)) for r in items):
        return pd.DataFrame([dict(r) for r in items])
    raise TypeError(f"{what}: expected a DataFrame, a dict / Series (one row) or a list of them, got {type(items)}")


class TabularDataLoaders(DataLoaders):
    """Training and validation batches `(x_cat, x_cont, y)` of a table (`n_inp=2`), and its preprocessing.

    Build one with `from_df` / `from_csv`. `y_vocab` holds the class labels for classification
    (None for regression); `c` is the number of model outputs.
    """

    onnx_input_names = ("x_cat", "x_cont")  # what tabular_onnx_inputs feeds an ONNX export

    def __init__(
        self,
        train: TabularBatches,
        valid: TabularBatches,
        processor: TabularProcessor,
        input_names: tuple[list[str], list[str]],
        y_names: list[str],
        y_vocab: list | None,
        bs: int = 256,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(train, valid, n_inp=2, device=device)
        self.processor, self.y_names, self.y_vocab, self.bs = processor, list(y_names), y_vocab, bs
        # the columns the user's rows must have (before FillMissing adds its `_na` flags)
        self.input_cat_names, self.input_cont_names = list(input_names[0]), list(input_names[1])

    # ---- what the model needs to know -------------------------------------------------------------
    @property
    def cat_names(self) -> list[str]:
        """Categorical model inputs, in `x_cat` column order (the `_na` flags included)."""
        return self.processor.cat_names

    @property
    def cont_names(self) -> list[str]:
        """Continuous model inputs, in `x_cont` column order."""
        return self.processor.cont_names

    @property
    def is_classification(self) -> bool:
        return self.y_vocab is not None

    @property
    def c(self) -> int:
        """Number of model outputs: classes for classification, target columns for regression."""
        return len(self.y_vocab) if self.is_classification else len(self.y_names)

    @property
    def cardinalities(self) -> list[int]:
        """Vocab size of each categorical input (code 0, `#na#`, included)."""
        cat = self.processor.categorify
        return [len(cat.vocabs[n]) for n in self.cat_names] if cat else []

    # ---- building --------------------------------------------------------------------------------
    @classmethod
    def from_df(
        cls,
        df: pd.DataFrame,
        y_names: str | Sequence[str],
        cat_names: Sequence[str] | None = None,
        cont_names: Sequence[str] | None = None,
        procs: Sequence[type[TabularProc] | TabularProc] = (Categorify, FillMissing, Normalize),
        valid_idx: Sequence[int] | None = None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        bs: int = 256,
        y_block: str | None = None,
    ) -> TabularDataLoaders:
        """Process `df` into training / validation batches.

        `y_names`: the target column(s). `cat_names` / `cont_names`: the input columns; when neither is
        given they are inferred with `cont_cat_split` (and printed); when one is given, the other gets the
        remaining columns. `valid_idx`: row positions (0-based, as in `df.iloc`) of the validation set,
        otherwise a random `valid_pct` of the rows (reproducible with `seed`). `y_block`: "category" or
        "regression"; by default a float target (or several targets) is regression, anything else
        classification.
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"from_df: df must be a pandas DataFrame, got {type(df)}")
        if len(df) == 0:
            raise ValueError("from_df: the DataFrame is empty (no rows)")
        y_names = _as_list(y_names)
        if not y_names:
            raise ValueError("from_df: y_names must name at least one target column")
        cat_in, cont_in = _as_list(cat_names), _as_list(cont_names)
        named = [*y_names, *(cat_in or []), *(cont_in or [])]
        check_columns(df, named, "from_df")
        not_str = [n for n in df.columns if not isinstance(n, str)]
        if not_str:
            raise TypeError(f"from_df: column names must be strings (got {not_str[:5]}); set df.columns first")
        both = set(y_names) & set((cat_in or []) + (cont_in or []))
        if both:
            raise ValueError(f"from_df: target column(s) {sorted(both)} also listed as inputs")
        both = set(cat_in or []) & set(cont_in or [])
        if both:
            raise ValueError(f"from_df: column(s) {sorted(both)} in both cat_names and cont_names")
        inferred = cat_in is None and cont_in is None
        if inferred:
            cont_in, cat_in = cont_cat_split(df, exclude=y_names)
        elif cat_in is None:
            cat_in = [n for n in df.columns if n not in y_names and n not in cont_in]
        elif cont_in is None:
            cont_in = [n for n in df.columns if n not in y_names and n not in cat_in]
        if cat_in and not any(
            isinstance(p, Categorify) or (isinstance(p, type) and issubclass(p, Categorify)) for p in procs
        ):
            raise ValueError(f"from_df: categorical columns {cat_in} need Categorify in procs")

        y_block = cls._y_block(df, y_names, y_block)
        y_vocab = None
        if y_block == "category":
            y_vocab = _sorted_values(pd.unique(df[y_names[0]].dropna()))
            if len(y_vocab) < 2:  # would train to a loss of 0 and an accuracy of 1, learning nothing
                raise ValueError(f"target column {y_names[0]!r} has {len(y_vocab)} class(es) {list(y_vocab)}: "
                                 "a classifier needs two or more")  # fmt: skip
        if inferred and env.is_main_process():  # once under torchrun, not once per rank
            kind = f"classification ({len(y_vocab)} classes)" if y_vocab else "regression"
            print(f"TabularDataLoaders: cat_names={cat_in}, cont_names={cont_in}, target {y_names}: {kind}")

        train_idx, valid_idx = split_rows(len(df), valid_pct, valid_idx, seed=seed)
        if len(train_idx) < 2:
            raise ValueError(f"from_df: only {len(train_idx)} training row(s) left after the split; need 2+")

        processor = TabularProcessor(procs, cat_in, cont_in)
        train_df = processor.fit_transform(df.iloc[train_idx])
        valid_df = processor(df.iloc[valid_idx])
        dls = cls(_no_rows(processor), _no_rows(processor), processor, (cat_in, cont_in), y_names, y_vocab, bs)
        # the tensors are built once, here; batches are slices of them
        dls.train = TabularBatches(*dls._tensors(train_df, labels=True), bs=bs, shuffle=True, drop_last=True)
        dls.valid = TabularBatches(*dls._tensors(valid_df, labels=True), bs=bs)
        return dls

    @classmethod
    def from_csv(
        cls,
        csv: str | Path,
        y_names: str | Sequence[str],
        cat_names: Sequence[str] | None = None,
        cont_names: Sequence[str] | None = None,
        procs: Sequence[type[TabularProc] | TabularProc] = (Categorify, FillMissing, Normalize),
        valid_idx: Sequence[int] | None = None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        bs: int = 256,
        y_block: str | None = None,
        sep: str = ",",
        na_values: Sequence[str] | None = None,
        skipinitialspace: bool = False,
    ) -> TabularDataLoaders:
        """`from_df` on `pd.read_csv(csv, sep=sep, na_values=na_values, skipinitialspace=...)`."""
        path = Path(csv)
        if not path.is_file():
            raise FileNotFoundError(f"from_csv: no such file {path}")
        df = pd.read_csv(path, sep=sep, na_values=na_values, skipinitialspace=skipinitialspace)
        return cls.from_df(df, y_names, cat_names, cont_names, procs, valid_idx, valid_pct, seed, bs, y_block)

    @staticmethod
    def _y_block(df: pd.DataFrame, y_names: list[str], y_block: str | None) -> str:
        for name in y_names:
            n_na = int(df[name].isna().sum())
            if n_na:
                raise ValueError(
                    f"target column {name!r} has {n_na} missing value(s) (first at row position "
                    f"{int(np.flatnonzero(df[name].isna().to_numpy())[0])}); drop those rows first "
                    f"(df.dropna(subset={[name]!r}))"
                )
        if y_block is None:
            single_float = len(y_names) == 1 and pd.api.types.is_float_dtype(df[y_names[0]].dtype)
            y_block = "regression" if len(y_names) > 1 or single_float else "category"
        if y_block not in Y_BLOCKS:
            raise ValueError(f"y_block must be one of {Y_BLOCKS} (or None to infer), got {y_block!r}")
        if y_block == "category" and len(y_names) > 1:
            raise ValueError(f"y_block='category' takes one target column, got {y_names}")
        if y_block == "regression":
            for name in y_names:
                if not pd.api.types.is_numeric_dtype(df[name].dtype) or pd.api.types.is_bool_dtype(df[name]):
                    raise ValueError(f"regression target column {name!r} is not numeric ({df[name].dtype})")
        return y_block

    @classmethod
    def from_export(cls, info: dict) -> TabularDataLoaders:
        """Rebuild (without rows) from `export_info()`: enough for `test_dl` and `decode_pred`."""
        processor = TabularProcessor.from_state(info["processor"])
        inputs = (info["input_cat_names"], info["input_cont_names"])
        return cls(
            _no_rows(processor), _no_rows(processor), processor, inputs, info["y_names"], info["y_vocab"], info["bs"]
        )

    def export_info(self) -> dict:
        """The preprocessing as JSON-serializable data (see `from_export`)."""
        return {
            "input_cat_names": self.input_cat_names,
            "input_cont_names": self.input_cont_names,
            "y_names": self.y_names,
            "y_vocab": self.y_vocab,
            "processor": self.processor.state(),
            "bs": self.bs,
        }

    # ---- rows -> tensors --------------------------------------------------------------------------
    def _tensors(self, df: pd.DataFrame, labels: bool) -> tuple[torch.Tensor, ...]:
        """Processed rows -> `(x_cat, x_cont[, y])`, done once per split."""
        n = len(df)
        if self.cat_names:
            x_cat = torch.from_numpy(np.stack([df[c].to_numpy(np.int64) for c in self.cat_names], 1))
        else:
            x_cat = torch.zeros(n, 0, dtype=torch.long)
        cont = np.zeros((n, 0), dtype=np.float32)
        if self.cont_names:
            cont = np.stack([np.asarray(df[c], dtype=np.float32) for c in self.cont_names], 1)
            bad = ~np.isfinite(cont).all(0)
            if bad.any():
                names = [c for c, b in zip(self.cont_names, bad) if b]
                raise ValueError(
                    f"continuous column(s) {names} still hold missing or infinite values after processing; "
                    f"add FillMissing to procs or clean them"
                )
        x_cont = torch.from_numpy(cont)
        if not labels:
            return x_cat, x_cont
        return x_cat, x_cont, self._targets(df)

    def _targets(self, df: pd.DataFrame) -> torch.Tensor:
        if self.is_classification:
            col = df[self.y_names[0]]
            idx = pd.Index(self.y_vocab).get_indexer(col)
            if (idx < 0).any():
                unseen = _sorted_values(pd.unique(col[idx < 0]))[:5]
                raise ValueError(
                    f"target column {self.y_names[0]!r} has label(s) {unseen} not in the vocab {self.y_vocab[:20]}"
                )
            return torch.from_numpy(idx.astype(np.int64))
        values = np.stack([pd.to_numeric(df[n]).to_numpy(np.float32) for n in self.y_names], 1)
        return torch.from_numpy(values)

    def test_dl(self, items: Any, with_labels: bool | None = None, bs: int | None = None) -> TabularBatches:
        """Batches for new rows: a DataFrame, one dict / Series, or a list of them.

        The rows need the input columns (not the target). With `with_labels=None` the targets of a
        DataFrame are included when every target column is present and complete (so
        `learn.validate(dl=...)` works); rows given as dicts / Series (what `learn.predict` passes) never
        carry targets.
        """
        if with_labels is None and not isinstance(items, pd.DataFrame):
            with_labels = False
        df = _rows_as_frame(items, "test_dl")
        if len(df) == 0:
            raise ValueError("test_dl: no rows to predict")
        needed = [*self.input_cat_names, *self.input_cont_names]
        missing = [n for n in needed if n not in df.columns]
        if missing:
            raise KeyError(f"test_dl: column(s) {missing} missing from the rows (needed: {needed})")
        has_y = all(n in df.columns for n in self.y_names) and not df[self.y_names].isna().any().any()
        if with_labels is None:
            with_labels = has_y
        elif with_labels and not has_y:
            raise ValueError(f"test_dl: with_labels=True but target column(s) {self.y_names} are missing or incomplete")
        processed = self.processor(df)
        dl = TabularBatches(*self._tensors(processed, labels=with_labels), bs=bs or self.bs)
        return dl.to(self.device) if self.device is not None else dl

    def decode_pred(self, pred: torch.Tensor) -> Any:
        """One row's prediction (after the activation) -> `(label, index, probabilities)` for
        classification, a float for one regression target, a `{name: value}` dict for several."""
        pred = pred.detach().cpu()
        if self.is_classification:
            idx = int(pred.argmax())
            return self.y_vocab[idx], idx, pred
        values = pred.reshape(-1).tolist()
        return values[0] if len(values) == 1 else dict(zip(self.y_names, values))

    # ---- tensors -> rows, to look at -------------------------------------------------------------
    def decode_batch(self, batch: Sequence[torch.Tensor], max_n: int | None = None) -> pd.DataFrame:
        """A batch `(x_cat, x_cont[, y])` back as rows: categories as their values, continuous columns
        un-normalized (`FillMissing`'s filled values stay filled), the targets as labels / values."""
        x_cat, x_cont = (t[:max_n].detach().cpu() for t in batch[:2])
        cols: dict[str, Any] = {}
        categorify = self.processor.categorify
        for i, name in enumerate(self.cat_names):
            codes = x_cat[:, i].tolist()
            cols[name] = categorify.decode(name, codes) if categorify is not None else codes
        normalize = next((p for p in self.processor.procs if isinstance(p, Normalize)), None)
        for i, name in enumerate(self.cont_names):
            values = x_cont[:, i].double()
            if normalize is not None and name in normalize.means:
                std = normalize.stds[name]
                values = values * std + normalize.means[name]
                # float32 holds ~7 digits of the normalized value: beyond std * 1e-6 the digits are noise
                # (capital-gain 0 came back as -0.000021); + 0.0 turns the -0.0 of rounding into 0.0
                values = values.round(decimals=max(0, math.ceil(-math.log10(std * 2**-20)))) + 0.0
            cols[name] = values.numpy()
        df = pd.DataFrame(cols)
        if len(batch) > 2 and batch[2] is not None:
            for name, values in self._decode_targets(batch[2][:max_n]).items():
                df[name] = values
        return df

    def _decode_targets(self, y: torch.Tensor, suffix: str = "") -> dict[str, list]:
        y = y.detach().cpu()
        if self.is_classification:
            return {f"{self.y_names[0]}{suffix}": [self.y_vocab[int(i)] for i in y.reshape(-1)]}
        y = y.reshape(len(y), -1).double()
        return {f"{name}{suffix}": y[:, i].numpy() for i, name in enumerate(self.y_names)}

    def show_batch(self, max_n: int = 10, split: str = "train") -> pd.DataFrame:
        """Print up to `max_n` rows of one batch (`one_batch(split)`) decoded, and return them as a DataFrame."""
        df = self.decode_batch(self.one_batch(split), max_n)
        print(df.to_string())
        return df

    def __repr__(self) -> str:
        kind = (
            f"classification of {self.y_names[0]!r} into {self.c} classes"
            if self.is_classification
            else (f"regression of {self.y_names}")
        )
        return (
            f"TabularDataLoaders({kind}; cat {self.cat_names}, cont {self.cont_names}; "
            f"train {self.train.n} rows, valid {self.valid.n} rows, bs={self.bs})"
        )
