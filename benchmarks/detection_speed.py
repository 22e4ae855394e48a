"""Detector training speed: `Learner.fit_one_cycle` against a hand-written PyTorch loop over the same RetinaNet.

    python benchmarks/detection_speed.py                               # bccd photos, 240x320, bs 8, 4 batches
    python benchmarks/detection_speed.py --size 120 160 --batches 3 --rounds 2 --threads 1

Both train the same `RetinaNet` over EfficientNet-Lite0 (pretrained, everything trainable; levels P3-P5) with
the same `DetectionLoss` (anchor matching, focal loss, smooth L1) on the same pre-built batches (bccd images
from ../shared/data/bccd through quickfit's loader and augmentation, or random images with random boxes
when absent), with one-cycle AdamW (betas (0.9, 0.99), eps 1e-5, weight decay 0.01 on weights), from the
same initial weights. Runs alternate (learner, hand, hand, learner, ...) after a warm-up; the table shows
images/s of the fastest run of each and the median ratio of the two runs of each round, in wall-clock and
in CPU time (on a shared machine the CPU time of this process counts the work rather than the waits for a
core). Goal: the Learner's time <= 1.05x the hand loop's.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import quickfit as qf
from quickfit.vision import DetectionDataLoaders, DetectionLoss, detection_aug_transforms
from quickfit.vision.detection.learner import DetectorConfig

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
LR_MAX, DIV, DIV_FINAL, PCT_START, MOMS, WD = 1e-3, 25.0, 1e5, 0.25, (0.95, 0.85, 0.95), 0.01


def batches(size: tuple[int, int], bs: int, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    path = DATA / "bccd"
    if not path.is_dir():
        g = torch.Generator().manual_seed(0)
        xy = torch.rand(n, bs, 12, 2, generator=g) * 1.6 - 1
        boxes = torch.cat([xy, xy + 0.1 + torch.rand(n, bs, 12, 2, generator=g) * 0.2,
                           torch.randint(0, 3, (n, bs, 12, 1), generator=g).float()], -1)  # fmt: skip
        return [(torch.randn(bs, 3, *size, generator=g), boxes[i]) for i in range(n)]
    dls = DetectionDataLoaders.from_voc(path, size=size, bs=bs, batch_tfms=detection_aug_transforms(flip_vert=True),
                                        num_workers=0)  # fmt: skip
    it = iter(dls.train)
    return [next(it) for _ in range(n)]


def make_model(size: tuple[int, int]) -> tuple[nn.Module, DetectionLoss]:
    torch.manual_seed(0)
    config = DetectorConfig("efficientnet_lite0", 3, list(size), levels=[3, 4, 5], anchor_scale=3.0, channels_last=True)
    model = config.build(pretrained=True)
    return model, DetectionLoss(model.anchors())


def _cos(start: float, end: float, pos: float) -> float:
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pos))


def hand_fit(model: nn.Module, loss_func: DetectionLoss, data, epochs: int) -> None:
    """What a PyTorch user writes: AdamW, one-cycle lr and momentum, the loss, backward, step."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=LR_MAX / DIV, betas=(MOMS[0], 0.99), eps=1e-5, foreach=True)
    total, step = epochs * len(data), 0
    model.train()
    for _ in range(epochs):
        for x, y in data:
            pos = step / total
            if pos < PCT_START:
                p = pos / PCT_START
                lr, mom = _cos(LR_MAX / DIV, LR_MAX, p), _cos(MOMS[0], MOMS[1], p)
            else:
                p = (pos - PCT_START) / (1 - PCT_START)
                lr, mom = _cos(LR_MAX, LR_MAX / DIV_FINAL, p), _cos(MOMS[1], MOMS[2], p)
            for g in opt.param_groups:
                g["lr"], g["betas"] = lr, (mom, 0.99)
            loss = loss_func(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1


def learner_fit(model: nn.Module, loss_func: DetectionLoss, data, epochs: int) -> None:
    learn = qf.Learner(qf.DataLoaders(data, None), model, loss_func, wd=WD, progress=False, device="cpu")
    learn.recorder.log_table = False  # no epoch table in the timings' output
    learn.fit_one_cycle(epochs, LR_MAX)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, nargs=2, default=(240, 320))
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    size = tuple(args.size)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = batches(size, args.bs, args.batches)
    n_boxes = int(sum((~y[..., 0].isnan()).sum() for _, y in data))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {len(data)} batches of {args.bs} at "
          f"{size} ({n_boxes} boxes), load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    times: dict[str, list[float]] = {"learner": [], "hand": []}
    cpu: dict[str, list[float]] = {"learner": [], "hand": []}
    fits = {"learner": learner_fit, "hand": hand_fit}
    for r in range(args.rounds + 1):  # round 0 warms up (oneDNN primitives, allocator)
        order = ["learner", "hand"] if r % 2 else ["hand", "learner"]
        for name in order:
            model, loss_func = make_model(size)
            t, c = time.perf_counter(), time.process_time()
            fits[name](model, loss_func, data, args.epochs)
            if r:
                times[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
    n_img = args.epochs * len(data) * args.bs
    for name in ("hand", "learner"):
        print(f"{name:<8} {n_img / min(times[name]):7.2f} images/s wall, {n_img / min(cpu[name]):7.2f} per CPU-second")
    for label, d in (("wall", times), ("CPU", cpu)):
        ratios = [a / b for a, b in zip(d["learner"], d["hand"])]
        print(
            f"learner / hand {label} time: fastest {min(d['learner']) / min(d['hand']):.3f}, "
            f"median of rounds {statistics.median(ratios):.3f} (goal <= 1.05)"
        )


if __name__ == "__main__":
    main()
