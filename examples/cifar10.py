"""CIFAR-10 from scratch: a DAWNBench ResNet-9, progressive resizing in one fit, label smoothing, flip TTA.

    python examples/cifar10.py ../shared/data/cifar10 --out cifar10.qf              # the recipe: 94% on a GPU
    python examples/cifar10.py PATH --out c.qf --minutes 20 --subset 10000 --width 16   # a bounded CPU run
    python examples/cifar10.py PATH --out c.qf --arch wrn_22 --epochs 30              # the course's WRN

The data is `ImageDataLoaders.from_folder(PATH, valid="test", small=True)`: every JPEG decoded once into
a uint8 tensor, pad-4 / crop / flip per batch on the device, normalized with the training images' own
statistics. The fit is one `fit_phases` call: the first `--small-frac` of the epochs on 24 px images
(3 px padding), the rest at 32 px, one learning-rate shape across both (linear warm-up to `--lr` over
the first quarter, then linear decay to 0: Page's DAWNBench schedule), SGD with Nesterov-free momentum
0.9 and L2 weight decay 5e-4, cross-entropy with label smoothing 0.2. The test accuracy is printed after
every epoch (plain and, at the end, with test-time flips), with the time to 90 / 93 / 94%, and the
training throughput in images/s. On a GPU, channels_last and bf16 / fp16 mixed precision are on.

`--minutes M` sizes the run to the budget: a few training steps measure the throughput, and the number
of epochs is what fits in M minutes (decoding excluded); the schedule then completes inside it.
`--subset N` trains on N training images spread over the classes (the test set stays whole unless
`--test-subset M`, which evaluates on M of them).
`--curve FILE` writes the accuracy-against-time points as JSON (docs/img/cifar10_curve.png is drawn from it).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from functools import partial
from pathlib import Path

import torch

import quickfit as qf
from quickfit.schedules import Sched
from quickfit.vision import SmallImageDataLoaders, flip_tta, small_image_learner
from quickfit.vision.small.images import PadCropFlip

TARGETS = (0.90, 0.93, 0.94)


class AccuracyClock(qf.Callback):
    """Test accuracy against wall time after each epoch; the time each target is first reached."""

    order = 70  # after the Recorder has written the epoch's row

    def __init__(self, start: float) -> None:
        self.start, self.points, self.reached, self.train_s, self.images = start, [], {}, 0.0, 0

    def before_train(self, learn) -> None:
        self.t_train = time.perf_counter()

    def after_batch(self, learn) -> None:
        if learn.training:
            self.images += learn.xb[0].shape[0]

    def after_train(self, learn) -> None:
        self.train_s += time.perf_counter() - self.t_train

    def after_epoch(self, learn) -> None:
        acc = float(learn.recorder.values[-1][learn.recorder.names.index("accuracy")])
        t = time.perf_counter() - self.start
        size = learn.dls.size[0]
        self.points.append({"epoch": learn.epoch, "seconds": round(t, 1), "accuracy": acc, "size": size})
        for target in TARGETS:
            if acc >= target and target not in self.reached:
                self.reached[target] = t
        print(f"  epoch {learn.epoch}: test accuracy {acc:.4f} at {t:.0f} s ({size} px)", flush=True)


def measure_rate(learn, dls, steps: int = 3) -> float:
    """Training images/s of a few steps on `dls` (the weights are put back afterwards)."""
    state = {k: v.clone() for k, v in learn.model.state_dict().items()}
    model, opt = learn.model, torch.optim.SGD(learn.model.parameters(), lr=0.0)
    model.train()
    it = iter(dls.to(learn.device).train)
    xb, yb = next(it)  # warm-up step
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        loss = learn.loss_func(model(xb.to(learn.device)), yb.to(learn.device))
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    model.load_state_dict(state)
    return xb.shape[0] / (sum(times[1:]) / steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("path", type=Path, help="CIFAR-10 as train/<class>/ and test/<class>/ image folders")
    p.add_argument("--out", type=Path, required=True, help="where to write the export (.qf)")
    p.add_argument("--arch", default="resnet9", help="resnet9 (default), wrn_22, darknet")
    p.add_argument("--width", type=int, default=None, help="the arch's width (resnet9: 64 channels)")
    p.add_argument("--epochs", type=float, default=None, help="epochs in all (default 24, or what --minutes fits)")
    p.add_argument("--minutes", type=float, default=None, help="size the run to this many minutes of training")
    p.add_argument("--subset", type=int, default=None, help="train on this many training images")
    p.add_argument("--test-subset", type=int, default=None, help="evaluate on this many test images (quick runs)")
    p.add_argument("--bs", type=int, default=512)
    p.add_argument("--lr", type=float, default=0.4, help="peak learning rate (SGD, momentum 0.9)")
    p.add_argument("--wd", type=float, default=5e-4, help="L2 weight decay")
    p.add_argument("--label-smoothing", type=float, default=0.2)
    p.add_argument("--small-size", type=int, default=24, help="the first phase's image size (0: none)")
    p.add_argument("--small-frac", type=float, default=0.4, help="share of the epochs at --small-size")
    p.add_argument("--cutout", type=int, default=0, help="cutout square side in px (0: off)")
    p.add_argument("--no-tta", action="store_true", help="skip the test-time flips at the end")
    p.add_argument("--curve", type=Path, default=None, help="write the accuracy-against-time points (JSON)")
    p.add_argument("--plot", type=Path, default=None, help="draw the accuracy against time (PNG)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when there is one)")
    a = p.parse_args()

    qf.set_seed(a.seed)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    start = time.perf_counter()
    dls = SmallImageDataLoaders.from_folder(
        a.path, valid="test", bs=a.bs, augment=PadCropFlip(4, cutout=a.cutout), limit=a.subset, device=device
    )
    decode_s = time.perf_counter() - start
    print(f"{dls}: decoded in {decode_s:.1f} s; mean {dls.stats[0]}, std {dls.stats[1]}", flush=True)
    if a.test_subset:  # evenly spread: every class keeps its share
        keep = torch.linspace(0, dls.valid.n - 1, a.test_subset).round().long().to(dls.valid.images.device)
        dls.valid.tensors = tuple(t[keep] for t in dls.valid.tensors)
    small = dls.new(size=a.small_size) if a.small_size else None

    sgd = partial(qf.SGD, mom=0.9, decouple_wd=False)  # L2 as in the DAWNBench ResNet-9
    loss = qf.LabelSmoothingCrossEntropy(a.label_smoothing) if a.label_smoothing else None
    learn = small_image_learner(dls, a.arch, width=a.width, opt_func=sgd, wd=a.wd, loss_func=loss, device=device)
    if device.type == "cuda":  # mixed precision by itself on a GPU (channels_last is the model's default)
        learn.to_bf16() if torch.cuda.is_bf16_supported() else learn.to_fp16()

    frac = a.small_frac if small is not None else 0.0
    epochs = a.epochs
    if epochs is None and a.minutes:
        rate32 = measure_rate(learn, dls)
        rate = 1 / ((1 - frac) / rate32 + frac / measure_rate(learn, small)) if small is not None else rate32
        # an epoch: n_train training images + one pass over the test set (about 3x cheaper per image)
        per_epoch = dls.train.n / rate + dls.valid.n / (3 * rate32)
        epochs = max(1.0, round(a.minutes * 60 / per_epoch, 1))
        print(f"measured {rate:.0f} training images/s: {epochs} epochs fit in {a.minutes} minutes", flush=True)
    epochs = 24.0 if epochs is None else epochs
    n_small = round(epochs * frac, 1)
    shape = qf.combine_scheds([0.25, 0.75], [qf.SchedLin(0.05, 1.0), qf.SchedLin(1.0, 0.0)])
    # one shape over the whole fit, split at the phase boundary: each phase gets its part of it
    cut = n_small / epochs
    phases = []
    if n_small > 0:
        phases.append(qf.Phase(n_small, lr=a.lr * _Part(shape, 0, cut), dls=small))
    phases.append(qf.Phase(epochs - n_small, lr=a.lr * _Part(shape, cut, 1), dls=dls))

    clock = AccuracyClock(time.perf_counter())
    n_params = sum(p.numel() for p in learn.model.parameters())
    print(f"{a.arch} ({n_params:,} parameters), {epochs} epochs ({n_small} at {a.small_size} px), bs {a.bs}, "
          f"lr {a.lr}, on {device}; load {os.getloadavg()[0]:.1f}")  # fmt: skip
    learn.fit_phases(phases, cbs=[clock])
    total = time.perf_counter() - clock.start
    rate = clock.images / clock.train_s
    print(f"training: {rate:.0f} images/s ({clock.images} images in {clock.train_s:.0f} s of training passes, "
          f"{total:.0f} s with the test passes)")  # fmt: skip
    acc = clock.points[-1]["accuracy"]
    if not a.no_tta:
        t = time.perf_counter()
        preds, targets = flip_tta(learn)
        acc = float((preds.argmax(1) == targets).float().mean())
        print(f"test accuracy with test-time flips: {acc:.4f} ({time.perf_counter() - t:.0f} s)")
        for target in TARGETS:
            if acc >= target and target not in clock.reached:
                clock.reached[target] = time.perf_counter() - clock.start
    for target in TARGETS:
        when = clock.reached.get(target)
        print(f"time to {target:.0%}: " + (f"{when:.0f} s" if when is not None else "not reached"))
    learn.export(a.out)
    print(f"wrote {a.out}; final test accuracy {acc:.4f}")
    if a.curve is not None:
        record = record_of(clock, acc, rate, decode_s, a)
        a.curve.write_text(json.dumps(record, indent=1))
    if a.plot is not None:
        plot_curve([record_of(clock, acc, rate, decode_s, a)], a.plot)


def record_of(clock: AccuracyClock, acc: float, rate: float, decode_s: float, a) -> dict:
    args = {k: str(v) for k, v in vars(a).items()}
    return {"args": args, "points": clock.points, "final": acc, "images_per_s": rate, "decode_s": decode_s}


def plot_curve(records: list[dict], fname: Path, labels: list[str] | None = None) -> None:
    """Test accuracy against wall time (decoding excluded), one line per run; the final mark is after TTA."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, r in enumerate(records):
        t = [p["seconds"] / 60 for p in r["points"]]
        acc = [100 * p["accuracy"] for p in r["points"]]
        line = ax.plot(t, acc, "o-", label=labels[i] if labels else None)[0]
        ax.plot([t[-1]], [100 * r["final"]], "*", color=line.get_color(), markersize=11)
    for target in TARGETS:
        ax.axhline(100 * target, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("wall time (minutes, after decoding)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    if labels:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(fname, dpi=110)


class _Part(Sched):
    "The piece of `shape` from `lo` to `hi` of its progress, as a shape of its own (0 to 1)."

    def __init__(self, shape, lo: float, hi: float) -> None:
        self.shape, self.lo, self.hi = shape, lo, hi

    def __call__(self, pos: float) -> float:
        return self.shape(self.lo + (self.hi - self.lo) * pos)


if __name__ == "__main__":
    main()
