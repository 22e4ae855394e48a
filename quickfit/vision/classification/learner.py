"""vision_learner: a pretrained body, a new head sized from the data, three layer groups, body frozen.

    import quickfit as qf
    from quickfit.vision import ImageDataLoaders, aug_transforms, vision_learner

    dls = ImageDataLoaders.from_folder(path, valid="val", size=224, batch_tfms=aug_transforms())
    learn = vision_learner(dls, "efficientnet_lite0", metrics=[qf.accuracy], precompute=True)
    learn.fit(2, 1e-2)                    # the head, on cached body activations
    learn.precompute = False              # same head, now with augmentation
    learn.fit_sgdr(3, cycle_len=1, lr_max=1e-2)
    learn.unfreeze()
    learn.fit_sgdr(3, 1, lr_max=[1e-4, 1e-3, 1e-2], cycle_mult=2)
    preds, targs = learn.tta()

The model is `VisionModel(body, head)`: the body is the architecture cut before its pooling; the head
is `AdaptiveConcatPool2d, Flatten, BatchNorm1d, Dropout(ps/2), Linear(->512), ReLU, BatchNorm1d,
Dropout(ps), Linear(->n_out)`. The layer groups are early body, late body and head (the split point
comes from the architecture's registry entry), so `lr=slice(1e-4, 1e-2)` or a list of three rates
gives discriminative learning rates. The data is normalized with the statistics the pretrained
weights expect (ImageNet's for ResNets, the TF-Lite convention for EfficientNet-Lite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from quickfit.callbacks.core import Callback
from quickfit.configs import Task, check_outputs, export_record
from quickfit.data.core import first_batch
from quickfit.learner import Learner
from quickfit.metrics import accuracy
from quickfit.optim import Adam
from quickfit.vision.classification.model import (
    FrozenBatchNorm,
    VisionModel,
    VisionModelConfig,
    _body_is_frozen,
    vision_splitter,
)
from quickfit.vision.classification.precompute import PrecomputedDataLoaders, precomputed_dls
from quickfit.vision.classification.targets import MultiCategory
from quickfit.vision.core.data import image_dls_from_export
from quickfit.vision.core.labels import set_label_prior
from quickfit.vision.models.registry import ArchSpec, get_arch

__all__ = ["VisionLearner", "vision_learner", "ImagesTask"]


_LOSSES = {"cross_entropy": nn.CrossEntropyLoss, "bce_with_logits": nn.BCEWithLogitsLoss, "mse": nn.MSELoss}


class VisionLearner(Learner):
    """A Learner that also knows its architecture: adds `precompute`, `tta`, `set_data`, and predicts,
    shows and test-time augments as the data's target says (`dls.target`: labels, masks, points, images).

    `image_dls` are the images; `dls` is the same object unless precompute is on, when it serves the
    cached body activations instead (and hands `test_dl` / `decode_pred` over to `image_dls`).
    `splitter` defaults to three layer groups: early body, late body (from the architecture's
    `split_at`) and head.
    """

    def __init__(
        self,
        dls,
        model: VisionModel,
        spec: ArchSpec,
        loss_func: Callable | None = None,
        opt_func: Callable = Adam,
        lr: float | slice | Sequence[float] = 1e-3,
        wd: float | None = None,
        metrics: Iterable = (),
        cbs: Iterable[Callback] = (),
        path: str | Path = ".",
        model_dir: str | Path = "models",
        train_bn: bool = False,
        slice_div: float = 3.0,
        progress: bool | None = None,
        device: torch.device | str | None = None,
        splitter: Callable | None = None,
    ) -> None:
        self._precompute, self.spec, self.image_dls, self.bn_freeze = False, spec, dls, False
        self.feature_cache: dict[str, PrecomputedDataLoaders] = {}  # fingerprint -> cached activations
        super().__init__(
            dls,
            model,
            loss_func,
            opt_func=opt_func,
            lr=lr,
            wd=wd,
            metrics=metrics,
            splitter=splitter or partial(vision_splitter, split_at=spec.split_at),
            cbs=[FrozenBatchNorm(), *cbs],
            path=path,
            model_dir=model_dir,
            train_bn=train_bn,
            slice_div=slice_div,
            progress=progress,
            device=device,
        )

    # ---- precompute ----------------------------------------------------------------------------
    @property
    def precompute(self) -> bool:
        "Train the head on cached activations of the frozen body (fast, no augmentation)."
        return self._precompute

    @precompute.setter
    def precompute(self, on: bool) -> None:
        on = bool(on)
        if on and not isinstance(self.model, VisionModel):
            raise ValueError(
                f"precompute is for classification heads on a frozen body; a {type(self.model).__name__} "
                "(e.g. a U-Net, whose decoder needs the encoder's skips) trains on the images"
            )
        if on and not _body_is_frozen(self.model):
            raise ValueError("precompute=True needs the body frozen: call learn.freeze() first")
        if on:
            self.dls = precomputed_dls(self)
        else:
            self.dls = self.image_dls
        self._precompute = on

    def freeze_to(self, n: int) -> None:
        super().freeze_to(n)
        if self._precompute and not _body_is_frozen(self.model):
            self.precompute = False  # the body trains now: its activations change every step

    # ---- data ----------------------------------------------------------------------------------
    @property
    def input_dls(self):
        """The images, also while precompute trains on their cached activations."""
        return self.image_dls

    def set_data(self, dls) -> VisionLearner:
        """Continue training the same model on other data, e.g. `dls.new(size=299)` (progressive
        resizing). Precomputed activations are recomputed for the new data when precompute is on."""
        n_out = getattr(self.image_dls, "c", None)
        if isinstance(self.model, VisionModel):
            n_out = [m for m in self.model.head if isinstance(m, nn.Linear)][-1].out_features
        if n_out is not None and getattr(dls, "c", n_out) != n_out:
            raise ValueError(f"set_data: the new data has {dls.c} classes, the model predicts {n_out}")
        if hasattr(dls, "set_normalize") and self.export_info.get("model", {}).get("normalize", True):
            dls.set_normalize(*self.spec.stats)
        was = self._precompute
        self._precompute, self.image_dls, self.dls = False, dls, dls
        if hasattr(dls, "to"):
            dls.to(self.device)
        self.feature_cache.clear()
        if was:
            self.precompute = True
        return self

    @classmethod
    def export_task(cls, loss_func) -> Task:
        """What an export of this learner records as its task (data may say its own: `dls.export_task`)."""
        return ImagesTask(_loss_name(loss_func))

    # ---- predictions, as the data's target reads them -------------------------------------------------
    def predict(self, item, tta: bool = False):
        """The prediction for one image (a path or PIL image) as its target's kind answers
        (`dls.target.predict`): `(label, index, probabilities)` for classes, `(mask, probabilities)` at the
        image's size for masks, `(points, raw)` in its pixels for points, the generated image for images.
        `tta=True`: averaged over views of the image, as `tta` does."""
        dls = self.image_dls
        dl = dls.test_dl([item])
        preds, _ = self.tta(dl) if tta else self.get_preds(dl=dl, progress=False)
        return dls.target.predict(preds[0], item, getattr(dls, "item_tfm", None))

    def predict_many(self, items: Sequence, bs: int | None = None) -> Iterator:
        """`predict` of each of `items`, batch by batch (a generator)."""
        dls = self.image_dls
        bs = bs or getattr(dls, "bs", None) or 16
        for start in range(0, len(items), bs):
            chunk = list(items[start : start + bs])
            preds, _ = self.get_preds(dl=dls.test_dl(chunk), progress=False)
            for item, p in zip(chunk, preds):
                yield dls.target.predict(p, item, getattr(dls, "item_tfm", None))

    def show_results(self, max_n: int = 9, dl=None, ncols: int | None = None, path: str | Path | None = None):
        """Up to `max_n` images of the first batch of `dl` (the validation set by default) with their
        targets and the model's predictions, drawn by the target's kind (`target.show`: a Figure, or for
        images rows of input / prediction / target as one image tensor); saved as a PNG at `path`."""
        dls = self.image_dls
        batch = first_batch(dls.valid if dl is None else dl, "show_results")
        preds, _ = self.get_preds(dl=[batch], progress=False)
        x, y = batch[0][:max_n], (batch[1][:max_n] if len(batch) > 1 else None)
        return dls.target.show(dls, x, y, preds[:max_n], ncols, path)

    def tta(self, dl=None, n: int | None = None, beta: float | None = 0.25):
        """`(preds, targets)` on `dl` (the validation images by default), as the target's kind averages
        views (`target.tta`): for labels `beta * plain + (1 - beta) * mean of n (4) augmented passes`
        (classification/tta.py); for images the mean over n (8) rotations / flips (generation/tta.py)."""
        return self.image_dls.target.tta(self, dl, n, beta)


def _loss_name(loss_func) -> str | None:
    for name, cls in _LOSSES.items():
        if isinstance(loss_func, cls):
            return name
    return None


def _default_loss(dls) -> nn.Module:
    """The loss of the data's target kind (`dls.target.loss`); cross-entropy for data without one."""
    target = getattr(dls, "target", None)
    return target.loss(dls) if target is not None else nn.CrossEntropyLoss()


