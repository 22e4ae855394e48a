"""The largest object of each image (the course's lesson 8) on coco_tiny, beside the two trivial baselines.

    python examples/largest_object.py ../shared/data/coco_tiny                 # 128 px, seed 42, 10 epochs
    python examples/largest_object.py PATH --epochs 5 --show docs/img/largest_object_results.png

The data is fast.ai's coco_tiny (200 COCO images of 128x128, 6 classes, `train.json` + `train/`), each image
reduced to its largest box (`largest_only=True`) and split 80/20 with a fixed seed. The recipe is the
library's plain one: `bbox_learner` (pretrained EfficientNet-Lite0, a head of 4 box + 6 class outputs, the
lesson's L1 + cross-entropy loss), `lr_find()`'s suggestion, `fine_tune`. It prints the validation class
accuracy and box L1 in pixels next to the baselines a model must beat: always the majority class of the
training set, and always the training set's mean box.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from quickfit.vision import DetectionDataLoaders, bbox_learner


def baselines(dls: DetectionDataLoaders) -> dict:
    """Class accuracy of the training set's majority class and box L1 (pixels of the transformed image) of
    its mean box, on the validation set (boxes as the model sees them: through the item transform)."""
    ys = {}
    for name, dl in (("train", dls.plain_dl()), ("valid", dls.valid)):
        ys[name] = torch.cat([y[:, 0].cpu() for _, y in dl])
    tr, va = ys["train"], ys["valid"]
    h, w = dls.size
    half = torch.tensor([w / 2, h / 2, w / 2, h / 2])
    majority = tr[:, 4].mode().values
    return {
        "majority_class": dls.vocab[int(majority)],
        "majority_accuracy": float((va[:, 4] == majority).float().mean()),
        "mean_box_l1_px": float(((va[:, :4] - tr[:, :4].mean(0)).abs() * half).mean()),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", help="the coco_tiny folder (train.json and train/)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10, help="fine_tune epochs after the one frozen epoch")
    ap.add_argument("--bs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=42, help="the 80/20 split and the weights' initialisation")
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--show", default=None, help="save show_results() here (a PNG)")
    ap.add_argument("--out", default=None, help="export the learner here")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    path = Path(args.path)
    dls = DetectionDataLoaders.from_coco(
        path / "train.json", path / "train", valid_pct=0.2, seed=args.seed, largest_only=True, size=args.size,
        bs=args.bs, num_workers=args.workers,
    )  # fmt: skip
    print(dls)
    base = baselines(dls)
    start = time.time()
    learn = bbox_learner(dls, args.arch)
    lr = learn.lr_find(show_plot=False).valley
    print(f"lr_find valley: {lr:.2e}")
    learn.fine_tune(args.epochs, lr)
    wall = time.time() - start
    _, accuracy, l1, iou = learn.validate()
    result = {"class_accuracy": accuracy, "box_l1_px": l1, "box_iou": iou, "lr": lr, "wall_s": wall, **base}
    print(f"\nvalidation ({len(dls.valid_items.paths)} images, {args.size} px):")
    majority = f"baseline (always {base['majority_class']})"
    print(f"  class accuracy  {accuracy:6.1%}   {majority:29s} {base['majority_accuracy']:6.1%}")
    print(f"  box L1 (px)     {l1:6.1f}   {'baseline (the mean box)':29s} {base['mean_box_l1_px']:6.1f}")
    print(f"  box IoU         {iou:6.3f}")
    print(f"  wall time {wall:.0f} s (lr_find + fine_tune), load average {os.getloadavg()[0]:.1f}")
    if args.show:
        learn.show_results(path=args.show)
    if args.out:
        learn.export(Path(args.out).absolute())
    return result


if __name__ == "__main__":
    main()
