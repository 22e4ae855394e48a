"""`quickfit train` on a PASCAL VOC folder: a detector (quickfit/vision/cli.py hands such folders over here).

    quickfit train bccd --epochs 20 --size 320 --out cells.qf     # Annotations/, JPEGImages/, ImageSets/Main/
    quickfit predict cells.qf photo.jpg                           # photo.jpg: 14 boxes: RBC (12, 40, 88, 120); ...

The image sets name the split: `trainval` / `test`, else `train` / `val` (or `test`), else a random 20% of
`trainval` (or `train`) validates. The recipe is `detection_learner`'s defaults with `fine_tune`: a quarter of
the epochs (at least one) train the pyramid and subnets on the frozen body, the rest the whole network.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from quickfit.seed import set_seed
from quickfit.vision.detection.voc import voc_root

__all__ = ["is_voc_folder", "voc_splits", "detection_train_command"]


def is_voc_folder(path: str | Path) -> bool:
    """Whether `path` is (or holds exactly one) PASCAL VOC folder."""
    try:
        voc_root(path)
    except (FileNotFoundError, ValueError, OSError):
        return False
    return True


def voc_splits(root: Path) -> tuple[str, str | None]:
    """(training set, validation set or None: a random 20%) among the image sets of `root`."""
    sets = {p.stem for p in (root / "ImageSets" / "Main").glob("*.txt")}
    for train, valid in (("trainval", "test"), ("train", "val"), ("train", "test")):
        if {train, valid} <= sets:
            return train, valid
    return ("trainval" if "trainval" in sets else "train"), None


def detection_train_command(
    path: str | Path,
    arch: str = "efficientnet_lite0",
    epochs: int = 5,
    size: int = 224,
    out: str | Path = "model.qf",
    bs: int = 8,
    seed: int = 42,
    lr: float | None = None,
    progress: bool | None = None,
) -> Path:
    """Train a detector on the VOC folder `path` and export it to `out`; prints the validation mAP."""
    from quickfit.vision.detection.data import DetectionDataLoaders
    from quickfit.vision.detection.learner import detection_learner

    root = voc_root(path)
    train, valid = voc_splits(root)
    set_seed(seed)
    dls = DetectionDataLoaders.from_voc(root, train=train, valid=valid, seed=seed, size=size, bs=bs)
    print(f"{dls}; classes: {', '.join(dls.vocab)}; trained on {train!r}, validated on {valid or 'a random 20%'!r}")
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="quickfit-train-") as work:  # no models/ left in the user's folder
        learn = detection_learner(dls, arch, path=work, progress=progress)
        head = max(1, epochs // 4)
        learn.fine_tune(max(1, epochs - head), lr or 2e-3, freeze_epochs=head, lr_mult=10)
        f = learn.export(out)
    print(f"model saved to {f}")
    return f