def vision_learner(
    dls,
    arch: str | ArchSpec | Callable,
    pretrained: bool | str | Path = True,
    metrics: Iterable | None = None,
    loss_func: Callable | None = None,
    opt_func: Callable = Adam,
    lr: float | slice | Sequence[float] = 1e-3,
    wd: float | None = None,
    lin_ftrs: Sequence[int] = (512,),
    ps: float = 0.5,
    concat_pool: bool = True,
    n_out: int | None = None,
    y_range: tuple[float, float] | None = None,
    precompute: bool = False,
    normalize: bool = True,
    channels_last: bool | None = None,
    cbs: Iterable[Callback] = (),
    path: str | Path = ".",
    model_dir: str | Path = "models",
    train_bn: bool = False,
    slice_div: float = 3.0,
    bn_freeze: bool | None = None,
    progress: bool | None = None,
    device: torch.device | str | None = None,
) -> VisionLearner:
    """A `VisionLearner` for `dls` with the body of `arch` (a registered name such as "resnet34" or
    "efficientnet_lite0", its builder, or an `ArchSpec`).

    `pretrained`: True loads the published ImageNet weights, a path loads a local copy, False starts
    from random weights (then the body is not frozen). `n_out` defaults to `dls.c`; `loss_func` to
    cross-entropy (BCE for multi-label data, MSE for regression); `metrics` to accuracy for
    single-label classification. `normalize` sets the data's normalization to the architecture's
    statistics. `channels_last` (default: the architecture's, faster on CPU) picks the memory format.
    `train_bn=False` keeps the BatchNorm layers of a frozen body frozen too (weights and running
    statistics), so the frozen body is a fixed feature extractor and precompute changes nothing but
    speed; `train_bn=True` trains them while the rest of the body is frozen. `bn_freeze` (default: on
    for pretrained bodies) keeps the body's BatchNorm statistics even after `unfreeze()` (their scale
    and shift still train): on small datasets fine-tuning then improves instead of hurting. `path` is where the
    learner writes (`models/` checkpoints, `tmp/` precomputed activations): the current folder by
    default, never the image folder, which may be shared or read-only.
    """
    spec = get_arch(arch)
    n_out = getattr(dls, "c", None) if n_out is None else n_out
    if not n_out:
        raise ValueError("vision_learner: the data does not say how many outputs the model needs; pass n_out=")
    if loss_func is None:
        loss_func = getattr(dls, "loss_func", None) or _default_loss(dls)
    if metrics is None:
        metrics = [accuracy] if isinstance(loss_func, nn.CrossEntropyLoss) else []
    if normalize and hasattr(dls, "set_normalize"):
        dls.set_normalize(*spec.stats)
    if y_range is None:
        y_range = getattr(dls, "y_range", None)  # points: (-1, 1)
    use_cl = spec.channels_last if channels_last is None else channels_last
    y_list = None if y_range is None else [float(v) for v in y_range]
    lin = [int(n) for n in lin_ftrs]
    config = VisionModelConfig(
        spec.name, int(n_out), lin, float(ps), bool(concat_pool), y_list, bool(use_cl), bool(normalize)
    )
    model = config.build(pretrained, spec)
    if isinstance(loss_func, nn.BCEWithLogitsLoss) and isinstance(getattr(dls, "target", None), MultiCategory):
        set_label_prior(model.head, dls.train_items.targets)  # start at the labels' frequencies, not 0.5
    learn = VisionLearner(
        dls,
        model,
        spec,
        loss_func=loss_func,
        opt_func=opt_func,
        lr=lr,
        wd=wd,
        metrics=metrics,
        cbs=cbs,
        path=path,
        model_dir=model_dir,
        train_bn=train_bn,
        slice_div=slice_div,
        progress=progress,
        device=device,
    )
    task = dls.export_task(loss_func) if hasattr(dls, "export_task") else VisionLearner.export_task(loss_func)
    learn.export_info = export_record("vision", task, config)
    is_pretrained = pretrained is not False and pretrained is not None
    learn.bn_freeze = is_pretrained if bn_freeze is None else bool(bn_freeze)
    if is_pretrained:
        learn.freeze()
    if precompute:
        learn.precompute = True
    return learn


@dataclass
class ImagesTask(Task):
    """Classification, multi-label classification or regression of images: a `VisionLearner`.

    `loss`: "cross_entropy", "bce_with_logits", "mse", or None for a loss of one's own (not rebuilt)."""

    type: ClassVar[str] = "images"
    loss: str | None = None

    def data(self, info: dict | None):
        if not info:
            raise ValueError("not a vision export: the metadata lacks the data processing")
        return image_dls_from_export(info)

    def learner(self, dls, model: nn.Module, config: VisionModelConfig) -> VisionLearner:
        loss = _LOSSES[self.loss]() if self.loss in _LOSSES else None
        check_outputs(dls.vocab, config.n_out, "n_out")
        # the factory's default metrics, so that validate() after set_data reports them again
        metrics = [accuracy] if isinstance(loss, nn.CrossEntropyLoss) else []
        return VisionLearner(dls, model, get_arch(config.arch), loss_func=loss, metrics=metrics, device="cpu")
