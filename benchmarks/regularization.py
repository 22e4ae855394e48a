"""MixUp, CutMix, label smoothing and SWA on hymenoptera; oversampling on a made-unbalanced copy.

    python benchmarks/regularization.py                           # 224 px, 6 epochs, seeds 0 and 1
    python benchmarks/regularization.py --size 128 --epochs 3     # the reduced run of docs/tuning.md

1. Each regime trains a fresh `vision_learner(dls, "efficientnet_lite0")` (ImageNet weights, body
   frozen, augmented images, no precompute so every batch can be mixed) with `fit_one_cycle(epochs,
   lr)`: the same budget for all; validation accuracy after the fit (SWA: of the averaged weights).
   Regimes: baseline, MixUp(0.4), CutMix(1.0), LabelSmoothingCrossEntropy(0.1), SWA over the last
   half of the epochs at lr / 10.
2. Oversampling: the training folder with 10% of the bees kept (the ants all), validation untouched;
   the head trains on precomputed activations for `--epochs` epochs with and without
   `dls.train.oversampled()`; the figure is the balanced accuracy (mean of the two classes' recalls).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import quickfit as qf
from quickfit.vision import ImageDataLoaders, aug_transforms, vision_learner

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
HYMENOPTERA = DATA / "hymenoptera" / "hymenoptera_data"


def regime(name: str, epochs: int, lr: float):
    """(callbacks, loss) of a regime."""
    if name == "mixup":
        return [qf.MixUp(0.4)], None
    if name == "cutmix":
        return [qf.CutMix(1.0)], None
    if name == "label_smoothing":
        return [], qf.LabelSmoothingCrossEntropy(0.1)
    if name == "swa":
        return [qf.SWA(start_epoch=epochs // 2, lr=lr / 10)], None
    return [], None


def accuracy(learn) -> tuple[float, float]:
    """(accuracy, balanced accuracy) on the validation images."""
    preds, targs = learn.get_preds(dl=learn.image_dls.valid, progress=False)
    hit = preds.argmax(1) == targs
    recalls = [hit[targs == c].float().mean().item() for c in targs.unique()]
    return hit.float().mean().item(), float(np.mean(recalls))


def run_regimes(args) -> None:
    dls = ImageDataLoaders.from_folder(HYMENOPTERA, valid="val", size=args.size, bs=32, batch_tfms=aug_transforms())
    print(f"{dls}\nregime            " + "  ".join(f"seed {s}" for s in args.seeds) + "   mean    time")
    for name in args.regimes:
        accs, start = [], time.perf_counter()
        for seed in args.seeds:
            qf.set_seed(seed)
            cbs, loss = regime(name, args.epochs, args.lr)
            learn = vision_learner(dls, "efficientnet_lite0", loss_func=loss, metrics=[qf.accuracy], progress=False)
            learn.recorder.log_table = False
            learn.fit_one_cycle(args.epochs, args.lr, cbs=cbs)
            accs.append(accuracy(learn)[0])
        took = time.perf_counter() - start
        cells = "  ".join(f"{a:.4f}" for a in accs)
        print(f"{name:<16}  {cells}  {np.mean(accs):.4f}  {took:.0f} s", flush=True)


def unbalanced_copy(dst: Path, keep: float = 0.1, seed: int = 0) -> Path:
    """hymenoptera with `keep` of the training bees (symbolic links), validation as it is."""
    rng = random.Random(seed)
    for split in ("train", "val"):
        for cls in ("ants", "bees"):
            files = sorted((HYMENOPTERA / split / cls).iterdir())
            if split == "train" and cls == "bees":
                files = rng.sample(files, max(1, round(keep * len(files))))
            (dst / split / cls).mkdir(parents=True)
            for f in files:
                (dst / split / cls / f.name).symlink_to(f)
    return dst


def run_oversampling(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = unbalanced_copy(Path(tmp) / "unbalanced")
        n = {c: len(list((path / "train" / c).iterdir())) for c in ("ants", "bees")}
        dls = ImageDataLoaders.from_folder(path, valid="val", size=args.size, bs=32)
        print(f"\nunbalanced training set: {n}; validation as it is")
        print("oversample  seed  accuracy  balanced accuracy")
        for oversample in (False, True):
            for seed in args.seeds:
                qf.set_seed(seed)
                learn = vision_learner(dls, "efficientnet_lite0", metrics=[qf.accuracy], path=tmp, progress=False)
                learn.recorder.log_table = False
                learn.precompute = True
                if oversample:
                    learn.dls.train = learn.dls.train.oversampled()
                learn.fit_one_cycle(args.epochs, args.lr)
                acc, balanced = accuracy(learn)
                print(f"{oversample!s:<10}  {seed:>4}  {acc:.4f}    {balanced:.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--regimes", nargs="+", default=["baseline", "mixup", "cutmix", "label_smoothing", "swa"])
    parser.add_argument("--skip-oversampling", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.regimes:
        run_regimes(args)
    if not args.skip_oversampling:
        run_oversampling(args)


if __name__ == "__main__":
    main()
