"""The rules of `quickfit.text.rules` applied to a whole batch of texts at once, with NumPy.

Per text, only the word splitter runs in Python (one call into Rust); the rules work on arrays:
the text rules run only on the few texts a vectorized scan of the code points flags, and the token
rules (`xxwrep`, `xxmaj` / `xxup`, `xxbos`) are array insertions computed once per distinct token.
The per-text functions of `rules.py` are the reference: tests check this gives the same tokens.

    from quickfit.text.pipeline import words_corpus
    def split_many(texts, table):  # any word splitter; quickfit uses Hugging Face's or spaCy's
        return [table[w] for t in texts for w in t.split()], [len(t.split()) for t in texts]
    corpus = words_corpus(["Hello WORLD", "ha ha ha"], split_many)
    corpus.to_lists()   # [['xxbos', 'xxmaj', 'hello', 'xxup', 'world'], ['xxbos', 'xxwrep', '3', 'ha']]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from quickfit.text.rules import (
    BOS,
    DEFAULT_RULES,
    EOS,
    MAJ,
    UP,
    WREP,
    fix_html,
    fix_html_v1,
    replace_rep,
    spec_add_spaces,
)
from quickfit.text.tokens import TokenizedCorpus

__all__ = ["words_corpus", "flag_texts", "TokenTable"]

# split_many(texts, table) -> (the index in `table` of every word of every text, words per text)
SplitMany = Callable[[list[str], dict], tuple[Sequence[int], Sequence[int]]]
_HTML_CHARS, _SPEC_CHARS = "#;\\<@&", "/#\\"


def _code_points(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """All texts as one array of code points (joined by newlines), and where each text ends."""
    codes = np.frombuffer("\n".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + 1)
    return codes, ends


def _texts_at(positions: np.ndarray, ends: np.ndarray, n: int) -> np.ndarray:
    flags = np.zeros(n, dtype=bool)
    flags[np.searchsorted(ends, positions, side="right")] = True
    return flags


def flag_texts(texts: Sequence[str], chars: str | None = None) -> np.ndarray:
    """Which texts contain one of `chars` (`None`: the same character three times in a row)."""
    if not texts:
        return np.zeros(0, dtype=bool)
    codes, ends = _code_points(texts)
    if chars is None:
        same = codes[1:] == codes[:-1]
        return _texts_at(np.flatnonzero(same[1:] & same[:-1]), ends, len(texts))
    return _texts_at(np.flatnonzero(np.isin(codes, [ord(c) for c in chars])), ends, len(texts))


class TokenTable(dict):
    """Token string -> index, numbering new tokens as they come (`table[token]` never fails)."""

    def __missing__(self, token: str) -> int:
        i = self[token] = len(self)
        return i

    @property
    def tokens(self) -> list[str]:
        return list(self)  # insertion order is index order


def _apply_text_rules(texts: list[str], rules: Sequence[str]) -> list[str]:
    if not texts:
        return texts
    html = fix_html if "fix_html" in rules else fix_html_v1 if "fix_html_v1" in rules else None
    rep, spec = "replace_rep" in rules, "spec_add_spaces" in rules
    if not (html or rep or spec):
        return texts
    codes, ends = _code_points(texts)
    n = len(texts)
    changed = []
    if html:
        flags = _texts_at(np.flatnonzero(np.isin(codes, [ord(c) for c in _HTML_CHARS])), ends, n)
        if html is fix_html:  # and the texts with "..."
            dot = codes == ord(".")
            flags |= _texts_at(np.flatnonzero(dot[:-2] & dot[1:-1] & dot[2:]), ends, n)
        for i in np.flatnonzero(flags):
            new = html(texts[i])
            if new != texts[i]:
                texts[i] = new
                changed.append(i)
    if rep:
        same = codes[1:] == codes[:-1]
        flags = _texts_at(np.flatnonzero(same[1:] & same[:-1]), ends, n)
        flags[changed] = True  # cleaned texts were not scanned: let the regex look at them
        for i in np.flatnonzero(flags):
            texts[i] = replace_rep(texts[i])
    if spec:
        flags = _texts_at(np.flatnonzero(np.isin(codes, [ord(c) for c in _SPEC_CHARS])), ends, n)
        flags[changed] = True
        for i in np.flatnonzero(flags):
            texts[i] = spec_add_spaces(texts[i])
    return texts


def _offsets(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _replace_wrep(ids: np.ndarray, offsets: np.ndarray, table: TokenTable) -> tuple[np.ndarray, np.ndarray]:
    n = len(ids)
    if n < 3:
        return ids, offsets
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = ids[1:] != ids[:-1]
    new_run[offsets[:-1][offsets[:-1] < n]] = True  # a run never crosses into the next text
    starts = np.flatnonzero(new_run)
    lens = np.diff(np.append(starts, n))
    long = np.flatnonzero(lens >= 3)
    if len(long) == 0:
        return ids, offsets
    ids, keep = ids.copy(), np.ones(n, dtype=bool)
    wrep = table[WREP]
    for s, length in zip(starts[long].tolist(), lens[long].tolist()):  # rare: a loop over the runs only
        ids[s], ids[s + 1] = wrep, table[str(length)]  # ids[s + 2] is the token itself
        keep[s + 3 : s + length] = False
    kept = np.concatenate([[0], np.cumsum(keep)])
    return ids[keep], kept[offsets]


def _case_markers(ids: np.ndarray, offsets: np.ndarray, table: TokenTable) -> tuple[np.ndarray, np.ndarray]:
    m = len(table.tokens)
    marker = np.full(m, -1, dtype=np.int64)
    lower = np.arange(m, dtype=np.int64)
    for j, t in enumerate(table.tokens):  # once per distinct token, same test as rules.case_markers
        low = t.lower()
        if low == t:
            continue
        if len(t) > 1 and low.upper() == t:
            marker[j], lower[j] = table[UP], table[low]
        elif low[:1].upper() + low[1:] == t:
            marker[j], lower[j] = table[MAJ], table[low]
    marks = marker[ids]
    has = marks >= 0
    if not has.any():
        return ids, offsets
    shift = np.cumsum(has)
    pos = np.arange(len(ids)) + shift  # where token i lands once the markers before it are in
    out = np.empty(len(ids) + int(shift[-1]), dtype=np.int64)
    out[pos] = lower[ids]
    out[pos[has] - 1] = marks[has]
    return out, offsets + np.concatenate([[0], shift])[offsets]


def _add_bos_eos(
    ids: np.ndarray, offsets: np.ndarray, bos: int | None, eos: int | None
) -> tuple[np.ndarray, np.ndarray]:
    b, e = int(bos is not None), int(eos is not None)
    if not (b or e):
        return ids, offsets
    n_texts = len(offsets) - 1
    text_of = np.repeat(np.arange(n_texts), np.diff(offsets))
    new_offsets = offsets + np.arange(n_texts + 1) * (b + e)
    out = np.empty(len(ids) + n_texts * (b + e), dtype=np.int64)
    out[np.arange(len(ids)) + text_of * (b + e) + b] = ids
    if b:
        out[new_offsets[:-1]] = bos
    if e:
        out[new_offsets[1:] - 1] = eos
    return out, new_offsets


def _compact(ids: np.ndarray, offsets: np.ndarray, tokens: list[str]) -> TokenizedCorpus:
    """Drop the table entries no token uses any more (e.g. "Hello" once it became "xxmaj hello")."""
    used = np.bincount(ids, minlength=len(tokens)) > 0
    if used.all():
        return TokenizedCorpus(tokens, ids.astype(np.int32), offsets)
    remap = np.cumsum(used) - 1
    kept = [t for t, u in zip(tokens, used.tolist()) if u]
    return TokenizedCorpus(kept, remap[ids].astype(np.int32), offsets)


def words_corpus(
    texts: Sequence[str],
    split_many: SplitMany,
    rules: Sequence[str] = DEFAULT_RULES,
    add_bos: bool = True,
    add_eos: bool = False,
) -> TokenizedCorpus:
    """Word tokens of `texts`: the text rules, `split_many` (see `SplitMany`), the token rules."""
    texts = _apply_text_rules(list(texts), rules)
    table = TokenTable()
    ids, lengths = split_many(texts, table)
    ids, offsets = np.asarray(ids, dtype=np.int64), _offsets(lengths)
    if "replace_wrep" in rules:
        ids, offsets = _replace_wrep(ids, offsets, table)
    if "case_markers" in rules:
        ids, offsets = _case_markers(ids, offsets, table)
    bos = table[BOS] if add_bos else None
    eos = table[EOS] if add_eos else None
    ids, offsets = _add_bos_eos(ids, offsets, bos, eos)
    return _compact(ids, offsets, table.tokens)
