"""TextDataLoaders: texts from a DataFrame, CSV or folders to language-model or classifier batches.

    import pandas as pd
    from quickfit.text.data import TextDataLoaders
    df = pd.read_csv("reviews.csv")                                   # columns: text, label
    lm_dls = TextDataLoaders.from_df(df, "text", is_lm=True, seed=0)  # batches of contiguous streams
    dls = TextDataLoaders.from_df(df, "text", "label", seed=0, vocab=lm_dls.vocab)  # shares the LM vocab
    x, y = next(iter(dls.train))          # x (bs, longest) LongTensor padded with xxpad on the right
    dls.c, dls.classes                    # 2, ['neg', 'pos']
    dls.decode_pred(probs)                # ('pos', 1, probs) for one prediction
    test = dls.test_dl(["a new review"])  # batches (x,) in the order given

The texts are tokenized once (in parallel, cached on disk under `$QUICKFIT_HOME/tokens`) and
numericalized into one int32 array; see `quickfit.text.loaders` for how batches are built.
Bad input fails early with the column and rows named: non-string or empty texts, missing labels.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from quickfit.data.core import DataLoaders
from quickfit.data.split import check_columns, split_rows
from quickfit.deprecation import renamed_argument
from quickfit.text.corpus import TokenizedCorpus, check_texts, gather_texts, tokenize_corpus
from quickfit.text.loaders import LMDataLoader, SortishDataLoader
from quickfit.text.rules import detokenize
from quickfit.text.tokenize import Tokenizer
from quickfit.text.tokens import reverse_texts
from quickfit.text.vocab import Vocab

__all__ = ["TextDataLoaders", "text_dls_from_export", "default_token_cache"]

_EXPORT_VERSION = 1


def default_token_cache() -> Path:
    """Where tokenized texts are cached by default: `$QUICKFIT_HOME/tokens` (`~/.cache/quickfit/tokens`)."""
    from quickfit.data.download import default_cache_dir

    return default_cache_dir() / "tokens"


def _rows(index: pd.Index, positions: Sequence[int], limit: int = 5) -> str:
    shown = ", ".join(repr(index[i]) for i in positions[:limit])
    return shown + (f" (and {len(positions) - limit} more)" if len(positions) > limit else "")


def _check_texts(df: pd.DataFrame, col: str) -> list[str]:
    values = df[col].tolist()
    bad = [i for i, t in enumerate(values) if not isinstance(t, str)]
    if bad:
        kinds = sorted({type(values[i]).__name__ for i in bad})
        raise TypeError(
            f"text column {col!r}: {len(bad)} value(s) are not strings ({', '.join(kinds)}) in rows "
            f"{_rows(df.index, bad)}; drop them (df.dropna(subset=[{col!r}])) or convert them with .astype(str)"
        )
    empty = [i for i, t in enumerate(values) if not t.strip()]
    if empty:
        raise ValueError(
            f"text column {col!r}: {len(empty)} empty text(s) in rows {_rows(df.index, empty)}; "
            f"drop them first, e.g. df[df[{col!r}].str.strip() != '']"
        )
    return values


def _check_column(df: pd.DataFrame, col: str, what: str) -> None:
    check_columns(df, [col], what)  # a ColumnError (a KeyError)


def _classes_of(labels: pd.Series, col: str) -> tuple[list, np.ndarray]:
    missing = np.flatnonzero(labels.isna().to_numpy())
    if len(missing):
        raise ValueError(
            f"label column {col!r}: {len(missing)} missing value(s) (NaN/None) in rows {_rows(labels.index, missing)}"
        )
    values = labels.tolist()
    try:
        classes = sorted(set(values))
    except TypeError as e:
        kinds = sorted({type(v).__name__ for v in values})
        raise TypeError(f"label column {col!r}: labels of mixed types ({', '.join(kinds)}) cannot be sorted") from e
    classes = [c.item() if isinstance(c, np.generic) else c for c in classes]  # JSON-able
    if len(classes) < 2:  # would train to a loss of 0 and an accuracy of 1, learning nothing
        raise ValueError(f"label column {col!r} has one class ({classes[0]!r}): a classifier needs two or more")
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[v] for v in values], dtype=np.int64)


def _subset(ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return gather_texts(ids, offsets, rows)


class TextDataLoaders(DataLoaders):
    """Train / valid loaders of texts plus what predicting needs: `vocab`, `tokenizer`, `classes`.

    `is_lm=True`: `LMDataLoader`s (batches `(x, y)`, `y` = `x` shifted by one token), `c` = vocab size.
    Otherwise `SortishDataLoader`s (batches `(x, y)` of padded texts and class indices), `c` = number of
    classes. Padding uses `pad_idx` (`xxpad`, 1) on the right unless `pad_first`.
    `backwards=True`: every text's tokens in reverse order (training, validation, `test_dl`), for the
    backward half of ULMFiT's forward + backward ensemble.
    """

    def __init__(
        self,
        train: Any,
        valid: Any,
        vocab: Vocab,
        tokenizer: Tokenizer,
        is_lm: bool = False,
        classes: list | None = None,
        bs: int = 64,
        seq_len: int = 72,
        pad_first: bool = False,
        device: torch.device | str | None = None,
        backwards: bool = False,
    ) -> None:
        super().__init__(train, valid, n_inp=1, device=device)
        self.vocab, self.tokenizer, self.is_lm = vocab, tokenizer, is_lm
        self.classes = classes
        self.bs, self.seq_len, self.pad_first, self.backwards = bs, seq_len, pad_first, backwards

    @property
    def c(self) -> int:
        """Number of outputs of the model: vocab size for a language model, number of classes otherwise."""
        return len(self.vocab) if self.is_lm else len(self.classes)

    @property
    def pad_idx(self) -> int:
        return self.vocab.pad_idx

    # --- building ------------------------------------------------------------------------------
    @classmethod
    def from_df(
        cls,
        df: pd.DataFrame,
        text_col: str,
        label_col: str | None = None,
        is_lm: bool = False,
        valid_pct: float = 0.2,
        valid_col: str | None = None,
        seed: int | None = None,
        bs: int = 64,
        seq_len: int = 72,
        vocab: Vocab | None = None,
        tokenizer: Tokenizer | None = None,
        min_freq: int | None = None,
        max_vocab: int = 60000,
        pad_first: bool = False,
        num_workers: int | None = None,
        cache_dir: str | Path | bool | None = None,
        backwards: bool = False,
        *,
        n_workers: int | None = None,  # deprecated: num_workers
    ) -> TextDataLoaders:
        """Loaders from a DataFrame: `text_col` holds the texts, `label_col` the labels (classifier).

        - The validation rows are those where the boolean column `valid_col` is true, or a random
          `valid_pct` of the rows (`seed` fixes it and the shuffling).
        - `vocab`: use an existing vocab (`lm_dls.vocab`, so a classifier shares its language model's);
          otherwise one is built on the training texts with `min_freq` (3 for words, 1 for subword
          tokens) and `max_vocab`. Pass the language model's `tokenizer` too if it was not the default.
        - `cache_dir`: where tokenized texts are cached (`None`: `default_token_cache()`, `False`: off).
        - `backwards`: each text read from its last token to its first (a backward language model, and
          the classifier on its encoder: same vocab, same labels).
        """
        num_workers = renamed_argument(num_workers, n_workers, "num_workers", "n_workers", "TextDataLoaders.from_df")
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"TextDataLoaders.from_df: df must be a pandas DataFrame, got {type(df).__name__}")
        _check_column(df, text_col, "text_col")
        if not is_lm:
            if label_col is None:
                raise ValueError("TextDataLoaders.from_df: label_col is needed for a classifier (or pass is_lm=True)")
            _check_column(df, label_col, "label_col")
        if len(df) == 0:
            raise ValueError("TextDataLoaders.from_df: the DataFrame has no rows")
        texts = _check_texts(df, text_col)
        classes, labels = (None, None) if is_lm else _classes_of(df[label_col], label_col)
        try:
            train_idx, valid_idx = split_rows(df, valid_pct, valid_col=valid_col, seed=seed)
        except ValueError as e:
            raise ValueError(f"TextDataLoaders.from_df: {e}") from None

        tokenizer = tokenizer if tokenizer is not None else Tokenizer()
        if cache_dir is None:
            cache_dir = default_token_cache()
        corpus = tokenize_corpus(texts, tokenizer, num_workers, cache_dir=cache_dir or None)
        shared_vocab = vocab is not None
        if vocab is None:
            train_corpus = TokenizedCorpus(corpus.tokens, *_subset(corpus.ids, corpus.offsets, train_idx))
            min_freq = min_freq if min_freq is not None else (1 if tokenizer.subword else 3)
            vocab = Vocab(train_corpus, min_freq=min_freq, max_vocab=max_vocab)
        ids, offsets = vocab.numericalize_corpus(corpus)
        if shared_vocab:
            _warn_if_foreign_vocab(ids, vocab)
        if backwards:
            ids = reverse_texts(ids, offsets)
        train = _subset(ids, offsets, train_idx)
        valid = _subset(ids, offsets, valid_idx) if len(valid_idx) else None
        if is_lm:
            train_dl = LMDataLoader(*train, bs=bs, seq_len=seq_len, shuffle=True, seed=seed)
            try:
                valid_dl = None if valid is None else LMDataLoader(*valid, bs=bs, seq_len=seq_len)
            except ValueError as e:
                raise ValueError(f"the validation texts: {e} (or a larger valid_pct)") from e
        else:
            pad = vocab.pad_idx
            train_dl = SortishDataLoader(
                *train, labels=labels[train_idx], bs=bs, shuffle=True, pad_idx=pad, pad_first=pad_first, seed=seed
            )
            valid_dl = None
            if valid is not None:
                valid_dl = SortishDataLoader(*valid, labels=labels[valid_idx], bs=bs, pad_idx=pad, pad_first=pad_first)
        return cls(train_dl, valid_dl, vocab, tokenizer, is_lm, classes, bs, seq_len, pad_first, backwards=backwards)

    @classmethod
    def from_csv(
        cls,
        csv_path: str | Path,
        text_col: str,
        label_col: str | None = None,
        sep: str = ",",
        quoting: int = csv.QUOTE_MINIMAL,
        is_lm: bool = False,
        valid_pct: float = 0.2,
        valid_col: str | None = None,
        seed: int | None = None,
        bs: int = 64,
        seq_len: int = 72,
        vocab: Vocab | None = None,
        tokenizer: Tokenizer | None = None,
        min_freq: int | None = None,
        max_vocab: int = 60000,
        pad_first: bool = False,
        num_workers: int | None = None,
        cache_dir: str | Path | bool | None = None,
        backwards: bool = False,
        *,
        n_workers: int | None = None,  # deprecated: num_workers
    ) -> TextDataLoaders:
        """`from_df` on a CSV file (`sep="\\t", quoting=csv.QUOTE_NONE` reads GLUE-style TSVs)."""
        num_workers = renamed_argument(num_workers, n_workers, "num_workers", "n_workers", "TextDataLoaders.from_csv")
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise FileNotFoundError(f"TextDataLoaders.from_csv: no file {csv_path}")
        df = pd.read_csv(csv_path, sep=sep, quoting=quoting, keep_default_na=False, na_values=[""])
        try:
            return cls.from_df(
                df, text_col, label_col, is_lm, valid_pct, valid_col, seed, bs, seq_len, vocab, tokenizer,
                min_freq, max_vocab, pad_first, num_workers, cache_dir, backwards,
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as e:
            raise type(e)(f"{csv_path}: {e.args[0] if e.args else e}") from e

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        train: str = "train",
        valid: str = "test",
        is_lm: bool = False,
        seed: int | None = None,
        bs: int = 64,
        seq_len: int = 72,
        vocab: Vocab | None = None,
        tokenizer: Tokenizer | None = None,
        min_freq: int | None = None,
        max_vocab: int = 60000,
        pad_first: bool = False,
        num_workers: int | None = None,
        cache_dir: str | Path | bool | None = None,
        suffix: str = ".txt",
        backwards: bool = False,
        *,
        n_workers: int | None = None,  # deprecated: num_workers
    ) -> TextDataLoaders:
        """Texts from `path/train/<label>/*.txt` and `path/valid/<label>/*.txt` (a file per text).

        For a language model (`is_lm=True`) every `*.txt` under the two folders is read, labels or
        not (e.g. IMDB's `train/unsup`).
        """
        where = "TextDataLoaders.from_folder"
        num_workers = renamed_argument(num_workers, n_workers, "num_workers", "n_workers", where)
        path = Path(path)
        rows, empty, labels = [], [], {}
        for name, is_valid in ((train, False), (valid, True)):
            folder = path / name
            if not folder.is_dir():
                raise FileNotFoundError(f"TextDataLoaders.from_folder: no folder {folder}")
            files = sorted(folder.rglob(f"*{suffix}")) if is_lm else sorted(folder.glob(f"*/*{suffix}"))
            if not files:
                where = f"{folder}/**/*{suffix}" if is_lm else f"{folder}/<label>/*{suffix}"
                raise FileNotFoundError(f"TextDataLoaders.from_folder: no files {where}")
            for f in files:
                text = _read_text(f)
                if not text.strip():
                    empty.append(str(f))
                rows.append((text, f.parent.name, is_valid))
            labels[is_valid] = {f.parent.name for f in files}
        if empty:
            raise ValueError(f"TextDataLoaders.from_folder: {len(empty)} empty file(s): {empty[:3]}")
        if not is_lm and len(labels[False]) < 2:
            raise ValueError(f"TextDataLoaders.from_folder: only one label folder in {path / train} "
                             f"({sorted(labels[False])[0]!r}): a classifier needs two or more")  # fmt: skip
        if not is_lm and labels[True] - labels[False]:
            raise ValueError(
                f"TextDataLoaders.from_folder: labels {sorted(labels[True] - labels[False])} are in "
                f"{path / valid} but not in {path / train}"
            )
        df = pd.DataFrame(rows, columns=["text", "label", "is_valid"])
        return cls.from_df(
            df, "text", None if is_lm else "label", is_lm, 0.2, "is_valid", seed, bs, seq_len, vocab, tokenizer,
            min_freq, max_vocab, pad_first, num_workers, cache_dir, backwards,
        )  # fmt: skip

    # --- predicting ----------------------------------------------------------------------------
    def numericalize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`(ids, offsets)` of new texts with this tokenizer and vocab (unseen tokens give `xxunk`;
        reversed if the loaders are `backwards`)."""
        texts = list(texts)
        check_texts(texts, "test texts")
        ids, offsets = self.vocab.numericalize_corpus(tokenize_corpus(texts, self.tokenizer))
        return (reverse_texts(ids, offsets) if self.backwards else ids), offsets

    def test_dl(self, texts: Sequence[str], labels: Sequence | None = None, bs: int | None = None) -> SortishDataLoader:
        """Batches `(x,)` of `texts` in the order given (`(x, y)` with `labels`), for `get_preds` / `predict`."""
        if isinstance(texts, str):
            texts = [texts]
        ids, offsets = self.numericalize(texts)
        y = None
        if labels is not None:
            if self.is_lm:
                raise ValueError("test_dl: a language model's data takes no labels")
            index = {c: i for i, c in enumerate(self.classes)}
            unknown = sorted({repr(v) for v in labels if v not in index})
            if unknown:
                raise ValueError(f"test_dl: labels {unknown[:5]} are not among the classes {self.classes}")
            y = np.array([index[v] for v in labels], dtype=np.int64)
        dl = SortishDataLoader(
            ids, offsets, labels=y, bs=bs or self.bs, sort=False, pad_idx=self.pad_idx, pad_first=self.pad_first
        )
        return dl if self.device is None else dl.to(self.device)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The text of token ids (padding skipped, read forwards again if `backwards`), detokenized."""
        tokens = [t for t in self.vocab.decode(ids) if t != "xxpad"]
        return detokenize(self.tokenizer.decode(tokens[::-1] if self.backwards else tokens))

    def show_batch(self, max_n: int = 10, split: str = "train") -> pd.DataFrame:
        """Print up to `max_n` rows of one batch decoded, and return them as a DataFrame: (text, label)
        for a classifier, (text, target) for a language model (the target: the text one token on)."""
        dl = self.train if split == "train" else self.valid
        if dl is None:
            raise ValueError(f"show_batch: these loaders have no {split} data")
        x, y = next(iter(dl))[:2]
        texts = [self.decode(row) for row in x[:max_n].cpu()]
        if self.is_lm:
            df = pd.DataFrame({"text": texts, "target": [self.decode(row) for row in y[:max_n].cpu()]})
        else:
            df = pd.DataFrame({"text": texts, "label": [self.classes[int(i)] for i in y[:max_n]]})
        with pd.option_context("display.max_colwidth", 100):
            print(df.to_string())
        return df

    def decode_pred(self, pred: torch.Tensor) -> tuple[Any, int, torch.Tensor]:
        """`(label, index, probabilities)` of one prediction (for a language model, the next token)."""
        index = int(torch.as_tensor(pred).argmax())
        label = self.vocab.itos[index] if self.is_lm else self.classes[index]
        return label, index, pred

    # --- export --------------------------------------------------------------------------------
    def export_info(self) -> dict[str, Any]:
        """JSON-serializable description of the data processing, for `learn.export`."""
        return {
            "version": _EXPORT_VERSION,
            "is_lm": self.is_lm,
            "vocab": self.vocab.to_list(),
            "tokenizer": self.tokenizer.to_dict(),
            "classes": self.classes,
            "pad_idx": self.pad_idx,
            "pad_first": self.pad_first,
            "bs": self.bs,
            "seq_len": self.seq_len,
            "backwards": self.backwards,
        }


def text_dls_from_export(info: dict[str, Any]) -> TextDataLoaders:
    """A `TextDataLoaders` without training data that can `test_dl` and `decode_pred` (for `load_learner`)."""
    if not isinstance(info, dict) or info.get("version") != _EXPORT_VERSION:
        raise ValueError(f"text_dls_from_export: expected text data info of version {_EXPORT_VERSION}")
    vocab = Vocab.from_list(info["vocab"])
    tokenizer = Tokenizer.from_dict(info["tokenizer"])
    return TextDataLoaders(
        [], [], vocab, tokenizer, info["is_lm"], info["classes"], info["bs"], info["seq_len"], info["pad_first"],
        backwards=info.get("backwards", False),  # exports from before the option read forwards
    )  # fmt: skip


def _read_text(f: Path) -> str:
    try:
        return f.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{f}: not UTF-8 text ({e.reason} at byte {e.start})") from e


def _warn_if_foreign_vocab(ids: np.ndarray, vocab: Vocab) -> None:
    if len(ids) and np.mean(ids == vocab.unk_idx) > 0.5:
        warnings.warn(
            f"more than half of the tokens are unknown to the vocab ({len(vocab)} tokens): was it built with "
            "the same tokenizer? Pass tokenizer=lm_dls.tokenizer along with vocab=lm_dls.vocab",
            stacklevel=3,
        )
