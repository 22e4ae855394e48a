"""The classification model: `VisionModel(body, head)`, its head (`create_head`), its configuration
(what an export records and `load_learner` rebuilds), its layer groups, and frozen BatchNorm statistics.

The head is `AdaptiveConcatPool2d, Flatten, BatchNorm1d, Dropout(ps/2), Linear(->512), ReLU, BatchNorm1d,
Dropout(ps), Linear(->n_out)`. The layer groups are early body, late body and head (the split point comes
from the architecture's registry entry).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from quickfit.callbacks.core import Callback
from quickfit.configs import ModelConfig
from quickfit.layers import AdaptiveConcatPool2d, Flatten, LinBnDrop, ScaledSigmoid
from quickfit.vision.models.registry import ArchSpec, get_arch

__all__ = ["VisionModel", "VisionModelConfig", "FrozenBatchNorm", "create_head", "vision_splitter"]

_NORM = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def create_head(
    n_features: int,
    n_out: int,
    lin_ftrs: Sequence[int] = (512,),
    ps: float = 0.5,
    concat_pool: bool = True,
    y_range: tuple[float, float] | None = None,
) -> nn.Sequential:
    """Pool, flatten, then [BatchNorm1d, Dropout, Linear] blocks with ReLU between them.

    The dropout of the last block is `ps`, of the earlier ones `ps / 2` (the course's defaults);
    `y_range` ends with a sigmoid scaled to (low, high) (e.g. (-1, 1) for points).
    """
    pool = AdaptiveConcatPool2d() if concat_pool else nn.AdaptiveAvgPool2d(1)
    sizes = [n_features * (2 if concat_pool else 1), *lin_ftrs, n_out]
    layers: list[nn.Module] = [pool, Flatten()]
    for i, (n_in, n_next) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers += LinBnDrop(
            n_in, n_next, bn=True, p=ps if last else ps / 2, act=None if last else nn.ReLU(inplace=True)
        )
    if y_range is not None:
        layers.append(ScaledSigmoid(*y_range))
    return nn.Sequential(*layers)


class VisionModel(nn.Sequential):
    """`head(body(x))`. A 2-D input is taken as pooled body features (precomputed activations) and
    only goes through the head after its pooling layers; an image batch is always 4-D."""

    POOL_LAYERS = 2  # head[0] pools, head[1] flattens: precomputed features are their output

    def __init__(self, body: nn.Module, head: nn.Sequential) -> None:
        super().__init__(body, head)

    @property
    def body(self) -> nn.Module:
        return self[0]

    @property
    def head(self) -> nn.Sequential:
        return self[1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        "The pooled body activations that precompute caches."
        return self.head[: self.POOL_LAYERS](self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            return self.head[self.POOL_LAYERS :](x)
        return self.head(self.body(x))


@dataclass
class VisionModelConfig(ModelConfig):
    """A `VisionModel`: the body of the registered architecture `arch` and `create_head`'s head.

    `normalize` is not the model's but what it expects: data normalized with the architecture's
    statistics (`set_data` keeps them)."""

    type: ClassVar[str] = "vision_model"
    arch: str
    n_out: int
    lin_ftrs: list[int] = field(default_factory=lambda: [512])
    ps: float = 0.5
    concat_pool: bool = True
    y_range: list[float] | None = None
    channels_last: bool = False
    normalize: bool = True

    def build(self, pretrained: bool | str | Path = False, spec: ArchSpec | None = None) -> VisionModel:
        """The model with random weights, or the body's `pretrained` ones; `spec`: the architecture itself,
        when it is not registered under `arch`."""
        spec = get_arch(self.arch) if spec is None else spec
        body = spec.create_body(pretrained=pretrained)
        y_range = tuple(self.y_range) if self.y_range is not None else None
        model = VisionModel(
            body, create_head(spec.num_features, self.n_out, self.lin_ftrs, self.ps, self.concat_pool, y_range)
        )
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


def vision_splitter(model: VisionModel, split_at: int) -> list[list[nn.Parameter]]:
    "Early body (`body[:split_at]`), late body, head."
    body = list(model.body.children())
    return [
        [p for m in body[:split_at] for p in m.parameters()],
        [p for m in body[split_at:] for p in m.parameters()],
        list(model.head.parameters()),
    ]


def _body_is_frozen(model: VisionModel) -> bool:
    norm = {id(p) for m in model.body.modules() if isinstance(m, _NORM) for p in m.parameters()}
    return not any(p.requires_grad for p in model.body.parameters() if id(p) not in norm)


class FrozenBatchNorm(Callback):
    """In training, BatchNorm layers of the body use their running statistics when their parameters
    are frozen, or always when `learn.bn_freeze` (the course library's `bn_freeze`).

    A frozen body then computes in training exactly what precompute cached, so the head carries over
    when precompute is turned off, and small batches do not drag the pretrained statistics around.
    With `bn_freeze` the unfrozen body keeps the statistics too: on small datasets, switching
    BatchNorm to batch statistics when unfreezing shifts every activation the head was trained on."""

    order = -10

    def before_train(self, learn) -> None:
        freeze_all = learn.bn_freeze
        for m in learn._unwrapped().body.modules():  # DDP wraps the model
            if isinstance(m, _NORM) and any(True for _ in m.parameters()):
                if freeze_all or not any(p.requires_grad for p in m.parameters()):
                    m.eval()
