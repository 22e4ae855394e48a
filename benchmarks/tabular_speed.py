"""Rows/s of `tabular_learner` training on Adult vs a hand-written PyTorch loop.

    python benchmarks/tabular_speed.py                         # adult.data / adult.test, bs 256, 1 epoch per run
    python benchmarks/tabular_speed.py --bs 1024 --rounds 5 --device cuda

Both sides train the same model (`TabularModel`, embeddings by the size rule, layers [200, 100])
from the same initial weights on the same tensors (`dls.train.x_cat / x_cont / y`, one random
permutation per epoch, batches sliced from it, last partial batch dropped), with the same optimizer
(`quickfit.Adam`, i.e. torch's foreach AdamW, wd 0.01 on weights, none on biases and BatchNorm) and
the same one-cycle schedule of learning rate and momentum set before every batch; each epoch ends
with a pass over the validation set (adult.test) computing loss and accuracy.

- hand: the loop one writes in plain PyTorch: forward, cross-entropy, backward, step, zero_grad.
- quickfit: `tabular_learner(dls).fit_one_cycle(epochs, lr)` with its default callbacks (recorder,
  scheduler, progress off), the per-epoch table not printed.

The two alternate (hand, quickfit, quickfit, hand, ...) `--rounds` times in this one process, after
one untimed warm-up run each, so a busy shared machine slows both alike; the headline ratio is the
median of the rounds' ratios (each round's pair runs back to back).
Besides the wall-clock time, the CPU time of this process is reported: on a machine shared with other
work it leaves out the time spent waiting for a core, so its ratio is the steadier one there (on a GPU
only the wall-clock time means anything). Goal: time(quickfit) / time(hand) <= 1.1.
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

from quickfit.optim import Adam, param_groups
from quickfit.schedules import one_cycle_lr, one_cycle_mom
from quickfit.tabular import TabularDataLoaders, TabularModel, get_emb_szs, tabular_learner

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
    "salary",
]  # fmt: skip
CAT_NAMES = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex",
             "native-country"]  # fmt: skip
CONT_NAMES = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]


def load(bs: int) -> TabularDataLoaders:
    folder = DATA / "adult"
    if not (folder / "adult.data.gz").exists():
        sys.exit(f"Adult not found in {folder} (set QUICKFIT_SHARED_DATA)")
    frames = []
    for name, skip in (("adult.data.gz", 0), ("adult.test.gz", 1)):
        df = pd.read_csv(folder / name, header=None, names=COLUMNS, skipinitialspace=True, na_values="?", skiprows=skip)
        frames.append(df.assign(salary=df["salary"].str.rstrip(".")))
    rows = pd.concat(frames, ignore_index=True)
    valid_idx = np.arange(len(frames[0]), len(rows))
    return TabularDataLoaders.from_df(rows, "salary", CAT_NAMES, CONT_NAMES, valid_idx=valid_idx, bs=bs)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_quickfit(dls, epochs: int, lr: float, device: torch.device) -> tuple[float, float, float]:
    torch.manual_seed(0)
    learn = tabular_learner(dls, progress=False, device=device)
    learn.recorder.log_table = False
    sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    learn.fit_one_cycle(epochs, lr)
    sync(device)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return seconds, cpu, learn.recorder.last_valid[-1]  # accuracy


def run_hand(dls, epochs: int, lr: float, device: torch.device) -> tuple[float, float, float]:
    torch.manual_seed(0)
    emb_szs = get_emb_szs(dls.cat_names, dls.cardinalities)
    model = TabularModel(emb_szs, len(dls.cont_names), dls.c).to(device)
    opt = Adam(param_groups([list(model.parameters())]), lr=lr)
    xc, xn, y = (t.to(device) for t in (dls.train.x_cat, dls.train.x_cont, dls.train.y))
    vc, vn, vy = (t.to(device) for t in (dls.valid.x_cat, dls.valid.x_cont, dls.valid.y))
    bs, n_batches = dls.train.bs, len(y) // dls.train.bs
    total = epochs * n_batches
    sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(y), device=device)
        xcs, xns, ys = xc[perm], xn[perm], y[perm]
        for i in range(n_batches):
            pos = (epoch * n_batches + i) / total
            for g in opt.param_groups:
                g["lr"], g["betas"] = lr * one_cycle_lr(pos), (one_cycle_mom(pos), g["betas"][1])
            b = slice(i * bs, (i + 1) * bs)
            loss = F.cross_entropy(model(xcs[b], xns[b]), ys[b])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        model.eval()
        with torch.no_grad():
            loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
            for i in range(0, len(vy), bs):
                out = model(vc[i : i + bs], vn[i : i + bs])
                loss_sum += F.cross_entropy(out, vy[i : i + bs], reduction="sum")
                correct += (out.argmax(1) == vy[i : i + bs]).sum()
            accuracy = float(correct) / len(vy)
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu_start, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bs", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dls = load(args.bs)
    rows = args.epochs * len(dls.train) * args.bs  # rows trained on per run (last partial batch dropped)
    runs = {"hand": run_hand, "quickfit": run_quickfit}
    for fn in runs.values():  # warm-up: allocator, kernels, first-call costs (torch imports its compiler)
        fn(dls, 1, args.lr, device)
    times: dict[str, list[float]] = {"hand": [], "quickfit": []}
    cpu_times: dict[str, list[float]] = {"hand": [], "quickfit": []}
    print(f"device {device}, threads {torch.get_num_threads()}, bs {args.bs}, {rows:,} training rows per run")
    for r in range(args.rounds):
        order = ["hand", "quickfit"] if r % 2 == 0 else ["quickfit", "hand"]
        for name in order:
            seconds, cpu, acc = runs[name](dls, args.epochs, args.lr, device)
            times[name].append(seconds)
            cpu_times[name].append(cpu)
            print(
                f"round {r}  {name:9s} {seconds:7.2f}s  {rows / seconds:10,.0f} rows/s  (cpu {cpu:6.2f}s)  "
                f"valid accuracy {acc:.4f}"
            )
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu_times.items()}
    print(f"median rows/s: hand {rows / med['hand']:,.0f}, quickfit {rows / med['quickfit']:,.0f}")
    # each round's pair ran back to back, so its ratio is the least affected by the machine's load drifting
    paired = statistics.median(q / h for q, h in zip(times["quickfit"], times["hand"]))
    print(f"ratio time(quickfit) / time(hand) = {paired:.3f}  (median of the rounds' ratios; goal <= 1.1)")
    print(
        f"ratio of the median times = {med['quickfit'] / med['hand']:.3f}, "
        f"of the median CPU times = {cpu_med['quickfit'] / cpu_med['hand']:.3f}"
    )


if __name__ == "__main__":
    main()
