"""Target tokens per second of translation training: quickfit's seq2seq learner vs a hand-written loop.

    python benchmarks/seq2seq_speed.py                      # Multi30k de->en, the default attention GRU
    python benchmarks/seq2seq_speed.py --arch transformer --batches 20 --rounds 3

Both train the same model (same initial weights) on the same list of batches (the first `--batches`
sortish training batches of Multi30k, bs 64) with the same work per batch: the teacher-forced
forward, cross-entropy ignoring padding (label smoothing 0.1), backward, AdamW step (wd 0.01). The learner
adds its machinery: the Seq2SeqStep, callbacks (Recorder, progress), the per-batch learning-rate
schedule, loss bookkeeping. Runs alternate (hand, learner, hand, ...) `--rounds` times after a
warm-up so a busy shared machine affects both alike; the ratio compares the best (least disturbed)
run of each, the medians are printed too. Goal: learner time / hand-written time <= 1.05.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

import quickfit as qf
from quickfit.optim import param_groups
from quickfit.text import Seq2SeqDataLoaders, seq2seq_learner

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


class _Batches(Seq2SeqDataLoaders):
    """The learner's data: a fixed list of batches, with the vocabularies of the real loaders."""

    def __init__(self, batches: list, dls: Seq2SeqDataLoaders) -> None:
        super().__init__(batches, None, dls.src_vocab, dls.tgt_vocab, dls.src_tokenizer, dls.tgt_tokenizer, dls.bs)


def hand_written(learn, batches: list, lr: float, wd: float) -> float:
    model, loss_func = learn.model, learn.loss_func
    opt = qf.Adam(param_groups(learn.layer_groups), lr=lr, wd=wd)  # the learner's optimizer and groups
    model.train()
    start = time.perf_counter()
    for src, tgt_in, tgt_out in batches:
        loss = loss_func(model(src, tgt_in), tgt_out)
        loss.backward()
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
    parser.add_argument("--arch", default="gru_attention", choices=["gru_attention", "transformer"])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    d = DATA / "multi30k"
    dls = Seq2SeqDataLoaders.from_files(d / "train.de", d / "train.en", bs=64, seed=0)
    it = iter(dls.train)
    batches = [next(it) for _ in range(args.batches)]
    n_tokens = sum(int((b[2] != dls.pad_idx).sum()) for b in batches)
    torch.manual_seed(0)
    learn = seq2seq_learner(_Batches(batches, dls), arch=args.arch, metrics=[])
    learn.progress_cb.enabled = False
    learn.recorder.log_table = False
    init = {k: v.clone() for k, v in learn.model.state_dict().items()}
    print(
        f"{args.arch}, vocab de {len(dls.src_vocab)} / en {len(dls.tgt_vocab)}, {len(batches)} batches of 64 pairs "
        f"({n_tokens} target tokens), torch threads {torch.get_num_threads()}"
    )
    hand_times, learn_times = [], []
    for r in range(args.rounds + 1):  # round 0 warms up both
        learn.model.load_state_dict(init)
        torch.manual_seed(r)
        t_hand = hand_written(learn, batches, 3e-3, 0.01)
        learn.model.load_state_dict(init)
        torch.manual_seed(r)
        t_learn = with_learner(learn, 3e-3)
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
