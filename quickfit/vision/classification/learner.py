"""vision_learner: a pretrained body, a new head sized from the data, three layer groups, body frozen.

    import quickfit as qf
    from quickfit.vision import ImageDataLoaders, aug_transforms, vision_learner

    dls = ImageDataLoaders.from_folder(path, valid="val", size=224, batch_tfms=aug_transforms())
    learn = vision_learner(dls, "efficientnet_lite0", metrics=[qf.accuracy], precompute=True)
    learn.fit(2, 1e-2)                    # the head, on cached body activations
    learn.precompute = False              # same head, now with augmentation
    learn.fit_sgdr(3, cycle_len=1, lr_max=1e-2)
    learn.unfreeze()
    learn.fit_sgdr(3, 1, lr_max=[1e-4, 1e-3, 1e-2], cycle_mult=2)
    preds, targs = learn.tta()

The model is `VisionModel(body, head)`: the body is the architecture cut before its pooling; the head
is `AdaptiveConcatPool2d, Flatten, BatchNorm1d, Dropout(ps/2), Linear(->512), ReLU, BatchNorm1d,
Dropout(ps), Linear(->n_out)`. The layer groups are early body, late body and head (the split point
comes from the architecture's registry entry), so `lr=slice(1e-4, 1e-2)` or a list of three rates
gives discriminative learning rates. The data is normalized with the statistics the pretrained
weights expect (ImageNet's for ResNets, the TF-Lite convention for EfficientNet-Lite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from quickfit.callbacks.core import Callback
from quickfit.configs import ModelConfig, Task, check_outputs, export_record
from quickfit.layers import AdaptiveConcatPool2d, Flatten, LinBnDrop, ScaledSigmoid
from quickfit.learner import Learner
from quickfit.metrics import accuracy
from quickfit.optim import Adam
from quickfit.vision.classification.precompute import PrecomputedDataLoaders, precomputed_dls
from quickfit.vision.classification.tta import tta as _tta
from quickfit.vision.core.data import image_dls_from_export
from quickfit.vision.core.labels import set_label_prior
from quickfit.vision.models.registry import ArchSpec, get_arch

__all__ = [
    "VisionModel",
    "VisionLearner",
    "FrozenBatchNorm",
    "create_head",
    "vision_learner",
    "vision_splitter",
    "VisionModelConfig",
    "ImagesTask",
]

_NORM = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
_LOSSES = {"cross_entropy": nn.CrossEntropyLoss, "bce_with_logits": nn.BCEWithLogitsLoss, "mse": nn.MSELoss}


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


class VisionLearner(Learner):
    """A Learner that also knows its architecture: adds `precompute`, `tta`, `set_data`.

    `image_dls` are the images; `dls` is the same object unless precompute is on, when it serves the
    cached body activations instead (and hands `test_dl` / `decode_pred` over to `image_dls`).
    """

    def __init__(
        self,
        dls,
        model: VisionModel,
        spec: ArchSpec,
        loss_func: Callable | None = None,
        opt_func: Callable = Adam,
        lr: float | slice | Sequence[float] = 1e-3,
        wd: float | None = None,
        metrics: Iterable = (),
        cbs: Iterable[Callback] = (),
        path: str | Path = ".",
        model_dir: str | Path = "models",
        train_bn: bool = False,
        slice_div: float = 3.0,
        progress: bool | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self._precompute, self.spec, self.image_dls, self.bn_freeze = False, spec, dls, False
        self.feature_cache: dict[str, PrecomputedDataLoaders] = {}  # fingerprint -> cached activations
        super().__init__(
            dls,
            model,
            loss_func,
            opt_func=opt_func,
            lr=lr,
            wd=wd,
            metrics=metrics,
            splitter=partial(vision_splitter, split_at=spec.split_at),
            cbs=[FrozenBatchNorm(), *cbs],
            path=path,
            model_dir=model_dir,
            train_bn=train_bn,
            slice_div=slice_div,
            progress=progress,
            device=device,
        )

    # ---- precompute ----------------------------------------------------------------------------
    @property
    def precompute(self) -> bool:
        "Train the head on cached activations of the frozen body (fast, no augmentation)."
        return self._precompute

    @precompute.setter
    def precompute(self, on: bool) -> None:
        on = bool(on)
        if on and not _body_is_frozen(self.model):
            raise ValueError("precompute=True needs the body frozen: call learn.freeze() first")
        if on:
            self.dls = precomputed_dls(self)
        else:
            self.dls = self.image_dls
        self._precompute = on

    def freeze_to(self, n: int) -> None:
        super().freeze_to(n)
        if self._precompute and not _body_is_frozen(self.model):
            self.precompute = False  # the body trains now: its activations change every step

    # ---- data ----------------------------------------------------------------------------------
    @property
    def input_dls(self):
        """The images, also while precompute trains on their cached activations."""
        return self.image_dls

    def set_data(self, dls) -> VisionLearner:
        """Continue training the same model on other data, e.g. `dls.new(size=299)` (progressive
        resizing). Precomputed activations are recomputed for the new data when precompute is on."""
        n_out = [m for m in self.model.head if isinstance(m, nn.Linear)][-1].out_features
        if getattr(dls, "c", n_out) != n_out:
            raise ValueError(f"set_data: the new data has {dls.c} classes, the model predicts {n_out}")
        if hasattr(dls, "set_normalize") and self.export_info.get("model", {}).get("normalize", True):
            dls.set_normalize(*self.spec.stats)
        was = self._precompute
        self._precompute, self.image_dls, self.dls = False, dls, dls
        if hasattr(dls, "to"):
            dls.to(self.device)
        self.feature_cache.clear()
        if was:
            self.precompute = True
        return self

    @classmethod
    def export_task(cls, loss_func) -> Task:
        """What an export of this learner records as its task (`PointsLearner` has its own)."""
        return ImagesTask(_loss_name(loss_func))

    def show_results(self, max_n: int = 9, dl=None, ncols: int | None = None):
        """Images of the validation set (or `dl`) titled target / prediction (classification/interpret.py)."""
        from quickfit.vision.classification.interpret import show_results

        return show_results(self, max_n=max_n, dl=dl, ncols=ncols)

    def tta(self, dl=None, n: int = 4, beta: float | None = 0.25):
        """Predictions blended from the plain images and the mean of `n` augmented passes (classification/tta.py)."""
        return _tta(self, dl=dl, n=n, beta=beta)


def _loss_name(loss_func) -> str | None:
    for name, cls in _LOSSES.items():
        if isinstance(loss_func, cls):
            return name
    return None


def _default_loss(dls) -> nn.Module:
    kind = getattr(dls, "target_kind", "category")
    return {"multi_category": nn.BCEWithLogitsLoss, "float": nn.MSELoss}.get(kind, nn.CrossEntropyLoss)()


def vision_learner(
    dls,
    arch: str | ArchSpec | Callable,
    pretrained: bool | str | Path = True,
    metrics: Iterable | None = None,
    loss_func: Callable | None = None,
    opt_func: Callable = Adam,
    lr: float | slice | Sequence[float] = 1e-3,
    wd: float | None = None,
    lin_ftrs: Sequence[int] = (512,),
    ps: float = 0.5,
    concat_pool: bool = True,
    n_out: int | None = None,
    y_range: tuple[float, float] | None = None,
    precompute: bool = False,
    normalize: bool = True,
    channels_last: bool | None = None,
    cbs: Iterable[Callback] = (),
    path: str | Path = ".",
    model_dir: str | Path = "models",
    train_bn: bool = False,
    slice_div: float = 3.0,
    bn_freeze: bool | None = None,
    progress: bool | None = None,
    device: torch.device | str | None = None,
) -> VisionLearner:
    """A `VisionLearner` for `dls` with the body of `arch` (a registered name such as "resnet34" or
    "efficientnet_lite0", its builder, or an `ArchSpec`).

    `pretrained`: True loads the published ImageNet weights, a path loads a local copy, False starts
    from random weights (then the body is not frozen). `n_out` defaults to `dls.c`; `loss_func` to
    cross-entropy (BCE for multi-label data, MSE for regression); `metrics` to accuracy for
    single-label classification. `normalize` sets the data's normalization to the architecture's
    statistics. `channels_last` (default: the architecture's, faster on CPU) picks the memory format.
    `train_bn=False` keeps the BatchNorm layers of a frozen body frozen too (weights and running
    statistics), so the frozen body is a fixed feature extractor and precompute changes nothing but
    speed; `train_bn=True` trains them while the rest of the body is frozen. `bn_freeze` (default: on
    for pretrained bodies) keeps the body's BatchNorm statistics even after `unfreeze()` (their scale
    and shift still train): on small datasets fine-tuning then improves instead of hurting. `path` is where the
    learner writes (`models/` checkpoints, `tmp/` precomputed activations): the current folder by
    default, never the image folder, which may be shared or read-only.
    """
    spec = get_arch(arch)
    n_out = getattr(dls, "c", None) if n_out is None else n_out
    if not n_out:
        raise ValueError("vision_learner: the data does not say how many outputs the model needs; pass n_out=")
    if loss_func is None:
        loss_func = getattr(dls, "loss_func", None) or _default_loss(dls)
    if metrics is None:
        metrics = [accuracy] if isinstance(loss_func, nn.CrossEntropyLoss) else []
    if normalize and hasattr(dls, "set_normalize"):
        dls.set_normalize(*spec.stats)
    if y_range is None:
        y_range = getattr(dls, "y_range", None)  # points: (-1, 1)
    use_cl = spec.channels_last if channels_last is None else channels_last
    y_list = None if y_range is None else [float(v) for v in y_range]
    lin = [int(n) for n in lin_ftrs]
    config = VisionModelConfig(
        spec.name, int(n_out), lin, float(ps), bool(concat_pool), y_list, bool(use_cl), bool(normalize)
    )
    model = config.build(pretrained, spec)
    if isinstance(loss_func, nn.BCEWithLogitsLoss) and getattr(dls, "target_kind", None) == "multi_category":
        set_label_prior(model.head, dls.train_items.targets)  # start at the labels' frequencies, not 0.5
    # the data may ask for a subclass: points predict in the original image's pixels and draw themselves
    learner_cls = getattr(dls, "learner_cls", VisionLearner)
    learn = learner_cls(
        dls,
        model,
        spec,
        loss_func=loss_func,
        opt_func=opt_func,
        lr=lr,
        wd=wd,
        metrics=metrics,
        cbs=cbs,
        path=path,
        model_dir=model_dir,
        train_bn=train_bn,
        slice_div=slice_div,
        progress=progress,
        device=device,
    )
    learn.export_info = export_record("vision", learner_cls.export_task(loss_func), config)
    is_pretrained = pretrained is not False and pretrained is not None
    learn.bn_freeze = is_pretrained if bn_freeze is None else bool(bn_freeze)
    if is_pretrained:
        learn.freeze()
    if precompute:
        learn.precompute = True
    return learn


@dataclass
class ImagesTask(Task):
    """Classification, multi-label classification or regression of images: a `VisionLearner`.

    `loss`: "cross_entropy", "bce_with_logits", "mse", or None for a loss of one's own (not rebuilt)."""

    type: ClassVar[str] = "images"
    loss: str | None = None

    def data(self, info: dict | None):
        if not info:
            raise ValueError("not a vision export: the metadata lacks the data processing")
        return image_dls_from_export(info)

    def learner(self, dls, model: nn.Module, config: VisionModelConfig) -> VisionLearner:
        loss = _LOSSES[self.loss]() if self.loss in _LOSSES else None
        check_outputs(dls.vocab, config.n_out, "n_out")
        # the factory's default metrics, so that validate() after set_data reports them again
        metrics = [accuracy] if isinstance(loss, nn.CrossEntropyLoss) else []
        return VisionLearner(dls, model, get_arch(config.arch), loss_func=loss, metrics=metrics, device="cpu")
