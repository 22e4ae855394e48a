"""RetinaNet (Lin et al., 2017) over any body: a feature pyramid, and class and box subnets shared by its levels.

    from quickfit.vision.detection.retinanet import RetinaNet
    body = efficientnet_lite0(pretrained=True).features[:-1]       # stem + 7 stages: /8, /16, /32 feed P3-P5
    model = RetinaNet(body, n_classes=3, img_size=(240, 320))      # levels P3-P6, 64 channels, 9 anchors a cell
    out = model(torch.randn(2, 3, 240, 320))                       # [2, A, 4 + 3]: offsets, class logits
    anchors = model.anchors()                                      # [A, 4] in [-1, 1], in the same order

The body is any `nn.Module` whose children run in order (a quickfit body); one dummy pass finds the last
child at each resolution. Pyramid level l has stride 2^l: the levels the body reaches take its feature
map through a 1x1 lateral convolution plus the upsampled level above, then a 3x3 convolution; the levels
above it are stride-2 convolutions of the body's last map. The subnets (`n_convs` 3x3 convolutions with
GroupNorm and ReLU, then one to k * C class logits or k * 4 offsets) run on every level. Level l's
anchors are `anchor_scale * 2^l` pixels at scale 1 (RetinaNet's 4: 32 px at P3).

`head="ssd"` is the lesson's SSD head instead: the body's last map pooled to a 4x4 grid, then 2x2 and
1x1 by stride-2 convolutions, each cell's anchors the size of the cell (scales 0.7, 1, 1.3 by default).
Training this small a model on a CPU is what the defaults are for: 64 channels and two convolutions per
subnet instead of 256 and four, which cost 15 times the multiply-adds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from quickfit.vision.detection.anchors import RATIOS, SCALES, anchor_boxes

__all__ = ["RetinaNet", "FeaturePyramid", "SSDGrids", "Subnet", "body_taps", "SSD_SCALES"]

Head = Literal["fpn", "ssd"]
SSD_SCALES = (0.7, 1.0, 1.3)  # the lesson's zooms
PRIOR = 0.01  # the class logits start at this probability: the background-heavy loss starts small


def body_taps(body: nn.Module, img_size: tuple[int, int]) -> dict[int, tuple[int, int]]:
    """{level: (child index, channels)} for each stride 2^level the body's children reach: the last child
    at each resolution. One forward pass in eval mode on zeros."""
    children = list(body.children())
    if not children:
        raise ValueError("RetinaNet needs a body made of child modules that run in order (e.g. nn.Sequential)")
    shapes: list[torch.Size] = []
    hooks = [c.register_forward_hook(lambda m, i, o: shapes.append(o.shape)) for c in children]
    was = body.training
    body.eval()
    try:
        with torch.no_grad():
            param = next(body.parameters(), None)
            body(torch.zeros(1, 3, *img_size, device=param.device if param is not None else "cpu"))
    finally:
        for h in hooks:
            h.remove()
        body.train(was)
    if len(shapes) != len(children):
        raise ValueError("RetinaNet: the body's children did not each run once; wrap its layers in an nn.Sequential")
    taps: dict[int, tuple[int, int]] = {}
    for k, shape in enumerate(shapes):
        level = round(math.log2(img_size[0] / shape[-2]))
        if level >= 1:
            taps[level] = (k, int(shape[1]))  # a later child at the same resolution replaces an earlier one
    return taps


def _conv(ni: int, nf: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(ni, nf, 3, stride, 1)


class FeaturePyramid(nn.Module):
    """The maps of `levels` (strides 2^l) from the body's `taps` ({level: (child, channels)}), `channels` each."""

    def __init__(self, taps: dict[int, tuple[int, int]], levels: Sequence[int], channels: int) -> None:
        super().__init__()
        top = max(taps)
        self.inner = [lv for lv in levels if lv <= top]  # levels read from the body
        missing = [lv for lv in self.inner if lv not in taps]
        if missing or not self.inner:
            raise ValueError(f"RetinaNet: pyramid levels {list(levels)} need body strides {[2**lv for lv in levels]}; "
                             f"the body has {[2**lv for lv in sorted(taps)]}")  # fmt: skip
        self.n_extra = len([lv for lv in levels if lv > top])
        if sorted(levels) != list(range(min(levels), max(levels) + 1)):
            raise ValueError(f"RetinaNet: pyramid levels must be consecutive, got {list(levels)}")
        self.top = top if self.n_extra else max(self.inner)
        self.lateral = nn.ModuleList(nn.Conv2d(taps[lv][1], channels, 1) for lv in self.inner)
        self.smooth = nn.ModuleList(_conv(channels, channels) for _ in self.inner)
        first = taps[self.top][1]
        self.extra = nn.ModuleList(_conv(first if i == 0 else channels, channels, 2) for i in range(self.n_extra))

    def forward(self, feats: dict[int, torch.Tensor]) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        above = None
        for lv, lateral, smooth in zip(reversed(self.inner), reversed(self.lateral), reversed(self.smooth)):
            x = lateral(feats[lv])
            if above is not None:
                x = x + F.interpolate(above, size=x.shape[-2:], mode="nearest")
            above = x
            out.insert(0, smooth(x))
        x = feats[self.top]
        for i, conv in enumerate(self.extra):
            x = conv(x if i == 0 else F.relu(x))
            out.append(x)
        return out


