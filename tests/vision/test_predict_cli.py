"""`quickfit predict` on the export of every vision task, as a user runs it: a real subprocess in a folder
of their own, relative paths; each prints what its target kind reads from the prediction (issue 29 item 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from quickfit.vision import (
    ImageDataLoaders,
    ImageToImageDataLoaders,
    PointDataLoaders,
    Resize,
    SegmentationDataLoaders,
    image2image_learner,
    unet_learner,
    vision_learner,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    for d in ("a", "b", "img", "msk", "lo", "hi"):
        (root / d).mkdir()
    for i in range(8):
        arr = (rng.random((32, 32, 3)) * 255).astype("uint8")
        Image.fromarray(arr).save(root / ("a" if i % 2 else "b") / f"{i}.png")
        Image.fromarray(arr).save(root / "img" / f"{i}.png")
        Image.fromarray((rng.random((32, 32)) * 3).astype("uint8")).save(root / "msk" / f"{i}.png")
        Image.fromarray(arr).save(root / "hi" / f"{i}.png")
        Image.fromarray(arr).resize((16, 16)).save(root / "lo" / f"{i}.png")
    files = sorted((root / "a").glob("*.png")) + sorted((root / "b").glob("*.png"))
    cls = ImageDataLoaders.from_lists(root, files, [f.parent.name for f in files], [0, 4], size=32, bs=4)
    vision_learner(cls, "efficientnet_lite0", pretrained=False).export(root / "cls.qf")
    seg = SegmentationDataLoaders.from_folders(root, "img", "msk", None, None, codes=["sky", "road", "car"],
                                               valid_pct=0.25, seed=0, item_tfms=Resize(32), bs=4)  # fmt: skip
    unet_learner(seg, "efficientnet_lite0", pretrained=False).export(root / "seg.qf")
    imgs = [root / "img" / f"{i}.png" for i in range(8)]
    pts = PointDataLoaders.from_lists(root, imgs, torch.rand(8, 2, 2) * 32, valid_idx=[0, 1], item_tfms=Resize(32))
    vision_learner(pts, "efficientnet_lite0", pretrained=False).export(root / "pts.qf")
    i2i = ImageToImageDataLoaders.from_folders(root / "lo", root / "hi", valid_pct=0.25, seed=0, size=32, bs=4)
    image2image_learner(i2i, "efficientnet_lite0", pretrained=False).export(root / "i2i.qf")
    return root


def _predict(model: Path, cwd: Path, *inputs: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("quickfit")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(exe), "predict", str(model), *inputs], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip


@pytest.fixture
def user_folder(tmp_path):
    Image.fromarray((np.random.default_rng(1).random((40, 60, 3)) * 255).astype("uint8")).save(tmp_path / "photo.png")
    return tmp_path


def test_a_classifier_prints_its_label_and_probabilities(exports, user_folder):
    out = _predict(exports / "cls.qf", user_folder, "photo.png")
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("photo.png: ") and "(probability " in line and ("[a 0." in line or "[b 0." in line)


def test_a_unet_writes_the_mask_at_the_photos_size_and_names_its_codes(exports, user_folder):
    out = _predict(exports / "seg.qf", user_folder, "photo.png")
    assert out.returncode == 0, out.stderr
    assert "mask 60x40 written to" in out.stdout
    mask = np.asarray(Image.open(user_folder / "photo_mask.png"))
    assert mask.shape == (40, 60) and mask.max() < 3
    assert any(code in out.stdout for code in ("sky", "road", "car"))


def test_keypoints_are_printed_in_the_photos_pixels(exports, user_folder):
    out = _predict(exports / "pts.qf", user_folder, "photo.png")
    assert out.returncode == 0, out.stderr
    values = out.stdout.split("in pixels:")[1].replace("(", " ").replace(")", " ").replace(",", " ").split()
    xy = np.array([float(v) for v in values]).reshape(-1, 2)
    # the model predicts in [-1, 1] (a scaled sigmoid): pixels of a 60x40 photo, not the [-1, 1] raw values
    assert xy.shape == (2, 2) and (xy[:, 0] <= 60).all() and (xy[:, 1] <= 40).all() and np.abs(xy).max() > 1.5


def test_image_to_image_writes_an_image_of_twice_the_size(exports, user_folder):
    out = _predict(exports / "i2i.qf", user_folder, "photo.png")
    assert out.returncode == 0, out.stderr
    assert Image.open(user_folder / "photo_pred.png").size == (120, 80)
