"""unet_learner: a U-Net over a pretrained encoder for segmentation, with the course's recipe.

    import quickfit as qf
    from quickfit.vision import SegmentationDataLoaders, Resize, aug_transforms, unet_learner

    dls = SegmentationDataLoaders.from_folders(path, codes=codes, void_code=11, item_tfms=Resize((240, 320)),
                                               batch_tfms=aug_transforms(), bs=8)
    learn = unet_learner(dls, "efficientnet_lite0")      # encoder frozen; void-ignoring loss and metrics
    lr = learn.lr_find().valley
    learn.fit_one_cycle(8, lr, pct_start=0.9)            # the decoder
    learn.unfreeze()
    learn.fit_one_cycle(8, slice(lr / 400, lr / 4))      # everything, discriminative rates
    mask, probs = learn.predict("frame.png")             # mask [h, w] at the image's original size
    learn.show_results()
    learn.export("camvid.qf")                            # qf.load_learner("camvid.qf").predict(...)

The model is a `DynamicUnet` over the architecture's body (EfficientNet-Lite without its 1x1 head
convolution: the 320-channel last stage is the bottleneck); layer groups are early encoder, late
encoder (the architecture's split point) and decoder. `arch` may also be any `nn.Module` encoder
whose children run in order. The loss is the pixel cross-entropy ignoring the void code; the default
metrics are `pixel_accuracy` and `mean_iou`, both void-excluded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from quickfit.callbacks.core import Callback
from quickfit.configs import ModelConfig, Task, check_image_size, export_record
from quickfit.optim import Adam
from quickfit.vision.classification.learner import VisionLearner
from quickfit.vision.models.registry import IMAGENET_STATS, ArchSpec, get_arch
from quickfit.vision.models.unet import DynamicUnet, Upsample
from quickfit.vision.segmentation.data import SegmentationLoss, segmentation_dls_from_export
from quickfit.vision.segmentation.metrics import mean_iou, pixel_accuracy

__all__ = ["unet_learner", "unet_encoder", "UnetConfig", "SegmentationTask"]


def unet_encoder(spec: ArchSpec, pretrained: bool | str | Path = False) -> nn.Sequential:
    """The architecture's body as a U-Net encoder (EfficientNet-Lite without its 1x1 head convolution)."""
    body = spec.create_body(pretrained=pretrained)
    if spec.name.startswith("efficientnet_lite"):
        body = body[:-1]  # the 320 -> 1280 head conv is the classifier's feature expansion, not a U-Net level
    return body


@dataclass
class UnetConfig(ModelConfig):
    """A `DynamicUnet` over the body of the registered architecture `arch` (None: a custom encoder, which
    an export cannot rebuild). `normalize`: the data is normalized with the architecture's statistics."""

    type: ClassVar[str] = "unet"
    arch: str | None
    n_out: int
    img_size: list[int]
    upsample: Upsample = "pixel_shuffle"
    last_cross: bool = True
    y_range: list[float] | None = None
    channels_last: bool = False
    normalize: bool = True

    def check(self) -> None:
        check_image_size("unet img_size", self.img_size)  # the build runs a dummy pass at this size

    def build(self, pretrained: bool | str | Path = False, encoder: nn.Module | None = None) -> DynamicUnet:
        """The U-Net with random weights, or the encoder's `pretrained` ones; `encoder`: a custom one."""
        if encoder is None:
            if self.arch is None:
                raise ValueError(
                    "this U-Net was built over a custom encoder, which an export cannot rebuild (no code is saved): "
                    "build the same model and pass it as load_learner(..., model=)"
                )
            encoder = unet_encoder(get_arch(self.arch), pretrained)
        y_range = tuple(self.y_range) if self.y_range is not None else None
        model = DynamicUnet(encoder, int(self.n_out), tuple(self.img_size), upsample=self.upsample,
                            last_cross=self.last_cross, y_range=y_range)  # fmt: skip
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


