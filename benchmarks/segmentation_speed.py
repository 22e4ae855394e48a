"""U-Net training speed: `Learner.fit_one_cycle` against a hand-written PyTorch loop, and the peak memory.

    python benchmarks/segmentation_speed.py                          # CamVid frames, 240x320, bs 8
    python benchmarks/segmentation_speed.py --size 120 160 --batches 3 --rounds 2
    python benchmarks/segmentation_speed.py --memory --size 360 480  # peak RSS of training at full size

Both train the same `DynamicUnet` over EfficientNet-Lite0 (pretrained, everything trainable) on the same
pre-built batches (CamVid frames from ../shared/data/camvid_segnet, augmented once by quickfit's
loader, or random images when absent), with one-cycle AdamW (betas (0.9, 0.99), eps 1e-5, weight decay
0.01 on weights), the void-ignoring pixel cross-entropy, from the same initial weights. Runs alternate
(learner, hand, hand, learner, ...) after a warm-up; the table shows images/s of the fastest run of each
and the median ratio of the two runs of each round, in wall-clock and in CPU time (on a shared machine
the CPU time of this process counts the work rather than the waits for a core). Goal: the Learner's
time <= 1.05x the hand loop's.

`--memory` trains a few batches in a fresh process and prints its peak resident memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

import quickfit as qf
from quickfit.vision import Resize, SegmentationDataLoaders, SegmentationLoss, aug_transforms
from quickfit.vision.models import get_arch
from quickfit.vision.models.unet import DynamicUnet
from quickfit.vision.segmentation.learner import unet_encoder

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CODES = [f"c{i}" for i in range(11)] + ["void"]
LR_MAX, DIV, DIV_FINAL, PCT_START, MOMS, WD = 1e-3, 25.0, 1e5, 0.25, (0.95, 0.85, 0.95), 0.01


def batches(size: tuple[int, int], bs: int, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    path = DATA / "camvid_segnet"
    if not path.is_dir():
        g = torch.Generator().manual_seed(0)
        return [
            (torch.randn(bs, 3, *size, generator=g), torch.randint(0, 12, (bs, *size), generator=g)) for _ in range(n)
        ]
    dls = SegmentationDataLoaders.from_folders(
        path, codes=CODES, void_code=11, item_tfms=Resize(size), batch_tfms=aug_transforms(), bs=bs, num_workers=0
    )
    it = iter(dls.train)
    return [next(it) for _ in range(n)]


def make_model(size: tuple[int, int]) -> nn.Module:
    torch.manual_seed(0)
    model = DynamicUnet(unet_encoder(get_arch("efficientnet_lite0"), pretrained=True), 12, size)
    return model.to(memory_format=torch.channels_last)


def _cos(start: float, end: float, pos: float) -> float:
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pos))


def hand_fit(model: nn.Module, data, epochs: int) -> None:
    """What a PyTorch user writes: AdamW, one-cycle lr and momentum, the loss, backward, step."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=LR_MAX / DIV, betas=(MOMS[0], 0.99), eps=1e-5, foreach=True)
    loss_func, total, step = SegmentationLoss(11), epochs * len(data), 0
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


def learner_fit(model: nn.Module, data, epochs: int) -> None:
    learn = qf.Learner(qf.DataLoaders(data, None), model, SegmentationLoss(11), wd=WD, progress=False, device="cpu")
    learn.recorder.log_table = False  # no epoch table in the timings' output
    learn.fit_one_cycle(epochs, LR_MAX)


def memory(size: tuple[int, int], bs: int, n: int) -> None:
    data = batches(size, bs, n)
    learner_fit(make_model(size), data, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak resident memory, U-Net (EfficientNet-Lite0) training at {size[0]}x{size[1]}, bs {bs}: {peak:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, nargs=2, default=(240, 320))
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--memory", action="store_true", help="only the peak memory, in a fresh process")
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    size = tuple(args.size)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory and not args._child:  # a fresh process: ru_maxrss is a lifetime peak
        cmd = [sys.executable, __file__, "--memory", "--_child", "--size", *map(str, size), "--bs", str(args.bs)]
        cmd += ["--batches", str(args.batches)] + (["--threads", str(args.threads)] if args.threads else [])
        raise SystemExit(subprocess.call(cmd))
    if args.memory:
        return memory(size, args.bs, args.batches)
    data = batches(size, args.bs, args.batches)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {len(data)} batches of {args.bs} at {size}")
    times: dict[str, list[float]] = {"learner": [], "hand": []}
    cpu: dict[str, list[float]] = {"learner": [], "hand": []}
    fits = {"learner": learner_fit, "hand": hand_fit}
    for r in range(args.rounds + 1):  # round 0 warms up (oneDNN primitives, allocator)
        order = ["learner", "hand"] if r % 2 else ["hand", "learner"]
        for name in order:
            model = make_model(size)
            t, c = time.perf_counter(), time.process_time()
            fits[name](model, data, args.epochs)
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
