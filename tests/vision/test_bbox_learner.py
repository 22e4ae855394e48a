"""Lesson 8's learner: the combined loss and the metrics against hand-computed values, a tiny network that
must learn where a coloured square is and which colour it has, predict in the original pixels, the export."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import quickfit as qf
from quickfit.vision import ArchSpec, BBoxLoss, DetectionDataLoaders, VisionLearner, bbox_learner
from quickfit.vision.detection.bbox import BoxIoU, BoxL1, ClassAccuracy, box_prior
from quickfit.vision.models import register_arch
from quickfit.vision.models.registry import IMAGENET_STATS


class Coords(nn.Module):
    """Two channels of x and y coordinates, so that the pooled head can read positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        return torch.cat([x, xs.expand(b, 1, h, w), ys.expand(b, 1, h, w)], 1)


def _tiny(pretrained=False) -> nn.Sequential:
    conv = lambda i, o, s=1: nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.BatchNorm2d(o), nn.ReLU())  # noqa: E731
    return nn.Sequential(Coords(), conv(5, 16), conv(16, 32, 2), conv(32, 32, 2))


register_arch(ArchSpec("tiny_box_net", _tiny, lambda m: m, 2, IMAGENET_STATS, 32, channels_last=False))

COLOURS = {"red": (255, 40, 40), "blue": (40, 40, 255)}


