"""detection_learner: a RetinaNet over a pretrained body that finds every object (the course's lesson 9).

    from quickfit.vision import DetectionDataLoaders, detection_learner

    dls = DetectionDataLoaders.from_voc("bccd", size=(288, 384), bs=8)
    learn = detection_learner(dls, "efficientnet_lite0")   # body frozen; metrics mAP@0.5 and COCO mAP
    learn.fit_one_cycle(5, 1e-3)                           # the pyramid and subnets
    learn.unfreeze()
    learn.fit_one_cycle(20, slice(1e-4, 1e-3))
    boxes, labels, scores = learn.predict("cells.jpg")     # [n, 4] pixels of cells.jpg, class names, [n]
    learn.show_results(path="results.png")                 # predictions beside the truth
    learn.export("cells.qf")                               # qf.load_learner("cells.qf").predict(...)

The model (quickfit/vision/detection/retinanet.py) outputs [B, A, 4 + C] per image: each anchor's offsets
and class logits. The loss (`DetectionLoss`) matches anchors to boxes and adds the focal loss of the classes
to the smooth L1 of the offsets; its `activation`, which `get_preds`, the metrics and `predict` use,
decodes the offsets and keeps the best boxes after per-class NMS: [B, max_det, 6] rows (x0, y0, x1, y1,
class, score). Layer groups are early body, late body and head (pyramid and subnets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from quickfit.callbacks.core import Callback
from quickfit.configs import ModelConfig, Task, check_image_size, check_outputs, export_record
from quickfit.optim import Adam
from quickfit.vision.classification.learner import VisionLearner
from quickfit.vision.detection.anchors import RATIOS
from quickfit.vision.detection.loss import DetectionLoss
from quickfit.vision.detection.metrics import coco_map, map50
from quickfit.vision.detection.retinanet import Head, RetinaNet
from quickfit.vision.detection.target import Boxes
from quickfit.vision.models.registry import IMAGENET_STATS, ArchSpec, get_arch

__all__ = ["detection_learner", "detection_body", "DetectorConfig", "DetectionTask"]


def detection_body(spec: ArchSpec, pretrained: bool | str | Path = False) -> nn.Sequential:
    """The architecture's body for a detector (EfficientNet-Lite without its 1x1 head convolution, which
    only widens the last map for the classifier's pooling)."""
    body = spec.create_body(pretrained=pretrained)
    return body[:-1] if spec.name.startswith("efficientnet_lite") else body


@dataclass
class DetectorConfig(ModelConfig):
    """A `RetinaNet` over the body of the registered architecture `arch` (None: a body of one's own, which
    an export cannot rebuild) for `n_classes` on images of `img_size` (h, w); the other fields are RetinaNet's."""

    type: ClassVar[str] = "retinanet"
    arch: str | None
    n_classes: int
    img_size: list[int]
    head: Head = "fpn"
    levels: list[int] = field(default_factory=lambda: [3, 4, 5, 6])
    channels: int = 64
    n_convs: int = 2
    anchor_scale: float = 4.0
    scales: list[float] | None = None
    ratios: list[float] = field(default_factory=lambda: list(RATIOS))
    channels_last: bool = False
    normalize: bool = True

    def check(self) -> None:
        check_image_size("retinanet img_size", self.img_size)  # the build runs a dummy pass at this size
        if not 1 <= self.channels <= 4096 or self.n_convs > 16 or not self.levels or max(self.levels) > 12:
            raise ValueError(f"retinanet: channels {self.channels}, n_convs {self.n_convs} or levels {self.levels} "
                             "out of range")  # fmt: skip

    def build(self, pretrained: bool | str | Path = False, body: nn.Module | None = None) -> RetinaNet:
        """The detector with random weights, or the body's `pretrained` ones; `body`: a body of one's own."""
        if body is None:
            if self.arch is None:
                raise ValueError(
                    "this detector was built over a body of its own, which an export cannot rebuild (no code is "
                    "saved): build the same model and pass it as load_learner(..., model=)"
                )
            body = detection_body(get_arch(self.arch), pretrained)
        model = RetinaNet(body, int(self.n_classes), tuple(self.img_size), self.head, self.levels, self.channels,
                          self.n_convs, self.anchor_scale, self.scales, self.ratios)  # fmt: skip
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


@dataclass
class DetectionTask(Task):
    """Every object of images: a `VisionLearner` of a `RetinaNet` with a `DetectionLoss` of these settings
    (see quickfit/vision/detection/loss.py) and the metrics mAP@0.5 and COCO mAP."""

    type: ClassVar[str] = "detection"
    pos_iou: float = 0.5
    neg_iou: float = 0.4
    alpha: float = 0.25
    gamma: float = 2.0
    box_weight: float = 1.0
    beta: float = 1 / 9
    weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])
    score_thresh: float = 0.05
    nms_iou: float = 0.5
    max_det: int = 100
    pre_nms: int = 1000

    def loss(self, model: RetinaNet) -> DetectionLoss:
        """The loss (and decoding) for `model`'s anchors."""
        return DetectionLoss(model.anchors(), **{f.name: getattr(self, f.name) for f in fields(self)})

    def data(self, info: dict | None):
        from quickfit.vision.detection.data import detection_dls_from_export

        if not info:
            raise ValueError("not a detection export: the metadata lacks the data processing")
        return detection_dls_from_export(info)

    def learner(self, dls, model: nn.Module, config: DetectorConfig) -> VisionLearner:
        check_outputs(dls.vocab, config.n_classes, "n_classes")
        loss = self.loss(model)
        spec = get_arch(config.arch) if config.arch is not None else _custom_spec(model.body)
        metrics = [map50(loss.activation), coco_map(loss.activation)]
        return VisionLearner(dls, model, spec, loss_func=loss, metrics=metrics, device="cpu")


