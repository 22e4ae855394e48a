"""crappify and image-to-image data: the round trip, pixel-exact pairs, identical augmentation of input and
target (no lighting on the target), test_dl at any size, and the bad inputs with their messages."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from quickfit.image_grid import image_to_tensor
from quickfit.vision.core.augment import AffineWarp, Lighting
from quickfit.vision.generation.crappify import crappify, crappify_image
from quickfit.vision.generation.data import ImageToImageDataLoaders, PairMismatchError, image2image_dls_from_export


def smooth_image(w: int, h: int, seed: int) -> Image.Image:
    """A smooth colour pattern (downscaling it loses little, so pairs can be compared pixel by pixel)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w] / max(w, h)
    chans = [np.sin(xs * rng.uniform(3, 9) + ys * rng.uniform(3, 9) + rng.uniform(0, 6)) for _ in range(3)]
    return Image.fromarray(((np.stack(chans, -1) + 1) * 127.5).astype(np.uint8))


@pytest.fixture
def photos(tmp_path):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    smooth_image(64, 48, 0).save(src / "a.jpg", quality=95)
    smooth_image(80, 64, 1).save(src / "sub" / "b.png")
    smooth_image(48, 64, 2).save(src / "c.jpg", quality=95)
    smooth_image(64, 64, 3).save(src / "d.jpg", quality=95)
    return src


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / F.mse_loss(a, b)))


# ---- crappify -----------------------------------------------------------------------------------------------
def test_crappify_round_trip(photos, tmp_path):
    out = crappify(photos, tmp_path / "lr", scale=2, quality=(60, 90), draw_text=False, seed=1, progress=False)
    rel = sorted(p.relative_to(tmp_path / "lr").as_posix() for p in out)
    assert rel == ["a.jpg", "c.jpg", "d.jpg", "sub/b.jpg"]  # same relative paths, JPEG
    with Image.open(tmp_path / "lr" / "sub" / "b.jpg") as img:
        assert img.format == "JPEG" and img.size == (40, 32)
    # the pairs read back: input and target cover the same region
    dls = ImageToImageDataLoaders.from_folders(
        tmp_path / "lr", photos, valid_pct=0.25, size=32, bs=2, num_workers=0, seed=0
    )
    assert dls.scale == 2 and len(dls.train.dataset) == 3 and len(dls.valid.dataset) == 1
    x, y = next(iter(dls.valid))
    assert x.shape == y.shape == (1, 3, 32, 32)  # the input upsampled (bicubic) to the target's size
    assert psnr(x, y) > 25  # the same picture
    shifted = torch.roll(y, shifts=4, dims=3)
    assert psnr(x, shifted) < psnr(x, y) - 5  # ... and aligned: a shift of 4 pixels is much worse


def test_crappify_is_deterministic_skips_done_files_and_draws_text(photos, tmp_path):
    a = crappify(photos, tmp_path / "a", seed=7, progress=False)
    b = crappify(photos, tmp_path / "b", seed=7, num_workers=1, progress=False)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]  # order of workers does not matter
    c = crappify(photos, tmp_path / "c", seed=8, progress=False)
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]
    mtimes = [os.stat(p).st_mtime_ns for p in a]
    crappify(photos, tmp_path / "a", seed=7, progress=False)
    assert [os.stat(p).st_mtime_ns for p in a] == mtimes  # already done: skipped
    img = smooth_image(64, 64, 5)
    plain, q = crappify_image(img, 2, 50)
    text, _ = crappify_image(img, 2, 50, text="42", text_pos=(0.3, 0.3))
    assert q == 50 and plain.size == (32, 32)
    assert (np.asarray(plain, dtype=int) - np.asarray(text, dtype=int)).any()


def test_crappify_lossless_bicubic_inputs_line_up_with_their_targets(photos, tmp_path):
    out = crappify(photos, tmp_path / "lr", quality=None, resample="bicubic", draw_text=False, progress=False)
    assert sorted(p.relative_to(tmp_path / "lr").as_posix() for p in out) == ["a.png", "c.png", "d.png", "sub/b.png"]
    src = Image.open(photos / "sub" / "b.png").convert("RGB")
    expected = src.resize((40, 32), Image.Resampling.BICUBIC)  # lossless: exactly PIL's bicubic downscale
    with Image.open(tmp_path / "lr" / "sub" / "b.png") as img:
        assert img.format == "PNG" and (np.asarray(img) == np.asarray(expected)).all()
    # an odd size: the input covers exactly the top-left 2 x its size of the source (pixels line up)
    odd = smooth_image(65, 49, 4)
    small, q = crappify_image(odd, 2, None, resample="bicubic")
    assert q is None and small.size == (32, 24)
    covered = odd.crop((0, 0, 64, 48)).resize((32, 24), Image.Resampling.BICUBIC)
    inner = (slice(0, 22), slice(0, 30))  # away from the right and bottom edges (the filter reaches past them)
    assert (np.asarray(small)[inner] == np.asarray(covered)[inner]).all()
    squeezed = odd.resize((32, 24), Image.Resampling.BICUBIC)  # the whole odd image: off by up to half a pixel
    assert (np.asarray(small, dtype=int)[inner] != np.asarray(squeezed, dtype=int)[inner]).any()


