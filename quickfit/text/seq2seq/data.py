"""Parallel sentences to batches: each side its own tokenizer and vocabulary, pairs of similar length together.

    from quickfit.text import Seq2SeqDataLoaders
    d = "multi30k/"   # Multi30k task 1: train/val/test .de and .en, one sentence a line
    dls = Seq2SeqDataLoaders.from_files(d + "train.de", d + "train.en", d + "val.de", d + "val.en", bs=64)
    src, tgt_in, tgt_out = next(iter(dls.train))   # (B, S), (B, T), (B, T): tgt_out is tgt_in shifted by one
    dls.src_vocab, dls.tgt_vocab                    # Vocab of each side (min_freq=2 on the training pairs)
    dls.decode(tgt_out[0])                          # a detokenized sentence

The target side is tokenized with `xxbos` in front and `xxeos` at the end: the decoder reads
`tgt_in = [xxbos, w1, .., wn]` and must predict `tgt_out = [w1, .., wn, xxeos]`. Both sides are padded
with `xxpad` (index 1) on the right. Training batches are sortish (shuffled, then sorted by length
within chunks of 50 batches); validation batches are sorted by length. Each loader keeps the raw
target sentences and the rows of its last batch (`raw_targets`, `last_idx`), so BLEU is measured
against the references as written, not against their tokens.

`detokenize` joins tokens back the way the references are written ("it ' s" -> "it's",
"t - shirt" -> "t-shirt", no space before punctuation): a reference tokenized and detokenized again
scores about 99 BLEU against itself on Multi30k (see docs/seq2seq.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from quickfit.data.core import DataLoaders, random_split
from quickfit.deprecation import renamed_argument
from quickfit.text.corpus import tokenize_corpus
from quickfit.text.data import default_token_cache
from quickfit.text.rules import detokenize
from quickfit.text.seq2seq.loader import Seq2SeqDataLoader
from quickfit.text.tokenize import Tokenizer
from quickfit.text.tokens import TokenizedCorpus
from quickfit.text.vocab import Vocab

__all__ = ["Seq2SeqDataLoader", "Seq2SeqDataLoaders", "detokenize", "seq2seq_dls_from_export"]

_EXPORT_VERSION = 1
TOO_LONG = ("drop", "error")


def source_tokenizer() -> Tokenizer:
    """The default source tokenizer: the course's rules, no `xxbos` / `xxeos`."""
    return Tokenizer(add_bos=False, add_eos=False)


def target_tokenizer() -> Tokenizer:
    """The default target tokenizer: the course's rules, `xxbos` in front and `xxeos` at the end."""
    return Tokenizer(add_bos=True, add_eos=True)


def _read_lines(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    try:
        return p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _check_pairs(src: list, tgt: list, src_name: str, tgt_name: str) -> None:
    if len(src) != len(tgt):
        raise ValueError(
            f"{src_name} has {len(src)} lines but {tgt_name} has {len(tgt)}: "
            "line i of one must translate line i of the other"
        )
    for name, texts in ((src_name, src), (tgt_name, tgt)):
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"{name}: {len(bad)} item(s) are not strings, e.g. at line {bad[0] + 1}: {texts[bad[0]]!r}")
        empty = [i + 1 for i, t in enumerate(texts) if not t.strip()]
        if empty:
            more = f" (and {len(empty) - 10} more)" if len(empty) > 10 else ""
            raise ValueError(
                f"{name}: {len(empty)} empty line(s), at line(s) {empty[:10]}{more}; every pair needs both sides"
            )


