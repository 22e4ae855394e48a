"""DynamicUnet: a U-Net decoder grown over any encoder, found by one dummy forward pass.

The encoder is any `nn.Module` whose children run one after the other (a quickfit body: ResNet,
EfficientNet-Lite, or your own). A forward pass on a dummy image of `img_size` records each child's
output size; the last child before every change of resolution feeds a skip connection. The decoder
starts from the encoder's output with a middle block, then each `UnetBlock` upsamples by 2 (pixel
shuffle with ICNR init, or a transposed convolution), concatenates the skip (BatchNorm'd) and runs
two convolutions; a last upsampling reaches the input's resolution, where the input itself joins a
last pair of convolutions and a 1x1 convolution gives `n_out` scores per pixel. Sizes that are not
multiples of 32 work: an upsampled map is interpolated to its skip's size when they differ, and the
output to the input's size.

    from quickfit.vision.models import efficientnet_lite0
    from quickfit.vision.models.unet import DynamicUnet

    encoder = efficientnet_lite0(pretrained=True).features[:-1]     # stem + 7 stages, 320 channels at /32
    model = DynamicUnet(encoder, n_out=12, img_size=(240, 320))
    model(torch.randn(2, 3, 240, 320)).shape                         # (2, 12, 240, 320)

`model.body` is the encoder and `model.head` the decoder, so `vision_splitter` gives the layer
groups early encoder, late encoder, decoder.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from quickfit.layers import ScaledSigmoid

__all__ = ["DynamicUnet", "UnetBlock", "UnetDecoder", "PixelShuffleICNR", "icnr_", "conv_layer", "skip_points"]

Upsample = Literal["pixel_shuffle", "transpose"]


def conv_layer(ni: int, nf: int, ks: int = 3, act: bool = True) -> nn.Sequential:
    """Conv (no bias), BatchNorm, ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(ni, nf, ks, padding=ks // 2, bias=False), nn.BatchNorm2d(nf)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    nn.init.kaiming_normal_(layers[0].weight, nonlinearity="relu")
    return nn.Sequential(*layers)


def icnr_(weight: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """ICNR (Aitken et al., 2017): every group of scale**2 output kernels identical, so the pixel shuffle
    starts out as a nearest-neighbour upsampling of a normal convolution: no checkerboard artefacts."""
    nf, ni, kh, kw = weight.shape
    sub = torch.empty(nf // scale**2, ni, kh, kw)
    nn.init.kaiming_normal_(sub, nonlinearity="relu")
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(scale**2, dim=0))
    return weight


class PixelShuffleICNR(nn.Module):
    """Upsample by `scale`: 1x1 conv to nf * scale**2 channels (ICNR init), BatchNorm, ReLU, pixel shuffle."""

    def __init__(self, ni: int, nf: int, scale: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ni, nf * scale**2, 1, bias=False)
        icnr_(self.conv.weight, scale)
        self.bn, self.shuffle = nn.BatchNorm2d(nf * scale**2), nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(F.relu(self.bn(self.conv(x)), inplace=True))


def _upsampler(ni: int, nf: int, upsample: Upsample) -> nn.Module:
    if upsample == "pixel_shuffle":
        return PixelShuffleICNR(ni, nf)
    if upsample == "transpose":
        return nn.Sequential(nn.ConvTranspose2d(ni, nf, 2, stride=2, bias=False), nn.BatchNorm2d(nf), nn.ReLU(True))
    raise ValueError(f"upsample must be 'pixel_shuffle' or 'transpose', got {upsample!r}")


class UnetBlock(nn.Module):
    """Upsample `up_c` channels by 2 to `up_c // 2`, join the BatchNorm'd skip of `skip_c`, two convs."""

    def __init__(self, up_c: int, skip_c: int, upsample: Upsample = "pixel_shuffle", min_c: int = 32) -> None:
        super().__init__()
        self.up = _upsampler(up_c, up_c // 2, upsample)
        self.bn = nn.BatchNorm2d(skip_c)
        ni = up_c // 2 + skip_c
        # Half the joined channels (fastai keeps all but in the last block): the convolutions at high
        # resolution dominate a U-Net's cost, and halving them made CamVid training ~3x faster on CPU.
        nf = min(ni, max(ni // 2, min_c))
        self.conv1, self.conv2 = conv_layer(ni, nf), conv_layer(nf, nf)
        self.out_channels = nf

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        if up.shape[-2:] != skip.shape[-2:]:  # odd sizes: the encoder rounded, the decoder follows
            up = F.interpolate(up, skip.shape[-2:], mode="nearest")
        return self.conv2(self.conv1(F.relu(torch.cat([up, self.bn(skip)], dim=1))))


class UnetDecoder(nn.Module):
    """Middle block, one `UnetBlock` per skip (deepest first), last upsampling, the input joined, 1x1 out."""

    def __init__(
        self,
        enc_c: int,
        skips: list[tuple[int, int]],
        n_out: int,
        in_c: int = 3,
        upsample: Upsample = "pixel_shuffle",
        last_cross: bool = True,
        y_range: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.middle = nn.Sequential(
            nn.BatchNorm2d(enc_c), nn.ReLU(), conv_layer(enc_c, enc_c * 2), conv_layer(enc_c * 2, enc_c)
        )
        blocks, c = [], enc_c
        for skip_c, _ in reversed(skips):
            blocks.append(UnetBlock(c, skip_c, upsample=upsample))
            c = blocks[-1].out_channels
        self.blocks = nn.ModuleList(blocks)
        self.final_up = _upsampler(c, c, upsample)  # the shallowest skip is at half the input's size or less
        self.last_cross = last_cross
        # The input joins at full resolution: one narrow convolution there, the decoder's costliest layer.
        self.cross = conv_layer(c + in_c, c // 2) if last_cross else None
        self.out = nn.Conv2d(c // 2 if last_cross else c, n_out, 1)
        self.y_range = ScaledSigmoid(*y_range) if y_range is not None else None

    def forward(self, enc: torch.Tensor, skips: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out = self.middle(enc)
        for block, skip in zip(self.blocks, reversed(skips)):
            out = block(out, skip)
        out = self.final_up(out)
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, x.shape[-2:], mode="nearest")
        if self.cross is not None:
            out = self.cross(torch.cat([out, x], dim=1))
        out = self.out(out)
        return self.y_range(out) if self.y_range is not None else out


def skip_points(encoder: nn.Module, img_size: tuple[int, int], in_c: int = 3) -> tuple[list[int], list, tuple]:
    """(indices of the encoder's children that feed skips, their (channels, (h, w)), the output's shape).

    One forward pass in eval mode on zeros: the last child before each change of resolution is kept.
    A child at the input's own resolution is not (the input joins at the end anyway)."""
    children = list(encoder.children())
    if not children:
        raise ValueError("DynamicUnet needs an encoder made of child modules that run in order (e.g. nn.Sequential)")
    shapes: list[tuple[int, torch.Size]] = []
    hooks = [c.register_forward_hook(lambda m, i, o, k=k: shapes.append((k, o.shape))) for k, c in enumerate(children)]
    was = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            param = next(encoder.parameters(), None)
            device = param.device if param is not None else "cpu"
            out = encoder(torch.zeros(1, in_c, *img_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        encoder.train(was)
    if [k for k, _ in shapes] != list(range(len(children))):
        raise ValueError(
            "DynamicUnet: the encoder's children did not each run once, in order; wrap its layers in an nn.Sequential"
        )
    idx, info = [], []
    for k in range(len(shapes) - 1):
        size, nxt = tuple(shapes[k][1][-2:]), tuple(shapes[k + 1][1][-2:])
        if size != nxt and size != tuple(img_size):
            idx.append(k)
            info.append((int(shapes[k][1][1]), size))
    return idx, info, tuple(out.shape)


class DynamicUnet(nn.Module):
    """A U-Net over `encoder` with `n_out` outputs per pixel; see the module docstring.

    upsample: "pixel_shuffle" (ICNR init) or "transpose"; last_cross: join the input image at the end;
    y_range: squash outputs into (low, high) (image-to-image regression)."""

    def __init__(
        self,
        encoder: nn.Module,
        n_out: int,
        img_size: tuple[int, int] | int,
        upsample: Upsample = "pixel_shuffle",
        last_cross: bool = True,
        y_range: tuple[float, float] | None = None,
        in_c: int = 3,
    ) -> None:
        super().__init__()
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if n_out < 1:
            raise ValueError(f"DynamicUnet: n_out must be at least 1, got {n_out}")
        idx, info, out_shape = skip_points(encoder, img_size, in_c)
        if not idx:
            raise ValueError(f"DynamicUnet: the encoder never reduces the resolution of a {img_size} input")
        self.body = encoder
        self.skip_idx, self.img_size = idx, img_size
        self.head = UnetDecoder(int(out_shape[1]), info, n_out, in_c, upsample, last_cross, y_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The skip activations are caught by hooks registered for this call only and writing into a local
        # list: hooks kept on the module would close over it, so a deep copy (export_onnx, an EMA of the
        # weights) would still write into the original. A few microseconds per call.
        skips: list[torch.Tensor | None] = [None] * len(self.skip_idx)
        children = list(self.body.children())
        handles = [children[k].register_forward_hook(_store_into(skips, slot)) for slot, k in enumerate(self.skip_idx)]
        try:
            enc = self.body(x)
        finally:
            for h in handles:
                h.remove()
        return self.head(enc, skips, x)


def _store_into(skips: list, slot: int):
    def hook(module, inputs, output):
        skips[slot] = output

    return hook
