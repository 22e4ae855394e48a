"""What does the Learner cost? The same training through `Learner.fit_one_cycle` and a plain PyTorch loop.

    python benchmarks/loop_overhead.py              # about 2 minutes on 2 CPU cores
    python benchmarks/loop_overhead.py --rounds 5 --threads 2

1. A small CNN on scikit-learn's handwritten digits (1,797 real images, upsampled to 28x28), trained
   with one-cycle Adam (AdamW, betas (0.9, 0.99), eps 1e-5, weight decay 0.01 on weights, lr and
   momentum cycled) and validated every epoch, by the Learner and by a hand-written loop over the
   same DataLoader: the time ratio (goal <= 1.03) and both accuracies, which should agree since the
   two train the same way.
2. A tiny MLP on pre-built batches, where the loop itself dominates: the Learner's extra time per
   batch (goal < 0.3 ms).
Runs alternate (learner, hand, hand, learner, ...) after a warm-up round, all from the same seed and
initial weights. The table compares the fastest run of each, and gives the median over rounds of the
two runs of a round compared (neighbours in time, so they share the machine's load). Wall-clock and
CPU time are both shown: on a machine shared with other jobs, the CPU time of this single-threaded
process counts the work done rather than the waits for a core.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import quickfit as qf

LR_MAX, DIV, DIV_FINAL, PCT_START, MOMS, WD = 1e-2, 25.0, 1e5, 0.25, (0.95, 0.85, 0.95), 0.01
LOSS_FUNC = nn.CrossEntropyLoss()  # both loops call the same loss module


# ---- the hand-written loop: what a PyTorch user writes for one-cycle AdamW -------------------------
def _cos(start: float, end: float, pos: float) -> float:
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pos))


def _one_cycle(pos: float) -> tuple[float, float]:
    """(lr, momentum) at `pos` in [0, 1]: warm up to LR_MAX over PCT_START, then anneal."""
    if pos < PCT_START:
        p = pos / PCT_START
        return _cos(LR_MAX / DIV, LR_MAX, p), _cos(MOMS[0], MOMS[1], p)
    p = (pos - PCT_START) / (1 - PCT_START)
    return _cos(LR_MAX, LR_MAX / DIV_FINAL, p), _cos(MOMS[1], MOMS[2], p)


def hand_fit(model: nn.Module, train_dl, valid_dl, n_epoch: int) -> float | None:
    """One-cycle AdamW training; returns the last epoch's validation accuracy."""
    decay = [p for p in model.parameters() if p.ndim > 1]  # no weight decay on biases and norm weights
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=LR_MAX / DIV, betas=(MOMS[0], 0.99), eps=1e-5, foreach=True)
    total, accuracy = n_epoch * len(train_dl), None
    for epoch in range(n_epoch):
        model.train()
        losses = []
        for i, (x, y) in enumerate(train_dl):
            lr, mom = _one_cycle((epoch * len(train_dl) + i) / total)
            for g in opt.param_groups:
                g["lr"], g["betas"] = lr, (mom, 0.99)
            loss = LOSS_FUNC(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.detach())
        train_loss = torch.stack(losses).mean().item()  # the epoch's mean loss, as the Learner reports
        if valid_dl is None:
            continue
        model.eval()
        loss_sum, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for x, y in valid_dl:
                out = model(x)
                loss_sum += F.cross_entropy(out, y, reduction="sum").item()
                correct += (out.argmax(1) == y).sum().item()
                n += len(y)
        accuracy = correct / n
        assert math.isfinite(train_loss + loss_sum)
    return accuracy


def learner_fit(model: nn.Module, train_dl, valid_dl, n_epoch: int) -> float | None:
    dls = qf.DataLoaders(train_dl, valid_dl)
    metrics = [qf.accuracy] if valid_dl is not None else []
    learn = qf.Learner(dls, model, LOSS_FUNC, metrics=metrics, progress=False, device="cpu")
    learn.recorder.log_table = False
    learn.fit_one_cycle(n_epoch, LR_MAX, div=DIV, div_final=DIV_FINAL, pct_start=PCT_START, moms=MOMS, wd=WD)
    return learn.recorder.values[-1][3] if valid_dl is not None else None


# ---- the two workloads ------------------------------------------------------------------------------
def digits_28() -> tuple[TensorDataset, TensorDataset]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    x = (x - x.mean()) / x.std()
    y = torch.tensor(digits.target)
    valid = torch.zeros(len(y), dtype=torch.bool)
    valid[qf.random_split(len(y), 0.2, seed=0)] = True
    return TensorDataset(x[~valid], y[~valid]), TensorDataset(x[valid], y[valid])


