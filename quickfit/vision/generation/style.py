"""Style transfer: Gatys' optimization of pixels, and a network that does it in one pass (Johnson et al.).

    from quickfit.vision.generation.style import style_transfer, style_learner
    result = style_transfer("bee.jpg", "china.jpg", steps=200, size=256)
    result.image                      # [3, H, W] in [0, 1]; result.style_loss / content_loss: one value per step

    dls = ImageToImageDataLoaders.from_func("photos", lambda f: f, size=128, bs=4)   # each photo is its own target
    learn = style_learner(dls, "china.jpg")
    learn.fit_one_cycle(2, 1e-3)
    learn.predict("photo.jpg")        # the photo in the style, one forward pass

Both use the same loss (`StyleLoss`): the content term compares the activations of one layer of a frozen
pretrained network (EfficientNet-Lite0's body by default) with the content image's, the style term the
Gram matrices of several layers with the style image's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn
from tqdm.auto import tqdm

from quickfit.callbacks.progress import show_progress
from quickfit.image_grid import image_to_tensor
from quickfit.learner import Learner
from quickfit.metrics import Metric
from quickfit.optim import Adam
from quickfit.vision.core.image import load_image
from quickfit.vision.generation.feature_loss import gram_matrix, lite0_features
from quickfit.vision.models.efficientnet_lite0 import LITE_STATS

__all__ = ["StyleLoss", "StyleResult", "StyleNet", "style_transfer", "style_learner", "load_style_image"]

STYLE_LAYERS = (1, 2, 3, 4, 5)  # Lite0's stem output and stages: 1/2 .. 1/16 of the image
CONTENT_LAYERS = (4,)


def load_style_image(src: str | Path | Image.Image, size: int | None = None) -> torch.Tensor:
    """[3, H, W] in [0, 1], the short side resized to `size` when given; a file that does not open is
    an error that names it."""
    try:
        img = load_image(src)
    except (FileNotFoundError, UnidentifiedImageError, OSError, ValueError) as e:
        prefix = f"cannot load image {src}: "  # an ImageLoadError's message names the file already
        reason = str(e)[len(prefix) :] if str(e).startswith(prefix) else f"{type(e).__name__}: {e}"
        raise ValueError(f"style transfer: the image {src} does not open ({reason})") from None
    if size is not None:
        w, h = img.size
        k = size / min(w, h)
        img = img.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.BICUBIC)
    return image_to_tensor(img)


class StyleLoss(nn.Module):
    """`content_weight * sum MSE(f(x), f(content)) + style_weight * sum MSE(gram(f(x)), gram(f(style)))`.

    `style`: the style image ([3, H, W] in [0, 1], or a file); `features`: an `nn.Sequential` (default:
    pretrained Lite0) with inputs normalized by `stats`. Called as `loss(x, content)` (the content batch
    is the target); `last_terms` holds "content" and "style" of the last call."""

    def __init__(
        self,
        style: torch.Tensor | str | Path,
        content_weight: float = 1.0,
        style_weight: float = 1e3,
        features: nn.Sequential | None = None,
        content_layers: Sequence[int] = CONTENT_LAYERS,
        style_layers: Sequence[int] = STYLE_LAYERS,
        stats: tuple[Sequence[float], Sequence[float]] = LITE_STATS,
        style_size: int | None = 256,
    ) -> None:
        super().__init__()
        style = style if isinstance(style, torch.Tensor) else load_style_image(style, style_size)
        features = lite0_features(True) if features is None else features
        self.content_layers, self.style_layers = [int(i) for i in content_layers], [int(i) for i in style_layers]
        last = max(self.content_layers + self.style_layers)
        if last >= len(features):
            raise ValueError(f"StyleLoss: layer {last} is beyond the {len(features)} layers of features")
        self.features = features[: last + 1].eval().requires_grad_(False)
        self.content_weight, self.style_weight = float(content_weight), float(style_weight)
        self.register_buffer("mean", torch.tensor(stats[0]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(stats[1]).view(1, 3, 1, 1), persistent=False)
        with torch.no_grad():
            grams = [gram_matrix(f) for f in self._acts(style[None].float(), self.style_layers)]
        for i, g in enumerate(grams):
            self.register_buffer(f"style_gram_{i}", g, persistent=False)
        self.last_terms: dict[str, torch.Tensor] = {}

    def train(self, mode: bool = True) -> StyleLoss:
        super().train(mode)
        self.features.eval()
        return self

    def _acts(self, x: torch.Tensor, ids: Sequence[int]) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        out, last = [], max(ids)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in ids:
                out.append(x)
            if i == last:
                break
        return out

    def _all(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        ids = sorted(set(self.content_layers) | set(self.style_layers))
        acts = dict(zip(ids, self._acts(x, ids)))
        return [acts[i] for i in self.content_layers], [acts[i] for i in self.style_layers]

    def content_targets(self, content: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return self._acts(content, self.content_layers)

    def terms(self, x: torch.Tensor, content_acts: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        c_acts, s_acts = self._all(x)
        content = sum(F.mse_loss(a.float(), t.float()) for a, t in zip(c_acts, content_acts))
        grams = [getattr(self, f"style_gram_{i}") for i in range(len(self.style_layers))]
        style = sum(F.mse_loss(gram_matrix(a), g.expand(a.shape[0], -1, -1)) for a, g in zip(s_acts, grams))
        return {"content": self.content_weight * content, "style": self.style_weight * style}

    def forward(self, x: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        if self.mean.device != x.device:
            self.to(x.device)
        terms = self.terms(x, self.content_targets(content))
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        return terms["content"] + terms["style"]

    def metrics(self) -> list[Metric]:
        from quickfit.vision.generation.feature_loss import _TermMetric

        return [_TermMetric(self, "content"), _TermMetric(self, "style")]


class StyleResult(NamedTuple):
    image: torch.Tensor  # [3, H, W] in [0, 1]
    content_loss: list[float]  # one per step, the weighted term; [0] is the start
    style_loss: list[float]


def style_transfer(
    content: str | Path | Image.Image | torch.Tensor,
    style: str | Path | Image.Image | torch.Tensor,
    steps: int = 200,
    size: int = 256,
    lr: float = 0.02,
    content_weight: float = 1.0,
    style_weight: float = 1e3,
    features: nn.Sequential | None = None,
    content_layers: Sequence[int] = CONTENT_LAYERS,
    style_layers: Sequence[int] = STYLE_LAYERS,
    progress: bool | None = None,
    device: torch.device | str | None = None,
) -> StyleResult:
    """Gatys et al.: start from the content image (short side resized to `size`) and move its pixels with
    Adam for `steps` steps to lower `StyleLoss`. Returns the image and both terms before every step and
    after the last. `progress`: a bar (default: only on a terminal, as the Learner's)."""
    if steps < 1:
        raise ValueError(f"style_transfer: steps must be at least 1, got {steps!r}")
    from quickfit.learner import default_device

    device = torch.device(device) if device is not None else default_device()
    style_t = style if isinstance(style, torch.Tensor) else load_style_image(style, size)
    content_t = content if isinstance(content, torch.Tensor) else load_style_image(content, size)
    loss = StyleLoss(style_t, content_weight, style_weight, features, content_layers, style_layers).to(device)
    content_t = content_t[None].to(device)
    target = loss.content_targets(content_t)
    x = content_t.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    content_hist, style_hist = [], []
    for _ in tqdm(range(steps), disable=not show_progress(progress), desc="style transfer"):
        terms = loss.terms(x, target)
        content_hist.append(terms["content"].detach().item())  # one sync per step: the progress of an optimization
        style_hist.append(terms["style"].detach().item())
        opt.zero_grad(set_to_none=True)
        (terms["content"] + terms["style"]).backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    with torch.no_grad():  # the result's own terms: steps + 1 values in the history, `steps` on the bar
        terms = loss.terms(x, target)
    content_hist.append(terms["content"].item())
    style_hist.append(terms["style"].item())
    return StyleResult(x.detach()[0].cpu(), content_hist, style_hist)


# ---- the one-pass network ------------------------------------------------------------------------------------------
def _conv(c_in: int, c_out: int, k: int, stride: int = 1, act: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.ReflectionPad2d(k // 2), nn.Conv2d(c_in, c_out, k, stride)]
    layers.append(nn.InstanceNorm2d(c_out, affine=True))
    return layers + ([nn.ReLU(inplace=True)] if act else [])


class _Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv(c, c, 3), *_conv(c, c, 3, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Up(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(*_conv(c_in, c_out, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # resize then convolve: no checkerboard artefacts
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class StyleNet(nn.Module):
    """Johnson et al.'s image transformation network: 9x9 conv, two stride-2 convs, `n_res` residual
    blocks, two upsampling convs, a 9x9 conv to RGB through a sigmoid ([0, 1] images). `nf` channels
    at full size (default 32, as in the paper). Any image size: the input is padded by reflection to a
    multiple of 4 (the two stride-2 convs) and the output cropped back, so a 500x333 photo gives 500x333."""

    def __init__(self, nf: int = 32, n_res: int = 5) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(3, nf, 9), *_conv(nf, nf * 2, 3, 2), *_conv(nf * 2, nf * 4, 3, 2),
            *[_Residual(nf * 4) for _ in range(n_res)],
            _Up(nf * 4, nf * 2), _Up(nf * 2, nf), nn.ReflectionPad2d(4), nn.Conv2d(nf, 3, 9),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % 4, -w % 4
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return torch.sigmoid(self.body(x))[..., :h, :w]


def style_learner(
    dls,
    style: torch.Tensor | str | Path,
    model: nn.Module | None = None,
    content_weight: float = 1.0,
    style_weight: float = 1e3,
    features: nn.Sequential | None = None,
    content_layers: Sequence[int] = CONTENT_LAYERS,
    style_layers: Sequence[int] = STYLE_LAYERS,
    loss_func: Callable | None = None,
    opt_func: Callable = Adam,
    lr: float | slice | Sequence[float] = 1e-3,
    wd: float | None = None,
    metrics: Iterable | None = None,
    cbs: Iterable = (),
    path: str | Path = ".",
    model_dir: str | Path = "models",
    train_bn: bool = True,
    slice_div: float = 3.0,
    progress: bool | None = None,
    device: torch.device | str | None = None,
) -> Learner:
    """A Learner of a `StyleNet` (or `model`) trained with `StyleLoss(style)` on `dls`, whose targets
    are the input photos themselves (`ImageToImageDataLoaders.from_func(folder, lambda f: f)`); the
    epoch table shows the content and style terms. The data should not be normalized: the network sees
    and makes [0, 1] images. `loss_func` replaces that loss (and `metrics`, default its two terms, the
    table's columns); the other arguments are `Learner`'s."""
    loss = StyleLoss(style, content_weight, style_weight, features, content_layers, style_layers)
    learn = Learner(
        dls, model or StyleNet(), loss if loss_func is None else loss_func, opt_func=opt_func, lr=lr, wd=wd,
        metrics=loss.metrics() if metrics is None else metrics, cbs=cbs, path=path, model_dir=model_dir,
        train_bn=train_bn, slice_div=slice_div, progress=progress, device=device,
    )  # fmt: skip
    loss.to(learn.device)
    return learn
