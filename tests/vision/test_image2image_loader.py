"""Image-to-image data on the one image pipeline: its training loader is classification's `ImageLoader`,
sharded over DDP ranks by the same rule, and a batch's input and target stay aligned under augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from quickfit.vision.core.augment import AffineWarp
from quickfit.vision.core.loader import ImageDataset, ImageItems, ImageLoader
from quickfit.vision.core.transforms import Resize
from quickfit.vision.generation.data import ImageToImageDataLoaders
from quickfit.vision.generation.transforms import PairCrop, Upsample
from tests.vision.test_image2image import smooth_image


def _pairs(tmp_path, images: list[np.ndarray]):
    """Targets as given ([H, W, 3] floats in [0, 255]) and inputs that are their exact 2x2 box means."""
    (tmp_path / "lr").mkdir()
    (tmp_path / "hr").mkdir()
    for i, hr in enumerate(images):
        h, w = hr.shape[:2]
        lr = hr.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
        Image.fromarray(hr.astype(np.uint8)).save(tmp_path / "hr" / f"{i}.png")
        Image.fromarray(np.round(lr).astype(np.uint8)).save(tmp_path / "lr" / f"{i}.png")
    return tmp_path / "lr", tmp_path / "hr"


def test_the_training_loader_is_an_image_loader_sharded_as_classification(tmp_path):
    n = 6
    lr, hr = _pairs(tmp_path, [np.full((16, 16, 3), 40.0 * i) for i in range(n)])  # pair i: grey level 40 i
    dls = ImageToImageDataLoaders.from_folders(lr, hr, valid_pct=0, size=16, bs=1, num_workers=0)
    assert isinstance(dls.train, ImageLoader) and isinstance(dls.train.dataset, ImageDataset)
    assert isinstance(dls.train.dataset.item_tfm, PairCrop) and isinstance(dls.train.batch_tfms[0], Upsample)
    # classification over the same inputs, labelled by their index
    inputs = [a for a, _ in dls.train.dataset.pairs]
    labelled = ImageDataset(ImageItems(inputs, torch.arange(n)), Resize(8), train=True)
    classify = ImageLoader(labelled, bs=1, shuffle=True, num_workers=0)
    seen = []
    for rank in range(2):
        torch.manual_seed(5)  # every rank's torch RNG in the same state: one permutation for all
        pairs = [round(float(y[0, 0, 0, 0]) * 255 / 40) for _, y in dls.train.shard(rank, 2)]
        torch.manual_seed(5)
        assert pairs == [int(y) for _, y in classify.shard(rank, 2)]  # the same rule: the same pairs, in order
        seen.append(pairs)
    assert len(seen[0]) == len(seen[1]) == 3 and set(seen[0]).isdisjoint(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(n))  # together: every pair once
    torch.manual_seed(5)
    one_process = [round(float(y[0, 0, 0, 0]) * 255 / 40) for _, y in dls.train]
    assert one_process[0::2] == seen[0] and one_process[1::2] == seen[1]  # the one-process epoch, dealt out


@pytest.mark.parametrize("upsample", [True, False])
def test_input_and_target_stay_aligned_under_the_warp(tmp_path, upsample):
    """Inputs that are their targets downscaled exactly: after a strong warp (rotation, zoom, perspective,
    flips) the input still matches its target, and far better than the target shifted by one pixel."""
    images = [np.asarray(smooth_image(48, 48, i), dtype=np.float64) for i in range(4)]
    lr, hr = _pairs(tmp_path, images)
    warp = AffineWarp(max_rotate=30, max_zoom=1.5, max_warp=0.3, p_affine=1.0, pad_mode="border")
    kw = dict(valid_pct=0, size=32, bs=4, upsample=upsample, num_workers=0)
    dls = ImageToImageDataLoaders.from_folders(lr, hr, batch_tfms=[warp], **kw)
    plain = ImageToImageDataLoaders.from_folders(lr, hr, **kw)
    torch.manual_seed(0)
    x, y = next(iter(dls.train))
    torch.manual_seed(0)
    px, py = next(iter(plain.train))  # the same crops, not warped
    assert x.shape == ((4, 3, 32, 32) if upsample else (4, 3, 16, 16)) and y.shape == (4, 3, 32, 32)
    assert (y - py).abs().flatten(1).amax(1).gt(0.1).all()  # every target was moved ...

    def error(target: torch.Tensor) -> float:
        seen = target if upsample else F.avg_pool2d(target, 2)  # the target as the input shows it
        return float((x - seen)[..., 2:-2, 2:-2].abs().mean())  # away from the border padding

    aligned = error(y)  # 0.003 here: what bilinear resampling at two resolutions leaves
    assert aligned < 0.01  # ... and its input with it: a shift of one target pixel costs 8x more
    assert error(torch.roll(y, 1, dims=3)) > 4 * aligned and error(torch.roll(y, 1, dims=2)) > 4 * aligned
