"""Keypoints: PointDataLoaders (and its bad inputs), vision_learner's points head, predict in pixels, export,
and the synthetic disc a tiny learner must locate to within 3% of the image size with flips and rotations on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

import quickfit as qf
from quickfit.layers import ScaledSigmoid
from quickfit.vision import ArchSpec, PointDataLoaders, Resize, VisionLearner, aug_transforms, vision_learner
from quickfit.vision.models import register_arch
from quickfit.vision.models.registry import IMAGENET_STATS


class Coords(nn.Module):
    """Two channels of x and y coordinates: the pooled head can then read positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        return torch.cat([x, xs.expand(b, 1, h, w), ys.expand(b, 1, h, w)], 1)


def _tiny(pretrained=False) -> nn.Sequential:
    conv = lambda i, o, s=1: nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.BatchNorm2d(o), nn.ReLU())
    return nn.Sequential(Coords(), conv(5, 16), conv(16, 32, 2), conv(32, 32, 2))


TINY = register_arch(ArchSpec("tiny_coords_net", _tiny, lambda m: m, 2, IMAGENET_STATS, 32, channels_last=False))


def discs(folder, n: int, size: int, seed: int = 0) -> pd.DataFrame:
    """Noise with a bright disc of radius 5 at a random place; the point is its center."""
    rng = np.random.default_rng(seed)
    rows = []
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for i in range(n):
        img = rng.integers(0, 90, (size, size, 3)).astype(np.uint8)
        cx, cy = rng.uniform(7, size - 7, 2)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 25] = 255
        Image.fromarray(img).save(folder / f"{i}.png")
        rows.append((f"{i}.png", cx, cy))
    return pd.DataFrame(rows, columns=["file", "x", "y"])


def test_points_loaders_head_and_bad_inputs(tmp_path):
    df = discs(tmp_path, 10, 24)
    dls = PointDataLoaders.from_df(df, tmp_path, fn_col="file", item_tfms=Resize(16), bs=4, num_workers=0, seed=0)
    assert (dls.n_points, dls.c, dls.y_range) == (1, 2, (-1.0, 1.0))
    x, y = next(iter(dls.train))
    assert x.shape == (4, 3, 16, 16) and y.shape == (4, 1, 2) and y.abs().max() <= 1
    learn = vision_learner(dls, "tiny_coords_net", pretrained=False, progress=False, path=tmp_path)
    assert isinstance(learn, VisionLearner) and isinstance(learn.model.head[-1], ScaledSigmoid)
    assert learn.model.head[-2].out_features == 2 and learn.export_info["task"]["type"] == "points"
    with pytest.raises(KeyError, match="column 'nope' not in the DataFrame"):
        PointDataLoaders.from_df(df, tmp_path, fn_col="file", point_cols=["x", "nope"])
    with pytest.raises(ValueError, match="pairs of x, y columns"):
        PointDataLoaders.from_df(df, tmp_path, fn_col="file", point_cols=["x"])
    bad = df.copy()
    bad.loc[3, "y"] = float("nan")
    with pytest.raises(ValueError, match=r"points of image\(s\) .*3.png.* are missing"):
        PointDataLoaders.from_df(bad, tmp_path, fn_col="file")
    with pytest.raises(FileNotFoundError, match="1 of 10 images do not exist"):
        PointDataLoaders.from_df(df.replace("4.png", "gone.png"), tmp_path, fn_col="file")
    with pytest.raises(ValueError, match="flip_pairs .* outside 0-0"):
        PointDataLoaders.from_df(df, tmp_path, fn_col="file", flip_pairs=[(0, 1)])


def test_predict_maps_back_to_original_pixels_and_export_roundtrip(tmp_path):
    df = discs(tmp_path, 6, 30)
    dls = PointDataLoaders.from_df(df, tmp_path, fn_col="file", item_tfms=Resize((10, 20)), bs=3, num_workers=0)
    learn = vision_learner(dls, "tiny_coords_net", pretrained=False, progress=False, path=tmp_path)
    item = dls.valid_items.paths[0]
    pts, unit = learn.predict(item)
    # 30x30 -> Resize((10, 20)) crops the centered 30x15 box at y0 = 7.5 and scales by 2/3
    expect = torch.stack([(unit[:, 0] + 1) * 20 / 2 * 1.5, (unit[:, 1] + 1) * 10 / 2 * 1.5 + 7.5], dim=-1)
    assert torch.allclose(pts, expect, atol=1e-4)
    loaded = qf.load_learner(learn.export("pts.qf"))
    assert isinstance(loaded, VisionLearner) and torch.allclose(loaded.predict(item)[0], pts, atol=1e-4)
    learn.show_results(max_n=2)
    dls.show_batch(max_n=2)
    bigger = dls.new(size=(20, 40))  # progressive resizing keeps the points and their processing
    assert (
        bigger.size == (20, 40)
        and bigger.n_points == 1
        and torch.equal(bigger.train_items.targets, dls.train_items.targets)
    )
    learn.set_data(bigger)


@pytest.mark.slow
def test_a_tiny_learner_finds_the_disc_to_3_percent_with_flips_and_rotations(tmp_path):
    size = 48
    df = discs(tmp_path, 256, size)
    torch.manual_seed(0)
    tfms = aug_transforms(max_rotate=20, max_lighting=0, max_warp=0)  # flips and rotations move the points
    dls = PointDataLoaders.from_df(
        df, tmp_path, fn_col="file", item_tfms=Resize(size), batch_tfms=tfms, bs=32, num_workers=0, seed=0
    )
    learn = vision_learner(
        dls, "tiny_coords_net", pretrained=False, progress=False, path=tmp_path, lin_ftrs=(64,), ps=0.0
    )
    learn.fit_one_cycle(20, 3e-2)
    truth = {r.file: (r.x, r.y) for r in df.itertuples()}
    errors = [float((learn.predict(p)[0][0] - torch.tensor(truth[p.name])).norm()) for p in dls.valid_items.paths]
    assert np.mean(errors) < 0.03 * size, errors
