"""ResNet-18/34/50 and ResNeXt-50 (32x4d) with torchvision's parameter names and shapes.

Because every parameter and buffer is named as in `torchvision.models.resnet`, a torchvision weight file
loads with `strict=True`; `pretrained=True` downloads torchvision's published ImageNet weights (checked
against the sha256 prefix in their file names) into quickfit's download cache.

    from quickfit.vision.models import resnet34
    model = resnet34(pretrained=True)                 # downloads once, then cached
    model = resnet34(pretrained="resnet34-b627a593.pth")  # a local copy, no network
    logits = model(torch.randn(1, 3, 224, 224))       # (1, 1000) ImageNet logits
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from quickfit.vision.models.weights import WeightSource, load_pretrained

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext50_32x4d",
    "TORCHVISION_URLS",
]

# torchvision's IMAGENET1K_V1 weights; the 8 hex digits in each name are the start of the file's sha256.
TORCHVISION_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnext50_32x4d": "https://download.pytorch.org/models/resnext50_32x4d-7cdf4587.pth",
}


def _conv3x3(c_in: int, c_out: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, groups=groups, bias=False)


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    "Two 3x3 convolutions and a shortcut (ResNet-18/34)."

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = _conv3x3(c_in, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(c_in, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    "1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand; the stride sits on the 3x3 (torchvision's v1.5)."

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = _conv1x1(c_in, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(c_in, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _downsample(c_in: int, c_out: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(_conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))


class ResNet(nn.Module):
    """The ImageNet ResNet: stem, four stages, average pool, linear classifier.

    The children are in forward order (conv1 ... layer4, avgpool, fc), so the body used by
    `vision_learner` is `nn.Sequential(*list(model.children())[:-2])`.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        groups: int = 1,
        width_per_group: int = 64,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c_in = 64
        for i, (planes, n_blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n_blocks):
                blocks.append(block(c_in, planes, stride if j == 0 else 1, groups, width_per_group))
                c_in = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self.num_features = 512 * block.expansion
        # torchvision's initialization, so a model trained from scratch matches theirs too.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _build(name: str, pretrained: WeightSource, num_classes: int) -> ResNet:
    block, layers, groups, width = _CONFIGS[name]
    model = ResNet(block, layers, num_classes=num_classes, groups=groups, width_per_group=width)
    if pretrained is not False and pretrained is not None:
        if num_classes != 1000:
            raise ValueError(
                f"{name}: pretrained weights have an ImageNet classifier of 1000 classes, got num_classes="
                f"{num_classes}; build with num_classes=1000 and replace the head (vision_learner does)"
            )
        load_pretrained(model, pretrained, url=TORCHVISION_URLS[name], arch=name)
    return model


_CONFIGS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], list[int], int, int]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2], 1, 64),
    "resnet34": (BasicBlock, [3, 4, 6, 3], 1, 64),
    "resnet50": (Bottleneck, [3, 4, 6, 3], 1, 64),
    "resnext50_32x4d": (Bottleneck, [3, 4, 6, 3], 32, 4),
}


def resnet18(pretrained: bool | str | Path = False, num_classes: int = 1000) -> ResNet:
    "ResNet-18 (11.7M parameters). `pretrained`: False, True (download torchvision's) or a local file."
    return _build("resnet18", pretrained, num_classes)


def resnet34(pretrained: bool | str | Path = False, num_classes: int = 1000) -> ResNet:
    "ResNet-34 (21.8M parameters). `pretrained`: False, True (download torchvision's) or a local file."
    return _build("resnet34", pretrained, num_classes)


def resnet50(pretrained: bool | str | Path = False, num_classes: int = 1000) -> ResNet:
    "ResNet-50 (25.6M parameters). `pretrained`: False, True (download torchvision's) or a local file."
    return _build("resnet50", pretrained, num_classes)


def resnext50_32x4d(pretrained: bool | str | Path = False, num_classes: int = 1000) -> ResNet:
    "ResNeXt-50 32x4d (25.0M parameters). `pretrained`: False, True (download) or a local file."
    return _build("resnext50_32x4d", pretrained, num_classes)