class SSDGrids(nn.Module):
    """The lesson's SSD grids: the body's last map -> 4x4, 2x2 and 1x1 maps of `channels`."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv(in_channels, channels), nn.ReLU())
        self.down = nn.ModuleList(nn.Sequential(_conv(channels, channels, 2), nn.ReLU()) for _ in range(2))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [F.adaptive_avg_pool2d(self.stem(x), 4)]
        for conv in self.down:
            out.append(conv(out[-1]))
        return out


class Subnet(nn.Sequential):
    """`n_convs` x (3x3 conv, GroupNorm, ReLU), then a 3x3 conv to `n_out` per cell."""

    def __init__(self, channels: int, n_convs: int, n_out: int, bias: float = 0.0) -> None:
        layers: list[nn.Module] = []
        for _ in range(n_convs):
            layers += [_conv(channels, channels), nn.GroupNorm(min(8, channels), channels), nn.ReLU()]
        layers.append(_conv(channels, n_out))
        super().__init__(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.constant_(m.bias, 0.0)
        nn.init.constant_(layers[-1].bias, bias)


class _Head(nn.Module):
    """Everything after the body: the pyramid (or SSD grids) and the subnets (the head layer group)."""

    def __init__(self, features: nn.Module, channels: int, n_convs: int, n_anchors: int, n_classes: int) -> None:
        super().__init__()
        self.features = features
        self.classes = Subnet(channels, n_convs, n_anchors * n_classes, -math.log((1 - PRIOR) / PRIOR))
        self.boxes = Subnet(channels, n_convs, n_anchors * 4)
        self.n_anchors, self.n_classes = n_anchors, n_classes

    def forward(self, feats) -> torch.Tensor:
        maps = self.features(feats)
        b, k = maps[0].shape[0], self.n_anchors

        def cells(x: torch.Tensor, n: int) -> torch.Tensor:  # [B, k * n, h, w] -> [B, h * w * k, n]
            return x.view(b, k, n, *x.shape[-2:]).permute(0, 3, 4, 1, 2).reshape(b, -1, n)

        boxes = torch.cat([cells(self.boxes(m), 4) for m in maps], 1)
        classes = torch.cat([cells(self.classes(m), self.n_classes) for m in maps], 1)
        return torch.cat([boxes, classes], -1)


class RetinaNet(nn.Module):
    """A one-stage detector over `body`; see the module docstring. Output [B, A, 4 + n_classes]."""

    def __init__(
        self,
        body: nn.Module,
        n_classes: int,
        img_size: tuple[int, int] | int,
        head: Head = "fpn",
        levels: Sequence[int] = (3, 4, 5, 6),
        channels: int = 64,
        n_convs: int = 2,
        anchor_scale: float = 4.0,
        scales: Sequence[float] | None = None,
        ratios: Sequence[float] = RATIOS,
    ) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"RetinaNet: n_classes must be at least 1, got {n_classes}")
        if head not in ("fpn", "ssd"):
            raise ValueError(f"RetinaNet: head must be 'fpn' or 'ssd', got {head!r}")
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.kind, self.levels, self.anchor_scale = head, tuple(levels), float(anchor_scale)
        self.scales = tuple(scales) if scales is not None else (SSD_SCALES if head == "ssd" else SCALES)
        self.ratios = tuple(ratios)
        taps = body_taps(body, self.img_size)
        self.body = body
        if head == "fpn":
            features: nn.Module = FeaturePyramid(taps, self.levels, channels)
            self.taps = {lv: taps[lv][0] for lv in sorted(set(features.inner) | {features.top})}
        else:
            last = max(taps)
            features = SSDGrids(taps[last][1], channels)
            self.taps = {last: taps[last][0]}
        n_anchors = len(self.scales) * len(self.ratios)
        self.head = _Head(features, channels, n_convs, n_anchors, n_classes)
        self._anchors: dict[tuple[int, int], torch.Tensor] = {}

    def body_features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """{level: the body's map at stride 2^level} for the levels the head reads."""
        want = {k: lv for lv, k in self.taps.items()}
        feats = {}
        for k, child in enumerate(self.body.children()):
            x = child(x)
            if k in want:
                feats[want[k]] = x
            if len(feats) == len(want):
                break
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.body_features(x)
        return self.head(feats if self.kind == "fpn" else feats[max(feats)])

    def grids(self, img_size: tuple[int, int] | None = None) -> list[tuple[int, int]]:
        """The (h, w) of each level's map for images of `img_size` (default: the one built for)."""
        size = tuple(img_size or self.img_size)
        if self.kind == "ssd":
            return [(4, 4), (2, 2), (1, 1)]
        param = next(self.parameters())
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                maps = self.head.features(self.body_features(torch.zeros(1, 3, *size, device=param.device)))
        finally:
            self.train(was)
        return [tuple(m.shape[-2:]) for m in maps]

    def anchors(self, img_size: tuple[int, int] | None = None) -> torch.Tensor:
        """The anchors [A, 4] (corners in [-1, 1]) of images of `img_size`, in the order of the outputs."""
        size = tuple(img_size or self.img_size)
        if size not in self._anchors:
            grids = self.grids(size)
            if self.kind == "ssd":
                strides = [(size[0] / g[0], size[1] / g[1]) for g in grids]
                sizes = strides
            else:
                strides = [(2.0**lv, 2.0**lv) for lv in self.levels]
                sizes = [(self.anchor_scale * s, self.anchor_scale * s) for s, _ in strides]
            self._anchors[size] = anchor_boxes(grids, strides, sizes, size, self.scales, self.ratios)
        return self._anchors[size]
