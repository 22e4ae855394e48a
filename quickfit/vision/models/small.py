"""Networks for small images trained from scratch: a stride-1 stem, so a 32 px image keeps its pixels.

    from quickfit.vision.models.small import resnet9, darknet, wrn_22
    model = resnet9(n_out=10)          # SmallImageModel(body, head): Page's DAWNBench ResNet-9, 6,573,120 parameters
    model(torch.randn(8, 3, 32, 32)).shape   # [8, 10]; any size works (the heads pool adaptively)

The ImageNet bodies (resnet34, efficientnet_lite0) start with a stride-2 7x7 convolution and a max-pool:
a 32x32 image is 8x8 after two layers. These start at full resolution and downsample later:

- `darknet`: the course's lesson-12 DarkNet (fastai 0.7 notebook cifar10-darknet): `conv_layer` is a
  convolution without bias (BatchNorm's shift replaces it), padding `ks // 2`, BatchNorm, leaky ReLU
  0.1; five groups of [1, 2, 4, 6, 3] residual blocks (1x1 halving, 3x3 restoring the channels),
  each group opened by a 3x3 convolution doubling the channels, stride 2 except the second group's.
- `wrn_22`: the course's wide ResNet (fastai `models.wrn_22`, lesson 13 / DAWNBench): WRN-22-6, three
  groups of three pre-activation blocks of 96, 192, 384 channels, residual branch scaled by 0.2.
- `resnet9`: David Page's DAWNBench ResNet-9 (myrtle.ai, "How to train your ResNet"; the base of
  airbench): conv-BN-ReLU layers of 64-128-256-512 channels, max-pools, two residual pairs, a
  max-pooled head scaled by 1/8. The fastest of the three to 94% on a GPU (24 epochs in the reference).

Each is a `SmallImageModel(body, head)`, shaped like `VisionModel` (`body`, `head`, `features`, a 2-D
input taken as pooled features), so `VisionLearner`'s splitter (early body, late body, head),
precompute and Grad-CAM work on it. No pretrained weights exist for them.
"""

from __future__ import annotations

import torch
from torch import nn

from quickfit.layers import Flatten

__all__ = ["CIFAR_STATS", "conv_layer", "darknet", "wrn_22", "resnet9", "Residual", "Mul", "SmallImageModel"]

# CIFAR-10's per-channel mean / std (the data computes its own from the training images)
CIFAR_STATS = ((0.491, 0.482, 0.447), (0.247, 0.243, 0.262))


