"""Every object of each image (the course's lesson 9) on bccd: a RetinaNet over EfficientNet-Lite0, measured by mAP.

    python examples/detection.py ../shared/data/bccd --out bccd.qf                 # the defaults: 30 minutes, 2 cores
    python examples/detection.py PATH --out bccd.qf --minutes 5 --show results.png
    python examples/detection.py PATH --out /tmp/t.qf --limit 16 --epochs 1 --head-epochs 1   # a smoke run

bccd is PASCAL VOC: 364 blood-smear photos of 640x480 with red and white blood cells and platelets; the VOC
split trains on `trainval` (292 images) and tests on `test` (72). The recipe: images squished to 240x320
(the cells are then 20 to 130 pixels: pyramid levels P3-P5, anchors 3 * stride), the 8 flips and rotations
of a microscope slide plus zoom and lighting; the pyramid and subnets first on the frozen pretrained body,
then everything with discriminative rates. The epochs of the second phase are fitted to the time left
(`--minutes`, measured on the first one). It prints the test set's AP of each class at IoU 0.5 and COCO's AP
averaged over IoU 0.5:0.95, saves a picture of test images with their boxes beside the predictions, and
exports the learner to `--out`.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

import quickfit as qf
from quickfit.vision import DetectionDataLoaders, detection_aug_transforms, detection_learner
from quickfit.vision.detection.metrics import detection_ap


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", help="the bccd folder (BCCD/ with JPEGImages, Annotations, ImageSets/Main)")
    ap.add_argument("--out", required=True, help="export the learner here")
    ap.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--head-epochs", type=int, default=3, help="epochs of the pyramid and subnets on the frozen body")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of the whole network (default: fit --minutes)")
    ap.add_argument("--minutes", type=float, default=30.0, help="training time for both phases together")
    ap.add_argument("--limit", type=int, default=None, help="train and test on the first N images of each (smoke)")
    ap.add_argument("--show", default=None, help="the picture of predictions beside the truth (default: next to --out)")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    qf.set_seed(args.seed)
    dls = DetectionDataLoaders.from_voc(args.path, train="trainval", valid="test", size=tuple(args.size), bs=args.bs,
                                        batch_tfms=detection_aug_transforms(flip_vert=True), cache=True)  # fmt: skip
    if args.limit:
        dls = type(dls)(_first(dls.train_items, args.limit), _first(dls.valid_items, args.limit), dls.vocab,
                        dls.item_tfm, [*dls.batch_tfms, dls.normalize], args.bs, target=dls.target)  # fmt: skip
    print(dls)
    learn = detection_learner(dls, "efficientnet_lite0", levels=(3, 4, 5), anchor_scale=3.0)
    start = time.time()
    learn.fit_one_cycle(args.head_epochs, args.lr)
    learn.unfreeze()
    epochs = args.epochs
    if epochs is None:  # time the first epoch of the whole network, then fit the rest into what is left
        first = time.time()
        learn.fit_one_cycle(1, slice(args.lr / 10, args.lr))
        left = args.minutes * 60 - (time.time() - start)
        epochs = max(1, int(0.85 * left / (time.time() - first)))  # a margin: later epochs ran slower under load
    learn.fit_one_cycle(epochs, slice(args.lr / 10, args.lr))
    wall = time.time() - start

    preds, targs = learn.get_preds()
    ap_all = detection_ap(preds, targs, n_classes=len(dls.vocab))  # [10 IoU thresholds, classes]
    print(f"\ntest set: {len(dls.valid_items.paths)} images, {int((~targs[..., 0].isnan()).sum())} boxes")
    print(f"{'class':<12}{'AP@0.5':>8}{'AP@[.5:.95]':>13}")
    for name, a50, a in zip(dls.vocab, ap_all[0].tolist(), ap_all.mean(0).tolist()):
        print(f"{name:<12}{a50:8.3f}{a:13.3f}")
    map50, coco = float(ap_all[0].nanmean()), float(ap_all.nanmean(1).mean())
    print(f"{'mean':<12}{map50:8.3f}{coco:13.3f}")
    print(f"training: {wall / 60:.1f} min ({args.head_epochs} frozen + {epochs + (args.epochs is None)} epochs), "
          f"load average {os.getloadavg()[0]:.1f}, {torch.get_num_threads()} threads")  # fmt: skip
    out = learn.export(Path(args.out).absolute())
    show = Path(args.show) if args.show else out.with_suffix(".png")
    learn.show_results(max_n=6, ncols=2, path=show)
    print(f"exported {out}; predictions beside the truth in {show}")
    return {"map50": map50, "map": coco, "per_class_ap50": dict(zip(dls.vocab, ap_all[0].tolist())), "wall_s": wall}


def _first(items, n: int):
    return type(items)(items.paths[:n], items.targets[:n])


if __name__ == "__main__":
    main()
