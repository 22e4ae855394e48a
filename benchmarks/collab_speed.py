"""Rows/s of `collab_learner` training on MovieLens 100k vs a hand-written PyTorch loop.

    python benchmarks/collab_speed.py                          # u1.base / u1.test, bs 64, 1 epoch per run
    python benchmarks/collab_speed.py --bs 1024 --rounds 5 --device cuda

Both sides train the same model (`EmbeddingDotBias`, 50 factors, y_range (0, 5.5)) from the same
initial weights on the same tensors (`dls.train.x / .y`, one random permutation per epoch, batches
sliced from it, last partial batch dropped), with the same optimizer (`quickfit.Adam`, i.e.
torch's foreach AdamW, wd 0.1) and the same one-cycle schedule of learning rate and momentum set
before every batch; each epoch ends with a pass over the validation set (u1.test).

- hand: the loop one writes in plain PyTorch: forward, MSE, backward, step, zero_grad.
- quickfit: `collab_learner(dls).fit_one_cycle(epochs, lr)` with its default callbacks (recorder,
  scheduler, progress off), the per-epoch table not printed.

The two alternate (hand, quickfit, quickfit, hand, ...) `--rounds` times in this one process, after
one untimed warm-up run each, so a busy shared machine slows both alike; medians are reported.
Goal: time(quickfit) / time(hand) <= 1.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from quickfit.collab import CollabDataLoaders, EmbeddingDotBias, collab_learner
from quickfit.optim import Adam, param_groups
from quickfit.schedules import one_cycle_lr, one_cycle_mom

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
NAMES = ["user", "item", "rating", "timestamp"]


def load(bs: int) -> CollabDataLoaders:
    folder = DATA / "movielens_100k"
    if not (folder / "u1.base").exists():
        sys.exit(f"MovieLens 100k not found in {folder} (set QUICKFIT_SHARED_DATA)")
    base = pd.read_csv(folder / "u1.base", sep="\t", names=NAMES)
    test = pd.read_csv(folder / "u1.test", sep="\t", names=NAMES)
    ratings = pd.concat([base, test], ignore_index=True)
    return CollabDataLoaders.from_df(ratings, valid_idx=np.arange(len(base), len(ratings)), bs=bs)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_quickfit(dls, epochs: int, lr: float, wd: float, device: torch.device) -> tuple[float, float]:
    torch.manual_seed(0)
    learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5), wd=wd, progress=False, device=device)
    learn.recorder.log_table = False
    sync(device)
    start = time.perf_counter()
    learn.fit_one_cycle(epochs, lr)
    sync(device)
    seconds = time.perf_counter() - start
    return seconds, learn.recorder.values[-1][2] ** 0.5  # valid_loss is the MSE


def run_hand(dls, epochs: int, lr: float, wd: float, device: torch.device) -> tuple[float, float]:
    torch.manual_seed(0)
    model = EmbeddingDotBias(50, dls.n_users, dls.n_items, y_range=(0, 5.5)).to(device)
    opt = Adam(param_groups([list(model.parameters())]), lr=lr, wd=wd)
    x, y = dls.train.x.to(device), dls.train.y.to(device)
    xv, yv = dls.valid.x.to(device), dls.valid.y.to(device)
    bs, vbs, n_batches = dls.train.bs, dls.valid.bs, len(x) // dls.train.bs
    total = epochs * n_batches
    sync(device)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), device=device)
        xs, ys = x[perm], y[perm]
        for i in range(n_batches):
            pos = (epoch * n_batches + i) / total
            for g in opt.param_groups:
                g["lr"], g["betas"] = lr * one_cycle_lr(pos), (one_cycle_mom(pos), g["betas"][1])
            loss = F.mse_loss(model(xs[i * bs : (i + 1) * bs]), ys[i * bs : (i + 1) * bs])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        model.eval()
        with torch.no_grad():
            sse = sum(((model(xv[i : i + vbs]) - yv[i : i + vbs]) ** 2).sum() for i in range(0, len(xv), vbs))
            mse = float(sse) / len(xv)
    sync(device)
    return time.perf_counter() - start, mse**0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--wd", type=float, default=0.1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dls = load(args.bs)
    rows = args.epochs * len(dls.train) * args.bs  # rows trained on per run (last partial batch dropped)
    runs = {"hand": run_hand, "quickfit": run_quickfit}
    for fn in runs.values():  # warm-up: allocator, kernels, first-call costs
        fn(dls, 1, args.lr, args.wd, device)
    times: dict[str, list[float]] = {"hand": [], "quickfit": []}
    print(f"device {device}, threads {torch.get_num_threads()}, bs {args.bs}, {rows:,} training rows per run")
    for r in range(args.rounds):
        order = ["hand", "quickfit"] if r % 2 == 0 else ["quickfit", "hand"]
        for name in order:
            seconds, rmse = runs[name](dls, args.epochs, args.lr, args.wd, device)
            times[name].append(seconds)
            print(f"round {r}  {name:9s} {seconds:7.2f}s  {rows / seconds:10,.0f} rows/s  valid rmse {rmse:.4f}")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median rows/s: hand {rows / med['hand']:,.0f}, quickfit {rows / med['quickfit']:,.0f}")
    print(f"ratio time(quickfit) / time(hand) = {med['quickfit'] / med['hand']:.3f}  (goal <= 1.1)")


if __name__ == "__main__":
    main()