def _subset(corpus: TokenizedCorpus, vocab: Vocab, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from quickfit.text.tokens import gather_texts

    ids, offsets = vocab.numericalize_corpus(corpus)
    return gather_texts(ids, offsets, rows)


class Seq2SeqDataLoaders(DataLoaders):
    """Train / valid `Seq2SeqDataLoader`s plus what translating needs: both vocabularies and tokenizers."""

    def __init__(
        self,
        train: Any,
        valid: Any,
        src_vocab: Vocab,
        tgt_vocab: Vocab,
        src_tokenizer: Tokenizer,
        tgt_tokenizer: Tokenizer,
        bs: int = 64,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(train, valid, n_inp=2, device=device)
        self.src_vocab, self.tgt_vocab, self.bs = src_vocab, tgt_vocab, bs
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer

    @property
    def pad_idx(self) -> int:
        return self.tgt_vocab.pad_idx

    @property
    def bos_idx(self) -> int:
        return self.tgt_vocab.stoi["xxbos"]

    @property
    def eos_idx(self) -> int:
        return self.tgt_vocab.stoi["xxeos"]

    # --- building ------------------------------------------------------------------------------
    @classmethod
    def from_files(
        cls,
        src_train: str | Path,
        tgt_train: str | Path,
        src_valid: str | Path | None = None,
        tgt_valid: str | Path | None = None,
        bs: int = 64,
        max_len: int | None = None,
        too_long: str = "drop",
        min_freq: int = 2,
        max_vocab: int = 60000,
        shared_vocab: bool = False,
        src_tokenizer: Tokenizer | None = None,
        tgt_tokenizer: Tokenizer | None = None,
        seed: int | None = None,
        num_workers: int | None = None,
        cache_dir: str | Path | bool | None = None,
        *,
        n_workers: int | None = None,  # deprecated: num_workers
    ) -> Seq2SeqDataLoaders:
        """Loaders from text files of one sentence a line, line i of a source file translated by line i of its target.

        - `max_len`: training pairs with more tokens than this on either side are dropped (with a
          warning giving the count) or, with `too_long="error"`, refused; validation pairs are all kept.
        - `min_freq` / `max_vocab`: each side's vocabulary, built on the training pairs
          (`shared_vocab=True`: one vocabulary of both sides, for shared embeddings).
        - `src_tokenizer` / `tgt_tokenizer`: default `source_tokenizer()` / `target_tokenizer()`; a
          target tokenizer must add `xxbos` and `xxeos`.
        """
        where = "Seq2SeqDataLoaders.from_files"
        num_workers = renamed_argument(num_workers, n_workers, "num_workers", "n_workers", where)
        if (src_valid is None) != (tgt_valid is None):
            raise ValueError("from_files: pass both src_valid and tgt_valid, or neither")
        src, tgt = _read_lines(src_train), _read_lines(tgt_train)
        _check_pairs(src, tgt, str(src_train), str(tgt_train))
        is_valid = np.zeros(len(src), dtype=bool)
        if src_valid is not None:
            vs, vt = _read_lines(src_valid), _read_lines(tgt_valid)
            _check_pairs(vs, vt, str(src_valid), str(tgt_valid))
            src, tgt = src + vs, tgt + vt
            is_valid = np.concatenate([is_valid, np.ones(len(vs), dtype=bool)])
        return cls._build(src, tgt, is_valid, bs, max_len, too_long, min_freq, max_vocab, shared_vocab,
                          src_tokenizer, tgt_tokenizer, seed, num_workers, cache_dir)  # fmt: skip

    @classmethod
    def from_df(
        cls,
        df: pd.DataFrame,
        src_col: str,
        tgt_col: str,
        valid_col: str | None = None,
        valid_pct: float = 0.1,
        bs: int = 64,
        max_len: int | None = None,
        too_long: str = "drop",
        min_freq: int = 2,
        max_vocab: int = 60000,
        shared_vocab: bool = False,
        src_tokenizer: Tokenizer | None = None,
        tgt_tokenizer: Tokenizer | None = None,
        seed: int | None = None,
        num_workers: int | None = None,
        cache_dir: str | Path | bool | None = None,
        *,
        n_workers: int | None = None,  # deprecated: num_workers
    ) -> Seq2SeqDataLoaders:
        """Loaders from a DataFrame of pairs: the rows where the boolean `valid_col` is true validate,
        or a random `valid_pct` of them (`seed` fixes it). Other arguments as in `from_files`."""
        num_workers = renamed_argument(num_workers, n_workers, "num_workers", "n_workers", "Seq2SeqDataLoaders.from_df")
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"Seq2SeqDataLoaders.from_df: df must be a pandas DataFrame, got {type(df).__name__}")
        for name, col in (("src_col", src_col), ("tgt_col", tgt_col)) + (
            (("valid_col", valid_col),) if valid_col else ()
        ):
            if col not in df.columns:
                raise KeyError(f"{name}={col!r} is not a column of the DataFrame (columns: {list(df.columns)})")
        if len(df) == 0:
            raise ValueError("Seq2SeqDataLoaders.from_df: the DataFrame has no rows")
        src, tgt = df[src_col].tolist(), df[tgt_col].tolist()
        _check_pairs(src, tgt, f"column {src_col!r}", f"column {tgt_col!r}")
        if valid_col is not None:
            is_valid = df[valid_col].to_numpy()
            if is_valid.dtype != bool:
                raise TypeError(f"valid_col {valid_col!r} must be a boolean column, got dtype {is_valid.dtype}")
        else:
            is_valid = np.zeros(len(df), dtype=bool)
            is_valid[random_split(len(df), valid_pct, seed)] = True
        return cls._build(src, tgt, is_valid, bs, max_len, too_long, min_freq, max_vocab, shared_vocab,
                          src_tokenizer, tgt_tokenizer, seed, num_workers, cache_dir)  # fmt: skip

    @classmethod
    def _build(cls, src, tgt, is_valid, bs, max_len, too_long, min_freq, max_vocab, shared_vocab,
               src_tok, tgt_tok, seed, num_workers, cache_dir) -> Seq2SeqDataLoaders:  # fmt: skip
        if too_long not in TOO_LONG:
            raise ValueError(f"too_long must be one of {TOO_LONG}, got {too_long!r}")
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
            raise ValueError(f"max_len must be a positive int or None, got {max_len!r}")
        src_tok = src_tok if src_tok is not None else source_tokenizer()
        tgt_tok = tgt_tok if tgt_tok is not None else target_tokenizer()
        if not (tgt_tok.add_bos and tgt_tok.add_eos):
            raise ValueError("the target tokenizer must add xxbos and xxeos: Tokenizer(add_bos=True, add_eos=True)")
        cache = default_token_cache() if cache_dir is None else (cache_dir or None)
        src_corpus = tokenize_corpus(src, src_tok, num_workers, cache_dir=cache)
        tgt_corpus = tokenize_corpus(tgt, tgt_tok, num_workers, cache_dir=cache)
        train_idx, valid_idx = np.flatnonzero(~is_valid), np.flatnonzero(is_valid)
        if max_len is not None:
            long = (src_corpus.lengths[train_idx] > max_len) | (tgt_corpus.lengths[train_idx] > max_len)
            if long.any():
                first = [int(i) for i in train_idx[long][:5]]
                if too_long == "error":
                    raise ValueError(
                        f"{int(long.sum())} training pair(s) have more than max_len={max_len} tokens on a side, "
                        f"e.g. pairs {first} (0-based); pass too_long='drop' to drop them"
                    )
                warnings.warn(f"dropped {int(long.sum())} of {len(train_idx)} training pairs longer than "
                              f"max_len={max_len} tokens (e.g. pairs {first})", stacklevel=3)  # fmt: skip
                train_idx = train_idx[~long]
        if len(train_idx) == 0:
            raise ValueError("Seq2SeqDataLoaders: no training pairs are left")

        def vocab_of(*corpora: TokenizedCorpus) -> Vocab:
            train = [TokenizedCorpus(c.tokens, *_gather(c, train_idx)) for c in corpora]
            return Vocab(TokenizedCorpus.concat(train), min_freq=min_freq, max_vocab=max_vocab)

        if shared_vocab:
            src_vocab = tgt_vocab = vocab_of(src_corpus, tgt_corpus)
        else:
            src_vocab, tgt_vocab = vocab_of(src_corpus), vocab_of(tgt_corpus)
        pad = tgt_vocab.pad_idx
        train_dl = Seq2SeqDataLoader(
            _subset(src_corpus, src_vocab, train_idx), _subset(tgt_corpus, tgt_vocab, train_idx), bs=bs,
            shuffle=True, pad_idx=pad, raw_targets=[tgt[i] for i in train_idx], seed=seed,
        )  # fmt: skip
        valid_dl = None
        if len(valid_idx):
            valid_dl = Seq2SeqDataLoader(
                _subset(src_corpus, src_vocab, valid_idx), _subset(tgt_corpus, tgt_vocab, valid_idx), bs=bs,
                pad_idx=pad, raw_targets=[tgt[i] for i in valid_idx],
            )  # fmt: skip
        return cls(train_dl, valid_dl, src_vocab, tgt_vocab, src_tok, tgt_tok, bs)

    # --- translating -----------------------------------------------------------------------------
    def encode_sources(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`(ids, offsets)` of raw source sentences (unseen words become `xxunk`)."""
        if isinstance(sentences, str):
            raise TypeError("expected a list of sentences, got one str: wrap it in a list")
        sentences = list(sentences)
        bad = [i for i, s in enumerate(sentences) if not isinstance(s, str)]
        if bad:
            raise TypeError(f"sentence {bad[0]} is not a str: {sentences[bad[0]]!r}")
        ids, offsets = self.src_vocab.numericalize_corpus(self.src_tokenizer.corpus(sentences))
        empty = np.flatnonzero(np.diff(offsets) == 0)
        if len(empty):
            raise ValueError(f"sentence(s) {empty[:10].tolist()} have no tokens (empty?)")
        return ids, offsets

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The detokenized text of target token ids (stops at `xxeos`, skips padding)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if self.eos_idx in ids:
            ids = ids[: ids.index(self.eos_idx)]
        tokens = [t for t in self.tgt_vocab.decode(ids) if t not in ("xxpad", "xxbos")]
        return detokenize(self.tgt_tokenizer.decode(tokens))

    def decode_source(self, ids: torch.Tensor | Sequence[int]) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return detokenize(self.src_tokenizer.decode([t for t in self.src_vocab.decode(ids) if t != "xxpad"]))

    def show_batch(self, max_n: int = 10, split: str = "train") -> pd.DataFrame:
        """Print up to `max_n` pairs of one batch decoded, and return them as a DataFrame (source, target)."""
        dl = self.train if split == "train" else self.valid
        if dl is None:
            raise ValueError(f"show_batch: these loaders have no {split} data")
        src, _, tgt_out = next(iter(dl))
        sources, targets = [self.decode_source(s) for s in src[:max_n]], [self.decode(t) for t in tgt_out[:max_n]]
        df = pd.DataFrame({"source": sources, "target": targets})
        print(df.to_string())
        return df

    # --- export --------------------------------------------------------------------------------
    def export_info(self) -> dict[str, Any]:
        """JSON-serializable vocabularies and tokenizer settings, for `learn.export`."""
        return {
            "version": _EXPORT_VERSION,
            "kind": "seq2seq",
            "src_vocab": self.src_vocab.to_list(),
            "tgt_vocab": self.tgt_vocab.to_list(),
            "src_tokenizer": self.src_tokenizer.to_dict(),
            "tgt_tokenizer": self.tgt_tokenizer.to_dict(),
            "bs": self.bs,
        }


def _gather(corpus: TokenizedCorpus, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from quickfit.text.tokens import gather_texts

    return gather_texts(corpus.ids, corpus.offsets, rows)


def seq2seq_dls_from_export(info: dict[str, Any]) -> Seq2SeqDataLoaders:
    """Loaders without data that can encode sources and decode targets (for `load_learner`)."""
    if not isinstance(info, dict) or info.get("version") != _EXPORT_VERSION or info.get("kind") != "seq2seq":
        raise ValueError(f"seq2seq_dls_from_export: expected seq2seq data info of version {_EXPORT_VERSION}")
    return Seq2SeqDataLoaders(
        [], None, Vocab.from_list(info["src_vocab"]), Vocab.from_list(info["tgt_vocab"]),
        Tokenizer.from_dict(info["src_tokenizer"]), Tokenizer.from_dict(info["tgt_tokenizer"]), info["bs"],
    )  # fmt: skip
