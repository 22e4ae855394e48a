"""Segmentation losses: weighted cross-entropy, the soft Dice term and class_weights, against hand computations;
a rare class that plain cross-entropy never predicts is learnt with weights + Dice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import quickfit as qf
from quickfit.vision import Resize, SegmentationDataLoaders, SegmentationLoss, class_weights
from quickfit.vision.segmentation.loss import soft_dice_loss


def test_weighted_cross_entropy_ignores_void_and_matches_torch():
    torch.manual_seed(0)
    x, y = torch.randn(2, 4, 5, 6), torch.randint(0, 4, (2, 5, 6))
    w = torch.tensor([1.0, 2.0, 0.5, 0.0])
    loss = SegmentationLoss(void_code=3, weight=w)
    assert torch.allclose(loss(x, y), F.cross_entropy(x, y, weight=w, ignore_index=3))
    # void pixels do not count: changing their scores changes nothing
    x2 = x.clone()
    x2.permute(0, 2, 3, 1)[y == 3] = 100.0
    assert torch.allclose(loss(x2, y), loss(x, y))
    assert SegmentationLoss(3).activation(x).sum(1).allclose(torch.ones(2, 5, 6))


def test_soft_dice_against_a_hand_computation():
    # one image of 4 pixels, 3 classes + void (3); the last pixel is void
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.9, 0.05, 0.05]])
    logits = probs.log().T.reshape(1, 3, 2, 2)
    targ = torch.tensor([[[0, 1], [0, 3]]])
    # class 0: inter 0.7 + 0.3 = 1.0, predicted 0.7 + 0.1 + 0.3 = 1.1, actual 2
    # class 1: inter 0.8, predicted 0.2 + 0.8 + 0.3 = 1.3, actual 1;  class 2: inter 0, predicted 0.6, actual 0
    d = [(2 * 1.0 + 1) / (3.1 + 1), (2 * 0.8 + 1) / (2.3 + 1), (0 + 1) / (0.6 + 1)]
    expected = 1 - sum(d) / 3
    got = soft_dice_loss(logits, targ, void_code=3)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # with 4 output channels (void has one) the void channel is left out of the mean
    logits4 = torch.cat([logits, torch.full((1, 1, 2, 2), -30.0)], 1)
    assert soft_dice_loss(logits4, targ, void_code=3).item() == pytest.approx(expected, rel=1e-4)
    # a perfect, confident prediction has a Dice loss near 0
    perfect = F.one_hot(torch.tensor([[[0, 1], [2, 2]]]), 3).permute(0, 3, 1, 2).float() * 40
    assert soft_dice_loss(perfect, torch.tensor([[[0, 1], [2, 2]]])).item() < 1e-6
    # and the combined loss is CE + dice * Dice
    comb = SegmentationLoss(3, dice=0.5)(logits4, targ)
    assert comb.item() == pytest.approx(
        F.cross_entropy(logits4, targ, ignore_index=3).item() + 0.5 * expected, rel=1e-4
    )


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="dice must be >= 0"):
        SegmentationLoss(3, dice=-1)
    with pytest.raises(ValueError, match="weight must be finite"):
        SegmentationLoss(3, weight=[1.0, -2.0])
    with pytest.raises(ValueError, match="weight has 2 values for 4 classes"):
        SegmentationLoss(3, weight=[1.0, 2.0])(torch.randn(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def _rare_folder(path, n=16, size=32):
    """Background (0) with a wide stripe (1) and a small square (2) in some images; void (3) frame."""
    rng = np.random.default_rng(0)
    colours = np.array([[40, 40, 40], [200, 200, 60], [60, 200, 200], [0, 0, 0]])
    for split in ("train", "val"):
        (path / split).mkdir()
        (path / f"{split}annot").mkdir()
        for i in range(n):
            m = np.zeros((size, size), np.uint8)
            r = rng.integers(0, size - 10)
            m[r : r + 10] = 1
            if i % 2 == 0:
                a, b = rng.integers(2, size - 5, 2)
                m[a : a + 3, b : b + 3] = 2
            m[0], m[-1] = 3, 3
            img = colours[m] + rng.integers(-25, 25, (size, size, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path / split / f"{i}.png")
            Image.fromarray(m).save(path / f"{split}annot" / f"{i}.png")
    return path


def test_class_weights_is_median_frequency_balancing(tmp_path):
    path = _rare_folder(tmp_path)
    dls = SegmentationDataLoaders.from_folders(path, codes=["bg", "stripe", "dot", "void"], void_code=3,
                                               item_tfms=Resize(32), bs=4, num_workers=0)  # fmt: skip
    counts, seen_in = np.zeros(4), np.zeros(4)
    for f in sorted((path / "trainannot").iterdir()):
        c = np.bincount(np.array(Image.open(f)).ravel(), minlength=4)[:4]
        counts += c
        seen_in += (c > 0) * c.sum()
    freq = counts[:3] / seen_in[:3]
    expected = np.median(freq) / freq
    assert class_weights(dls, power=1, max_weight=100).numpy() == pytest.approx([*expected, 0.0], rel=1e-5)
    assert class_weights(dls, max_weight=100).numpy() == pytest.approx([*np.sqrt(expected), 0.0], rel=1e-5)
    assert class_weights(dls, power=1, max_weight=2.0).max().item() == pytest.approx(min(2.0, expected.max()))
    assert expected[2] > 20 * expected[0]  # the dot is rare: weighted far above the background


def _dot_iou(learn):
    probs, targs = learn.get_preds(progress=False)
    pred = probs.argmax(1)
    inter = ((pred == 2) & (targs == 2)).sum().item()
    union = ((pred == 2) | (targs == 2)).sum().item()
    return inter / max(union, 1)


def test_weights_and_dice_learn_the_rare_class_faster(tmp_path):
    path = _rare_folder(tmp_path)
    dls = SegmentationDataLoaders.from_folders(path, codes=["bg", "stripe", "dot", "void"], void_code=3,
                                               item_tfms=Resize(32), bs=4, num_workers=0)  # fmt: skip

    def run(loss):
        qf.set_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
        learn = qf.Learner(dls, model, loss, progress=False)
        learn.fit_one_cycle(8, 3e-2)
        return _dot_iou(learn)

    plain = run(SegmentationLoss(3))
    balanced = run(SegmentationLoss(3, weight=class_weights(dls), dice=1.0))
    assert balanced > 0.5 and balanced > plain + 0.2, (plain, balanced)
