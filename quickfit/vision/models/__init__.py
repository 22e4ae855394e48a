"""Image classification models with pretrained ImageNet weights, and their registry.

from quickfit.vision.models import resnet34, efficientnet_lite0, get_arch
model = efficientnet_lite0(pretrained=True)     # weights from the installed package, no download
get_arch("resnet34").split_at                   # where the late-body layer group starts
"""

from quickfit.vision.models.efficientnet_lite import efficientnet_lite1, efficientnet_lite2
from quickfit.vision.models.efficientnet_lite0 import (
    LITE_STATS,
    EfficientNetLite0,
    convert_efficientnet_pytorch_keys,
    efficientnet_lite0,
)
from quickfit.vision.models.registry import (
    ARCHS,
    IMAGENET_STATS,
    ArchSpec,
    arch_names,
    get_arch,
    register_arch,
)
from quickfit.vision.models.resnet import ResNet, resnet18, resnet34, resnet50, resnext50_32x4d
from quickfit.vision.models.weights import load_pretrained, read_state_dict

__all__ = [
    "ARCHS",
    "ArchSpec",
    "EfficientNetLite0",
    "IMAGENET_STATS",
    "LITE_STATS",
    "ResNet",
    "arch_names",
    "convert_efficientnet_pytorch_keys",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "get_arch",
    "load_pretrained",
    "read_state_dict",
    "register_arch",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext50_32x4d",
]
