"""CamVid road scenes: a U-Net on pretrained EfficientNet-Lite0, the course's recipe, scored at full size.

    python examples/camvid.py ../shared/data/camvid_segnet            # 240x320, 10 frozen + 20 unfrozen epochs
    python examples/camvid.py PATH --frozen 4 --unfrozen 4 --size 240 320 --lr 3e-3
    python examples/camvid.py PATH --weights 0 --dice 0                # plain pixel cross-entropy

The data is SegNet's CamVid (480x360, 11 classes + void, code 11): `train/` + `trainannot/` for
training, `val/` + `valannot/` for validation. Images are resized to `--size` (half resolution by
default), augmented with `aug_transforms()` (flip, rotation, zoom, warp, lighting: the masks get the
same geometry, nearest-neighbour). The recipe: the decoder trains on the frozen encoder with
`fit_one_cycle(frozen, lr, pct_start=0.9)`, then everything with `slice(lr / 400, lr / 4)`. The loss is
the void-ignoring pixel cross-entropy weighted per class (`class_weights(dls, power=0.75)`: median
frequency balancing, damped) plus a soft Dice term (`dice=1`): with plain cross-entropy the small
classes (pole, sign, fence, pedestrian, bicyclist) are never predicted and the mean IoU stays near 0.45.

The score is computed on the validation masks at their original 480x360 size: predictions are
brought back to each image's size (the item transform undone) and compared with the stored masks,
void pixels excluded (`SegmentationInterpretation`). Goal: mean IoU >= 0.55 and pixel accuracy >= 88%.
It prints the per-class IoU table, the wall time and the CPU time of the process.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from quickfit.vision import (
    Resize,
    SegmentationDataLoaders,
    SegmentationInterpretation,
    SegmentationLoss,
    aug_transforms,
    class_weights,
    unet_learner,
)

CODES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car"]
CODES += ["Pedestrian", "Bicyclist", "Void"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid_segnet"
    ap.add_argument("path", nargs="?", default=str(default))
    ap.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    ap.add_argument("--frozen", type=int, default=10, help="epochs with the encoder frozen")
    ap.add_argument("--unfrozen", type=int, default=20, help="epochs with everything training")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--lr-find", action="store_true", help="use lr_find's valley instead of --lr")
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast while the encoder is frozen")
    ap.add_argument("--weights", type=float, default=0.75, help="class-weight power (0: none, 1: SegNet's)")
    ap.add_argument("--dice", type=float, default=1.0, help="weight of the soft Dice term (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export", default=None, help="write the trained learner to this file")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    start, cpu0 = time.perf_counter(), time.process_time()

    dls = SegmentationDataLoaders.from_folders(
        args.path,
        images="train",
        masks="trainannot",
        valid_images="val",
        valid_masks="valannot",
        codes=CODES,
        void_code=11,
        item_tfms=Resize(tuple(args.size)),
        batch_tfms=aug_transforms(),
        bs=args.bs,
        num_workers=args.workers,
    )
    print(dls, flush=True)
    weight = class_weights(dls, power=args.weights) if args.weights else None
    loss = SegmentationLoss(11, weight=weight, dice=args.dice)
    print(loss, flush=True)
    learn = unet_learner(dls, args.arch, pretrained=True, loss_func=loss, path=os.environ.get("TMPDIR", "/tmp"))
    if args.bf16:
        learn.to_bf16()
    if args.lr_find:
        args.lr = float(learn.lr_find().valley)
        print(f"lr_find: valley {args.lr:.2e}", flush=True)
    learn.fit_one_cycle(args.frozen, args.lr, pct_start=0.9)
    learn.to_fp32()
    if args.unfrozen:
        learn.unfreeze()
        learn.fit_one_cycle(args.unfrozen, slice(args.lr / 400, args.lr / 4))
    train_s = time.perf_counter() - start

    interp = SegmentationInterpretation.from_learner(learn)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    print(f"\nvalidation: {len(dls.valid_items.paths)} images scored at their original size")
    print(interp.iou_table())
    print(
        f"wall time {wall / 60:.1f} min (training {train_s / 60:.1f} min), CPU time of this process {cpu / 60:.1f} min"
    )
    if args.export:
        print("exported to", learn.export(Path(args.export).absolute()))
    return {"mean_iou": interp.mean_iou, "pixel_accuracy": interp.pixel_accuracy, "wall_s": wall, "cpu_s": cpu}


if __name__ == "__main__":
    result = main()
    sys.exit(0 if result["mean_iou"] >= 0.55 and result["pixel_accuracy"] >= 0.88 else 1)
