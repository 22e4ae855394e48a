"""Tokens per second of AWD-LSTM language-model training: quickfit's learner vs a hand-written loop.

    python benchmarks/lm_speed.py                          # WikiText-2 valid, emb 200 / hid 400 / 2 layers
    python benchmarks/lm_speed.py --emb 400 --hid 1152 --layers 3 --batches 20 --rounds 3

Both train the same model (same initial weights) on the same list of batches (bs x bptt contiguous
streams of WikiText-2's `valid.txt`, whitespace tokens, the 10k most frequent words) with the same
work per batch: forward, cross-entropy, AR/TAR on the last LSTM layer, backward, AdamW step over the
same layer groups, hidden state carried between batches. The learner adds its machinery:
callbacks (RNNCallback, RNNRegularizer reading the outputs through forward hooks, Recorder,
progress), the per-batch learning-rate schedule, loss bookkeeping. Runs alternate (hand, learner,
hand, ...) `--rounds` times after a warm-up so a busy shared machine affects both alike; the ratio
compares the best (least disturbed) run of each, the medians are printed too.
Goal: learner time / hand-written time <= 1.05.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

import quickfit as qf
from quickfit.optim import param_groups
from quickfit.text.learner import language_model_learner

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SPECIALS = ["xxunk", "xxpad", "xxbos", "xxeos"]


class _LMData(qf.DataLoaders):
    """Just what the learner needs: the batches and the vocabulary."""

    def __init__(self, batches: list, vocab: list[str]) -> None:
        super().__init__(batches, None)
        self.vocab = vocab


def wikitext_batches(n_batches: int, bs: int, bptt: int, max_vocab: int) -> tuple[list, list[str]]:
    words = []
    for line in (DATA / "wikitext2" / "valid.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            words += ["xxbos", *line.split()]
    vocab = SPECIALS + [w for w, _ in Counter(words).most_common(max_vocab) if w not in SPECIALS]
    stoi = {w: i for i, w in enumerate(vocab)}
    ids = torch.tensor([stoi.get(w, 0) for w in words[: n_batches * bs * bptt + bs]])
    n = (len(ids) - 1) // bs
    x, y = ids[: n * bs].view(bs, n), ids[1 : n * bs + 1].view(bs, n)
    batches = [(x[:, i : i + bptt], y[:, i : i + bptt]) for i in range(0, n - bptt + 1, bptt)][:n_batches]
    return batches, vocab


def hand_written(model: torch.nn.Module, splitter, batches: list, lr: float, alpha: float, beta: float) -> float:
    opt = qf.Adam(param_groups(splitter(model)), lr=lr)
    model.train()
    model.reset()
    encoder, decoder = model[0], model[1]
    start = time.perf_counter()
    for x, y in batches:
        raw = encoder(x)
        dropped = decoder.output_dp(raw)
        logits = decoder.decoder(dropped)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        reg = alpha * dropped.pow(2).mean() + beta * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
        (loss + reg).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # the learner reads every loss too (in chunks); keep the work equal
    return time.perf_counter() - start


def with_learner(learn, lr: float) -> float:
    learn.opt = None  # a fresh optimizer, as the hand-written loop has
    start = time.perf_counter()
    learn.fit(1, lr)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emb", type=int, default=200)
    parser.add_argument("--hid", type=int, default=400)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--bs", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=70)
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    batches, vocab = wikitext_batches(args.batches, args.bs, args.bptt, args.vocab)
    n_tokens = sum(y.numel() for _, y in batches)
    config = dict(emb_sz=args.emb, n_hid=args.hid, n_layers=args.layers)
    torch.manual_seed(0)
    learn = language_model_learner(_LMData(batches, vocab), pretrained=False, config=config, metrics=())
    learn.progress_cb.enabled = False
    learn.recorder.log_table = False
    init = {k: v.clone() for k, v in learn.model.state_dict().items()}
    print(
        f"AWD-LSTM emb {args.emb} / hid {args.hid} / {args.layers} layers, vocab {len(vocab)}, "
        f"{len(batches)} batches of {args.bs}x{args.bptt} ({n_tokens} tokens), torch threads {torch.get_num_threads()}"
    )
    hand_times, learn_times = [], []
    for r in range(args.rounds + 1):  # round 0 warms up both
        learn.model.load_state_dict(init)
        torch.manual_seed(r)
        t_hand = hand_written(learn.model, learn.splitter, batches, 1e-3, 2.0, 1.0)
        learn.model.load_state_dict(init)
        torch.manual_seed(r)
        t_learn = with_learner(learn, 1e-3)
        if r > 0:
            hand_times.append(t_hand)
            learn_times.append(t_learn)
        print(
            f"round {r}{' (warm-up)' if r == 0 else ''}: hand {n_tokens / t_hand:,.0f} tok/s, "
            f"learner {n_tokens / t_learn:,.0f} tok/s"
        )
    for name, pick in (("median", statistics.median), ("best", min)):
        hand, lrn = pick(hand_times), pick(learn_times)
        print(
            f"{name}: hand-written {n_tokens / hand:,.0f} tok/s, learner {n_tokens / lrn:,.0f} tok/s, "
            f"learner time / hand-written time = {lrn / hand:.3f}"
        )
    ratio = min(learn_times) / min(hand_times)  # the best run is the one least disturbed by other processes
    print(f"ratio (best runs) {ratio:.3f}, goal <= 1.05: {'OK' if ratio <= 1.05 else 'MISSED'}")


if __name__ == "__main__":
    main()
