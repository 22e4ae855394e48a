"""PSNR against hand computations (RGB, luma, border, clamping), the metric's exact mean over
batches, and its column in an image-to-image learner's epoch table."""

from __future__ import annotations

import math

import pytest
import torch

from quickfit.vision import PSNR, psnr, rgb_to_luma
from quickfit.vision.generation.learner import image2image_learner
from tests.vision.test_image2image_learner import pairs  # noqa: F401  (the fixture)


def test_psnr_of_a_known_error_and_its_clamping():
    targ = torch.full((2, 3, 8, 8), 0.5)
    pred = targ + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)  # mse 1e-2 and 1e-4
    torch.testing.assert_close(psnr(pred, targ), torch.tensor([20.0, 40.0]))
    assert psnr(pred[0], targ[0]).ndim == 0  # one image: a 0-d value
    over = torch.full((1, 3, 4, 4), 1.5)  # clamped to 1 before measuring: error 0.5
    assert psnr(over, torch.full((1, 3, 4, 4), 0.5)).item() == pytest.approx(10 * math.log10(1 / 0.25))
    assert math.isinf(psnr(targ, targ)[0].item())


def test_psnr_on_luma_weights_the_channels_as_bt601():
    targ = torch.full((1, 3, 6, 6), 0.4)
    pred = targ.clone()
    pred[:, 2] += 0.2  # blue only: Y moves by 24.966 / 255 * 0.2
    dy = 24.966 / 255 * 0.2
    assert psnr(pred, targ, luma=True).item() == pytest.approx(-10 * math.log10(dy**2), rel=1e-5)
    assert psnr(pred, targ).item() == pytest.approx(-10 * math.log10(0.2**2 / 3), rel=1e-5)  # RGB: 1 of 3
    assert rgb_to_luma(torch.zeros(3, 1, 1)).item() == pytest.approx(16 / 255)
    assert rgb_to_luma(torch.ones(3, 1, 1)).item() == pytest.approx(235 / 255)


def test_the_border_is_left_out_and_bad_inputs_are_named():
    targ = torch.rand(1, 3, 10, 10)
    pred = targ.clone()
    pred[..., :2, :] = 1 - pred[..., :2, :]  # the top two rows wrong
    pred[..., 2:8, 2:8] += 0.05
    inner = psnr(pred[..., 2:8, 2:8], targ[..., 2:8, 2:8])
    torch.testing.assert_close(psnr(pred, targ, border=2), inner)
    assert psnr(pred, targ).item() < inner.item() - 5
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(pred, targ[..., :9])
    with pytest.raises(ValueError, match="border 5 leaves nothing"):
        psnr(pred, targ, border=5)


def test_the_metric_is_the_mean_over_images_whatever_the_batches():
    torch.manual_seed(0)
    targ = torch.rand(5, 3, 8, 8)
    pred = targ + 0.02 * torch.arange(1, 6).view(5, 1, 1, 1) * torch.randn(5, 3, 8, 8)
    m = PSNR(border=1, luma=True)
    m.reset()
    m.accumulate(pred[:2], targ[:2])
    m.accumulate(pred[2:], targ[2:])
    assert m.name == "psnr_y" and PSNR().name == "psnr"
    assert m.value == pytest.approx(psnr(pred, targ, 1, True).mean().item(), rel=1e-6)
    pooled = -10 * math.log10((pred.clamp(0, 1) - targ)[..., 1:-1, 1:-1].pow(2).mean().item())
    assert abs(m.value - pooled) > 0.1  # a mean of per-image PSNRs, not the PSNR of the pooled error


def test_psnr_in_an_image_to_image_learners_epoch_table(pairs, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    learn = image2image_learner(pairs, "efficientnet_lite0", encoder_cut=3, pretrained=False, path=tmp_path,
                                progress=False, metrics=[PSNR(border=2)])  # fmt: skip
    learn.fit(1, 1e-3)
    assert learn.recorder.names[-2] == "psnr"  # the column before the time
    preds, targs = learn.get_preds()
    assert learn.recorder.values[-1][-2] == pytest.approx(psnr(preds, targs, 2).mean().item(), rel=1e-4)
