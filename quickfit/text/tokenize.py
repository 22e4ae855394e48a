"""Tokenizer: the course's rules around a library word splitter, with an optional subword model.

A text goes through the text rules (HTML clean-up, `xxrep`, spaces around / and #), is split into
words by Hugging Face `tokenizers`' `Whitespace` pre-tokenizer (or spaCy's blank English tokenizer
with `splitter="spacy"`), then through the token rules (`xxwrep`, lower-casing with `xxmaj` /
`xxup`), and gets `xxbos` in front. With `subword=True` the words are further cut into pieces by a
Unigram (or `"bpe"`) model trained on the corpus. Settings (and the trained subword model) are JSON.

    from quickfit.text.tokenize import Tokenizer, tokenize_texts
    tok = Tokenizer()
    tok("Hello WORLD, it's sooo good!")
    # ['xxbos', 'xxmaj', 'hello', 'xxup', 'world', ',', 'it', "'", 's', 's', 'xxrep', '3', 'o', 'good', '!']
    tok.decode(tok("Hello WORLD!"))                      # 'Hello WORLD !'
    toks = tokenize_texts(texts, tok, cache_dir="cache")  # parallel over the cores, cached on disk
    Tokenizer.from_dict(tok.to_dict())                    # the same tokenizer, from JSON-able settings
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from quickfit.deprecation import renamed_argument
from quickfit.text.corpus import tokenize_corpus
from quickfit.text.pipeline import TokenTable, flag_texts, words_corpus
from quickfit.text.rules import DEFAULT_RULES, FORMER_RULES, SPECIAL_TOKENS, undo_rules
from quickfit.text.tokens import TokenizedCorpus, gather_texts

__all__ = ["Tokenizer", "tokenize_texts", "SPLITTERS", "SUBWORD_MODELS"]

SPLITTERS = ("hf", "spacy")
SUBWORD_MODELS = ("unigram", "bpe")
_SPACE = "\u2581"  # the subword models' word-start marker ("▁", as in SentencePiece)
_SPECIAL_SET = frozenset(SPECIAL_TOKENS)
# 2: fix_html writes "..." as " …". Settings of version 1 load with "fix_html_v1" in its place, so a
# model keeps the tokens it was trained on.
_SETTINGS_VERSION = 2


# Every character Python's str.split() splits on (a test checks this list against str.isspace).
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)


class _Splitter:
    """The base word splitter, built lazily (also inside worker processes)."""

    def __init__(self, name: str) -> None:
        if name == "hf":
            from tokenizers.pre_tokenizers import Whitespace

            self._pre = Whitespace()  # words (\w+) and runs of punctuation, split in Rust
            # Whitespace the pre-tokenizer keeps as punctuation (\x1c-\x1f in tokenizers 0.23): a
            # text holding one is not cut at whitespace in Python first (see _split_hf).
            self._not_space = "".join(c for c in PY_WHITESPACE if len(self._pre.pre_tokenize_str(f"a{c}b")) != 2)
            self._not_space_re = re.compile(f"[{re.escape(self._not_space)}]") if self._not_space else None
            self.split_many = self._split_hf
        else:
            try:
                import spacy
            except ImportError as e:
                raise ImportError("Tokenizer(splitter='spacy') needs spaCy: pip install spacy") from e
            self._nlp = spacy.blank("en")  # rules only: no model download
            self.split_many = self._split_spacy

    def _split_hf(self, texts: list[str], table: dict) -> tuple[np.ndarray, np.ndarray]:
        # The pre-tokenizer never joins across whitespace, so a text's words are the words of its
        # whitespace-separated chunks. Chunks repeat a lot (SST-2: 634k chunks, 15k distinct), so
        # texts are cut with str.split (C speed) and only the distinct chunks go to Hugging Face:
        # about 3x less work than one pre-tokenizer call per text, with the same words.
        chunks = TokenTable()
        chunk_ids: list[int] = []
        n_chunks = np.zeros(len(texts), dtype=np.int64)
        whole: set[int] = set()
        if self._not_space_re is not None and self._not_space_re.search("\n".join(texts)):  # one C scan, rarely true
            whole = set(np.flatnonzero(flag_texts(texts, self._not_space)).tolist())
        for i, text in enumerate(texts):
            parts = [text] if i in whole else text.split()
            n_chunks[i] = len(parts)
            chunk_ids += map(chunks.__getitem__, parts)
        word = itemgetter(0)
        words = [[table[w] for w in map(word, self._pre.pre_tokenize_str(c))] for c in chunks]
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))  # words of chunk j
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        flat = np.fromiter(chain.from_iterable(words), dtype=np.int64, count=int(offsets[-1]))
        chunk_ids = np.array(chunk_ids, dtype=np.int64)
        ids, _ = gather_texts(flat, offsets, chunk_ids)  # the words of every chunk of every text
        words_before = np.concatenate([[0], np.cumsum(lengths[chunk_ids])])
        return ids, np.diff(words_before[np.concatenate([[0], np.cumsum(n_chunks)])])

    def _split_spacy(self, texts: list[str], table: dict) -> tuple[list[int], list[int]]:
        ids: list[int] = []
        lengths: list[int] = []
        for doc in self._nlp.tokenizer.pipe(texts):
            words = [t.text for t in doc if not t.is_space]
            lengths.append(len(words))
            ids += map(table.__getitem__, words)
        return ids, lengths


class Tokenizer:
    """Text -> list of tokens with the course's rules; `subword` adds a trained Unigram/BPE model.

    - `splitter`: "hf" (Hugging Face `tokenizers` Whitespace pre-tokenizer) or "spacy".
    - `rules`: names from `quickfit.text.rules.DEFAULT_RULES` (applied in the order of DEFAULT_RULES: the
      text rules, the split, then the token rules), or `"fix_html_v1"`: the former `fix_html`, which
      left "...", for tokenizers loaded from settings of version 1.
    - `add_bos` / `add_eos`: put `xxbos` / `xxeos` around every text.
    - `subword`: False, True (= "unigram") or "bpe"; trained by `train(texts)` or on first use by
      `tokenize_texts`; `vocab_size` is its number of pieces.
    - `subword_model`: the trained model as the JSON string of a `tokenizers.Tokenizer` (from `to_dict`).
    """

    def __init__(
        self,
        splitter: str = "hf",
        rules: Sequence[str] = DEFAULT_RULES,
        add_bos: bool = True,
        add_eos: bool = False,
        subword: bool | str = False,
        vocab_size: int = 8000,
        subword_model: str | None = None,
    ) -> None:
        if splitter not in SPLITTERS:
            raise ValueError(f"Tokenizer: splitter must be one of {SPLITTERS}, got {splitter!r}")
        unknown = [r for r in rules if r not in DEFAULT_RULES + FORMER_RULES]
        if unknown:
            raise ValueError(f"Tokenizer: unknown rules {unknown}; the rules are {DEFAULT_RULES}")
        if subword is True:
            subword = "unigram"
        if subword is not False and subword not in SUBWORD_MODELS:
            raise ValueError(f"Tokenizer: subword must be False, True or one of {SUBWORD_MODELS}, got {subword!r}")
        if subword and (not isinstance(vocab_size, int) or vocab_size <= len(SPECIAL_TOKENS)):
            raise ValueError(f"Tokenizer: vocab_size must be an int > {len(SPECIAL_TOKENS)}, got {vocab_size!r}")
        self.splitter, self.rules = splitter, tuple(rules)
        self.add_bos, self.add_eos = add_bos, add_eos
        self.subword, self.vocab_size = subword, vocab_size
        self._split: _Splitter | None = None
        self._subword = None
        self.subword_model: str | None = None
        if subword_model is not None:
            self.set_subword_model(subword_model)

    # --- settings -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable settings (with the trained subword model); `Tokenizer.from_dict` reverses it."""
        return {
            "version": _SETTINGS_VERSION,
            "splitter": self.splitter,
            "rules": list(self.rules),
            "add_bos": self.add_bos,
            "add_eos": self.add_eos,
            "subword": self.subword,
            "vocab_size": self.vocab_size,
            "subword_model": self.subword_model,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        """The tokenizer described by `to_dict()`'s output."""
        if not isinstance(d, dict) or d.get("version") not in (1, _SETTINGS_VERSION):
            raise ValueError(
                f"Tokenizer.from_dict: expected settings of version 1 to {_SETTINGS_VERSION}, got {d!r:.200}"
            )
        rules = [("fix_html_v1" if r == "fix_html" and d["version"] == 1 else r) for r in d["rules"]]
        return cls(
            splitter=d["splitter"],
            rules=rules,
            add_bos=d["add_bos"],
            add_eos=d["add_eos"],
            subword=d["subword"],
            vocab_size=d["vocab_size"],
            subword_model=d["subword_model"],
        )

    def __repr__(self) -> str:
        sub = f", subword={self.subword!r}, vocab_size={self.vocab_size}" if self.subword else ""
        return f"Tokenizer(splitter={self.splitter!r}, rules={self.rules}{sub})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def word_level(self) -> Tokenizer:
        """The same rules and splitter without the subword model."""
        return Tokenizer(self.splitter, self.rules, self.add_bos, self.add_eos)

    # --- word level -----------------------------------------------------------------------------
    def words_corpus(self, texts: Sequence[str]) -> TokenizedCorpus:
        """Word-level tokens of `texts` (the rules and the splitter, no subword step), in this process."""
        if self._split is None:
            self._split = _Splitter(self.splitter)
        return words_corpus(texts, self._split.split_many, self.rules, self.add_bos, self.add_eos)

    def words(self, text: str) -> list[str]:
        """Word-level tokens of one text."""
        return self.words_corpus([text]).to_lists()[0]

    # --- subword --------------------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        """False only for a subword tokenizer whose model is not trained yet."""
        return not self.subword or self.subword_model is not None

    def set_subword_model(self, model_json: str) -> None:
        """Load a trained subword model (the JSON string of a `tokenizers.Tokenizer`)."""
        from tokenizers import Tokenizer as HFTokenizer

        self._subword = HFTokenizer.from_str(model_json)
        self.subword_model = model_json

    def train(self, texts: Iterable[str], words: Iterable[Sequence[str]] | None = None) -> Tokenizer:
        """Train the subword model on `texts` (or on their word-level tokens `words`, if at hand)."""
        if not self.subword:
            raise ValueError("Tokenizer.train: this tokenizer has subword=False; nothing to train")
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, pre_tokenizers, trainers

        if words is None:
            words = self.word_level().words_corpus(list(texts)).to_lists()
        specials = list(SPECIAL_TOKENS)
        if self.subword == "unigram":
            hf = HFTokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer(
                vocab_size=self.vocab_size, special_tokens=specials, unk_token=SPECIAL_TOKENS[0], show_progress=False
            )
        else:
            hf = HFTokenizer(models.BPE(unk_token=SPECIAL_TOKENS[0]))
            trainer = trainers.BpeTrainer(vocab_size=self.vocab_size, special_tokens=specials, show_progress=False)
        hf.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme="always")
        # The markers are whole tokens of their own: kept out of training so they use no pieces.
        corpus = (" ".join(w for w in ws if w not in _SPECIAL_SET) for ws in words)
        hf.train_from_iterator(corpus, trainer)
        hf.add_special_tokens(specials)
        self.set_subword_model(hf.to_str())
        return self

    def subword_corpus(self, words: TokenizedCorpus) -> TokenizedCorpus:
        """Word-level tokens cut into subword pieces.

        A word's pieces do not depend on its neighbours, so each distinct word is cut once (in
        Rust) and the texts are rebuilt with one gather: 15k words to cut instead of 700k tokens
        for SST-2, which made this 10x cheaper than encoding every text.
        """
        if self._subword is None:
            raise ValueError(
                "Tokenizer: the subword model is not trained; call tok.train(texts) or tokenize_texts(texts, tok)"
            )
        encodings = self._subword.encode_batch([[w] for w in words.tokens], is_pretokenized=True)
        pieces = TokenizedCorpus.from_lists([e.tokens for e in encodings])  # "text" i: the pieces of word i
        ids, _ = gather_texts(pieces.ids, pieces.offsets, words.ids)
        ends = np.concatenate([[0], np.cumsum(pieces.lengths[words.ids])])
        return TokenizedCorpus(pieces.tokens, ids, ends[words.offsets])

    # --- public API -----------------------------------------------------------------------------
    def corpus(self, texts: Sequence[str]) -> TokenizedCorpus:
        """Tokens of `texts` as a `TokenizedCorpus`, in this process (`tokenize_texts` uses all cores)."""
        words = self.words_corpus(texts)
        return self.subword_corpus(words) if self.subword else words

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """Tokens of each text, in this process."""
        return self.corpus(texts).to_lists()

    def __call__(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"Tokenizer: expected a str, got {type(text).__name__}: {text!r:.80}")
        return self.tokenize_batch([text])[0]

    def decode(self, tokens: Sequence[str]) -> str:
        """The text back from tokens (subword pieces joined into words, then the rules undone)."""
        if self.subword:
            words: list[str] = []
            glue = False  # may the next piece continue the last word?
            for p in tokens:
                if p in _SPECIAL_SET:
                    words.append(p)
                    glue = False
                elif p.startswith(_SPACE) or not glue:
                    words.append(p.removeprefix(_SPACE))
                    glue = True
                else:
                    words[-1] += p
            tokens = [w for w in words if w]
        return undo_rules(tokens)


def tokenize_texts(
    texts: Sequence[str],
    tokenizer: Tokenizer,
    num_workers: int | None = None,
    cache_dir: str | Path | None = None,
    *,
    n_workers: int | None = None,  # deprecated: num_workers
) -> list[list[str]]:
    """Tokens of every text, computed in parallel over `num_workers` processes (all cores by default;
    small inputs run in this process) and cached in `cache_dir` (None: no cache) under a hash of
    the texts and the tokenizer settings, so a second call is a file read. An untrained subword
    tokenizer is trained on `texts` first (and the trained model is cached too)."""
    num_workers = renamed_argument(num_workers, n_workers, "num_workers", "n_workers", "tokenize_texts")
    return tokenize_corpus(texts, tokenizer, num_workers, cache_dir).to_lists()
