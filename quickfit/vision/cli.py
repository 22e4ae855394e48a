"""The vision half of the `quickfit` command: `quickfit train FOLDER` and `quickfit predict MODEL IMAGE...`.

    quickfit train hymenoptera_data --arch efficientnet_lite0 --epochs 5 --size 224 --out bees.qf
    quickfit predict bees.qf photo1.jpg photo2.jpg
    # photo1.jpg: bees (probability 0.981)  [ants 0.019, bees 0.981]

`quickfit.cli` parses the arguments and calls these functions through the vision application's
`AppCLI` (quickfit/vision/app.py); they also work from Python.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quickfit import env
from quickfit.cli_hooks import CommandError
from quickfit.loading import load_learner
from quickfit.seed import set_seed
from quickfit.vision.classification.learner import VisionLearner, vision_learner
from quickfit.vision.core.augment import aug_transforms
from quickfit.vision.core.data import ImageDataLoaders

__all__ = ["train_command", "predict_command", "fine_tune_recipe", "tune_command"]


def _accuracy(learn: VisionLearner, use_tta: bool = False) -> float:
    preds, targs = learn.tta() if use_tta else learn.get_preds(dl=learn.image_dls.valid, progress=False)
    return (preds.argmax(1) == targs).float().mean().item()


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def fine_tune_recipe(learn: VisionLearner, epochs: int, lr: float | None = None, verbose: bool = True) -> float:
    """The course's recipe on a fresh `vision_learner`, in `epochs` epochs in all.

    The head (body frozen) trains first on precomputed activations (1 epoch, or 2 when `epochs` >= 4)
    at `lr` (default: lr_find's valley, kept within [1e-3, 3e-2]); then the unfrozen network trains
    the remaining epochs (one cycle, augmented images) with the head at a tenth of that rate and 10x
    lower rates per earlier layer group (on small datasets higher rates make the validation loss
    climb). `epochs=1` trains the head only. Returns the validation accuracy with TTA."""

    def say(text: str) -> None:
        if verbose and env.is_main_process():
            print(text, flush=True)

    head_epochs = 1 if epochs < 4 else 2
    body_epochs = epochs - head_epochs
    learn.precompute = True
    if lr is None:
        valley = learn.lr_find(show_plot=False).valley
        lr = min(max(valley, 1e-3), 3e-2)
        kept = "" if lr == valley else f", kept within [1e-3, 3e-2]: {lr:.2e}"
        say(f"head: lr_find suggests {valley:.2e}{kept}; {_epochs(head_epochs)} on precomputed activations")
    else:
        say(f"head: lr {lr:.2e}; {_epochs(head_epochs)} on precomputed activations")
    learn.fit_one_cycle(head_epochs, lr)
    learn.precompute = False
    if body_epochs:
        learn.unfreeze()
        lrs = [lr / 1000, lr / 100, lr / 10]
        say(f"whole network: {_epochs(body_epochs)}, rates {lrs[0]:.1e} / {lrs[1]:.1e} / {lrs[2]:.1e}")
        learn.fit_one_cycle(body_epochs, lrs)
    acc = _accuracy(learn, use_tta=True)
    say(f"validation accuracy with TTA: {acc:.4f}")
    return acc


def _valid_folder(path: Path) -> str | None:
    for name in ("valid", "val"):
        if (path / name).is_dir():
            return name
    return None


def _refuse_segmentation_layout(path: Path) -> None:
    """A segmentation data set (`images/` + `labels/` or `masks/`, often `codes.txt`) is not a folder of classes:
    training "images vs labels" would reach accuracy 1.0 and mean nothing."""
    masks = next((n for n in ("labels", "masks", "label", "mask") if (path / n).is_dir()), None)
    if (path / "codes.txt").is_file() or ((path / "images").is_dir() and masks):
        raise CommandError(
            f"{path} looks like a segmentation data set (images/ and {masks or 'masks'}/, codes.txt), not folders of "
            "classes: `quickfit train` trains image classifiers. Train a U-Net in Python instead: "
            "SegmentationDataLoaders.from_folders + unet_learner (docs/segmentation.md)"
        )


def check_arch(arch: str) -> None:
    """Refuse an unknown architecture before any data is read (a bad argument: exit 2)."""
    from quickfit.vision.models import ARCHS

    if arch not in ARCHS:
        raise CommandError(f"--arch {arch!r} is not an architecture; known: {', '.join(sorted(ARCHS))}")


def learner_for_folder(
    path: str | Path,
    arch: str = "efficientnet_lite0",
    size: int = 224,
    bs: int = 32,
    seed: int = 42,
    progress: bool | None = None,
    learner_path: str | Path = ".",
) -> VisionLearner:
    """A fresh `vision_learner` on an image folder: `train/<class>/` and `valid/` (or `val/`) `<class>/`
    subfolders, or just `<class>/` subfolders of which a random 20% becomes the validation set (or
    `train/<class>/` alone). What `quickfit train` and `quickfit lr-find` start from."""
    path = Path(path)
    check_arch(arch)
    _refuse_segmentation_layout(path)
    set_seed(seed)
    dls = _folder_dls(path, size, bs, seed)
    if env.is_main_process():  # once under torchrun, not once per rank
        print(f"{dls}; classes: {', '.join(map(str, dls.vocab))}")
    return vision_learner(dls, arch, path=learner_path, progress=progress)


def _folder_dls(path: Path, size: int, bs: int, seed: int) -> ImageDataLoaders:
    tfms = aug_transforms()
    valid = _valid_folder(path)
    if valid is not None:
        return ImageDataLoaders.from_folder(path, valid=valid, size=size, bs=bs, batch_tfms=tfms)
    train = "train" if (path / "train").is_dir() else "."
    return ImageDataLoaders.from_folder(path, train=train, valid_pct=0.2, seed=seed, size=size, bs=bs, batch_tfms=tfms)


def tune_command(path: str | Path, arch: str = "efficientnet_lite0", epochs: int = 3, size: int = 224, seed: int = 42):
    """What `quickfit tune FOLDER` searches: each trial runs `fine_tune_recipe` (`epochs` in all) on a fresh
    `vision_learner` at the head's rate `lr`, with weight decay `wd` and head dropout `ps`; returns a
    `TuneSpec` whose objective is the validation accuracy with TTA. The images are listed once."""
    from quickfit.cli_hooks import TuneSpec
    from quickfit.tuning import LogUniform, Uniform

    path = Path(path)
    set_seed(seed)
    dls = _folder_dls(path, size, 32, seed)

    def objective(params: dict) -> float:
        set_seed(seed)
        learn = vision_learner(dls, arch, ps=params["ps"], wd=params["wd"], progress=False)
        learn.recorder.log_table = False
        return fine_tune_recipe(learn, epochs, lr=params["lr"], verbose=False)

    space = {"lr": LogUniform(1e-4, 3e-2), "wd": LogUniform(1e-5, 0.1), "ps": Uniform(0.0, 0.7)}
    return TuneSpec(objective, space, "accuracy", "maximize")


def train_command(
    path: str | Path,
    arch: str = "efficientnet_lite0",
    epochs: int = 5,
    size: int = 224,
    out: str | Path = "model.qf",
    bs: int = 32,
    seed: int = 42,
    lr: float | None = None,
    progress: bool | None = None,
) -> Path:
    """Train a classifier on an image folder (see `learner_for_folder`) with `fine_tune_recipe` (`epochs` in
    all, the head's rate `lr` or lr_find's) and export it to `out`. A PASCAL VOC folder trains a detector instead
    (quickfit/vision/detection/cli.py)."""
    from quickfit.vision.detection.cli import detection_train_command, is_voc_folder

    if is_voc_folder(path):
        return detection_train_command(path, arch, epochs, size, out, seed=seed, lr=lr, progress=progress)
    out = Path(out).resolve()
    # The precomputed activations and any checkpoint go to a temporary folder, removed at the end: the
    # command leaves the model it was asked for and nothing else (no tmp/ in the user's folder).
    with tempfile.TemporaryDirectory(prefix="quickfit-train-") as work:
        learn = learner_for_folder(path, arch, size, bs, seed, progress, learner_path=work)
        fine_tune_recipe(learn, epochs, lr=lr)
        learn.feature_cache.clear()
        f = learn.export(out)
    print(f"model saved to {f}")
    return f


def learner_for_lr_find(path: str | Path, arch: str = "efficientnet_lite0", size: int = 224, seed: int = 42,
                    progress: bool | None = None) -> VisionLearner:  # fmt: skip
    """What `quickfit lr-find FOLDER` sweeps: the head on the frozen pretrained body (the recipe's first stage)."""
    return learner_for_folder(path, arch, size, seed=seed, progress=progress, learner_path=tempfile.gettempdir())


def predict_command(model: str | Path, images: Sequence[str | Path]) -> list[tuple[Path, Any]]:
    """Print one line per image, as the model's target kind reads its prediction (`target.report`):
    `label (probability p)  [class p, ...]` for classes, the values for regression, points in pixels,
    boxes with labels; a mask or a generated image is written next to the current folder's files
    (`<image>_mask.png`, `<image>_pred.png`). Returns `(image, learn.predict(image))` per image."""
    learn = load_learner(model)
    images = [Path(i) for i in images]
    target = learn.image_dls.target
    results = []
    for img, result in zip(images, learn.predict_many(images)):
        print(f"{img}: {target.report(result, img, Path.cwd())}")
        results.append((img, result))
    return results
