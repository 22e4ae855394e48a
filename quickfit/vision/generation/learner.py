"""A U-Net generator for image-to-image data (super-resolution, restoration): build, show, export.

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

Test-time augmentation for images out (EDSR's "self-ensemble", Lim et al. 2017): `learn.tta()` and
`predict(item, tta=True)` run the model on the 8 rotations and flips of each input, turn each output
back and average them: 8 forward passes, no retraining, a sharper mean for any convolutional model.
"""

from __future__ import annotations

import contextlib
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
from quickfit.data.core import first_batch
from quickfit.image_grid import save_image_grid
from quickfit.learner import Learner
from quickfit.optim import Adam
from quickfit.vision.models.registry import IMAGENET_STATS, get_arch

__all__ = [
    "DihedralEnsemble",
    "ImageToImageLearner",
    "ResidualUnet",
    "image2image_learner",
    "ImageToImageConfig",
    "ImageToImageTask",
]

_DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]  # the identity first


def _turn(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, k, dims=(-2, -1)) if k else x
    return x.flip(-1) if flip else x


def _unturn(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = x.flip(-1) if flip else x
    return torch.rot90(x, -k, dims=(-2, -1)) if k else x


class DihedralEnsemble(nn.Module):
    """The mean of `model`'s outputs over the first `n` of the 8 rotations / flips of its input, each
    output turned back: `model` must map an image batch to an image batch (any size in, any scale out)."""

    def __init__(self, model: nn.Module, n: int = 8) -> None:
        super().__init__()
        if not 1 <= n <= 8:
            raise ValueError(f"DihedralEnsemble: n must be in 1..8 (the rotations and flips), got {n}")
        self.model, self.n = model, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for k, flip in _DIHEDRAL[: self.n]:
            y = _unturn(self.model(_turn(x, k, flip)), k, flip).float()
            out = y if out is None else out + y
        return out / self.n


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


def _unet(
    arch: str,
    encoder_cut: int | None,
    y_range,
    pretrained,
    img_size: int,
    residual: bool,
    scale: int = 1,
    config: dict | None = None,
):
    from quickfit.vision.models.unet import DynamicUnet

    if arch == SR_ARCH:  # no pretrained encoder: EDSR's stack at the input's resolution
        from quickfit.vision.models.registry import IMAGENET_STATS
        from quickfit.vision.models.sr import SRResNet

        if not residual:
            raise ValueError(f"image2image_learner: {SR_ARCH!r} always adds a correction to its input (residual)")
        spec = SimpleNamespace(name=SR_ARCH, stats=IMAGENET_STATS)
        model = SRResNet(scale=scale, stats=IMAGENET_STATS, **(config or {}))
        return spec, model.to(memory_format=torch.channels_last)  # its 3x3 convolutions: ~15% faster on CPU
    if config:
        raise ValueError(f"image2image_learner: config= is for arch={SR_ARCH!r}; a U-Net takes encoder_cut=")
    spec = get_arch(arch)
    body = spec.create_body(pretrained=pretrained)
    encoder = body[:encoder_cut] if encoder_cut is not None else body
    if residual:
        unet = DynamicUnet(encoder, n_out=3 * scale**2, img_size=max(8, img_size // scale))
        return spec, ResidualUnet(unet, spec.stats, scale)
    if scale != 1:
        raise ValueError("image2image_learner: data that is not upsampled (upsample=False) needs residual=True")
    return spec, DynamicUnet(encoder, n_out=3, img_size=img_size, y_range=tuple(y_range))


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
                     self.config)[1]  # fmt: skip


def _encoder_decoder(model: nn.Module) -> list[list[nn.Parameter]]:
    m = getattr(model, "module", model)
    return [list(m.body.parameters()), list(m.head.parameters())]


class ImageToImageLearner(Learner):
    """A Learner whose predictions are images: adds `show_results`, and `tta` / `predict(tta=True)`."""

    @contextlib.contextmanager
    def _ensembled(self, n: int):
        model = self.model
        self.model = DihedralEnsemble(model, n)
        try:
            yield
        finally:
            self.model = model

    def tta(self, dl=None, n: int = 8) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`(preds, targets)` on `dl` (the validation set by default), each prediction the mean over `n`
        rotations / flips of its input (see the module docstring)."""
        with self._ensembled(n):
            return self.get_preds(dl=dl)

    def predict(self, item, tta: bool = False):
        """The generated image for `item` (a path or PIL image of any size): `[3, H, W]` in [0, 1] at the
        data's scale; `tta=True`: the mean over the 8 rotations / flips of the input."""
        if not tta:
            return super().predict(item)
        with self._ensembled(8):
            return super().predict(item)

    def show_results(self, n: int = 4, path: str | Path | None = None, dl=None) -> torch.Tensor:
        """Rows of input (as the model sees it, un-normalized) / prediction / target from the first batch of
        `dl` (the validation set by default), as a [3, H, W] grid; saved as a PNG at `path` when given,
        its columns named."""
        dl = dl if dl is not None else (self.dls.valid if self.dls.valid is not None else self.dls.train)
        x, y = first_batch(dl, "show_results")[:2]
        x, y = x[:n].to(self.device), y[:n].to(self.device)
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                pred = self.model(x).float().clamp(0, 1)
        finally:
            self.model.train(was)
        norm = getattr(self.dls, "normalize", None)
        shown = norm.decode(x) if norm is not None else x
        shown = F.interpolate(shown.float(), size=y.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)
        titles = ("input", "prediction", "target")
        return save_image_grid(torch.stack([shown, pred, y.float()], 1).flatten(0, 1), path, nrow=3, titles=titles)


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
) -> ImageToImageLearner:
    """An `ImageToImageLearner` of a U-Net generator for `dls` (see the module docstring). `loss_func`
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
    model = model_config.build(pretrained)
    if hasattr(dls, "set_normalize"):
        dls.set_normalize(*(IMAGENET_STATS if arch == SR_ARCH else get_arch(arch).stats))
    loss_func = nn.L1Loss() if loss_func is None else loss_func
    if metrics is None:
        metrics = loss_func.metrics() if hasattr(loss_func, "metrics") else []
    learn = ImageToImageLearner(dls, model, loss_func, opt_func=opt_func, lr=lr, wd=wd, metrics=metrics,
                                splitter=_encoder_decoder, cbs=cbs, path=path, model_dir=model_dir,
                                train_bn=train_bn, slice_div=slice_div, progress=progress,
                                device=device)  # fmt: skip
    learn.export_info = export_record("vision", ImageToImageTask(), model_config)
    return learn


@dataclass
class ImageToImageTask(Task):
    """Images in, images out: an `ImageToImageLearner` with the pixel (L1) loss."""

    type: ClassVar[str] = "image_to_image"

    def data(self, info: dict | None):
        from quickfit.vision.generation.data import image2image_dls_from_export

        if not info or info.get("kind") != "image2image":
            raise ValueError("not an image-to-image export: the metadata lacks the data processing")
        return image2image_dls_from_export(info)

    def learner(self, dls, model: nn.Module, config: ImageToImageConfig) -> ImageToImageLearner:
        return ImageToImageLearner(dls, model, nn.L1Loss(), splitter=_encoder_decoder, device="cpu")
