"""The course's eight steps to a world-class image classifier, on a folder of photos.

    python examples/lesson1_recipe.py /work/shared/data/hymenoptera/hymenoptera_data

The folder needs train/<class>/ and val/ (or valid/) <class>/ subfolders. Every rate is the one
`lr_find` suggests, as typed in the course; the measured results (hymenoptera, EfficientNet-Lite2 at
224px) are in docs/vision.md. The steps, from the seeds (lesson 2):

  1. data augmentation on, precompute=True
  2. lr_find() for the highest learning rate where the loss still clearly improves
  3. train the head on the precomputed activations for 1-2 epochs
  4. precompute off: 2-3 epochs with augmentation, fit_sgdr with cycle_len=1
  5. unfreeze all layers
  6. earlier layer groups get 3x-10x lower rates than the next (10x for ImageNet-like photos)
  7. lr_find() again
  8. train the whole network with fit_sgdr(3, 1, cycle_mult=2)
  and then predict with test-time augmentation.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import quickfit as qf
from quickfit.vision import ImageDataLoaders, aug_transforms, vision_learner

WORKDIR = Path(tempfile.gettempdir()) / "quickfit-lesson1"


def last_accuracy(learn) -> float:
    "Validation accuracy of the last epoch (no extra pass over the images)."
    return learn.recorder.last_valid[1]


def tta_accuracy(learn) -> float:
    preds, targs = learn.tta()
    return (preds.argmax(1) == targs).float().mean().item()


def main(
    path: Path,
    arch: str = "efficientnet_lite2",
    size: int = 224,
    bs: int = 32,
    seed: int = 42,
    out: Path | None = None,
    workdir: Path = WORKDIR,
) -> float:
    qf.set_seed(seed)
    start = time.perf_counter()
    valid = "val" if (path / "val").is_dir() else "valid"

    def report(step: str, acc: float) -> None:
        print(f"[{time.perf_counter() - start:6.1f}s] {step:<58} accuracy {acc:.4f}", flush=True)

    # 1. Augmentation (side-on photos: horizontal flips, small rotations, zoom, lighting) and precompute.
    dls = ImageDataLoaders.from_folder(path, valid=valid, size=size, bs=bs, batch_tfms=aug_transforms())
    # The learner's files (precomputed activations in tmp/, checkpoints in models/) go to `workdir`,
    # not next to the images: the data folder may be shared or read-only.
    learn = vision_learner(dls, arch, precompute=True, progress=False, path=workdir)
    report(f"1. {arch}, {size}px, precomputed activations, new head", learn.validate()[1])

    # 2. The learning-rate finder, on the head (cheap with precompute): its suggestion as it is.
    lr = learn.lr_find(show_plot=False).valley
    print(f"   lr_find: head learning rate {lr:.2e}")

    # 3. The head on precomputed activations.
    learn.fit_one_cycle(2, lr)
    report("3. head trained on precomputed activations (2 epochs)", last_accuracy(learn))

    # 4. Precompute off: the same head, now seeing augmented images.
    learn.precompute = False
    learn.fit_sgdr(2, cycle_len=1, lr_max=lr)
    report("4. precompute off, augmentation, fit_sgdr(2, cycle_len=1)", last_accuracy(learn))

    # 5-7. Unfreeze (the body's BatchNorm statistics stay: learn.bn_freeze, on by default for a
    # pretrained body), lr_find again for the whole network, and 10x lower rates per earlier group.
    # The sweep of a trained network is flat, then climbs; lr_find suggests a tenth of the rate at its
    # lowest point (see quickfit.callbacks.lr_finder.suggest_lrs), which is what keeps the head's work.
    learn.unfreeze()
    found = learn.lr_find(show_plot=False).valley
    lrs = [found / 100, found / 10, found]
    print(f"   lr_find (unfrozen): {found:.2e}; discriminative rates {', '.join(f'{x:.1e}' for x in lrs)}")

    # 8. The whole network, cycles of 1, 2 and 4 epochs.
    learn.fit_sgdr(3, cycle_len=1, cycle_mult=2, lr_max=lrs)
    report("8. unfrozen, fit_sgdr(3, 1, cycle_mult=2)", last_accuracy(learn))

    acc = tta_accuracy(learn)
    report("   with test-time augmentation (tta, n=4)", acc)
    if out is not None:
        print(f"   exported to {learn.export(out)}")
    return acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="folder with train/ and val/ (or valid/) class subfolders")
    parser.add_argument("--arch", default="efficientnet_lite2")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--bs", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None, help="export the learner to this file")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="where the learner writes its files")
    args = parser.parse_args()
    main(args.path, args.arch, args.size, args.bs, args.seed, args.out, args.workdir)