def test_crappify_bad_arguments(photos, tmp_path):
    with pytest.raises(FileNotFoundError, match="source folder .*nowhere does not exist"):
        crappify(tmp_path / "nowhere", tmp_path / "x")
    with pytest.raises(ValueError, match=r"quality must be \(low, high\).*got \(70, 10\)"):
        crappify(photos, tmp_path / "x", quality=(70, 10))
    with pytest.raises(ValueError, match="must not be .* or inside it"):
        crappify(photos, photos / "lr")
    with pytest.raises(ValueError, match=r"resample must be one of \['bicubic', 'bilinear'\], got 'nearest'"):
        crappify(photos, tmp_path / "x", resample="nearest")


# ---- pairs ------------------------------------------------------------------------------------------------------
def _same_pairs(tmp_path, n=4, size=32):
    """Input and target folders holding the same images (scale 1)."""
    for d in ("in", "out"):
        (tmp_path / d).mkdir()
    for i in range(n):
        img = smooth_image(size + 8 * i, size, i)
        img.save(tmp_path / "in" / f"{i}.png")
        img.save(tmp_path / "out" / f"{i}.png")
    return tmp_path / "in", tmp_path / "out"


def test_input_and_target_get_the_identical_spatial_augmentation(tmp_path):
    inp, out = _same_pairs(tmp_path)
    warp = AffineWarp(max_rotate=30, max_zoom=1.5, max_warp=0.3, p_affine=1.0)
    dls = ImageToImageDataLoaders.from_folders(inp, out, valid_pct=0, size=32, bs=4, batch_tfms=[warp], num_workers=0)
    torch.manual_seed(0)
    x, y = next(iter(dls.train))
    torch.manual_seed(0)
    plain = ImageToImageDataLoaders.from_folders(inp, out, valid_pct=0, size=32, bs=4, num_workers=0)
    px, py = next(iter(plain.train))
    assert not torch.allclose(x, px, atol=0.05)  # the warp did move the pixels
    torch.testing.assert_close(x, y)  # ... of both, the same way


def test_dihedral_turns_a_half_size_input_and_its_target_alike(tmp_path):
    """upsample=False (the model sees the half-size input): the 8 flips / quarter turns move the input and
    its 2x target the same way, exactly (super-resolution's augmentation: no resampling blur)."""
    (tmp_path / "lr").mkdir()
    (tmp_path / "hr").mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        hr = rng.integers(0, 256, (64, 64, 3)).astype(np.float64)
        lr = hr.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))  # the 2x2 box mean: the input lines up exactly
        Image.fromarray(hr.astype(np.uint8)).save(tmp_path / "hr" / f"{i}.png")
        Image.fromarray(np.round(lr).astype(np.uint8)).save(tmp_path / "lr" / f"{i}.png")
    flips = AffineWarp(flip_vert=True, max_rotate=0, max_zoom=1, max_warp=0)
    kw = dict(valid_pct=0, size=32, bs=8, upsample=False, num_workers=0)
    dls = ImageToImageDataLoaders.from_folders(tmp_path / "lr", tmp_path / "hr", batch_tfms=[flips], **kw)
    plain = ImageToImageDataLoaders.from_folders(tmp_path / "lr", tmp_path / "hr", **kw)
    torch.manual_seed(0)
    x, y = next(iter(dls.train))
    torch.manual_seed(0)
    px, _ = next(iter(plain.train))
    assert x.shape == (8, 3, 16, 16) and y.shape == (8, 3, 32, 32)
    assert (x - px).abs().flatten(1).amax(1).gt(0.1).sum() >= 4  # most crops were turned or mirrored
    torch.testing.assert_close(F.avg_pool2d(y, 2), x, atol=0.6 / 255, rtol=0)  # ... each with its target


