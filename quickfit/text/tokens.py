"""The token data type: texts as one flat array of token ids (a leaf: imports nothing of quickfit.text).

    import numpy as np
    from quickfit.text.tokens import TokenizedCorpus, gather_texts
    corpus = TokenizedCorpus.from_lists([["xxbos", "hello"], ["xxbos", "a", "b"]])
    corpus.tokens, corpus.ids, corpus.offsets    # ['xxbos', 'hello', 'a', 'b'], [0 1 0 2 3], [0 2 5]
    ids, offsets = gather_texts(corpus.ids, corpus.offsets, np.array([1, 0]))   # the texts reordered

`quickfit.text.corpus` (tokenizing in parallel, the cache), `quickfit.text.pipeline` (the rules on
arrays) and `quickfit.text.tokenize` (the Tokenizer) all build on it; keeping it here, below them,
is what lets them import each other in one direction only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

__all__ = ["TokenizedCorpus", "gather_texts"]


@dataclass
class TokenizedCorpus:
    """Texts as token indices: text `i` is `[tokens[j] for j in ids[offsets[i]:offsets[i + 1]]]`."""

    tokens: list[str]
    ids: np.ndarray  # int32, all texts back to back
    offsets: np.ndarray  # int64, n_texts + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def counts(self) -> np.ndarray:
        """How often each of `tokens` occurs in the corpus."""
        return np.bincount(self.ids, minlength=len(self.tokens))

    def to_lists(self) -> list[list[str]]:
        """The tokens of every text as lists of strings."""
        flat = np.array(self.tokens, dtype=object)[self.ids].tolist()
        o = self.offsets.tolist()
        return [flat[o[i] : o[i + 1]] for i in range(len(o) - 1)]

    @classmethod
    def from_lists(cls, lists: Sequence[Sequence[str]]) -> TokenizedCorpus:
        """Index token lists (tokens numbered in order of first appearance)."""
        flat = list(chain.from_iterable(lists))
        index = {t: i for i, t in enumerate(dict.fromkeys(flat))}  # C-speed loops, no per-token Python
        ids = np.fromiter(map(index.__getitem__, flat), dtype=np.int32, count=len(flat))
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, lists), dtype=np.int64, count=len(lists)), out=offsets[1:])
        return cls(list(index), ids, offsets)

    @classmethod
    def concat(cls, parts: Sequence[TokenizedCorpus]) -> TokenizedCorpus:
        """One corpus from consecutive parts, their token tables merged (first appearance order kept)."""
        index: dict[str, int] = {}
        ids, lengths = [], []
        for p in parts:
            remap = np.array([index.setdefault(t, len(index)) for t in p.tokens], dtype=np.int32)
            ids.append(remap[p.ids] if len(p.ids) else p.ids.astype(np.int32))
            lengths.append(p.lengths)
        offsets = np.zeros(sum(len(p) for p in parts) + 1, dtype=np.int64)
        if len(offsets) > 1:
            np.cumsum(np.concatenate(lengths), out=offsets[1:])
        flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32)
        return cls(list(index), flat.astype(np.int32, copy=False), offsets)


def gather_texts(ids: np.ndarray, offsets: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The texts `order` (indices) of a flat corpus, back to back, and their new offsets (one gather)."""
    lengths = np.diff(offsets)[order]
    new_offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    # Position p of text k in the output reads ids[offsets[order[k]] + p - new_offsets[k]].
    idx = np.repeat(offsets[:-1][order] - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return ids[idx], new_offsets


def reverse_texts(ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The flat ids with each text's tokens in reverse order, the texts where they were (one gather)."""
    lengths = np.diff(offsets)
    # Position i of text k reads ids[offsets[k] + offsets[k + 1] - 1 - i].
    idx = np.repeat(offsets[:-1] + offsets[1:] - 1, lengths) - np.arange(offsets[-1])
    return ids[idx]
