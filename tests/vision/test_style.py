"""Style transfer: Gatys' optimization lowers the style loss from the content image, the one-pass network
trains on a folder of photos and predicts whole images, a style image that does not open is named."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quickfit.vision.generation.data import ImageToImageDataLoaders
from quickfit.vision.generation.feature_loss import gram_matrix
from quickfit.vision.generation.style import StyleLoss, StyleNet, load_style_image, style_learner, style_transfer
from tests.vision.test_image2image import smooth_image


def tiny_features() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())


def test_style_loss_against_a_hand_computation():
    feats = tiny_features()
    style, x, content = torch.rand(3, 16, 16), torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    loss = StyleLoss(style, content_weight=2.0, style_weight=10.0, features=feats, content_layers=(3,),
                     style_layers=(1, 3), stats=((0.0,) * 3, (1.0,) * 3))  # fmt: skip
    value = loss(x, content)
    a1 = lambda t: feats[1](feats[0](t))  # noqa: E731
    a3 = lambda t: feats[3](feats[2](a1(t)))  # noqa: E731
    expected_content = 2.0 * ((a3(x) - a3(content)) ** 2).mean()
    s = style[None]
    expected_style = 10.0 * sum(((gram_matrix(f(x)) - gram_matrix(f(s))) ** 2).mean() for f in (a1, a3))
    assert loss.last_terms["content"].item() == pytest.approx(expected_content.item(), rel=1e-5)
    assert loss.last_terms["style"].item() == pytest.approx(expected_style.item(), rel=1e-5)
    assert value.item() == pytest.approx((expected_content + expected_style).item(), rel=1e-5)


def test_gatys_lowers_the_style_loss_starting_from_the_content(tmp_path):
    smooth_image(40, 32, 0).save(tmp_path / "content.png")
    smooth_image(32, 32, 5).save(tmp_path / "style.png")
    res = style_transfer(tmp_path / "content.png", tmp_path / "style.png", steps=15, size=32, lr=0.05,
                         features=tiny_features(), content_layers=(3,), style_layers=(1, 3),
                         progress=False, device="cpu")  # fmt: skip
    assert res.image.shape == (3, 32, 40) and 0 <= res.image.min() and res.image.max() <= 1
    assert len(res.style_loss) == len(res.content_loss) == 16  # the start and after each step
    assert res.content_loss[0] == 0  # it starts from the content image
    assert res.style_loss[-1] < 0.5 * res.style_loss[0]
    assert not torch.equal(res.image, load_style_image(tmp_path / "content.png", 32))


def test_a_style_image_that_does_not_open_is_named(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    smooth_image(16, 16, 0).save(tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"the image .*broken.jpg does not open \(UnidentifiedImageError"):
        style_transfer(
            tmp_path / "c.png", tmp_path / "broken.jpg", steps=1, features=tiny_features(), style_layers=(1,)
        )
    with pytest.raises(ValueError, match=r"missing.jpg does not open \(FileNotFoundError"):
        StyleLoss(tmp_path / "missing.jpg", features=tiny_features(), content_layers=(3,), style_layers=(1,))
    with pytest.raises(ValueError, match="steps must be at least 1"):
        style_transfer(tmp_path / "c.png", tmp_path / "c.png", steps=0)


def test_the_one_pass_network_learns_the_style_on_a_folder_of_photos(tmp_path):
    (tmp_path / "photos").mkdir()
    for i in range(8):
        smooth_image(40, 40, i).save(tmp_path / "photos" / f"{i}.png")
    smooth_image(32, 32, 99).save(tmp_path / "style.png")
    dls = ImageToImageDataLoaders.from_func(tmp_path / "photos", lambda f: f, valid_pct=0.25, size=32, bs=3, seed=0,
                                            num_workers=0)  # fmt: skip
    torch.manual_seed(0)
    learn = style_learner(
        dls, tmp_path / "style.png", model=StyleNet(nf=4, n_res=1), features=tiny_features(),
        content_layers=(3,), style_layers=(1, 3), style_weight=1e3, lr=1e-2, progress=False, device="cpu",
    )  # fmt: skip
    learn.fit(6)
    assert learn.recorder.names[3:5] == ["content", "style"]
    first, last = learn.recorder.values[0], learn.recorder.values[-1]
    assert last[2] < 0.7 * first[2]
    out = learn.predict(tmp_path / "photos" / "0.png")
    assert out.shape == (3, 40, 40) and 0 <= out.min() and out.max() <= 1  # whole images, one pass
