"""A U-Net generator for image-to-image data (super-resolution, restoration): a `VisionLearner`.

    from quickfit.vision import ImageToImageDataLoaders, image2image_learner

    dls = ImageToImageDataLoaders.from_folders("photos_lr", "photos", size=64, bs=16)
    learn = image2image_learner(dls, "efficientnet_lite0", encoder_cut=5)   # pixel (L1) loss by default
    learn.fit_one_cycle(10, 1e-3)
    learn.show_results(4, path="results.png")       # rows of input (bicubic) / prediction / target
    learn.export("sr.qf")
    qf.load_learner("sr.qf").predict("small.jpg")   # (3, 2h, 2w) floats in [0, 1] for an h x w image
    learn.predict("small.jpg", tta=True)             # the mean over the 8 rotations / flips of the input

The model is the segmentation issue's `DynamicUnet` over the first `encoder_cut` layers of a registered
architecture's pretrained body (fewer layers: a lighter generator; 2x super-resolution needs little
depth), `n_out=3` outputs: by default a correction added to the input (`ResidualUnet`), else squashed
into `y_range`. The data's inputs are normalized with the
architecture's statistics; targets and predictions stay [0, 1] images. Two layer groups: encoder, decoder.

The learner is a `VisionLearner` like a classifier's: `predict`, `show_results` and `tta` ask the data's
target, an image (`ImageTarget`, generation/target.py): `predict` takes an image of any size (the data's
`test_dl` holds whole images), `tta` averages the 8 rotations and flips of each input (generation/tta.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from quickfit.callbacks.core import Callback
from quickfit.configs import ModelConfig, Task, check_image_size, export_record
from quickfit.optim import Adam
from quickfit.vision.classification.learner import VisionLearner
from quickfit.vision.models.registry import IMAGENET_STATS, ArchSpec, get_arch

__all__ = ["ResidualUnet", "image2image_learner", "ImageToImageConfig", "ImageToImageTask"]


class ResidualUnet(nn.Module):
    """`upsampled input + unet(x)`: the U-Net predicts only the correction of its (un-normalized) input, and
    starts as the identity (its last convolution zeroed), so training starts at the bicubic image rather
    than from noise; super-resolution converges several times faster this way (VDSR's residual learning).

    `scale > 1`: the input is the low-resolution image itself (data with `upsample=False`). The U-Net then
    runs at the input's resolution (`scale**2` times fewer pixels than at the target's), predicts
    `3 * scale**2` channels that a pixel shuffle turns into the correction at `scale` times the size
    (ESPCN's sub-pixel output), added to the bicubic upsampling of the input."""

    def __init__(self, unet: nn.Module, stats: tuple, scale: int = 1) -> None:
        super().__init__()
        self.unet, self.scale = unet, int(scale)
        nn.init.zeros_(unet.head.out.weight)
        nn.init.zeros_(unet.head.out.bias)
        self.register_buffer("mean", torch.tensor(stats[0], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(stats[1], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def body(self) -> nn.Module:
        return self.unet.body

    @property
    def head(self) -> nn.Module:
        return self.unet.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = x * self.std.to(x.dtype) + self.mean.to(x.dtype)
        if self.scale == 1:
            return base + self.unet(x)
        base = F.interpolate(base, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp(0, 1)
        return base + F.pixel_shuffle(self.unet(x), self.scale)


SR_ARCH = "sr_resnet"


def _spec(arch: str) -> ArchSpec | SimpleNamespace:
    """The architecture as `VisionLearner` keeps it: its input statistics (`set_data` normalizes new data
    with them). "sr_resnet" has no pretrained body to register: ImageNet's statistics."""
    return SimpleNamespace(name=SR_ARCH, stats=IMAGENET_STATS) if arch == SR_ARCH else get_arch(arch)


def _unet(
    arch: str,
    encoder_cut: int | None,
    y_range,
    pretrained,
    img_size: int,
    residual: bool,
    scale: int = 1,
    config: dict | None = None,
) -> nn.Module:
    from quickfit.vision.models.unet import DynamicUnet

    if arch == SR_ARCH:  # no pretrained encoder: EDSR's stack at the input's resolution
        from quickfit.vision.models.sr import SRResNet

        if not residual:
            raise ValueError(f"image2image_learner: {SR_ARCH!r} always adds a correction to its input (residual)")
        model = SRResNet(scale=scale, stats=IMAGENET_STATS, **(config or {}))
        return model.to(memory_format=torch.channels_last)  # its 3x3 convolutions: ~15% faster on CPU
    if config:
        raise ValueError(f"image2image_learner: config= is for arch={SR_ARCH!r}; a U-Net takes encoder_cut=")
    spec = get_arch(arch)
    body = spec.create_body(pretrained=pretrained)
    encoder = body[:encoder_cut] if encoder_cut is not None else body
    if residual:
        unet = DynamicUnet(encoder, n_out=3 * scale**2, img_size=max(8, img_size // scale))
        return ResidualUnet(unet, spec.stats, scale)
    if scale != 1:
        raise ValueError("image2image_learner: data that is not upsampled (upsample=False) needs residual=True")
    return DynamicUnet(encoder, n_out=3, img_size=img_size, y_range=tuple(y_range))


@dataclass
class ImageToImageConfig(ModelConfig):
    """The generator of `image2image_learner`: a `ResidualUnet` (or a plain `DynamicUnet`, `residual=False`)
    over the first `encoder_cut` layers of the registered architecture `arch`, for inputs of `img_size`
    pixels; or, `arch="sr_resnet"`, an `SRResNet` of `config` (nf, n_blocks)."""

    type: ClassVar[str] = "image_to_image"
    arch: str
    encoder_cut: int | None = 5
    y_range: list[float] = (-0.1, 1.1)
    residual: bool = True
    scale: int = 1
    img_size: int = 64
    config: dict | None = None
    signed: ClassVar[tuple[str, ...]] = ("encoder_cut",)  # a slice of the body's layers

    def check(self) -> None:
        check_image_size("image_to_image img_size", self.img_size)  # the build runs a dummy pass at this size

    def build(self, pretrained: bool | str | Path = False) -> nn.Module:
        y_range = tuple(self.y_range)
        return _unet(self.arch, self.encoder_cut, y_range, pretrained, self.img_size, self.residual, self.scale,
                     self.config)  # fmt: skip


def _encoder_decoder(model: nn.Module) -> list[list[nn.Parameter]]:
    m = getattr(model, "module", model)
    return [list(m.body.parameters()), list(m.head.parameters())]


def image2image_learner(
    dls,
    arch: str = "efficientnet_lite0",
    encoder_cut: int | None = 5,
    loss_func: Callable | None = None,
    y_range: tuple[float, float] = (-0.1, 1.1),
    residual: bool = True,
    pretrained: bool | str | Path = True,
    metrics: Iterable | None = None,
    opt_func: Callable = Adam,
    lr: float | slice | Sequence[float] = 1e-3,
    wd: float | None = None,
    cbs: Iterable[Callback] = (),
    path: str | Path = ".",
    model_dir: str | Path = "models",
    train_bn: bool = True,
    slice_div: float = 3.0,
    progress: bool | None = None,
    device: torch.device | str | None = None,
    config: dict | None = None,
) -> VisionLearner:
    """A `VisionLearner` of a U-Net generator for `dls` (see the module docstring). `loss_func`
    defaults to L1 on pixels; with a `FeatureLoss` its terms are the default metrics. `residual`: the
    U-Net adds a correction to its input (`ResidualUnet`; `y_range` then unused), else it predicts the
    image itself through a sigmoid into `y_range`.

    `arch="sr_resnet"`: no U-Net and no pretrained encoder but `SRResNet` (EDSR's residual stack at the
    input's resolution; `config=dict(nf=64, n_blocks=8)`), the fastest learner of 2x super-resolution
    with a pixel loss; with data made with `upsample=False` it runs on the low-resolution pixels."""
    scale = 1 if getattr(dls, "upsample", True) else int(getattr(dls, "scale", 1))
    cut = None if arch == SR_ARCH else encoder_cut
    size = int(getattr(dls, "size", 64))
    model_config = ImageToImageConfig(arch, cut, [float(v) for v in y_range], bool(residual), scale, size,
                                      dict(config) if config else None)  # fmt: skip
    model, spec = model_config.build(pretrained), _spec(arch)
    if hasattr(dls, "set_normalize"):
        dls.set_normalize(*spec.stats)
    loss_func = nn.L1Loss() if loss_func is None else loss_func
    if metrics is None:
        metrics = loss_func.metrics() if hasattr(loss_func, "metrics") else []
    learn = VisionLearner(dls, model, spec, loss_func, opt_func=opt_func, lr=lr, wd=wd, metrics=metrics, cbs=cbs,
                          path=path, model_dir=model_dir, train_bn=train_bn, slice_div=slice_div, progress=progress,
                          device=device, splitter=_encoder_decoder)  # fmt: skip
    learn.export_info = export_record("vision", ImageToImageTask(), model_config)
    return learn


@dataclass
class ImageToImageTask(Task):
    """Images in, images out: a `VisionLearner` of the generator with the pixel (L1) loss."""

    type: ClassVar[str] = "image_to_image"

    def data(self, info: dict | None):
        from quickfit.vision.generation.data import image2image_dls_from_export

        if not info or info.get("kind") != "image2image":
            raise ValueError("not an image-to-image export: the metadata lacks the data processing")
        return image2image_dls_from_export(info)

    def learner(self, dls, model: nn.Module, config: ImageToImageConfig) -> VisionLearner:
        return VisionLearner(dls, model, _spec(config.arch), nn.L1Loss(), train_bn=True, device="cpu",
                             splitter=_encoder_decoder)  # fmt: skip
