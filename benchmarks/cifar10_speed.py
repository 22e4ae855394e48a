"""Training images/s on small images: `Learner.fit_phases` against a hand-written PyTorch loop.

    python benchmarks/cifar10_speed.py                      # ResNet-9 at width 16, 1,024 random 32 px images
    python benchmarks/cifar10_speed.py --width 64 --n 4096 --rounds 3 --device cuda
    python benchmarks/cifar10_speed.py --path ../shared/data/cifar10 --n 2048   # CIFAR-10 images instead

Both train the same network from the same initial weights on the same uint8 tensor in memory, with
the same augmentation object (`PadCropFlip`: reflect-pad 4, random 32 px crop, flip), normalization,
loss (cross-entropy with label smoothing 0.2), optimizer (SGD, momentum 0.9, L2 5e-4 on weights only)
and schedule (linear warm-up to 0.4 over a quarter, then linear decay), without validation. The hand
loop is what a PyTorch user writes: a permutation, slices, augment, forward, backward, step, and the
rate set per batch. Runs alternate (learner, hand, hand, learner, ...) after a warm-up round; the
ratio is the median over rounds of the two runs of a round (neighbours in time share the machine's
load), wall-clock and CPU time. Goal: Learner / hand <= 1.03.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F

import quickfit as qf
from quickfit.vision import SmallImageDataLoaders, small_image_learner

LR, WD, MOM, SMOOTH = 0.4, 5e-4, 0.9, 0.2
SHAPE = qf.combine_scheds([0.25, 0.75], [qf.SchedLin(0.05, 1.0), qf.SchedLin(1.0, 0.0)])


def hand_fit(model, images, targets, stats, aug, bs: int, epochs: int, device) -> None:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.SGD(groups, lr=LR * SHAPE(0), momentum=MOM)
    mean = torch.tensor(stats[0], device=device).view(1, 3, 1, 1)
    std = torch.tensor(stats[1], device=device).view(1, 3, 1, 1)
    n_batches = len(images) // bs  # drop_last, as the learner's training loader
    total, step = epochs * n_batches, 0
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(images), device=device)
        x_all, y_all = images[perm], targets[perm]
        for i in range(n_batches):
            for g in opt.param_groups:
                g["lr"] = LR * SHAPE(step / total)
            xb = aug(x_all[i * bs : (i + 1) * bs])
            xb = ((xb.float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(xb), y_all[i * bs : (i + 1) * bs], label_smoothing=SMOOTH)
            loss.backward()
            opt.step()
            opt.zero_grad()
            step += 1


def learner_fit(learn, epochs: int) -> None:
    learn.fit_phases([qf.Phase(epochs, lr=LR * SHAPE, mom=MOM)])


def load_data(a) -> tuple[torch.Tensor, torch.Tensor]:
    if a.path:
        dls = SmallImageDataLoaders.from_folder(a.path, valid="test", limit=a.n)
        return dls.train.images, dls.train.tensors[1]
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (a.n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(a.n) % 10


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--path", default=None, help="CIFAR-10 folder (default: random images)")
    p.add_argument("--n", type=int, default=1024, help="training images")
    p.add_argument("--width", type=int, default=16, help="ResNet-9 width (64: the published one)")
    p.add_argument("--bs", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    images, targets = load_data(a)
    dls = SmallImageDataLoaders.from_tensors((images, targets), None, [str(i) for i in range(10)], bs=a.bs)
    dls.to(device)
    aug = dls.augment  # the same PadCropFlip object for both
    sgd = partial(qf.SGD, mom=MOM, decouple_wd=False)
    loss = qf.LabelSmoothingCrossEntropy(SMOOTH)
    learn = small_image_learner(
        dls, "resnet9", width=a.width, opt_func=sgd, wd=WD, loss_func=loss, progress=False, device=device
    )
    init = {k: v.clone() for k, v in learn.model.state_dict().items()}
    imgs, tgts = dls.train.images, dls.train.tensors[1]
    n_images = a.epochs * (len(imgs) // a.bs) * a.bs

    def run(which: str) -> tuple[float, float]:
        learn.model.load_state_dict(init)
        torch.manual_seed(0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        if which == "learner":
            learner_fit(learn, a.epochs)
        else:
            hand_fit(learn.model, imgs, tgts, dls.stats, aug, a.bs, a.epochs, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, time.process_time() - c

    run("hand")  # warm-up: allocator, oneDNN / cuDNN plans
    results = {"learner": [], "hand": []}
    for r in range(a.rounds):
        order = ("learner", "hand") if r % 2 == 0 else ("hand", "learner")
        for which in order:
            results[which].append(run(which))
    n_params = sum(p.numel() for p in learn.model.parameters())
    print(f"ResNet-9 width {a.width} ({n_params:,} parameters), {len(imgs)} images at 32 px, bs {a.bs}, "
          f"{a.epochs} epoch(s) a run, {a.rounds} rounds, {device}")  # fmt: skip
    print(f"{'':10} {'best images/s':>14} {'median wall s':>14} {'median CPU s':>13}")
    for which, rs in results.items():
        best = n_images / min(w for w, _ in rs)
        wall, cpu = statistics.median(w for w, _ in rs), statistics.median(c for _, c in rs)
        print(f"{which:10} {best:14.1f} {wall:14.2f} {cpu:13.2f}")
    # where the learner's time goes: the data alone (gather, augmentation, normalization), the network
    # alone (forward, loss, backward, step on one batch, as many times), the rest is the loop
    n_batches = a.epochs * len(dls.train)
    t = time.perf_counter()
    for _ in range(a.epochs):
        for _batch in dls.train:
            pass
    data_s = time.perf_counter() - t
    xb, yb = next(iter(dls.train))
    opt = torch.optim.SGD(learn.model.parameters(), lr=0.0, momentum=MOM)
    t = time.perf_counter()
    for _ in range(n_batches):
        loss(learn.model(xb), yb).backward()
        opt.step()
        opt.zero_grad()
    if device.type == "cuda":
        torch.cuda.synchronize()
    net_s = time.perf_counter() - t
    total = statistics.median(w for w, _ in results["learner"])
    print(f"learner's time: network {net_s / total:.0%}, data {data_s / total:.0%}, "
          f"loop and the rest {max(0.0, 1 - (net_s + data_s) / total):.0%} ({total:.1f} s)")  # fmt: skip
    ratios = [lw / hw for (lw, _), (hw, _) in zip(results["learner"], results["hand"])]
    cpu_ratios = [lc / hc for (_, lc), (_, hc) in zip(results["learner"], results["hand"])]
    print(f"learner / hand: wall {statistics.median(ratios):.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)}), "
          f"CPU {statistics.median(cpu_ratios):.3f}   (goal <= 1.03)")  # fmt: skip


if __name__ == "__main__":
    main()