def test_lighting_changes_the_input_only_and_normalization_too(tmp_path):
    inp, out = _same_pairs(tmp_path)
    dls = ImageToImageDataLoaders.from_folders(
        inp, out, valid_pct=0, size=32, bs=4, batch_tfms=[Lighting(0.5, p=1.0)], num_workers=0
    )
    torch.manual_seed(1)
    x, y = next(iter(dls.train))
    assert (x - y).abs().max() > 0.05  # lighting on the input
    raw = ImageToImageDataLoaders.from_folders(inp, out, valid_pct=0, size=32, bs=4, num_workers=0)
    torch.manual_seed(1)
    rx, ry = next(iter(raw.train))
    torch.testing.assert_close(y, ry)  # the target as it was (same crops: same seed)
    torch.testing.assert_close(rx, ry)
    raw.set_normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    torch.manual_seed(1)
    nx, ny = next(iter(raw.train))
    torch.testing.assert_close(nx, (ry - 0.5) / 0.25)
    torch.testing.assert_close(ny, ry)  # targets stay [0, 1]
    assert raw.export_info()["normalize"] == [[0.5] * 3, [0.25] * 3]


def test_test_dl_takes_any_size_and_returns_the_target_scale(photos, tmp_path):
    crappify(photos, tmp_path / "lr", draw_text=False, progress=False)
    dls = ImageToImageDataLoaders.from_folders(tmp_path / "lr", photos, size=16, bs=2, num_workers=0)
    odd = tmp_path / "odd.png"
    smooth_image(37, 21, 9).save(odd)
    (x,) = next(iter(dls.test_dl([odd])))
    assert x.shape == (1, 3, 42, 74)  # 2x the 37x21 input
    torch.testing.assert_close(dls.decode_pred(torch.full((3, 4, 4), 1.5)), torch.ones(3, 4, 4))
    exported = image2image_dls_from_export(dls.export_info())
    (ex,) = next(iter(exported.test_dl([odd])))
    torch.testing.assert_close(ex, x)  # a loaded export prepares images the same way
    grid = dls.show_batch(2, path=tmp_path / "b.png")
    assert grid.shape[0] == 3 and (tmp_path / "b.png").exists()


def test_from_func_pairs_each_input_with_its_target(tmp_path):
    inp, out = _same_pairs(tmp_path)
    dls = ImageToImageDataLoaders.from_func(inp, lambda f: out / f.name, valid_pct=0.25, size=32, num_workers=0)
    assert len(dls.train.dataset) == 3 and all(a.name == b.name for a, b in dls.train.dataset.pairs)
    with pytest.raises(PairMismatchError, match=r"target_func names 4 targets that do not exist: 0.png -> .*0.tif"):
        ImageToImageDataLoaders.from_func(inp, lambda f: out / f"{f.stem}.tif")


# ---- bad inputs ---------------------------------------------------------------------------------------------------
def test_folders_that_do_not_match_are_named(tmp_path):
    inp, out = _same_pairs(tmp_path)
    (inp / "2.png").rename(inp / "extra.png")
    with pytest.raises(PairMismatchError) as e:
        ImageToImageDataLoaders.from_folders(inp, out)
    msg = str(e.value)
    assert "1 inputs in" in msg and "have no target" in msg and "extra" in msg
    assert "1 targets in" in msg and "have no input" in msg and ": 2" in msg


def test_two_files_differing_only_by_suffix_are_refused_by_name(tmp_path):
    """Issue 29, item 6: docs/generative.md's two crappify snippets put x.jpg and x.png in one folder, and
    one of each pair was kept silently."""
    from PIL import Image

    inp, out = _same_pairs(tmp_path)
    Image.open(inp / "1.png").convert("RGB").save(inp / "1.jpg")
    with pytest.raises(PairMismatchError, match=r"the input folder .* has 1.(png|jpg) and 1.(png|jpg): pairs match"):
        ImageToImageDataLoaders.from_folders(inp, out)


def test_a_pair_of_different_sizes_is_refused(tmp_path):
    inp, out = _same_pairs(tmp_path)
    smooth_image(50, 30, 0).save(out / "1.png")  # 1.png: input 40x32, target 50x30
    with pytest.raises(
        PairMismatchError, match=r"1 of 4 pairs do not have targets 1x .*1.png is 40x32 but 1.png is 50x30"
    ):
        ImageToImageDataLoaders.from_folders(inp, out)


def test_the_crop_size_must_be_a_multiple_of_the_scale(tmp_path):
    inp, _ = _same_pairs(tmp_path)
    (tmp_path / "big").mkdir()
    for f in inp.iterdir():
        with Image.open(f) as img:
            img.resize((img.width * 2, img.height * 2)).save(tmp_path / "big" / f.name)
    assert ImageToImageDataLoaders.from_folders(inp, tmp_path / "big", size=32, num_workers=0).scale == 2
    with pytest.raises(ValueError, match=r"size \(33\) must be a multiple of the scale \(2\)"):
        ImageToImageDataLoaders.from_folders(inp, tmp_path / "big", size=33)