def small_cnn() -> nn.Module:
    def block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())

    return nn.Sequential(
        block(1, 16), block(16, 32), block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)
    )


def tiny_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))


def mlp_batches(n_batches: int, bs: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_batches * bs, 16, generator=g)
    y = (x[:, 0] > 0).long()
    return [(x[i : i + bs], y[i : i + bs]) for i in range(0, len(x), bs)]


# ---- timing -------------------------------------------------------------------------------------------
class Timings:
    """Wall-clock and CPU seconds of each timed run of one method, and the accuracy it reached."""

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.accuracy: float | None = None


def time_alternating(
    runs: dict[str, Callable[[nn.Module], float | None]], make_model: Callable[[], nn.Module], rounds: int
) -> dict[str, Timings]:
    """Run each method `rounds` times, alternating the order; the same seed and initial weights each time.

    CPU time (of this process) is reported beside wall-clock time: with one thread on a machine shared
    with other jobs, it counts the work done, not the waits for a core.
    """
    results = {name: Timings() for name in runs}
    names = list(runs)
    for r in range(rounds + 1):  # round 0 warms up (imports, allocator, first-call costs) and is not kept
        for name in names if r % 2 else names[::-1]:
            torch.manual_seed(0)
            model = make_model()
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            accuracy = runs[name](model)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if r > 0:
                results[name].wall.append(wall)
                results[name].cpu.append(cpu)
                results[name].accuracy = accuracy
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each method (after a warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--epochs", type=int, default=4, help="CNN epochs")
    parser.add_argument("--mlp-batches", type=int, default=500, help="tiny-MLP batches per epoch (3 epochs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    train_ds, valid_ds = digits_28()
    train_dl = DataLoader(train_ds, batch_size=64, shuffle=True)
    valid_dl = DataLoader(valid_ds, batch_size=256)
    cnn = time_alternating(
        {
            "learner": lambda m: learner_fit(m, train_dl, valid_dl, args.epochs),
            "hand": lambda m: hand_fit(m, train_dl, valid_dl, args.epochs),
        },
        small_cnn,
        args.rounds,
    )
    batches, mlp_epochs = mlp_batches(args.mlp_batches), 3
    mlp = time_alternating(
        {
            "learner": lambda m: learner_fit(m, batches, None, mlp_epochs),
            "hand": lambda m: hand_fit(m, batches, None, mlp_epochs),
        },
        tiny_mlp,
        args.rounds,
    )

    report(cnn, mlp, args, n_mlp=mlp_epochs * len(batches))


def report(cnn: dict[str, Timings], mlp: dict[str, Timings], args: argparse.Namespace, n_mlp: int) -> None:
    """The table: for each clock, the fastest run of each method and the median over rounds of the
    learner-vs-hand comparison (each round's two runs are neighbours in time, so share the load)."""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.rounds} alternating rounds")
    print(f"{'':32} {'learner':>9} {'hand loop':>9}  {'fastest':>8}  {'rounds':>8}  goal")
    for clock in ("wall", "cpu"):
        learner, hand = getattr(cnn["learner"], clock), getattr(cnn["hand"], clock)
        paired = statistics.median(a / b for a, b in zip(learner, hand))
        label = f"CNN, {args.epochs} epochs, {clock} s"
        fastest = min(learner) / min(hand)
        print(f"{label:32} {min(learner):9.3f} {min(hand):9.3f}  {fastest:8.3f}  {paired:8.3f}  ratio <= 1.03")
    acc_l, acc_h = cnn["learner"].accuracy, cnn["hand"].accuracy
    print(f"{'CNN, validation accuracy':32} {acc_l:9.4f} {acc_h:9.4f}")
    for clock in ("wall", "cpu"):
        learner, hand = ([1e3 * t / n_mlp for t in getattr(mlp[k], clock)] for k in ("learner", "hand"))
        paired = statistics.median(a - b for a, b in zip(learner, hand))
        label = f"tiny MLP, ms per batch, {clock}"
        fastest = min(learner) - min(hand)
        print(f"{label:32} {min(learner):9.4f} {min(hand):9.4f}  {fastest:+8.4f}  {paired:+8.4f}  extra < 0.3 ms")
    for name, runs in (("CNN", cnn), ("MLP", mlp)):
        for method, t in runs.items():
            print(f"  {name} {method:8} wall {[round(x, 3) for x in t.wall]}  cpu {[round(x, 3) for x in t.cpu]}")


if __name__ == "__main__":
    main()
