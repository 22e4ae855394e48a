"""small_image_learner: a small-image network (resnet9, wrn_22, darknet) trained from scratch, whole.

    import quickfit as qf
    from quickfit.vision import ImageDataLoaders, small_image_learner, flip_tta

    dls = ImageDataLoaders.from_folder("cifar10", valid="test", small=True)      # decoded once, in memory
    learn = small_image_learner(dls, "resnet9", opt_func=qf.SGD, loss_func=qf.LabelSmoothingCrossEntropy(0.2))
    learn.fit_phases([qf.Phase(4, lr=0.4 * qf.combined_cos(0.25, 0.1, 1, 0.01), dls=dls.new(size=24)),
                      qf.Phase(6, lr=0.4 * qf.SchedCos(0.6, 0.01), dls=dls)])      # 24 px, then 32 px
    preds, targets = flip_tta(learn)          # the mean of the images and their mirror images
    learn.export("cifar10.qf")                # qf.load_learner("cifar10.qf").predict("frog.jpg")

Unlike `vision_learner` the model is the published network with its own head (no extra BatchNorm and
dropout layers), every weight random and trained, and the data keeps the statistics of its own
training images (`set_data` and the phases' data do not replace them). The learner is a
`VisionLearner` (layer groups early body, late body, head; `set_data`, `tta`, interpretation), and
the export records a `SmallImageModelConfig`, which `load_learner` builds by the architecture's name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from quickfit.callbacks.core import Callback
from quickfit.configs import ModelConfig, export_record
from quickfit.metrics import accuracy
from quickfit.optim import Adam
from quickfit.vision.classification.learner import VisionLearner
from quickfit.vision.models.registry import get_arch

__all__ = ["SmallImageModelConfig", "small_image_learner", "flip_tta", "SMALL_ARCHS"]

SMALL_ARCHS = ("resnet9", "wrn_22", "darknet")


@dataclass
class SmallImageModelConfig(ModelConfig):
    """A registered small-image network by name; `width` its width knob (None: the published width:
    resnet9's 64 channels, wrn_22's k=6, darknet's 32). `normalize=False`: the model expects the data's
    own statistics, which `set_data` keeps."""

    type: ClassVar[str] = "small_image_model"
    arch: str
    n_out: int
    width: int | None = None
    channels_last: bool = True
    normalize: bool = False

    def build(self) -> nn.Module:
        spec = get_arch(self.arch)
        model = spec.build(pretrained=False, n_out=self.n_out, **({} if self.width is None else {"width": self.width}))
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


def small_image_learner(
    dls,
    arch: str = "resnet9",
    width: int | None = None,
    metrics: Iterable | None = None,
    loss_func: Callable | None = None,
    opt_func: Callable = Adam,
    lr: float | slice | Sequence[float] = 1e-3,
    wd: float | None = None,
    channels_last: bool = True,
    cbs: Iterable[Callback] = (),
    path: str | Path = ".",
    model_dir: str | Path = "models",
    train_bn: bool = True,
    slice_div: float = 3.0,
    progress: bool | None = None,
    device: torch.device | str | None = None,
) -> VisionLearner:
    """A `VisionLearner` training the whole `arch` (one of SMALL_ARCHS, or any registered architecture
    whose builder takes `n_out`) from random weights on `dls` (small images; `dls.c` classes).
    `metrics` defaults to accuracy, `loss_func` to the data's (cross-entropy)."""
    spec = get_arch(arch)
    n_out = getattr(dls, "c", None)
    if not n_out:
        raise ValueError("small_image_learner: the data does not say how many classes it has (dls.c)")
    config = SmallImageModelConfig(spec.name, int(n_out), None if width is None else int(width), bool(channels_last))
    model = config.build()
    if loss_func is None:
        loss_func = getattr(dls, "loss_func", None) or nn.CrossEntropyLoss()
    learn = VisionLearner(
        dls,
        model,
        spec,
        loss_func=loss_func,
        opt_func=opt_func,
        lr=lr,
        wd=wd,
        metrics=[accuracy] if metrics is None else metrics,
        cbs=cbs,
        path=path,
        model_dir=model_dir,
        train_bn=train_bn,
        slice_div=slice_div,
        progress=progress,
        device=device,
    )
    learn.export_info = export_record("vision", VisionLearner.export_task(loss_func), config)
    return learn


def flip_tta(learn, dl=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`(preds, targets)`: the mean of the predictions on `dl` (default: the validation images) and on
    the same images mirrored left-right; two forward passes, no randomness (the test-time augmentation
    that pays on CIFAR: about +0.3 to +0.5 points)."""
    dl = learn.dls.valid if dl is None else dl
    preds, targets = learn.get_preds(dl=dl)
    flipped, _ = learn.get_preds(dl=_Flipped(dl))
    return (preds + flipped) / 2, targets


class _Flipped:
    """A loader's batches with the images (the first item, [b, c, h, w]) mirrored left-right."""

    def __init__(self, dl) -> None:
        self.dl = dl

    def __len__(self) -> int:
        return len(self.dl)

    def __iter__(self):
        for batch in self.dl:
            yield (batch[0].flip(3), *batch[1:])