class SmallImageModel(nn.Sequential):
    """`head(body(x))` with `vision_learner`'s layout: head[0] pools, head[1] flattens. (Not
    `VisionModel` itself: that lives in quickfit.vision.classification.learner, which imports the registry.)"""

    POOL_LAYERS = 2

    def __init__(self, body: nn.Sequential, head: nn.Sequential) -> None:
        super().__init__(body, head)

    @property
    def body(self) -> nn.Sequential:
        return self[0]

    @property
    def head(self) -> nn.Sequential:
        return self[1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head[: self.POOL_LAYERS](self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head[self.POOL_LAYERS :](x) if x.ndim == 2 else self.head(self.body(x))


def _no_weights(name: str, pretrained) -> None:
    if pretrained not in (False, None):
        raise ValueError(f"{name} has no pretrained weights: it is trained from scratch (pretrained=False)")


def conv_layer(ni: int, nf: int, ks: int = 3, stride: int = 1, leaky: float | None = 0.1) -> nn.Sequential:
    """Conv (no bias: BatchNorm's shift is one) with padding `ks // 2`, BatchNorm, leaky ReLU (ReLU if None)."""
    act = nn.ReLU(inplace=True) if leaky is None else nn.LeakyReLU(leaky, inplace=True)
    return nn.Sequential(nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=False), nn.BatchNorm2d(nf), act)


class Residual(nn.Module):
    """`x + branch(x)`."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.branch = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class Mul(nn.Module):
    """Multiply by a constant (ResNet-9's logit scale 1/8: a fixed temperature, not a parameter)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


# ---- DarkNet (course lesson 12) -------------------------------------------------------------------
def darknet(pretrained: bool = False, n_out: int = 10, width: int = 32, groups=(1, 2, 4, 6, 3)) -> SmallImageModel:
    """The course's DarkNet: 32 px -> 2 px over five groups, 1024 features, average-pooled linear head.
    `width`: the stem's channels (doubled by each group)."""
    _no_weights("darknet", pretrained)
    nf = width
    body = [conv_layer(3, nf)]
    for i, n_blocks in enumerate(groups):
        layers = [conv_layer(nf, nf * 2, stride=1 if i == 1 else 2)]
        nf *= 2
        layers += [Residual(conv_layer(nf, nf // 2, ks=1), conv_layer(nf // 2, nf)) for _ in range(n_blocks)]
        body.append(nn.Sequential(*layers))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(nf, n_out))
    return SmallImageModel(nn.Sequential(*body), head)


# ---- wide ResNet (fastai's wrn_22) ----------------------------------------------------------------
def _conv(ni: int, nf: int, ks: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=False)


class WideBlock(nn.Module):
    """Pre-activation block: BN-ReLU, then conv3x3 -> BN-ReLU-conv3x3 scaled by 0.2, plus a shortcut
    from the activated input (a 1x1 conv when the channels change)."""

    def __init__(self, ni: int, nf: int, stride: int = 1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(ni)
        self.conv1 = _conv(ni, nf, 3, stride)
        self.conv2 = nn.Sequential(nn.BatchNorm2d(nf), nn.ReLU(inplace=True), _conv(nf, nf))
        self.shortcut = _conv(ni, nf, 1, stride) if ni != nf or stride != 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(x))
        return self.shortcut(x) + self.conv2(self.conv1(x)) * 0.2


def wrn_22(
    pretrained: bool = False, n_out: int = 10, width: int = 6, n_blocks: int = 3, start_nf: int = 16
) -> SmallImageModel:
    """WRN-22-6 as fastai's `wrn_22()`: 16-channel stem, groups of 96 / 192 / 384 channels at 32 / 16 / 8 px.
    `width`: the widening factor k."""
    k = width
    _no_weights("wrn_22", pretrained)
    chans = [start_nf] + [start_nf * 2**i * k for i in range(3)]
    body: list[nn.Module] = [_conv(3, start_nf)]
    for g in range(3):
        ni, nf = chans[g], chans[g + 1]
        blocks = [WideBlock(ni if b == 0 else nf, nf, 2 if b == 0 and g > 0 else 1) for b in range(n_blocks)]
        body.append(nn.Sequential(*blocks))
    body += [nn.BatchNorm2d(chans[-1]), nn.ReLU(inplace=True)]
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(chans[-1], n_out))
    return SmallImageModel(nn.Sequential(*body), head)


# ---- ResNet-9 (Page, DAWNBench) -------------------------------------------------------------------
def resnet9(pretrained: bool = False, n_out: int = 10, width: int = 64) -> SmallImageModel:
    """Page's ResNet-9: prep 64, layer1 128 (+ residual pair), layer2 256, layer3 512 (+ residual pair),
    each layer a conv-BN-ReLU then a 2x2 max-pool; head: global max-pool, linear without bias, x 1/8.
    `width`: the prep layer's channels (64; 16 costs 1/16 of the compute, for CPUs)."""
    _no_weights("resnet9", pretrained)
    c1, c2, c3, c4 = width, width * 2, width * 4, width * 8

    def block(ni, nf):
        return [conv_layer(ni, nf, leaky=None), nn.MaxPool2d(2)]

    body = nn.Sequential(
        conv_layer(3, c1, leaky=None),
        nn.Sequential(*block(c1, c2), Residual(conv_layer(c2, c2, leaky=None), conv_layer(c2, c2, leaky=None))),
        nn.Sequential(*block(c2, c3)),
        nn.Sequential(*block(c3, c4), Residual(conv_layer(c4, c4, leaky=None), conv_layer(c4, c4, leaky=None))),
    )
    head = nn.Sequential(nn.AdaptiveMaxPool2d(1), Flatten(), nn.Linear(c4, n_out, bias=False), Mul(0.125))
    return SmallImageModel(body, head)
