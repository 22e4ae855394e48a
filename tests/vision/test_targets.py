"""Targets transformed with their images: masks, points, boxes and image targets against hand-computed
transforms, in the item transform and in the batch augmentation (fused and plain paths)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from quickfit.vision.core.augment import AffineWarp, Lighting, Normalize, compose_matrices, sampling_grid
from quickfit.vision.core.geometry import outside, warp_boxes, warp_mask, warp_points
from quickfit.vision.core.loader import ImageDataset, ImageItems, ImageLoader, apply_batch_tfms, apply_batch_tfms_pair
from quickfit.vision.core.targets import Target
from quickfit.vision.core.transforms import RandomResizedCrop, Resize
from quickfit.vision.segmentation.masks import MaskError


def mats(n=1, angle=0.0, flip=False, zoom=1.0, center=(0.0, 0.0), h=8, w=8):
    full = lambda v: torch.tensor([v] * n, dtype=torch.float32)
    return compose_matrices(
        full(angle), torch.tensor([flip] * n), full(zoom), full(center).view(n, 2), torch.zeros(n, 2), h, w
    )


# ---- item transforms ----------------------------------------------------------------------------------
def _coded(h=9, w=15):
    return (np.arange(h)[:, None] * w + np.arange(w)[None]).astype(np.int64)  # value = its own position


def test_item_mask_gets_the_images_center_crop_nearest_neighbour():
    # 15x9 -> Resize(3): the centered 9x9 box starting at x=3, a third of the size: output pixel (i, j)
    # has its center at source (3 + 3j + 1.5, 3i + 1.5), i.e. source pixel (3i + 1, 3j + 4).
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (9, 15, 3), dtype=np.uint8))
    x, y = Resize(3).pair(img, _coded(), Target("mask", n_codes=135))
    assert torch.equal(x, Resize(3)(img))  # the image is what the plain item transform gives
    assert y.dtype == torch.uint8
    assert y.tolist() == _coded()[[1, 4, 7]][:, [4, 7, 10]].tolist()


def test_item_mask_follows_a_random_crop():
    # The image's red channel is its x coordinate, green its y: a linear image resamples to the value at
    # the output pixel's center, so the image tells where each output pixel came from; the mask must agree.
    h, w = 60, 90
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0], img[..., 1] = np.arange(w)[None], np.arange(h)[:, None]
    torch.manual_seed(3)
    x, y = RandomResizedCrop(20, min_scale=0.3).pair(Image.fromarray(img), _coded(h, w), Target("mask"), True)
    src_x, src_y = x[0].double() + 0.5, x[1].double() + 0.5  # pixel centers in continuous coordinates
    inner = (slice(2, -2), slice(2, -2))  # away from the border, where resampling filters are cut off
    expect = torch.from_numpy(_coded(h, w))[src_y.floor().long(), src_x.floor().long()]
    agree = (y.long()[inner] == expect[inner]).float().mean()
    assert agree > 0.9, agree  # the rest sit on pixel boundaries, where rounding may go either way


def test_item_points_and_boxes_in_unit_coordinates_not_clipped():
    img = Image.new("RGB", (15, 9))
    # center crop box (3, 0, 12, 9) scaled by 1/3 onto 3x3: x' = (x - 3) / 3, unit = 2 x' / 3 - 1
    _, p = Resize(3).pair(img, torch.tensor([[6.0, 4.5], [0.0, 0.0], [12.0, 9.0]]), Target("points"))
    assert torch.allclose(p, torch.tensor([[-1 / 3, 0.0], [-5 / 3, -1.0], [1.0, 1.0]]))
    assert outside(p).tolist() == [False, True, False]  # flagged, and still at -5/3
    _, b = Resize(3).pair(img, torch.tensor([[0.0, 0.0, 6.0, 9.0], [0.0, 0.0, 2.0, 2.0]]), Target("boxes"))
    assert torch.allclose(b[0], torch.tensor([-1.0, -1.0, -1 / 3, 1.0]))  # clipped to the image
    assert b[1].isnan().all()  # cropped away entirely


def test_item_pad_moves_points_and_fills_masks_with_void():
    img = Image.new("RGB", (8, 4))  # pad to 8x8: 2 rows of padding above and below
    tfm = Resize(8, method="pad", pad_mode="zeros")
    _, p = tfm.pair(img, torch.tensor([[4.0, 0.0]]), Target("points"))
    assert torch.allclose(p, torch.tensor([[0.0, -0.5]]))  # y = 0 of the image is row 2 of 8
    _, m = tfm.pair(img, np.ones((4, 8), np.int64), Target("mask", n_codes=2, void_code=255))
    assert m[:2].eq(255).all() and m[2:6].eq(1).all() and m[6:].eq(255).all()


def test_item_image_target_gets_the_same_relative_crop():
    rng = np.random.default_rng(1)
    small = np.kron(rng.integers(0, 255, (9, 15, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # smooth-ish
    big = np.kron(small, np.ones((2, 2, 1))).astype(np.uint8)  # the same picture at twice the size
    torch.manual_seed(0)
    x, y = RandomResizedCrop(12).pair(Image.fromarray(small), Image.fromarray(big), Target("image"), True)
    assert y.shape == x.shape
    assert (x.float() - y.float()).abs().mean() < 4  # same crop; only the resampling filter differs


def test_item_mask_errors_name_the_problem(tmp_path):
    img = Image.new("RGB", (6, 4))
    with pytest.raises(MaskError, match=r"is 5x4 but its image"):
        Resize(4).pair(img, np.zeros((4, 5), np.int64), Target("mask", n_codes=3))
    f = tmp_path / "m.png"
    Image.fromarray(np.full((4, 6), 7, np.uint8)).save(f)
    with pytest.raises(MaskError, match=r"m.png has values \[7\] outside the 3 codes \(0-2 or the void code 5\)"):
        Resize(4).pair(img, f, Target("mask", n_codes=3, void_code=5))
    Image.new("RGB", (6, 4), (10, 20, 30)).save(f)
    with pytest.raises(MaskError, match="RGB colour image; pass palette="):
        Resize(4).pair(img, f, Target("mask", n_codes=3))
    _, m = Resize(4).pair(img, f, Target("mask", n_codes=3, palette={(10, 20, 30): 2}))
    assert m.eq(2).all()
    with pytest.raises(MaskError, match=r"colour \(10, 20, 30\) that is not in the palette"):
        Resize(4).pair(img, f, Target("mask", n_codes=3, palette={(0, 0, 0): 0}))


def test_palette_png_masks_read_their_indices(tmp_path):
    f = tmp_path / "p.png"
    p = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), mode="P")
    p.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    p.save(f)
    _, m = Resize(2, method="squish").pair(Image.new("RGB", (2, 2)), f, Target("mask", n_codes=3))
    assert m.tolist() == [[0, 1], [2, 1]]


# ---- batch level: hand-computed matrices ------------------------------------------------------------
def test_mask_warps_are_exact_flips_quarter_turns_and_nearest_zoom():
    m = torch.arange(64).view(1, 8, 8)
    grid = lambda mm: sampling_grid(mm, 8, 8)
    assert torch.equal(warp_mask(m, grid(mats(flip=True))), m.flip(-1))
    assert torch.equal(warp_mask(m, grid(mats(angle=math.pi / 2))), torch.rot90(m, 1, dims=(1, 2)))
    # zoom 2 at the center: output center (2j + 1) / 8 - 1 samples input at half that: pixel floor(j/2 + 2.25)
    cols = [2, 2, 3, 3, 4, 4, 5, 5]
    assert torch.equal(warp_mask(m, grid(mats(zoom=2.0))), m[:, cols][:, :, cols])
    # zeros padding: what comes from outside is void, not class 0
    out = warp_mask(m, grid(mats(zoom=0.5)), pad_mode="zeros", fill=99)
    assert out[0, 0, 0] == 99 and out[0, 4, 4] == m[0, 4, 4] and out.dtype == torch.int64


def test_points_move_by_the_inverse_matrix():
    p = torch.tensor([[[0.5, 0.0], [0.25, -0.5]]])
    # a quarter turn counter-clockwise (like torch.rot90): right of center goes to the top
    assert torch.allclose(warp_points(p, mats(angle=math.pi / 2)), torch.tensor([[[0.0, -0.5], [-0.5, -0.25]]]))
    assert torch.allclose(warp_points(p, mats(flip=True)), torch.tensor([[[-0.5, 0.0], [-0.25, -0.5]]]))
    zoomed = warp_points(torch.tensor([[[0.9, 0.0]]]), mats(zoom=2.0))
    assert torch.allclose(zoomed, torch.tensor([[[1.8, 0.0]]])) and outside(zoomed).item()  # flagged, not clipped
    # a mirror swaps the paired points (left eye <-> right eye), and only a mirror does
    pair = torch.tensor([[[-0.5, 0.0], [0.5, 0.0], [0.0, 0.3]]])
    assert torch.allclose(
        warp_points(pair, mats(flip=True), [(0, 1)]), torch.tensor([[[-0.5, 0.0], [0.5, 0.0], [0.0, 0.3]]])
    )
    assert torch.allclose(warp_points(pair, mats(angle=math.pi), [(0, 1)]), -pair)


def test_points_land_where_the_image_moved_their_pixel():
    torch.manual_seed(0)
    h, w = 32, 48
    img = torch.zeros(4, 1, h, w)
    px, py = torch.tensor([12, 30, 20, 33]), torch.tensor([10, 20, 15, 9])
    for i in range(4):
        img[i, 0, py[i] - 1 : py[i] + 1, px[i] - 1 : px[i] + 1] = 1.0  # a 2x2 spot around pixel corner (px, py)
    pts = torch.stack([px * 2 / w - 1, py * 2 / h - 1], dim=-1)[:, None]
    aff = AffineWarp(max_rotate=30, max_zoom=1.5, max_warp=0.0, p_affine=1.0, pad_mode="zeros")
    out, moved = aff.pair(img, pts, Target("points"))
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    for i in range(4):
        wgt = out[i, 0]
        cx, cy = (wgt * xs).sum() / wgt.sum(), (wgt * ys).sum() / wgt.sum()  # the spot's center of mass
        mx, my = (moved[i, 0, 0] + 1) * w / 2, (moved[i, 0, 1] + 1) * h / 2
        assert abs(cx - mx) < 0.5 and abs(cy - my) < 0.5, (i, cx, mx, cy, my)


def test_boxes_flip_rotate_and_vanish():
    b = torch.tensor([[[-0.5, -0.2, 0.1, 0.3], [0.2, -0.1, 0.6, 0.3]]])
    assert torch.allclose(
        warp_boxes(b, mats(flip=True)), torch.tensor([[[-0.1, -0.2, 0.5, 0.3], [-0.6, -0.1, -0.2, 0.3]]])
    )
    # quarter turn: (x, y) -> (y, -x), then the enclosing box
    rot = warp_boxes(b[:, 1:], mats(angle=math.pi / 2))
    assert torch.allclose(rot, torch.tensor([[[-0.1, -0.6, 0.3, -0.2]]]), atol=1e-6)
    # zoomed in at the center, a box near the edge leaves the image; one across the center is clipped
    z = warp_boxes(torch.tensor([[[0.7, 0.7, 0.9, 0.9], [-0.8, -0.1, 0.2, 0.1]]]), mats(zoom=2.0))
    assert z[0, 0].isnan().all()
    assert torch.allclose(z[0, 1], torch.tensor([-1.0, -0.2, 0.4, 0.2]))


# ---- batch level: through apply_batch_tfms_pair -----------------------------------------------------
def _blocky(n=4, size=16, block=4, n_codes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, n_codes, (n, size // block, size // block), generator=g)
    mask = codes.repeat_interleave(block, 1).repeat_interleave(block, 2)
    img = (mask * 50).to(torch.uint8)[:, None].repeat(1, 3, 1, 1)  # the image shows its mask
    return img, mask.to(torch.uint8)


@pytest.mark.parametrize("pad_mode", ["reflection", "zeros"])  # the fused path and the plain one
def test_mask_gets_the_same_rotation_zoom_and_warp_as_its_image(pad_mode):
    img, mask = _blocky()
    torch.manual_seed(1)
    aff = AffineWarp(max_rotate=20, max_zoom=1.3, max_warp=0.2, p_affine=1.0, pad_mode=pad_mode)
    x, y = apply_batch_tfms_pair(img, mask, Target("mask", n_codes=5, void_code=0), [aff])
    assert y.dtype == torch.int64 and y.shape == mask.shape
    assert not torch.equal(y, mask.long())  # something moved
    # Where bilinear resampling landed inside one block, the image shows the mask's class exactly.
    pure = (x[:, 0] * 255 / 50 - (x[:, 0] * 255 / 50).round()).abs() < 1e-3
    agree = (y == (x[:, 0] * 255 / 50).round().long())[pure].float().mean()
    assert agree > 0.97, agree


def test_fused_and_plain_paths_move_targets_identically():
    img, mask = _blocky()
    tfms = [AffineWarp(max_rotate=20, p_affine=1.0), Lighting(0.3, p=1.0)]
    norm = Normalize((0.5,) * 3, (0.25,) * 3)
    for target, y in [(Target("mask", n_codes=5), mask), (Target("image"), img.clone())]:
        torch.manual_seed(2)
        xf, yf = apply_batch_tfms_pair(img, y, target, tfms, norm)  # uint8 in: fused
        torch.manual_seed(2)
        xp, yp = apply_batch_tfms_pair(img.float() / 255, y, target, tfms, norm)  # float in: plain
        assert torch.allclose(xf, xp, atol=1e-4) and torch.allclose(yf.float(), yp.float(), atol=1e-4)


def test_image_target_same_geometry_no_lighting_unless_asked():
    torch.manual_seed(0)
    img = torch.randint(0, 255, (3, 3, 12, 12), dtype=torch.uint8)
    tfms = [AffineWarp(max_rotate=30, p_affine=1.0), Lighting(0.5, p=1.0)]
    torch.manual_seed(5)
    x, y = apply_batch_tfms_pair(img, img.clone(), Target("image", normalize=False), tfms)
    torch.manual_seed(5)
    geometry_only = apply_batch_tfms(img, tfms[:1])  # the same draws for the geometry, no lighting
    assert torch.allclose(y, geometry_only, atol=1e-5) and not torch.allclose(x, y, atol=1e-2)
    torch.manual_seed(5)
    x, y = apply_batch_tfms_pair(
        img, img.clone(), Target("image", lighting=True), tfms, Normalize((0.5,) * 3, (0.2,) * 3)
    )
    assert torch.allclose(x, y, atol=1e-5)  # asked: the target gets the input's lighting and normalization


def test_a_transform_that_may_move_pixels_is_refused_with_spatial_targets():
    img, mask = _blocky()
    with pytest.raises(TypeError, match="cannot be used with mask targets"):
        apply_batch_tfms_pair(img, mask, Target("mask"), [lambda x: x.flip(-1)])


def test_loader_batches_images_with_masks_and_boxes(tmp_path):
    rng = np.random.default_rng(0)
    paths, masks, boxes = [], [], []
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, (12, 16), dtype=np.uint8)).save(tmp_path / f"{i}_m.png")
        paths.append(tmp_path / f"{i}.png")
        masks.append(tmp_path / f"{i}_m.png")
        boxes.append(torch.tensor([[1.0, 1.0, 8.0, 6.0]] * (i % 3 + 1)))
    ds = ImageDataset(ImageItems(paths, masks), Resize((8, 8)), target=Target("mask", n_codes=3))
    x, y = next(iter(ImageLoader(ds, bs=5, num_workers=0, batch_tfms=[AffineWarp()], augment=True)))
    assert x.shape == (5, 3, 8, 8) and y.shape == (5, 8, 8) and y.dtype == torch.int64 and y.max() <= 2
    ds = ImageDataset(ImageItems(paths, boxes), Resize((8, 8)), target=Target("boxes"))
    x, y = next(iter(ImageLoader(ds, bs=5, num_workers=0)))
    assert y.shape == (5, 3, 4) and y[0, 1:].isnan().all() and not y[2].isnan().any()  # padded with NaN rows
    shard = ImageLoader(ds, bs=5, num_workers=0).shard(0, 2)
    assert shard.dataset.target == Target("boxes") and len(shard.dataset.items.targets) == len(shard.dataset)
