"""Vocab: token <-> index, special tokens first, then the corpus's tokens by frequency.

    from quickfit.text.tokenize import Tokenizer
    from quickfit.text.vocab import Vocab
    tok = Tokenizer()
    toks = [tok(t) for t in ["The cat sat.", "The dog sat!"]]
    vocab = Vocab(toks, min_freq=1)
    vocab.itos[:3]                          # ['xxunk', 'xxpad', 'xxbos']
    ids = vocab.numericalize(toks[0])       # LongTensor; unseen tokens map to xxunk (index 0)
    vocab.textify(ids)                      # 'The cat sat .'
    Vocab.from_list(vocab.to_list())        # the same vocab, from JSON-able data

Tokens seen fewer than `min_freq` times are left out (they become `xxunk`); at most `max_vocab`
entries in all, special tokens included. Ties in frequency are broken alphabetically, so the
vocab does not depend on the order of the texts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from quickfit.text.rules import PAD, SPECIAL_TOKENS, UNK, undo_rules
from quickfit.text.tokens import TokenizedCorpus

if TYPE_CHECKING:
    from quickfit.text.tokenize import Tokenizer

__all__ = ["Vocab"]


class Vocab:
    """`itos` (index -> token) and `stoi` (token -> index) of a corpus; `xxunk` is 0, `xxpad` is 1."""

    def __init__(
        self,
        tokens_lists: Iterable[Sequence[str]] | TokenizedCorpus,
        min_freq: int = 3,
        max_vocab: int = 60000,
    ) -> None:
        if not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"Vocab: min_freq must be an int >= 1, got {min_freq!r}")
        if not isinstance(max_vocab, int) or max_vocab < len(SPECIAL_TOKENS):
            raise ValueError(f"Vocab: max_vocab must be an int >= {len(SPECIAL_TOKENS)}, got {max_vocab!r}")
        if isinstance(tokens_lists, TokenizedCorpus):
            counts = dict(zip(tokens_lists.tokens, tokens_lists.counts().tolist()))
        else:
            counts = Counter()
            for i, toks in enumerate(tokens_lists):
                if isinstance(toks, str):
                    raise TypeError(
                        f"Vocab: expected lists of tokens, item {i} is a str ({toks!r:.40}); tokenize first"
                    )
                counts.update(toks)
        specials = set(SPECIAL_TOKENS)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_freq and t not in specials), key=lambda t: (-counts[t], t)
        )
        self.itos: list[str] = list(SPECIAL_TOKENS) + kept[: max_vocab - len(SPECIAL_TOKENS)]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    # --- construction from saved data --------------------------------------------------------------
    def to_list(self) -> list[str]:
        """The tokens in index order (JSON-serializable); `Vocab.from_list` rebuilds the vocab."""
        return list(self.itos)

    @classmethod
    def from_list(cls, itos: Sequence[str]) -> Vocab:
        """The vocab with exactly these tokens in this order (e.g. a saved or pre-trained vocab)."""
        itos = list(itos)
        if itos[: len(SPECIAL_TOKENS)] != list(SPECIAL_TOKENS):
            raise ValueError(f"Vocab.from_list: the list must start with the special tokens {SPECIAL_TOKENS}")
        if len(set(itos)) != len(itos):
            dup = [t for t, c in Counter(itos).items() if c > 1][:5]
            raise ValueError(f"Vocab.from_list: duplicate tokens {dup}")
        vocab = cls.__new__(cls)
        vocab.itos, vocab.stoi = itos, {t: i for i, t in enumerate(itos)}
        return vocab

    # --- mapping -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens: {self.itos[9:14]}...)"

    @property
    def unk_idx(self) -> int:
        return self.stoi[UNK]

    @property
    def pad_idx(self) -> int:
        return self.stoi[PAD]

    def numericalize(self, tokens: Sequence[str]) -> torch.Tensor:
        """The indices of `tokens` as a 1-D LongTensor; tokens not in the vocab give `xxunk` (0)."""
        get, unk = self.stoi.get, self.unk_idx
        return torch.tensor([get(t, unk) for t in tokens], dtype=torch.long)

    def numericalize_corpus(self, corpus: TokenizedCorpus) -> tuple[np.ndarray, np.ndarray]:
        """`(ids, offsets)` of a whole tokenized corpus: one lookup per distinct token, then one gather."""
        get, unk = self.stoi.get, self.unk_idx
        remap = np.array([get(t, unk) for t in corpus.tokens] or [unk], dtype=np.int32)
        return remap[corpus.ids], corpus.offsets

    def decode(self, ids: Iterable[int] | torch.Tensor | np.ndarray) -> list[str]:
        """The tokens of `ids`."""
        if isinstance(ids, (torch.Tensor, np.ndarray)):
            ids = ids.tolist()
        return [self.itos[i] for i in ids]

    def textify(self, ids: Iterable[int] | torch.Tensor | np.ndarray, tokenizer: Tokenizer | None = None) -> str:
        """The text of `ids`, the tokenizer's rules undone (pass the tokenizer for subword tokens)."""
        tokens = self.decode(ids)
        return tokenizer.decode(tokens) if tokenizer is not None else undo_rules(tokens)
