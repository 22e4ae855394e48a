"""Lesson 8: find the largest object of each image and name its class, with one network.

    from quickfit.vision import DetectionDataLoaders, bbox_learner

    dls = DetectionDataLoaders.from_coco("coco_tiny/train.json", "coco_tiny/train", size=128, seed=42,
                                         largest_only=True)
    learn = bbox_learner(dls, "efficientnet_lite0")    # pretrained body, head of 4 box + c class outputs
    learn.fine_tune(10, learn.lr_find().valley)
    box, label, prob = learn.predict("photo.jpg")      # box [4] (x0, y0, x1, y1) in photo.jpg's pixels
    learn.show_results()                               # truth in green, prediction in red
    learn.export("largest.qf")                         # qf.load_learner("largest.qf").predict(...)

The model is `vision_learner`'s (a pretrained body, the concat-pool head) with 4 + c outputs: the box
and the class scores. The loss is the lesson's sum of an L1 on the box and a cross-entropy on the class,
`box_weight` weighting the box (`BBoxLoss`, quickfit/vision/detection/largest_box.py). The metrics:
`class_accuracy`, `box_l1_px` (the mean absolute error of the 4 coordinates, in pixels of the transformed
image) and `box_iou` (the mean IoU of the predicted and true boxes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from quickfit.callbacks.core import Callback
from quickfit.configs import Task
from quickfit.metrics import Metric
from quickfit.optim import Adam
from quickfit.vision.classification.learner import VisionLearner, vision_learner
from quickfit.vision.classification.model import VisionModelConfig
from quickfit.vision.core.labels import set_head_bias
from quickfit.vision.detection.data import detection_dls_from_export
from quickfit.vision.detection.largest_box import BBoxLoss, LargestBox
from quickfit.vision.models.registry import ArchSpec, get_arch

__all__ = ["bbox_learner", "bbox_metrics", "box_prior", "BBoxTask", "ClassAccuracy", "BoxL1", "BoxIoU"]


class _OneBoxMetric(Metric):
    """Sums over the images whose box is there (not a NaN row): `per_image(pred, targ)` after the loss's activation."""

    def batch_totals(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        t = targ[:, 0] if targ.dim() == 3 else targ
        keep = ~t[:, 0].isnan()
        values = self.per_image(BBoxLoss.activation(pred.float()), t.nan_to_num())
        return torch.stack([(values * keep).sum(), keep.sum()]).double()

    def per_image(self, pred: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compute(self, totals: torch.Tensor) -> float:
        return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")


class ClassAccuracy(_OneBoxMetric):
    """The share of images whose class is predicted right."""

    name = "class_accuracy"

    def per_image(self, pred, t):
        return (pred[:, 4:].argmax(dim=1) == t[:, 4].long()).float()


class BoxL1(_OneBoxMetric):
    """The mean absolute error of the box's 4 coordinates in pixels of the transformed image of `size` (h, w).
    A metric sees predictions and targets only: after `learn.set_data` at another size, give the learner
    `bbox_metrics(new_dls.size)` (`learn.metrics = ...`) to count in the new pixels."""

    name = "box_l1_px"

    def __init__(self, size: tuple[int, int]) -> None:
        h, w = size
        self.half = torch.tensor([w / 2, h / 2, w / 2, h / 2])  # [-1, 1] -> pixels

    def per_image(self, pred, t):
        return ((pred[:, :4] - t[:, :4]).abs() * self.half.to(pred.device)).mean(dim=1)


class BoxIoU(_OneBoxMetric):
    """The mean intersection over union of the predicted and true boxes."""

    name = "box_iou"

    def per_image(self, pred, t):
        a, b = pred[:, :4], t[:, :4]
        wh = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0)
        inter = wh[:, 0] * wh[:, 1]
        area = lambda x: (x[:, 2] - x[:, 0]).clamp(min=0) * (x[:, 3] - x[:, 1]).clamp(min=0)  # noqa: E731
        return inter / (area(a) + area(b) - inter).clamp(min=1e-9)


def bbox_metrics(size: tuple[int, int]) -> list[Metric]:
    """`class_accuracy`, `box_l1_px` at images of `size` (h, w), `box_iou`: bbox_learner's default metrics."""
    return [ClassAccuracy(), BoxL1(size), BoxIoU()]


def bbox_learner(
    dls,
    arch: str | ArchSpec | Callable = "efficientnet_lite0",
    pretrained: bool | str | Path = True,
    box_weight: float = 5.0,
    metrics: Iterable | None = None,
    loss_func: Callable | None = None,
    opt_func: Callable = Adam,
    lr: float | slice | Sequence[float] = 1e-3,
    wd: float | None = None,
    lin_ftrs: Sequence[int] = (512,),
    ps: float = 0.5,
    concat_pool: bool = True,
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
    """A `VisionLearner` that finds the largest object of each image of `dls` (a `DetectionDataLoaders` built
    with `largest_only=True`) and names its class: `vision_learner`'s model with 4 + c outputs (body frozen
    when pretrained), `BBoxLoss(box_weight)` (L1 on the box in [-1, 1] units times `box_weight`, plus
    the cross-entropy of the class), and the metrics of `bbox_metrics`. The other arguments are
    `vision_learner`'s."""
    if not isinstance(getattr(dls, "target", None), LargestBox):
        kind = getattr(getattr(dls, "target", None), "kind", type(dls).__name__)
        raise ValueError(
            f"bbox_learner finds one box per image, and this data's targets are {kind!r}: build it with "
            "DetectionDataLoaders.from_voc / from_coco / from_df(..., largest_only=True)"
        )
    learn = vision_learner(
        dls,
        arch,
        pretrained,
        metrics=bbox_metrics(dls.size) if metrics is None else metrics,
        loss_func=BBoxLoss(box_weight) if loss_func is None else loss_func,
        opt_func=opt_func,
        lr=lr,
        wd=wd,
        lin_ftrs=lin_ftrs,
        ps=ps,
        concat_pool=concat_pool,
        normalize=normalize,
        channels_last=channels_last,
        cbs=cbs,
        path=path,
        model_dir=model_dir,
        train_bn=train_bn,
        slice_div=slice_div,
        bn_freeze=bn_freeze,
        progress=progress,
        device=device,
    )
    if isinstance(learn.loss_func, BBoxLoss):  # its sigmoid box: what the prior's logits are for
        set_head_bias(learn.model.head, box_prior(dls))
    return learn


def box_prior(dls, max_images: int = 1000) -> torch.Tensor:
    """The raw outputs [4 + c] that predict the training set's mean box and class frequencies (of its
    first `max_images` images, through the validation item transform: read from the images' headers).

    Why: a fresh head outputs about 0, the box (0, 0, 0, 0) of no size in the middle of the image (IoU 0)
    and every class alike. Adam moves a bias by about the learning rate per step, so on a small data set
    the first epochs would be spent walking to the mean box; started there, the model begins at the
    two trivial baselines (the mean box, the class frequencies) and learns what differs per image."""
    tfm, items = dls.item_tfm, dls.train_items
    rows = []
    for src, y in zip(items.paths[:max_images], items.targets[:max_images]):
        w, h = tfm.original_size(src)
        rows.append(dls.target.item(y, tfm, (*tfm.plan(w, h, False), (w, h)), False))
    rows = torch.cat(rows)
    rows = rows[~rows[:, 0].isnan()]
    box = ((rows[:, :4].mean(0) + 1) / 2).clamp(0.01, 0.99)  # in [0, 1]: what the loss's sigmoid gives
    freq = torch.bincount(rows[:, 4].long(), minlength=len(dls.vocab)).float().clamp(min=1) / len(rows)
    return torch.cat([torch.log(box / (1 - box)), freq.log()])


@dataclass
class BBoxTask(Task):
    """The largest object of each image (lesson 8): a `VisionLearner` of 4 + c outputs with `BBoxLoss`.
    `box_weight`: the loss's weight of the box, or None for a loss of one's own (not rebuilt)."""

    type: ClassVar[str] = "largest_box"
    box_weight: float | None = 5.0

    def data(self, info: dict | None):
        if not info:
            raise ValueError("not a largest-object export: the metadata lacks the data processing")
        dls = detection_dls_from_export(info)
        if not dls.largest_only:
            raise ValueError(f"a largest-object export needs largest_box targets, its data has {dls.target.kind!r}")
        return dls

    def learner(self, dls, model: nn.Module, config: VisionModelConfig) -> VisionLearner:
        if config.n_out != dls.c:
            n = len(dls.vocab)
            raise ValueError(f"the model has {config.n_out} outputs; the data needs 4 (the box) + {n} classes")
        loss = BBoxLoss(self.box_weight) if self.box_weight is not None else None
        spec = get_arch(config.arch)
        return VisionLearner(dls, model, spec, loss_func=loss, metrics=bbox_metrics(dls.size), device="cpu")
