"""Texts per second of tokenizing the SST-2 training set (67k sentences): quickfit vs single-process spaCy.

    python benchmarks/tokenize_speed.py                 # needs spaCy for the baseline: pip install spacy
    python benchmarks/tokenize_speed.py --workers 2 --repeats 5

Rows (each timed `--repeats` times, best and median shown; the machine may be shared):
- spaCy baseline: `spacy.blank("en").tokenizer.pipe` in one process, splitting only (no rules,
  no special tokens), the way the course's old text library started;
- spaCy + rules: the same rules as quickfit, spaCy as splitter, one process;
- HF encode_batch: Hugging Face's batch API (parallel in Rust) used as the splitter, splitting only;
- quickfit 1 process / N processes, cold (empty cache): `tokenize_texts`, lists of tokens out;
- quickfit cached: the same call again (a file read).
Goal: quickfit cold on 2 cores >= 3x the spaCy baseline; cached near-instant.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from quickfit.text.tokenize import Tokenizer, tokenize_texts

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, repeats: int) -> tuple[float, float, float]:
    """Best and median wall-clock seconds, and the CPU seconds of the best run."""
    runs = []
    for _ in range(repeats):
        c0, t0 = cpu_seconds(), time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0, cpu_seconds() - c0))
    best = min(runs)
    return best[0], statistics.median(r[0] for r in runs), best[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA / "sst2" / "train.tsv")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if not args.data.exists():
        sys.exit(f"SST-2 not found at {args.data} (set QUICKFIT_SHARED_DATA or --data)")
    texts = pd.read_csv(args.data, sep="\t", quoting=3)["sentence"].tolist()
    n = len(texts)
    print(f"{n} texts, {sum(map(len, texts)) / 1e6:.1f}M characters, {os.cpu_count()} cores visible")
    rows = []

    try:
        import spacy

        nlp = spacy.blank("en")
        rows.append(
            (
                "spaCy baseline (1 process)",
                timed(lambda: [[t.text for t in d] for d in nlp.tokenizer.pipe(texts)], args.repeats),
            )
        )
        spacy_tok = Tokenizer(splitter="spacy")
        rows.append(
            ("spaCy + rules (1 process)", timed(lambda: tokenize_texts(texts, spacy_tok, n_workers=1), args.repeats))
        )
    except ImportError:
        print("spaCy is not installed (pip install spacy): no baseline")

    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers

    hf = HFTokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()

    def hf_batch():
        encs = hf.encode_batch(texts)
        return [[t[a:b] for a, b in e.offsets] for t, e in zip(texts, encs)]

    rows.append(("HF encode_batch split (Rust threads)", timed(hf_batch, args.repeats)))
    tok = Tokenizer()
    rows.append(("quickfit, 1 process, cold", timed(lambda: tokenize_texts(texts, tok, n_workers=1), args.repeats)))
    rows.append(
        (
            f"quickfit, {args.workers} processes, cold",
            timed(lambda: tokenize_texts(texts, tok, n_workers=args.workers), args.repeats),
        )
    )
    with tempfile.TemporaryDirectory() as cache:
        tokenize_texts(texts, tok, n_workers=args.workers, cache_dir=cache)  # fills the cache
        rows.append(
            ("quickfit cached (lists out)", timed(lambda: tokenize_texts(texts, tok, cache_dir=cache), args.repeats))
        )

    base = rows[0][1][0]  # speed-ups are against the first row: single-process spaCy
    load = os.getloadavg()[0]
    print(f"\nload average {load:.1f} on {os.cpu_count()} cores (wall times suffer when it is above the core count)")
    print(f"{'':40s} {'best s':>8s} {'median s':>9s} {'CPU s':>7s} {'texts/s':>10s} {'speed-up':>9s}")
    for name, (best, med, cpu) in rows:
        print(f"{name:40s} {best:8.3f} {med:9.3f} {cpu:7.2f} {n / best:10.0f} {base / best:8.1f}x")


if __name__ == "__main__":
    main()
