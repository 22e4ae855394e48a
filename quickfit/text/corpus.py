"""Tokenizing a whole corpus: in parallel over the cores, cached on disk, kept as one array of ids.

A `TokenizedCorpus` holds the distinct token strings, one int32 array with every text's token
indices back to back, and the offsets where each text starts: building a vocabulary is a
`bincount` and numericalizing is one array lookup, with no Python loop over tokens.

    from quickfit.text.corpus import tokenize_corpus
    from quickfit.text.tokenize import Tokenizer
    corpus = tokenize_corpus(texts, Tokenizer(), cache_dir="~/.cache/quickfit/tokens")
    corpus.to_lists()[0]          # ['xxbos', 'xxmaj', 'hello', ...]
    corpus.counts()               # occurrences of each of corpus.tokens

The texts are cut into `num_workers` contiguous chunks of about the same number of characters; this
process tokenizes the first while forked workers (spawned where fork does not exist) do the others
and send back their own small token table and an int32 array, which costs far less to pass between
processes than lists of strings. Measured on SST-2 (67k short sentences): Hugging Face's
`encode_batch`, parallel in Rust, was slower than this (it builds full encodings with offsets).
Below `PARALLEL_MIN_CHARS` characters (with `num_workers=None`) one process is faster: starting
workers costs more than it saves.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from quickfit.deprecation import renamed_argument
from quickfit.text.tokens import TokenizedCorpus, gather_texts

if TYPE_CHECKING:
    from quickfit.text.tokenize import Tokenizer

__all__ = ["TokenizedCorpus", "tokenize_corpus", "gather_texts", "check_texts", "default_workers", "PARALLEL_MIN_CHARS"]

# One process tokenizes ~8M characters/s (SST-2's 3.5M in ~0.45 s); starting workers, passing chunks
# and merging cost ~0.2 s of CPU, so below about a second of work one process is as fast or faster.
PARALLEL_MIN_CHARS = 8_000_000
_CACHE_FORMAT = 1


def check_texts(texts: Sequence, what: str = "texts") -> None:
    """Raise a TypeError naming the first items that are not strings (NaN from a CSV, numbers, None)."""
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        examples = ", ".join(f"{i}: {texts[i]!r} ({type(texts[i]).__name__})" for i in bad[:5])
        raise TypeError(f"{what}: {len(bad)} item(s) are not strings, e.g. at position {examples}")


def default_workers() -> int:
    """The number of cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# --- worker side -------------------------------------------------------------------------------
_worker_tok: Tokenizer | None = None


def _init_worker(tokenizer_cls: type, settings: dict) -> None:
    # The class comes from the caller (pickled by reference), so this module never imports the
    # tokenizer's: `tokenize` imports `corpus`, not the other way round.
    global _worker_tok
    _worker_tok = tokenizer_cls.from_dict(settings)


def _work(texts: Sequence[str]) -> TokenizedCorpus:
    return _worker_tok.corpus(texts)


def _chunks(texts: Sequence[str], n_chunks: int) -> list[Sequence[str]]:
    """Contiguous chunks of about the same number of characters."""
    sizes = np.cumsum([len(t) + 16 for t in texts])  # + a per-text cost
    cuts = np.searchsorted(sizes, np.linspace(0, sizes[-1], n_chunks + 1)[1:-1])
    bounds = [0, *sorted(set(cuts.tolist()) - {0, len(texts)}), len(texts)]
    return [texts[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _run(texts: Sequence[str], tokenizer: Tokenizer, n_workers: int) -> TokenizedCorpus:
    if n_workers <= 1 or len(texts) < 2:
        return tokenizer.corpus(texts)
    n_workers = min(n_workers, len(texts))
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else None)  # fork: no re-import in the workers
    # Hugging Face tokenizers warns in a forked child once Rust threads were used; the workers only
    # need its serial paths, so say so for the fork (and put the user's setting back after).
    old = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        pool = ctx.Pool(n_workers - 1, initializer=_init_worker, initargs=(type(tokenizer), tokenizer.to_dict()))
    finally:
        if old is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = old
    chunks = _chunks(texts, n_workers)
    with pool:
        others = pool.map_async(_work, chunks[1:], chunksize=1)
        first = tokenizer.corpus(chunks[0])  # this process works too, on the first chunk
        parts = [first, *others.get()]
    return TokenizedCorpus.concat(parts)


# --- cache -------------------------------------------------------------------------------------
def _cache_key(texts: Sequence[str], tokenizer: Tokenizer) -> str:
    import tokenizers

    h = hashlib.sha256()
    meta = {"format": _CACHE_FORMAT, "tokenizers": tokenizers.__version__, "settings": tokenizer.to_dict()}
    if tokenizer.splitter == "spacy":
        import spacy

        meta["spacy"] = spacy.__version__
    h.update(json.dumps(meta, sort_keys=True).encode())
    h.update(np.array([len(t) for t in texts], dtype=np.int64).tobytes())  # makes the join unambiguous
    h.update("".join(texts).encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:40]


def _load(path: Path) -> tuple[TokenizedCorpus, str | None] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            tokens = json.loads(f["tokens"].tobytes().decode())
            model = f["subword_model"].tobytes().decode() if "subword_model" in f else None
            return TokenizedCorpus(tokens, f["ids"], f["offsets"]), model
    except (OSError, ValueError, KeyError):
        return None  # unreadable cache entry: tokenize again (and overwrite it)


def _save(path: Path, corpus: TokenizedCorpus, model: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "tokens": np.frombuffer(json.dumps(corpus.tokens).encode(), dtype=np.uint8),
        "ids": corpus.ids,
        "offsets": corpus.offsets,
    }
    if model is not None:
        arrays["subword_model"] = np.frombuffer(model.encode(), dtype=np.uint8)
    # Written next to its final name then renamed: a reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def tokenize_corpus(
    texts: Sequence[str],
    tokenizer: Tokenizer,
    num_workers: int | None = None,
    cache_dir: str | Path | None = None,
    *,
    n_workers: int | None = None,  # deprecated: num_workers
) -> TokenizedCorpus:
    """Tokenize `texts` into a `TokenizedCorpus` (see `quickfit.text.tokenize.tokenize_texts`)."""
    num_workers = renamed_argument(num_workers, n_workers, "num_workers", "n_workers", "tokenize_corpus")
    texts = list(texts)
    check_texts(texts)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir).expanduser() / f"{_cache_key(texts, tokenizer)}.npz"
        hit = _load(path) if path.exists() else None
        if hit is not None:
            corpus, model = hit
            if model is not None and not tokenizer.is_trained:
                tokenizer.set_subword_model(model)
            return corpus
    if num_workers is None:
        num_workers = default_workers() if sum(map(len, texts)) >= PARALLEL_MIN_CHARS else 1
    trained_here = not tokenizer.is_trained
    if trained_here:
        # Words in parallel, then the subword model trains on them and cuts them (Rust, threaded).
        words = _run(texts, tokenizer.word_level(), num_workers)
        tokenizer.train(texts, words=words.to_lists())
        corpus = tokenizer.subword_corpus(words)
    else:
        corpus = _run(texts, tokenizer, num_workers)
    if path is not None:
        try:
            _save(path, corpus, tokenizer.subword_model if trained_here else None)
        except OSError as e:  # a cache that cannot be written costs speed next time, not this result
            warnings.warn(f"could not write the token cache {path}: {e}", stacklevel=2)
    return corpus