def _custom_spec(body: nn.Module) -> ArchSpec:
    n = len(list(body.children()))
    return ArchSpec("custom", lambda pretrained=False: body, lambda m: m, max(1, n // 2), IMAGENET_STATS, 0, False)


def detection_learner(
    dls,
    arch: str | ArchSpec | Callable | nn.Module = "efficientnet_lite0",
    pretrained: bool | str | Path = True,
    head: Head = "fpn",
    levels: Sequence[int] = (3, 4, 5, 6),
    channels: int = 64,
    n_convs: int = 2,
    anchor_scale: float = 4.0,
    scales: Sequence[float] | None = None,
    ratios: Sequence[float] = RATIOS,
    pos_iou: float = 0.5,
    neg_iou: float = 0.4,
    alpha: float = 0.25,
    gamma: float = 2.0,
    box_weight: float = 1.0,
    score_thresh: float = 0.05,
    nms_iou: float = 0.5,
    max_det: int = 100,
    loss_func: Callable | None = None,
    metrics: Iterable | None = None,
    opt_func: Callable = Adam,
    lr: float | slice | Sequence[float] = 1e-3,
    wd: float | None = None,
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
    """A `VisionLearner` of a `RetinaNet` for `dls` (images with boxes: `DetectionDataLoaders`, or any image
    data whose target is `Boxes` with a vocab).

    `arch`: a registered name, its builder or `ArchSpec`, or an `nn.Module` body (then `pretrained` is
    ignored). `head`, `levels`, `channels`, `n_convs`, `anchor_scale`, `scales`, `ratios`: the model's
    (quickfit/vision/detection/retinanet.py); anchors should span the objects' sizes: level l's are
    `anchor_scale * 2**l` pixels times the scales. `pos_iou` ... `box_weight`: the loss's matching and
    weighting; `score_thresh`, `nms_iou`, `max_det`: the decoding of detections (`learn.loss_func` holds
    them all). `metrics` default to mAP@0.5 and COCO mAP. With pretrained weights the body is frozen and
    keeps its BatchNorm statistics (`bn_freeze`); the other arguments are `vision_learner`'s."""
    target = getattr(dls, "target", None)
    vocab = getattr(target, "vocab", None) or getattr(dls, "vocab", None)
    if not isinstance(target, Boxes) or not vocab:
        kind = getattr(target, "kind", None)
        raise ValueError(f"detection_learner: the data's target must be boxes with a vocab of classes, got {kind!r}"
                         " (use DetectionDataLoaders)")  # fmt: skip
    size = getattr(dls, "size", None)
    if size is None:
        raise ValueError("detection_learner: the data does not say its image size (dls.size)")
    custom = isinstance(arch, nn.Module)
    spec = _custom_spec(arch) if custom else get_arch(arch)
    if normalize and hasattr(dls, "set_normalize"):
        dls.set_normalize(*spec.stats)
    use_cl = (spec.channels_last and not custom) if channels_last is None else channels_last
    config = DetectorConfig(None if custom else spec.name, len(vocab), [int(s) for s in size], head,
                            [int(lv) for lv in levels], int(channels), int(n_convs), float(anchor_scale),
                            None if scales is None else [float(s) for s in scales], [float(r) for r in ratios],
                            bool(use_cl), bool(normalize))  # fmt: skip
    model = config.build(pretrained, body=arch if custom else None)
    task = DetectionTask(pos_iou, neg_iou, alpha, gamma, box_weight, score_thresh=score_thresh, nms_iou=nms_iou,
                         max_det=max_det)  # fmt: skip
    loss = task.loss(model) if loss_func is None else loss_func  # a loss of one's own keeps the decoding's
    if metrics is None:
        metrics = [map50(loss.activation), coco_map(loss.activation)]
    learn = VisionLearner(dls, model, spec, loss_func=loss, opt_func=opt_func, lr=lr, wd=wd, metrics=metrics, cbs=cbs,
                          path=path, model_dir=model_dir, train_bn=train_bn, slice_div=slice_div, progress=progress,
                          device=device)  # fmt: skip
    learn.export_info = export_record("vision", task, config)
    is_pretrained = not custom and pretrained is not False and pretrained is not None
    learn.bn_freeze = is_pretrained if bn_freeze is None else bool(bn_freeze)
    if is_pretrained:
        learn.freeze()
    return learn