def test_missing_folders_and_transforms_that_cannot_pair(tmp_path):
    inp, out = _same_pairs(tmp_path)
    with pytest.raises(FileNotFoundError, match="targets folder .*nope does not exist"):
        ImageToImageDataLoaders.from_folders(inp, tmp_path / "nope")
    with pytest.raises(TypeError, match="image-to-image batch_tfms may be AffineWarp"):
        ImageToImageDataLoaders.from_folders(inp, out, batch_tfms=[lambda x: x])


def test_image_to_tensor_round_trip(tmp_path):
    img = smooth_image(10, 6, 0)
    img.save(tmp_path / "i.png")
    t = image_to_tensor(tmp_path / "i.png")
    assert t.shape == (3, 6, 10) and t.dtype == torch.float32
    np.testing.assert_array_equal((t * 255).round().byte().permute(1, 2, 0).numpy(), np.asarray(img))


def test_from_pairs_checks_files_and_valid_pct(tmp_path):
    inp, out = _same_pairs(tmp_path)
    pairs = [(inp / "0.png", out / "0.png"), (inp / "1.png", out / "missing.png")]
    with pytest.raises(FileNotFoundError, match="1 image files of the pairs do not exist: .*missing.png"):
        ImageToImageDataLoaders.from_pairs(pairs)
    with pytest.raises(ValueError, match=r"valid_pct must be in \[0, 1\), got 1.5"):
        ImageToImageDataLoaders.from_pairs(pairs[:1], valid_pct=1.5)


def test_cache_reads_each_file_once_and_gives_the_same_crops(photos, tmp_path):
    crappify(photos, tmp_path / "lr", quality=None, resample="bicubic", draw_text=False, progress=False)
    kw = dict(valid_pct=0.25, size=16, bs=1, upsample=False, seed=0)
    torch.manual_seed(3)
    plain = [b for _ in range(2) for b in ImageToImageDataLoaders.from_folders(tmp_path / "lr", photos, **kw,
                                                                               num_workers=0).train]  # fmt: skip
    cached = ImageToImageDataLoaders.from_folders(tmp_path / "lr", photos, **kw, cache=True)
    assert cached.train.num_workers == 0  # cropping from memory: no worker processes by default
    torch.manual_seed(3)
    first = list(cached.train)
    for f in [*photos.rglob("*.*"), *(tmp_path / "lr").rglob("*.*")]:
        f.unlink()  # the files are gone: a second epoch must come from memory
    second = list(cached.train)
    for (px, py), (cx, cy) in zip(plain, first + second, strict=True):
        torch.testing.assert_close(px, cx)  # the same random crops, pixel for pixel
        torch.testing.assert_close(py, cy)
    assert len(cached.train.dataset.cache) == len(cached.train.dataset.pairs)


def test_training_shards_split_one_permutation_as_image_loaders_do(tmp_path):
    inp, out = _same_pairs(tmp_path, n=5)
    dls = ImageToImageDataLoaders.from_folders(inp, out, valid_pct=0.4, size=16, bs=1, upsample=False, num_workers=0)
    dl = dls.train  # 3 training pairs
    shards = [dl.shard(r, 2) for r in range(2)]
    assert [len(s) for s in shards] == [2, 2]  # 3 pairs -> 2 per rank (one repeat): the same steps everywhere
    torch.manual_seed(7)
    full = list(dl._torch_loader().sampler)  # the one-process loader's epoch order
    for r, s in enumerate(shards):
        torch.manual_seed(7)  # every rank's torch RNG is in the same state: one permutation for all
        assert list(s._torch_loader().sampler) == (full + full[:1])[r::2]
        assert s.dataset is dl.dataset and sum(1 for _ in s) == 2
    valid = [dls.valid.shard(r, 2).dataset.pairs for r in range(2)]
    assert valid[0] + valid[1] == dls.valid.dataset.pairs and len(valid[0]) == 1  # contiguous, no repeats


def test_cached_pairs_are_shared_by_worker_processes(tmp_path):
    inp, out = _same_pairs(tmp_path, n=4)
    dls = ImageToImageDataLoaders.from_folders(inp, out, valid_pct=0, size=16, bs=2, upsample=False, num_workers=2,
                                               cache=True)  # fmt: skip
    for _ in range(2):
        assert sum(x.shape[0] for x, _ in dls.train) == 4
    ds = dls.train.dataset
    assert len(ds.cache) == 4 and len(ds.target_cache) == 4  # filled by the workers, seen by the parent
