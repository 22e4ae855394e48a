"""A super-resolution network: EDSR's residual stack at the input's resolution, with a sub-pixel output.

    from quickfit.vision.models.sr import SRResNet
    model = SRResNet(scale=2, nf=64, n_blocks=8, stats=IMAGENET_STATS)
    model(x)   # x: [B, 3, h, w] normalized with `stats` -> [B, 3, 2h, 2w] in (about) [0, 1]

Every convolution runs on the low-resolution input's pixels (Lim et al. 2017, "EDSR", without its
batch norm, which hurts restoration): a 3x3 convolution to `nf` channels, `n_blocks` residual blocks
(conv-ReLU-conv, scaled by `res_scale`), a 3x3 convolution and a long skip, then a 3x3 convolution to
`3 * scale**2` channels that a pixel shuffle turns into `scale` times the size (Shi et al. 2016, ESPCN).
That output is a correction added to the bicubic upsampling of the input (VDSR's residual learning), and
the last convolution starts at zero, so an untrained model is bicubic upsampling: training only ever
improves on it. For 2x super-resolution of photos it learns several times faster per step than a U-Net
over a pretrained classifier's encoder, whose features are at half the input's resolution and coarser.
`body` (the stack) and `head` (the output) are its two layer groups.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SRResNet"]


class _ResBlock(nn.Module):
    def __init__(self, nf: int, res_scale: float) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(nf, nf, 3, padding=1), nn.Conv2d(nf, nf, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x), inplace=True))


class _Body(nn.Module):
    def __init__(self, nf: int, n_blocks: int, res_scale: float) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, nf, 3, padding=1)
        self.blocks = nn.Sequential(*[_ResBlock(nf, res_scale) for _ in range(n_blocks)])
        self.conv = nn.Conv2d(nf, nf, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return h + self.conv(self.blocks(h))


class SRResNet(nn.Module):
    """See the module docstring. `stats`: the (mean, std) the input is normalized with (undone for the
    bicubic base); `scale`: the upscale factor (1: restoration at the same size)."""

    def __init__(
        self,
        scale: int = 2,
        nf: int = 64,
        n_blocks: int = 8,
        stats: tuple = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        res_scale: float = 0.1,
    ) -> None:
        super().__init__()
        if int(scale) < 1 or nf < 1 or n_blocks < 0:
            raise ValueError(f"SRResNet: scale >= 1, nf >= 1 and n_blocks >= 0 needed, got {scale}, {nf}, {n_blocks}")
        self.scale, self.nf, self.n_blocks = int(scale), int(nf), int(n_blocks)
        self.body = _Body(nf, n_blocks, res_scale)
        self.head = nn.Conv2d(nf, 3 * self.scale**2, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("mean", torch.tensor(stats[0], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(stats[1], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = x * self.std.to(x.dtype) + self.mean.to(x.dtype)
        out = self.head(self.body(x))
        if self.scale == 1:
            return base + out
        base = F.interpolate(base, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp(0, 1)
        return base + F.pixel_shuffle(out, self.scale)