def _custom_spec(encoder: nn.Module) -> ArchSpec:
    n = len(list(encoder.children()))
    return ArchSpec("custom", lambda pretrained=False: encoder, lambda m: m, max(1, n // 2), IMAGENET_STATS, 0)


def unet_learner(
    dls,
    arch: str | ArchSpec | Callable | nn.Module,
    pretrained: bool | str | Path = True,
    n_out: int | None = None,
    loss_func: Callable | None = None,
    metrics: Iterable | None = None,
    y_range: tuple[float, float] | None = None,
    opt_func: Callable = Adam,
    lr: float | slice | Sequence[float] = 1e-3,
    wd: float | None = None,
    upsample: Upsample = "pixel_shuffle",
    last_cross: bool = True,
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
    """A `VisionLearner` of a `DynamicUnet` for `dls` (a `SegmentationDataLoaders`, or image data with `c`, `size`).

    `arch`: a registered name ("resnet34", "efficientnet_lite0"), its builder or `ArchSpec`, or an
    `nn.Module` encoder (then `pretrained` is ignored: its weights are what they are). `n_out`
    defaults to the number of codes; `loss_func` to the void-ignoring pixel cross-entropy; `metrics`
    to void-excluded `pixel_accuracy` and `mean_iou`. `y_range` squashes the outputs (regression,
    e.g. image-to-image). With pretrained weights the encoder is frozen (only the decoder trains) and
    its BatchNorm statistics kept (`bn_freeze`, as `vision_learner`). The other arguments are `vision_learner`'s."""
    custom = isinstance(arch, nn.Module)
    spec = _custom_spec(arch) if custom else get_arch(arch)
    n_out = getattr(dls, "c", None) if n_out is None else n_out
    if not n_out:
        raise ValueError("unet_learner: the data does not say how many outputs per pixel; pass n_out=")
    size = getattr(dls, "size", None)
    if size is None:
        raise ValueError("unet_learner: the data does not say its image size (dls.size); use SegmentationDataLoaders")
    void = getattr(dls, "void_code", None)
    if loss_func is None:
        loss_func = getattr(dls, "loss_func", None) or SegmentationLoss(void)
    if metrics is None:
        metrics = [pixel_accuracy(void), mean_iou(void)] if isinstance(loss_func, nn.CrossEntropyLoss) else []
    if normalize and hasattr(dls, "set_normalize"):
        dls.set_normalize(*spec.stats)
    use_cl = (spec.channels_last and not custom) if channels_last is None else channels_last
    y_list = list(y_range) if y_range is not None else None
    config = UnetConfig(None if custom else spec.name, int(n_out), [int(s) for s in size], upsample,
                        bool(last_cross), y_list, bool(use_cl), bool(normalize))  # fmt: skip
    model = config.build(pretrained, encoder=arch if custom else None)
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
    task = SegmentationTask("segmentation" if isinstance(loss_func, SegmentationLoss) else None)
    learn.export_info = export_record("vision", task, config)
    is_pretrained = not custom and pretrained is not False and pretrained is not None
    learn.bn_freeze = is_pretrained if bn_freeze is None else bool(bn_freeze)
    if is_pretrained:
        learn.freeze()
    return learn


@dataclass
class SegmentationTask(Task):
    """Per-pixel classes of images: a `VisionLearner` of a `DynamicUnet`. `loss`: "segmentation"
    (`SegmentationLoss` ignoring the data's void code) or None for a loss of one's own (not rebuilt)."""

    type: ClassVar[str] = "segmentation"
    loss: str | None = "segmentation"

    def data(self, info: dict | None):
        if not info:
            raise ValueError("not a U-Net export: the metadata lacks the data processing")
        return segmentation_dls_from_export(info)

    def learner(self, dls, model: nn.Module, config: UnetConfig) -> VisionLearner:
        loss = SegmentationLoss(dls.void_code) if self.loss == "segmentation" else None
        spec = get_arch(config.arch)
        void = dls.void_code  # the factory's default metrics, so that validate() after set_data reports them
        metrics = [pixel_accuracy(void), mean_iou(void)] if isinstance(loss, nn.CrossEntropyLoss) else []
        return VisionLearner(dls, model, spec, loss_func=loss, metrics=metrics, device="cpu")
