"""What `vision_learner` needs to know about each architecture: where to cut, how to split, what to feed.

    from quickfit.vision.models import get_arch
    spec = get_arch("resnet34")            # or get_arch(resnet34), the builder itself
    body = spec.create_body(pretrained=True)
    spec.split_at, spec.stats, spec.num_features   # 6, ImageNet mean/std, 512

An `ArchSpec` holds: a builder of the full ImageNet classifier, the cut (a function returning the
convolutional body as an `nn.Sequential`), the index in that body where the "late body" layer group
starts (early body, late body and head are the three layer groups), the normalization statistics the
pretrained weights expect, the number of channels the body outputs, and whether channels_last memory
format is the default (measured faster on CPU; see benchmarks/transfer.py). `register_arch` adds one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from quickfit.vision.models.efficientnet_lite import efficientnet_lite1, efficientnet_lite2
from quickfit.vision.models.efficientnet_lite0 import LITE_STATS, efficientnet_lite0
from quickfit.vision.models.resnet import resnet18, resnet34, resnet50, resnext50_32x4d
from quickfit.vision.models.small import CIFAR_STATS, darknet, resnet9, wrn_22

__all__ = ["ArchSpec", "ARCHS", "IMAGENET_STATS", "register_arch", "get_arch", "arch_names"]

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]
IMAGENET_STATS: Stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class ArchSpec:
    name: str
    build: Callable[..., nn.Module]  # build(pretrained=...) -> the full ImageNet classifier
    cut: Callable[[nn.Module], nn.Sequential]  # the body, up to (not including) the pooling
    split_at: int  # body[:split_at] is the early layer group, body[split_at:] the late one
    stats: Stats
    num_features: int
    channels_last: bool = True

    def create_body(self, pretrained: bool | str | Path = False) -> nn.Sequential:
        return self.cut(self.build(pretrained=pretrained))


def _resnet_cut(model: nn.Module) -> nn.Sequential:
    return nn.Sequential(*list(model.children())[:-2])  # drop avgpool and fc


def _lite_cut(model: nn.Module) -> nn.Sequential:
    return model.features


def _small_cut(model: nn.Module) -> nn.Sequential:
    return model.body


ARCHS: dict[str, ArchSpec] = {}


def register_arch(spec: ArchSpec) -> ArchSpec:
    "Make `spec` available to `vision_learner(dls, spec.name)` and to exported learners."
    ARCHS[spec.name] = spec
    return spec


# ResNets: children are conv1, bn1, relu, maxpool, layer1..layer4; layer3 starts the late group.
register_arch(ArchSpec("resnet18", resnet18, _resnet_cut, 6, IMAGENET_STATS, 512))
register_arch(ArchSpec("resnet34", resnet34, _resnet_cut, 6, IMAGENET_STATS, 512))
register_arch(ArchSpec("resnet50", resnet50, _resnet_cut, 6, IMAGENET_STATS, 2048))
register_arch(ArchSpec("resnext50_32x4d", resnext50_32x4d, _resnet_cut, 6, IMAGENET_STATS, 2048))
# EfficientNet-Lite0: features are stem, 7 stages, head conv; the 112-channel stage starts the late group.
register_arch(ArchSpec("efficientnet_lite0", efficientnet_lite0, _lite_cut, 5, LITE_STATS, 1280))
register_arch(ArchSpec("efficientnet_lite1", efficientnet_lite1, _lite_cut, 5, LITE_STATS, 1280))
register_arch(ArchSpec("efficientnet_lite2", efficientnet_lite2, _lite_cut, 5, LITE_STATS, 1280))
# Small images from scratch (models/small.py; stride-1 stems, builders take n_out and width): bodies are
# resnet9's prep, layer1 | layer2, layer3; darknet's stem, 3 groups | 2 groups; wrn_22's stem, group 1 | 2, 3.
register_arch(ArchSpec("resnet9", resnet9, _small_cut, 2, CIFAR_STATS, 512))
register_arch(ArchSpec("darknet", darknet, _small_cut, 4, CIFAR_STATS, 1024))
register_arch(ArchSpec("wrn_22", wrn_22, _small_cut, 2, CIFAR_STATS, 384))


def arch_names() -> list[str]:
    return sorted(ARCHS)


def get_arch(arch: str | ArchSpec | Callable) -> ArchSpec:
    "The spec of `arch`: a registered name, a spec, or one of the builders (`resnet34`)."
    if isinstance(arch, ArchSpec):
        return arch
    name = arch if isinstance(arch, str) else getattr(arch, "__name__", None)
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(arch_names())} (or register_arch)")
    return ARCHS[name]
