"""The decode cache (`ImageDataLoaders(..., cache=True)`): each file decoded once over several epochs, in
the worker processes too; the same batches as without it; bounded; broken files still reported.
And the one place images are opened: errors name the file."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import quickfit.vision.core.image as image_module
from quickfit.vision.core.cache import DecodeCache
from quickfit.vision.core.data import ImageDataLoaders
from quickfit.vision.core.image import ImageLoadError, SourceImage, load_image
from quickfit.vision.core.transforms import RandomResizedCrop, Resize


def make_folder(root: Path, n: int = 6, size=(48, 40)) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / cls / f"{i}.jpg", quality=90)
    return root


@pytest.fixture
def count_decodes(tmp_path, monkeypatch):
    """Every decode appends the file's name to a log: worker processes (forked) write to it too."""
    log = tmp_path / "decodes.log"
    real = image_module.decode_rgb

    def counted(img, min_size=None):
        with open(log, "a") as f:
            f.write(f"{img.filename}\n")
        return real(img, min_size)

    monkeypatch.setattr(image_module, "decode_rgb", counted)
    return lambda: log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("workers", [0, 2])
def test_each_file_decoded_once_over_epochs(tmp_path, count_decodes, workers):
    root = make_folder(tmp_path / "data")
    dls = ImageDataLoaders.from_folder(root, item_tfms=RandomResizedCrop(32), bs=4, num_workers=workers, cache=True)
    assert dls.train.dataset.cache.n_cached == 12 and count_decodes() == []  # built from the headers alone
    for _ in range(3):
        for dl in (dls.train, dls.valid):
            for x, _ in dl:
                assert x.shape[1:] == (3, 32, 32)
    decoded = count_decodes()
    assert len(set(decoded)) == 24  # 12 train + 12 valid files
    # Once each; with workers, at most twice: they run on into the next epoch (persistent loaders are
    # endless), and two workers may decode a file at once for the first epoch and the second.
    assert max(Counter(decoded).values()) <= (2 if workers else 1)
    assert dls.train.dataset.cache.filled == 12  # the workers wrote into the parent's shared memory
    for _ in range(2):
        for dl in (dls.train, dls.valid):
            for _batch in dl:
                pass
    assert count_decodes() == decoded  # later epochs read the cache only
    # training crops still differ from epoch to epoch
    torch.manual_seed(0)
    a = next(iter(dls.train))[0]
    b = next(iter(dls.train))[0]
    assert not torch.equal(a, b)


def test_cached_batches_equal_uncached(tmp_path):
    root = make_folder(tmp_path / "data", size=(120, 90))
    kw = dict(item_tfms=Resize(32), bs=4, num_workers=0)
    plain = ImageDataLoaders.from_folder(root, **kw)
    cached = ImageDataLoaders.from_folder(root, cache=True, **kw)
    for _ in range(2):  # first from the files, then from the cache
        for (x1, y1), (x2, y2) in zip(plain.valid, cached.valid):
            assert torch.equal(x1, x2) and torch.equal(y1, y2)
    # training: the same random crops for the same seed
    torch.manual_seed(3)
    x1 = next(iter(plain.train))[0]
    torch.manual_seed(3)
    x2 = next(iter(cached.train))[0]
    assert torch.equal(x1, x2)


def test_cache_is_bounded_and_keeps_a_prefix(tmp_path):
    root = make_folder(tmp_path / "data", size=(48, 40))
    files = sorted((root / "train").rglob("*.jpg"))
    cache = DecodeCache(files, Resize(32).cover_size, max_bytes=5 * 48 * 40 * 3)
    assert cache.n_cached == 5 and cache.nbytes == 5 * 48 * 40 * 3
    assert cache.index[:5, 1].gt(0).all() and cache.index[5:, 1].eq(0).all()
    assert isinstance(cache.source(7, files[7]), SourceImage)  # outside the bound: read from the file
    with pytest.raises(ValueError, match="cache must be"):
        ImageDataLoaders.from_folder(root, item_tfms=Resize(32), cache=-1)


def test_big_jpeg_kept_at_draft_scale(tmp_path):
    Image.fromarray(np.zeros((800, 1000, 3), np.uint8)).save(tmp_path / "big.jpg")
    cache = DecodeCache([tmp_path / "big.jpg"], Resize(100).cover_size, 1 << 30)
    _, h, w, w0, h0, _ = cache.index[0].tolist()
    assert (w0, h0) == (1000, 800) and (w, h) == (125, 100)  # 1/8 scale: the 800px crop still has 100px
    x = Resize(100)(cache.source(0, tmp_path / "big.jpg"))
    assert x.shape == (3, 100, 100) and cache.filled == 1


def test_broken_file_in_a_cached_set_is_skipped_with_its_name(tmp_path):
    root = make_folder(tmp_path / "data")
    bad = root / "train" / "a" / "broken.jpg"
    bad.write_text("not an image")
    dls = ImageDataLoaders.from_folder(root, item_tfms=Resize(32), bs=16, num_workers=0, cache=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        next(iter(dls.train))
    assert any("broken.jpg" in str(w.message) for w in caught)


def test_load_errors_name_the_file(tmp_path):
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ImageLoadError, match="text.jpg") as info:
        load_image(tmp_path / "text.jpg")
    assert isinstance(info.value, OSError) and isinstance(info.value, RuntimeError)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="cut.jpg"):
        load_image(tmp_path / "cut.jpg")
    assert os.path.exists(tmp_path / "cut.jpg")
