"""Feature (perceptual) loss: pixels plus activations of a frozen pretrained network, plus Gram matrices.

    from quickfit.vision.generation.feature_loss import FeatureLoss, vgg16_features
    loss = FeatureLoss()                                  # pretrained EfficientNet-Lite0, three layers, balanced
    loss(pred, target)                                    # images [B, 3, H, W] in [0, 1]
    loss.last_terms                                       # {"pixel": ..., "feat_0": ..., ...} of that call
    learn = unet_learner(dls, "resnet34", loss_func=loss, metrics=loss.metrics())   # terms in the epoch table

    vgg = FeatureLoss(vgg16_features("vgg16-397923af.pth"), layer_weights=(20, 70, 10), layer_ids=(8, 15, 22),
                      stats=IMAGENET_STATS)                # the course's VGG16 layers and weights

The loss is `pixel_weight * L1(pred, target) + sum_i w_i * L1(f_i(pred), f_i(target)) + gram_weight *
sum_i w_i * L1(gram(f_i(pred)), gram(f_i(target)))`, where f_i are the activations of the layers
`layer_ids` of `features` (an `nn.Sequential`, run only up to the last of them) on images normalized
with `stats`. VGG's ImageNet weights cannot be installed here, so the default network is
EfficientNet-Lite0's pretrained convolutional body; any network given as a list of layers works, e.g. a
user's VGG16 from a torchvision weight file (`vgg16_features`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from quickfit.metrics import Metric
from quickfit.vision.models.efficientnet_lite0 import LITE_STATS, efficientnet_lite0
from quickfit.vision.models.weights import read_state_dict

__all__ = [
    "FeatureLoss",
    "gram_matrix",
    "vgg16_features",
    "lite0_features",
    "VGG16_LAYERS",
    "LITE0_LAYERS",
    "LITE0_WEIGHTS",
]

# Where the activations are taken. Lite0's body: stem, 7 stages, head; its stages 2, 3 and 5 end at 1/4,
# 1/8 and 1/16 of the image (24, 40 and 112 channels). VGG16: the ReLUs before the 2nd-4th max-pools.
LITE0_LAYERS = (2, 3, 5)
LITE0_WEIGHTS = (0.01, 0.01, 0.01)  # examples/superres.py measured 0.0085, 0.0097, 0.012 to balance the pixel L1
VGG16_LAYERS = (8, 15, 22)
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, C]: channel correlations averaged over positions (style, Gatys et al.)."""
    b, c, h, w = x.shape
    f = x.reshape(b, c, h * w).float()
    return f @ f.transpose(1, 2) / (c * h * w)


def lite0_features(pretrained: bool | str | Path = True) -> nn.Sequential:
    """EfficientNet-Lite0's convolutional body (`features`), ImageNet weights by default."""
    return efficientnet_lite0(pretrained=pretrained).features


