"""The U-Net generator learner on image pairs: it learns, shows input / prediction / target, and an export
loads and predicts the 2x image of an input of any size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import quickfit as qf
from quickfit.vision.classification.learner import VisionLearner
from quickfit.vision.generation.crappify import crappify
from quickfit.vision.generation.data import ImageToImageDataLoaders
from quickfit.vision.generation.feature_loss import FeatureLoss
from quickfit.vision.generation.learner import image2image_learner
from tests.vision.test_image2image import smooth_image


@pytest.fixture
def pairs(tmp_path):
    (tmp_path / "hr").mkdir()
    for i in range(6):
        smooth_image(48, 40, i).save(tmp_path / "hr" / f"{i}.png")
    crappify(tmp_path / "hr", tmp_path / "lr", scale=2, quality=(90, 95), draw_text=False, progress=False)
    return ImageToImageDataLoaders.from_folders(tmp_path / "lr", tmp_path / "hr", valid_pct=0.34, size=32, bs=2,
                                                seed=0, num_workers=0)  # fmt: skip


def test_the_residual_generator_starts_at_its_bicubic_input_and_improves_on_it(pairs, tmp_path):
    torch.manual_seed(0)
    learn = image2image_learner(pairs, "efficientnet_lite0", encoder_cut=3, pretrained=False, path=tmp_path,
                                progress=False)  # fmt: skip
    x, _ = next(iter(pairs.valid))
    learn.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(learn.model(x), pairs.normalize.decode(x))  # the identity at first
    learn.fit(4, 1e-3)
    losses = learn.recorder.values
    assert losses[-1][1] < losses[0][1]


def test_the_generator_learns_and_shows_its_results(pairs, tmp_path):
    torch.manual_seed(0)
    learn = image2image_learner(pairs, "efficientnet_lite0", encoder_cut=3, residual=False, pretrained=False,
                                path=tmp_path, progress=False)  # fmt: skip
    assert isinstance(learn, VisionLearner) and len(learn.layer_groups) == 2
    assert learn.dls.normalize is not None  # the encoder's statistics, on the inputs only
    learn.fit_one_cycle(6, 1e-2)
    first, last = learn.recorder.values[0], learn.recorder.values[-1]
    assert last[1] < 0.6 * first[1] and last[2] < first[2]
    grid = learn.show_results(2, path=tmp_path / "res.png")
    assert grid.shape == (3, 2 * 32 + 3 * 2, 3 * 32 + 4 * 2) and (tmp_path / "res.png").exists()


def test_export_loads_and_predicts_twice_the_size_of_any_input(pairs, tmp_path):
    learn = image2image_learner(pairs, "efficientnet_lite0", encoder_cut=3, pretrained=False, path=tmp_path,
                                progress=False)  # fmt: skip
    learn.fit(1, 1e-3)
    learn.export("sr.qf")
    loaded = qf.load_learner(tmp_path / "sr.qf")
    odd = tmp_path / "odd.png"
    smooth_image(37, 21, 9).save(odd)
    out = loaded.predict(odd)
    assert out.shape == (3, 42, 74) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(out, learn.predict(odd), atol=1e-5, rtol=1e-4)  # the same model, reloaded


def test_feature_loss_terms_are_the_default_metrics(pairs, tmp_path):
    loss = FeatureLoss(layer_weights=(0.01, 0.01, 0.01))
    learn = image2image_learner(pairs, "efficientnet_lite0", encoder_cut=3, pretrained=False, loss_func=loss,
                                path=tmp_path, progress=False)  # fmt: skip
    learn.fit(1, 1e-3)
    assert learn.recorder.names[3:7] == ["pixel", "feat_0", "feat_1", "feat_2"]
    row = learn.recorder.values[-1]
    assert sum(row[3:7]) == pytest.approx(row[2], rel=1e-4)


def test_the_low_resolution_generator_runs_at_the_input_size_and_exports(tmp_path):
    (tmp_path / "hr").mkdir()
    for i in range(6):
        smooth_image(48, 40, i).save(tmp_path / "hr" / f"{i}.png")
    crappify(tmp_path / "hr", tmp_path / "lr", scale=2, quality=(90, 95), draw_text=False, progress=False)
    dls = ImageToImageDataLoaders.from_folders(tmp_path / "lr", tmp_path / "hr", valid_pct=0.34, size=32, bs=2,
                                               upsample=False, seed=0, num_workers=0)  # fmt: skip
    torch.manual_seed(0)
    learn = image2image_learner(dls, "efficientnet_lite0", encoder_cut=3, pretrained=False, path=tmp_path,
                                progress=False)  # fmt: skip
    x, y = next(iter(dls.valid))
    assert x.shape[-2:] == (16, 16) and y.shape[-2:] == (32, 32)  # the model sees the small image
    seen = []
    hook = learn.model.unet.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    learn.model.eval()
    with torch.no_grad():  # at first: the bicubic upsampling of its input, exactly
        bicubic = torch.nn.functional.interpolate(dls.normalize.decode(x), scale_factor=2, mode="bicubic")
        torch.testing.assert_close(learn.model(x), bicubic.clamp(0, 1))
    hook.remove()
    assert seen == [(2, 12, 16, 16)]  # 3 * 2**2 channels at the input's size, pixel-shuffled to 2x
    learn.fit(4, 1e-3)
    assert learn.recorder.values[-1][1] < learn.recorder.values[0][1]
    learn.export("lowres.qf")
    loaded = qf.load_learner(tmp_path / "lowres.qf")
    odd = tmp_path / "odd.png"
    smooth_image(37, 21, 9).save(odd)
    out = loaded.predict(odd)
    assert out.shape == (3, 42, 74)
    torch.testing.assert_close(out, learn.predict(odd), atol=1e-5, rtol=1e-4)


def blocks_image(w: int, h: int, seed: int) -> Image.Image:
    """Random rectangles of flat colour: sharp edges, which bicubic upsampling blurs and a model can restore."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    for _ in range(12):
        x0, y0 = rng.integers(0, w - 4), rng.integers(0, h - 4)
        img[y0 : y0 + rng.integers(4, h // 2), x0 : x0 + rng.integers(4, w // 2)] = rng.integers(0, 256, 3)
    return Image.fromarray(img)


def blocks_pairs(tmp_path, **kw) -> ImageToImageDataLoaders:
    """16 block images and their lossless bicubic half-size inputs, as low-resolution pairs."""
    (tmp_path / "hr").mkdir()
    for i in range(16):
        blocks_image(64, 48, i).save(tmp_path / "hr" / f"{i}.png")
    crappify(tmp_path / "hr", tmp_path / "lr", quality=None, resample="bicubic", draw_text=False, progress=False)
    return ImageToImageDataLoaders.from_folders(tmp_path / "lr", tmp_path / "hr", valid_pct=0.25, size=32, bs=2,
                                                upsample=False, seed=0, **kw)  # fmt: skip


def test_sr_resnet_starts_at_bicubic_improves_on_it_and_exports(tmp_path):
    dls = blocks_pairs(tmp_path, num_workers=0)
    torch.manual_seed(0)
    learn = image2image_learner(dls, "sr_resnet", config=dict(nf=16, n_blocks=2), loss_func=torch.nn.L1Loss(),
                                path=tmp_path, progress=False)  # fmt: skip
    assert len(learn.layer_groups) == 2 and learn.export_info["model"]["config"] == {"nf": 16, "n_blocks": 2}
    x, y = next(iter(dls.valid))
    learn.model.eval()
    with torch.no_grad():  # untrained: bicubic upsampling of the small input, exactly
        bicubic = torch.nn.functional.interpolate(dls.normalize.decode(x), scale_factor=2, mode="bicubic")
        torch.testing.assert_close(learn.model(x), bicubic.clamp(0, 1))
        start = torch.nn.functional.l1_loss(learn.model(x), y).item()
    learn.fit_one_cycle(50, 2e-3)
    learn.model.eval()
    with torch.no_grad():
        end = torch.nn.functional.l1_loss(learn.model(x), y).item()
    assert end < 0.9 * start  # better than bicubic on held-out pairs
    learn.export("edsr.qf")
    loaded = qf.load_learner(tmp_path / "edsr.qf")
    odd = tmp_path / "odd.png"
    smooth_image(37, 21, 9).save(odd)
    out = loaded.predict(odd)
    assert out.shape == (3, 42, 74) and 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(out, learn.predict(odd), atol=1e-5, rtol=1e-4)


def test_sr_resnet_arguments_are_checked(pairs, tmp_path):
    with pytest.raises(ValueError, match="config= is for arch='sr_resnet'"):
        image2image_learner(pairs, "efficientnet_lite0", config=dict(nf=8), pretrained=False, path=tmp_path)
    with pytest.raises(ValueError, match="'sr_resnet' always adds a correction"):
        image2image_learner(pairs, "sr_resnet", residual=False, path=tmp_path)
    with pytest.raises(TypeError):
        image2image_learner(pairs, "sr_resnet", config=dict(width=8), path=tmp_path)


def test_dihedral_ensemble_is_the_mean_over_the_eight_turns_of_the_input():
    from quickfit.vision.generation.tta import DihedralEnsemble

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)  # a random kernel: not symmetric, so each turn differs
    x = torch.rand(2, 3, 6, 9)
    with torch.no_grad():
        outs = []
        for flip in (False, True):
            for k in range(4):
                turned = torch.rot90(x, k, dims=(-2, -1))
                turned = turned.flip(-1) if flip else turned
                y = conv(turned)
                y = y.flip(-1) if flip else y
                outs.append(torch.rot90(y, -k, dims=(-2, -1)))
        torch.testing.assert_close(DihedralEnsemble(conv)(x), torch.stack(outs).mean(0))
        assert not torch.allclose(DihedralEnsemble(conv)(x), conv(x), atol=1e-3)
        torch.testing.assert_close(DihedralEnsemble(conv, n=1)(x), conv(x))
    with pytest.raises(ValueError, match="n must be in 1..8"):
        DihedralEnsemble(conv, n=9)


def test_tta_predicts_any_size_and_lowers_the_error_of_a_trained_model(tmp_path):
    dls = blocks_pairs(tmp_path, cache=True)
    torch.manual_seed(0)
    learn = image2image_learner(dls, "sr_resnet", config=dict(nf=16, n_blocks=2), path=tmp_path, progress=False)
    learn.fit_one_cycle(30, 2e-3)
    preds, targs = learn.get_preds()
    tta_preds, tta_targs = learn.tta()
    assert tta_preds.shape == preds.shape and torch.equal(tta_targs, targs)
    plain_err, tta_err = (preds - targs).abs().mean().item(), (tta_preds - targs).abs().mean().item()
    assert tta_err < plain_err  # the mean of eight views of a model trained on one orientation
    odd = tmp_path / "odd.png"
    blocks_image(37, 21, 99).save(odd)
    out = learn.predict(odd, tta=True)
    assert out.shape == (3, 42, 74) and 0 <= out.min() and out.max() <= 1
    assert not torch.allclose(out, learn.predict(odd), atol=1e-4)
    assert isinstance(learn.model, torch.nn.Module) and not hasattr(learn.model, "n")  # the model is put back
