"""Transfer-learning speed on CPU: channels_last, precompute, and the lesson-1 recipe end to end.

    python benchmarks/transfer.py                      # channels_last + precompute (a few minutes)
    python benchmarks/transfer.py --recipe             # also the whole recipe to >= 95% (longer)
    python benchmarks/transfer.py --threads 2 --size 224

1. channels_last vs contiguous memory format, images/s of a training step (forward, backward, SGD
   step of the whole network, batch 16 at --size) and of inference, for EfficientNet-Lite0 and
   ResNet-18. The formats alternate round by round so a busy machine affects both alike.
2. precompute: the seconds of one epoch of head training on cached body activations vs one epoch of
   the same frozen learner running the body on every image (what precompute saves), plus the one-time
   cost of computing the cache. Goal: >= 10x per epoch. Uses hymenoptera when present, else generated
   images.
3. --recipe: wall time and final TTA accuracy of examples/lesson1_recipe.py on hymenoptera.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from quickfit.vision import ImageDataLoaders, aug_transforms, vision_learner
from quickfit.vision.classification.precompute import precomputed_dls
from quickfit.vision.models import get_arch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
if not DATA.exists():
    DATA = Path("/work/shared/data")
HYMENOPTERA = DATA / "hymenoptera" / "hymenoptera_data"


def _steps_per_second(model, x, train: bool, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    model.train(train)
    start = time.perf_counter()
    for _ in range(steps):
        if train:
            model(x).logsumexp(1).mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(x)
    return steps * x.shape[0] / (time.perf_counter() - start)


def bench_channels_last(size: int, rounds: int, steps: int) -> None:
    print(f"\n== channels_last vs contiguous: images/s, batch 16 at {size}px, {torch.get_num_threads()} threads ==")
    x = torch.randn(16, 3, size, size)
    for arch in ("efficientnet_lite0", "resnet18"):
        models = {}
        for fmt in (torch.contiguous_format, torch.channels_last):
            models[fmt] = get_arch(arch).build(pretrained=False).to(memory_format=fmt)
        for train in (True, False):
            speeds = {fmt: [] for fmt in models}
            for fmt, m in models.items():  # warm-up: first calls pick kernels and allocate
                _steps_per_second(m, x.contiguous(memory_format=fmt), train, 1)
            for _ in range(rounds):
                for fmt, m in models.items():
                    speeds[fmt].append(_steps_per_second(m, x.contiguous(memory_format=fmt), train, steps))
            plain = statistics.median(speeds[torch.contiguous_format])
            last = statistics.median(speeds[torch.channels_last])
            kind = "train step" if train else "inference "
            print(f"{arch:<20} {kind}  contiguous {plain:7.1f}  channels_last {last:7.1f}  ratio {last / plain:5.2f}x")


def _generated_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 120), ("valid", 60)):
        for cls, color in (("blue", (40, 60, 200)), ("red", (200, 50, 40))):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = np.clip(np.array(color) + rng.normal(0, 40, (300, 400, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(root / split / cls / f"{i}.jpg")
    return root


def _epoch_seconds(learn) -> float:
    start = time.perf_counter()
    learn.fit(1, 1e-3)
    return time.perf_counter() - start


def bench_precompute(size: int, rounds: int, workdir: Path) -> None:
    if HYMENOPTERA.exists():
        folder, valid, what = HYMENOPTERA, "val", "hymenoptera (244 train / 153 valid photos)"
    else:
        folder, valid, what = _generated_folder(workdir / "images"), "valid", "generated images (240 / 120)"
    print(f"\n== precompute vs frozen full forward: one epoch, efficientnet_lite0 at {size}px, {what} ==")
    dls = ImageDataLoaders.from_folder(folder, valid=valid, size=size, bs=32, batch_tfms=aug_transforms())
    learn = vision_learner(dls, "efficientnet_lite0", path=workdir, progress=False)
    learn.recorder.log_table = False
    start = time.perf_counter()
    precomputed_dls(learn)  # the one-time cost (the disk cache is written here too)
    cache_s = time.perf_counter() - start
    full, cached = [], []
    for _ in range(rounds):
        learn.precompute = False
        full.append(_epoch_seconds(learn))
        learn.feature_cache.clear()  # the frozen epoch moved nothing, so this reloads from disk, not compute
        learn.precompute = True
        cached.append(_epoch_seconds(learn))
    f, c = statistics.median(full), statistics.median(cached)
    print(f"computing the cache (train + valid, once): {cache_s:7.2f} s")
    print(f"epoch, frozen body run on every image:     {f:7.2f} s")
    print(f"epoch, head on precomputed activations:    {c:7.2f} s")
    print(f"per-epoch speed-up: {f / c:.1f}x (goal >= 10x)")
    print(f"the cache pays for itself after {cache_s / (f - c):.1f} epochs")


def bench_recipe(size: int, workdir: Path) -> None:
    if not HYMENOPTERA.exists():
        print(f"\n== recipe: skipped, {HYMENOPTERA} not found ==")
        return
    sys.path.insert(0, str(ROOT / "examples"))
    import lesson1_recipe

    print(f"\n== examples/lesson1_recipe.py on hymenoptera at {size}px ==")
    start = time.perf_counter()
    acc = lesson1_recipe.main(HYMENOPTERA, size=size, workdir=workdir / "recipe")
    print(
        f"recipe wall time {time.perf_counter() - start:.0f} s, validation accuracy after TTA {acc:.4f} (goal >= 0.95)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="batches per timing")
    parser.add_argument("--recipe", action="store_true", help="also time the whole lesson-1 recipe")
    parser.add_argument("--recipe-size", type=int, default=192)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        bench_channels_last(args.size, args.rounds, args.steps)
        bench_precompute(args.size, args.rounds, Path(tmp))
        if args.recipe:
            bench_recipe(args.recipe_size, Path(tmp))


if __name__ == "__main__":
    main()