def vgg16_features(weights: str | Path | None = None, bn: bool = False) -> nn.Sequential:
    """torchvision's `vgg16().features` (or `vgg16_bn` with `bn`), layer for layer, so a torchvision weight
    file (`features.0.weight`, ... ; the classifier's keys are ignored) loads into it. `weights=None`: random."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(c_in, v, 3, padding=1))
        if bn:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        c_in = v
    features = nn.Sequential(*layers)
    if weights is not None:
        sd = read_state_dict(weights)
        sd = {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
        if not sd:
            raise ValueError(f"{weights} has no 'features.*' keys: not a torchvision VGG16 state_dict")
        try:
            features.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            kind = "vgg16_bn" if bn else "vgg16"
            raise ValueError(f"{weights} does not fit torchvision's {kind} features (bn={bn}?): {e}") from None
    return features


class FeatureLoss(nn.Module):
    """See the module docstring. `features`: an `nn.Sequential` (default: pretrained Lite0's body);
    `layer_ids`: indices of its layers to compare (default: `LITE0_LAYERS`; required for another
    network); `layer_weights`: one weight per layer (default: `LITE0_WEIGHTS` for the default network,
    which puts each term at about the pixel L1's level on photos; 1.0 each for another); `stats`: the
    (mean, std) the network expects of [0, 1] images. After each call `last_terms` holds the terms, detached."""

    def __init__(
        self,
        features: nn.Sequential | None = None,
        layer_weights: Sequence[float] | None = None,
        pixel_weight: float = 1.0,
        gram_weight: float = 0.0,
        layer_ids: Sequence[int] | None = None,
        stats: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        if features is None:
            features, layer_ids = lite0_features(True), LITE0_LAYERS if layer_ids is None else layer_ids
            stats = LITE_STATS if stats is None else stats
            if layer_weights is None:  # measured: each term then starts level with the pixel L1 on photos
                layer_weights = LITE0_WEIGHTS
        if not isinstance(features, nn.Sequential):
            raise TypeError(f"features must be an nn.Sequential (a list of layers), got {type(features).__name__}")
        if layer_ids is None:
            raise ValueError("FeatureLoss: pass layer_ids= (which layers of features to compare)")
        self.layer_ids = [int(i) for i in layer_ids]
        bad = [i for i in self.layer_ids if not 0 <= i < len(features)]
        if bad:
            raise ValueError(f"FeatureLoss: layer_ids {bad} are not layers of features (0..{len(features) - 1})")
        if layer_weights is None:
            layer_weights = [1.0] * len(self.layer_ids)
        if len(layer_weights) != len(self.layer_ids):
            raise ValueError(f"FeatureLoss: {len(layer_weights)} layer_weights for {len(self.layer_ids)} layer_ids")
        self.layer_weights = [float(w) for w in layer_weights]
        self.pixel_weight, self.gram_weight = float(pixel_weight), float(gram_weight)
        self.features = features[: max(self.layer_ids) + 1].eval().requires_grad_(False)
        mean, std = stats if stats is not None else ((0.0,) * 3, (1.0,) * 3)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.last_terms: dict[str, torch.Tensor] = {}

    @property
    def term_names(self) -> list[str]:
        names = ["pixel"] + [f"feat_{i}" for i in range(len(self.layer_ids))]
        return names + ([f"gram_{i}" for i in range(len(self.layer_ids))] if self.gram_weight else [])

    def train(self, mode: bool = True) -> FeatureLoss:
        super().train(mode)
        self.features.eval()  # frozen: BatchNorm statistics and dropout stay as pretrained, always
        return self

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations of `layer_ids` for [0, 1] images `x` (the network run up to the last one)."""
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.layer_ids:
                out.append(x)
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"FeatureLoss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        if self.mean.device != pred.device:
            self.to(pred.device)
        terms = {"pixel": self.pixel_weight * F.l1_loss(pred.float(), target.float())}
        pred_f = self.activations(pred)
        with torch.no_grad():
            targ_f = self.activations(target)
        for i, (p, t, w) in enumerate(zip(pred_f, targ_f, self.layer_weights)):
            terms[f"feat_{i}"] = w * F.l1_loss(p.float(), t.float())
            if self.gram_weight:
                terms[f"gram_{i}"] = self.gram_weight * w * F.l1_loss(gram_matrix(p), gram_matrix(t))
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        return torch.stack(list(terms.values())).sum()

    def metrics(self) -> list[Metric]:
        """One metric per term (the validation means of `last_terms`), for the epoch table."""
        return [_TermMetric(self, name) for name in self.term_names]

    def extra_repr(self) -> str:
        return f"layer_ids={self.layer_ids}, layer_weights={self.layer_weights}, pixel_weight={self.pixel_weight}, " + (
            f"gram_weight={self.gram_weight}"
        )


class _TermMetric(Metric):
    """The mean of one FeatureLoss term over the validation set (read from the loss's last call)."""

    def __init__(self, loss: FeatureLoss, name: str) -> None:
        self.loss, self.name = loss, name

    def batch_totals(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        n = targ.shape[0]
        value = self.loss.last_terms[self.name].to(torch.float64)
        return torch.stack([value * n, torch.tensor(float(n), dtype=torch.float64, device=value.device)])

    def compute(self, totals: torch.Tensor) -> float:
        return float(totals[0] / totals[1])