def squares(folder, n: int, w: int = 48, h: int = 32, seed: int = 0) -> pd.DataFrame:
    """Black images of w x h with one red or blue square of side 8-16 px: the box and its colour."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        side, colour = int(rng.integers(8, 17)), ("red", "blue")[i % 2]
        x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        img = np.zeros((h, w, 3), dtype=np.uint8)
        img[y0 : y0 + side, x0 : x0 + side] = COLOURS[colour]
        Image.fromarray(img).save(folder / f"{i}.png")
        rows.append((f"{i}.png", colour, x0, y0, x0 + side, y0 + side))
    return pd.DataFrame(rows, columns=["file", "label", "x0", "y0", "x1", "y1"])


def _dls(tmp_path, n=64, **kwargs):
    df = squares(tmp_path, n)
    return DetectionDataLoaders.from_df(df, tmp_path, largest_only=True, size=32, seed=0, num_workers=0, **kwargs)


def test_the_loss_and_metrics_against_their_formulas():
    out = torch.tensor([[0.3, -1.0, 2.0, 0.5, 1.0, -1.0, 0.2], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0], [1.0] * 7])
    y = torch.tensor([[[-0.5, -0.6, 0.7, 0.4, 2.0]], [[0.0, 0.0, 0.5, 0.5, 1.0]], [[float("nan")] * 5]])
    box = torch.sigmoid(out[:2, :4]) * 2 - 1  # the third row's box left the image: it counts for nothing
    expect = 3.0 * (box - y[:2, 0, :4]).abs().mean(1) + F.cross_entropy(
        out[:2, 4:], y[:2, 0, 4].long(), reduction="none"
    )
    assert torch.allclose(BBoxLoss(box_weight=3.0)(out, y), expect.mean())
    assert torch.allclose(BBoxLoss.activation(out)[:, 4:].sum(1), torch.ones(3))
    assert ClassAccuracy()(out, y) == 0.0  # row 0 predicts class 0 (truth 2), row 1 class 2 (truth 1)
    h, w = 10, 20
    l1 = ((box - y[:2, 0, :4]).abs() * torch.tensor([w / 2, h / 2, w / 2, h / 2])).mean()
    assert BoxL1((h, w))(out, y) == pytest.approx(float(l1), rel=1e-5)
    # IoU of a box with itself shifted by half its width: 1/3
    raw = torch.logit((torch.tensor([[0.0, 0.0, 0.5, 0.5]]) + 1) / 2)
    shifted = torch.cat([raw, torch.zeros(1, 2)], 1)
    assert BoxIoU()(shifted, torch.tensor([[[0.25, 0.0, 0.75, 0.5, 0.0]]])) == pytest.approx(1 / 3, rel=1e-4)
    with pytest.raises(ValueError, match="one box per image, got 2 per image: build the data with largest_only"):
        BBoxLoss()(out, torch.zeros(3, 2, 5))


def test_bbox_learner_refuses_data_with_every_box(tmp_path):
    df = squares(tmp_path, 4)
    dls = DetectionDataLoaders.from_df(df, tmp_path, size=32, num_workers=0)
    with pytest.raises(ValueError, match=r"this data's targets are 'boxes': build it with .*largest_only=True"):
        bbox_learner(dls, "tiny_box_net", pretrained=False)


def test_the_head_starts_at_the_mean_box_and_the_class_frequencies(tmp_path):
    dls = _dls(tmp_path, n=8, bs=6)
    learn = bbox_learner(dls, "tiny_box_net", pretrained=False, progress=False, path=tmp_path, ps=0.0)
    plan = ((0, 0, 48, 32), (32, 32), (0, 0, 0, 0), (48, 32))  # the squish of a 48x32 image to 32x32
    rows = torch.cat([dls.target.item(t, dls.item_tfm, plan, False) for t in dls.train_items.targets])
    freq = torch.bincount(rows[:, 4].long(), minlength=2) / len(rows)
    expect = torch.cat([torch.logit((rows[:, :4].mean(0) + 1) / 2), freq.log()])
    assert torch.allclose(box_prior(dls), expect, atol=1e-5)
    # a batch's raw outputs average to it: the BatchNorm before the last Linear centres the features
    x, _ = dls.one_batch("train")
    assert torch.allclose(learn.model.train()(x).mean(0), expect, atol=1e-4)


def test_a_tiny_bbox_learner_finds_the_square_and_its_colour(tmp_path):
    torch.manual_seed(0)
    dls = _dls(tmp_path, n=96, bs=16, batch_tfms=[])
    learn = bbox_learner(dls, "tiny_box_net", pretrained=False, progress=False, path=tmp_path, lin_ftrs=(64,), ps=0.0)
    learn.fit_one_cycle(20, 1e-2)
    _, accuracy, l1, iou = learn.validate()
    # where it started: the mean box, 5.5 px off at 32 px with an IoU of 0.13; measured after: 1.3 px, 0.62
    assert accuracy >= 0.95 and l1 < 2.0 and iou > 0.5, (accuracy, l1, iou)

    # predict: the box in the 48x32 image's own pixels (the default squish Resize undone), its colour
    item = dls.valid_items.paths[0]
    box, label, prob = learn.predict(item)
    preds, _ = learn.get_preds(dl=dls.test_dl([item]))
    unit = preds[0, :4]
    assert torch.allclose(box, (unit + 1) / 2 * torch.tensor([48.0, 32, 48, 32]), atol=1e-4)
    truth = dls.valid_items.targets[0][0]
    assert label == dls.vocab[int(truth[4])] and 0.5 < prob <= 1
    assert (box - truth[:4]).abs().mean() < 4, (box, truth)

    loaded = qf.load_learner(learn.export("box.qf"))
    assert isinstance(loaded, VisionLearner) and isinstance(loaded.loss_func, BBoxLoss)
    box2, label2, prob2 = loaded.predict(item)
    assert torch.allclose(box2, box, atol=1e-4) and label2 == label and prob2 == pytest.approx(prob, abs=1e-5)
    assert [m.name for m in loaded.metrics] == ["class_accuracy", "box_l1_px", "box_iou"]
    ax = learn.show_results(max_n=2).axes[0]  # the first validation image: its truth and the prediction
    assert len(ax.patches) == 2 and [t.get_text() for t in ax.texts] == [
        dls.vocab[int(truth[4])],
        f"{label} {prob:.2f}",
    ]
