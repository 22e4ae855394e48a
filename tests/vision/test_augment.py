"""Batch augmentation: matrix conventions against torch.flip / torch.rot90, one resample per batch,
lighting range, normalization, and the fused loader path against the plain one."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from quickfit.vision.core.augment import (
    AffineWarp,
    Lighting,
    Normalize,
    apply_matrices,
    aug_transforms,
    batch_tfm_from_dict,
    compose_matrices,
    imagenet_stats,
    side_on,
    top_down,
)
from quickfit.vision.core.loader import apply_batch_tfms


def mats(n=2, angle=0.0, flip=False, zoom=1.0, center=(0.0, 0.0), warp=(0.0, 0.0), h=8, w=8):
    full = lambda v: torch.tensor([v] * n, dtype=torch.float32)
    return compose_matrices(
        full(angle), torch.tensor([flip] * n), full(zoom), full(center).view(n, 2), full(warp).view(n, 2), h, w
    )


@pytest.fixture
def x():
    torch.manual_seed(0)
    return torch.rand(2, 3, 8, 8)


def test_identity_parameters_give_back_the_input(x):
    out = apply_matrices(x, mats())
    assert torch.allclose(out, x, atol=1e-6)
    rect = torch.rand(2, 3, 6, 10)
    assert torch.allclose(apply_matrices(rect, mats(h=6, w=10)), rect, atol=1e-6)


def test_flip_is_torch_flip(x):
    assert torch.allclose(apply_matrices(x, mats(flip=True)), torch.flip(x, dims=[-1]), atol=1e-6)


def test_quarter_turns_are_torch_rot90(x):
    assert torch.allclose(apply_matrices(x, mats(angle=math.pi / 2)), torch.rot90(x, 1, dims=(2, 3)), atol=1e-6)
    assert torch.allclose(apply_matrices(x, mats(angle=-math.pi / 2)), torch.rot90(x, -1, dims=(2, 3)), atol=1e-6)
    # Half a turn of a non-square image is exact too: rotations happen in pixel space, no shear.
    rect = torch.rand(1, 3, 6, 10)
    out = apply_matrices(rect, mats(n=1, angle=math.pi, h=6, w=10))
    assert torch.allclose(out, torch.rot90(rect, 2, dims=(2, 3)), atol=1e-5)


def test_zoom_magnifies_around_the_center():
    ramp = (torch.arange(64, dtype=torch.float32) * 2 + 1) / 64 - 1  # value = the pixel's x coordinate
    img = ramp.view(1, 1, 1, 64).repeat(1, 1, 4, 1)
    out = apply_matrices(img, mats(n=1, zoom=2.0, h=4, w=64), "border")
    assert torch.allclose(out, img / 2, atol=1e-5)  # the middle half, stretched to the full width


def test_warp_is_a_perspective_that_keeps_the_center():
    img = torch.rand(1, 1, 9, 9)
    out = apply_matrices(img, mats(n=1, warp=(0.3, 0.0), h=9, w=9))
    assert torch.allclose(out[..., 4, 4], img[..., 4, 4], atol=1e-6)
    assert not torch.allclose(out, img, atol=1e-2)


def test_one_grid_sample_per_batch(monkeypatch, x):
    calls = []
    real = F.grid_sample
    monkeypatch.setattr(F, "grid_sample", lambda *a, **k: calls.append(1) or real(*a, **k))
    big = (torch.rand(16, 3, 32, 32) * 255).to(torch.uint8)
    tfms = aug_transforms(max_rotate=30, max_zoom=1.5, max_warp=0.3, p_affine=1.0)
    out = apply_batch_tfms(big, tfms, Normalize.from_stats(imagenet_stats))
    assert len(calls) == 1 and out.shape == (16, 3, 32, 32)
    AffineWarp(flip_vert=True)(x)
    assert len(calls) == 2
    apply_batch_tfms(big, tfms, Normalize.from_stats(imagenet_stats), augment=False)  # validation: none
    assert len(calls) == 2


def test_dihedral_gives_the_8_flips_and_quarter_turns():
    img = torch.rand(1, 3, 6, 6)
    variants = []
    for k in range(4):
        r = torch.rot90(img, k, dims=(2, 3))
        variants += [r, torch.flip(r, dims=[-1])]
    torch.manual_seed(0)
    tfm = AffineWarp(flip_vert=True, max_rotate=0, max_zoom=1, max_warp=0)
    seen = set()
    for out in tfm(img.repeat(64, 1, 1, 1)):
        match = [i for i, v in enumerate(variants) if torch.allclose(out, v[0], atol=1e-5)]
        assert len(match) >= 1
        seen.add(match[0])
    assert len(seen) == 8


def test_random_affine_varies_per_image_and_respects_p():
    img = torch.rand(1, 3, 16, 16).repeat(32, 1, 1, 1)
    torch.manual_seed(0)
    out = AffineWarp(do_flip=False, max_rotate=20, p_affine=1.0)(img)
    assert len({round(o.sum().item(), 3) for o in out}) > 20
    none = AffineWarp(do_flip=False, p_affine=0.0)(img)
    assert torch.allclose(none, img, atol=1e-5)


def test_lighting_keeps_range_and_changes_images():
    torch.manual_seed(0)
    x = torch.rand(32, 3, 8, 8)
    x[:, :, 0, 0], x[:, :, 0, 1] = 0.0, 1.0
    out = Lighting(max_lighting=0.9, p=1.0)(x)
    assert out.min() >= 0 and out.max() <= 1
    assert (out - x).abs().mean() > 0.05
    assert torch.equal(Lighting(max_lighting=0.5, p=0.0)(x), x)


def test_normalize_matches_the_formula():
    x = torch.rand(4, 3, 5, 5)
    norm = Normalize.from_stats(imagenet_stats)
    mean, std = torch.tensor(imagenet_stats[0]), torch.tensor(imagenet_stats[1])
    expected = (x - mean[:, None, None]) / std[:, None, None]
    assert torch.allclose(norm(x), expected, atol=1e-6)
    assert torch.allclose(norm.decode(norm(x)), x, atol=1e-6)
    lite = Normalize((0.5,) * 3, (0.5,) * 3)  # EfficientNet-Lite: (x*255 - 127.5) / 127.5
    assert torch.allclose(lite(x), (x * 255 - 127.5) / 127.5, atol=1e-5)
    with pytest.raises(ValueError, match="std"):
        Normalize((0.5,), (0.0,))


@pytest.mark.parametrize(
    "tfms",
    [
        aug_transforms(),
        aug_transforms(max_lighting=0.9, p_lighting=1.0),
        [Lighting(0.9, p=1.0)],
        top_down,
        aug_transforms(pad_mode="zeros"),
    ],
)
def test_fused_loader_path_equals_plain_transforms(tfms):
    xb = (torch.rand(8, 3, 12, 20) * 255).to(torch.uint8)
    norm = Normalize.from_stats(imagenet_stats)
    workspace = {}
    torch.manual_seed(1)
    fused = apply_batch_tfms(xb, tfms, norm, workspace=workspace)
    kept = fused.clone()
    apply_batch_tfms(xb, tfms, norm, workspace=workspace)  # the next batch reuses the scratch buffers...
    assert torch.equal(fused, kept)  # ...but never the returned tensor
    torch.manual_seed(1)
    plain = xb.float() / 255
    for t in tfms:
        plain = t(plain)
    assert torch.allclose(fused, norm(plain), atol=1e-4)


def test_presets_and_round_trip():
    assert [type(t) for t in side_on] == [AffineWarp, Lighting] and not side_on[0].flip_vert
    assert top_down[0].flip_vert
    assert aug_transforms(do_flip=False, max_rotate=0, max_zoom=1, max_warp=0, max_lighting=0) == []
    for t in (*aug_transforms(max_rotate=5, pad_mode="border"), Normalize((0.1,), (0.2,))):
        assert batch_tfm_from_dict(t.to_dict()).to_dict() == t.to_dict()
    with pytest.raises(ValueError, match="max_zoom"):
        aug_transforms(max_zoom=0.5)
