"""ImageDataLoaders on tiny generated image folders and CSVs (plus the shared data where present):
layouts, splits, bad inputs and their messages, skipped files, test sets, export, and a tiny training run."""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

import quickfit as qf
from quickfit.vision.core.augment import Normalize, aug_transforms, imagenet_stats
from quickfit.vision.core.data import ImageDataLoaders, image_dls_from_export, random_split
from quickfit.vision.core.image import verify_images
from quickfit.vision.core.loader import ImageLoadError
from quickfit.vision.core.transforms import RandomResizedCrop, Resize

COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def shared_data() -> Path:
    env = os.environ.get("QUICKFIT_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


def color_image(color: str, seed: int, size=(40, 30)) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(COLORS[color]) + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def make_folder(root: Path, layout: dict[str, dict[str, int]], ext: str = ".png") -> Path:
    """root/<split>/<class>/<i>.png, each image the class colour plus noise."""
    seed = 0
    for split, classes in layout.items():
        for cls, n in classes.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed += 1
                color_image(cls, seed).save(root / split / cls / f"{cls}_{i}{ext}")
    return root


def bad_files(folder: Path) -> list[Path]:
    buf = io.BytesIO()
    color_image("red", 99, (64, 64)).save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "text.jpg").write_text("not an image")
    return [folder / "text.jpg", folder / "truncated.jpg"]


def dominant(x: torch.Tensor, norm: Normalize) -> list[str]:
    names = ["red", "green", "blue"]
    return [names[int(c)] for c in norm.decode(x).mean(dim=(2, 3)).argmax(1)]


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path, {"train": {"red": 6, "blue": 5}, "val": {"red": 3, "blue": 3}})


def test_from_folder_with_val_labels_match_images(folder):
    dls = ImageDataLoaders.from_folder(folder, valid="val", size=16, bs=4, num_workers=0)
    assert dls.vocab == ["blue", "red"] and dls.c == 2
    assert len(dls.train_items.paths) == 11 and len(dls.valid_items.paths) == 6
    assert len(dls.valid) == 2 and len(dls.train) == 3
    seen = []
    for x, y in dls.valid:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 16, 16)
        assert dominant(x, dls.normalize) == [dls.vocab[i] for i in y]
        seen += y.tolist()
    assert seen == dls.valid_items.targets.tolist()  # validation keeps its order
    x, y = next(iter(dls.train))
    assert x.shape == (4, 3, 16, 16) and y.dtype == torch.int64
    assert dominant(x, dls.normalize) == [dls.vocab[i] for i in y]  # augmentation-free here


def test_missing_valid_folder_says_what_to_pass(folder):
    with pytest.raises(FileNotFoundError, match=r"valid='<its name>'.*valid_pct"):
        ImageDataLoaders.from_folder(folder)


def test_valid_pct_split_is_reproducible_with_a_seed(folder):
    a = ImageDataLoaders.from_folder(folder, valid_pct=0.3, seed=1, num_workers=0)
    b = ImageDataLoaders.from_folder(folder, valid_pct=0.3, seed=1, num_workers=0)
    c = ImageDataLoaders.from_folder(folder, valid_pct=0.3, seed=2, num_workers=0)
    assert a.valid_items.paths == b.valid_items.paths != c.valid_items.paths
    assert len(a.valid_items.paths) == 3 and len(a.train_items.paths) == 8  # round(11 * 0.3)
    assert not set(a.valid_items.paths) & set(a.train_items.paths)
    assert list(random_split(10, 0.2, seed=0)) == list(random_split(10, 0.2, seed=0))


def test_empty_class_folder_is_a_clear_error(folder):
    (folder / "train" / "wasps").mkdir()
    (folder / "train" / "wasps" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"class folder .*wasps has no images"):
        ImageDataLoaders.from_folder(folder, valid="val")


def test_class_only_in_valid_is_a_clear_error(folder):
    make_folder(folder, {"val": {"green": 2}})
    with pytest.raises(ValueError, match=r"\['green'\].*validation set but not in the training set"):
        ImageDataLoaders.from_folder(folder, valid="val")


def test_images_outside_class_folders_are_an_error(folder):
    color_image("red", 0).save(folder / "train" / "loose.png")
    with pytest.raises(ValueError, match="loose.png.*folder named after its class"):
        ImageDataLoaders.from_folder(folder, valid="val")


def test_bad_files_are_skipped_with_one_warning_each_and_verify_finds_them(folder):
    bad = bad_files(folder / "train" / "red")
    assert verify_images(folder) == bad
    dls = ImageDataLoaders.from_folder(folder, valid="val", size=16, bs=5, num_workers=0)
    assert len(dls.train_items.paths) == 13
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):  # three epochs: each file still reported once
            n = sum(x.shape[0] for x, _ in dls.train)
            assert n == 13
    messages = [str(w.message) for w in caught if "skipped image" in str(w.message)]
    assert len(messages) == 2 and all("verify_images" in m for m in messages)
    assert {m.split()[2] for m in messages} == {str(p) for p in bad}


def test_test_dl_paths_and_pil_images_and_broken_files(folder):
    dls = ImageDataLoaders.from_folder(folder, valid="val", size=16, num_workers=0)
    paths = dls.valid_items.paths[:3]
    (x,) = next(iter(dls.test_dl(paths)))
    (xv, _) = next(iter(dls.valid))
    assert torch.equal(x, xv[:3])  # the same processing as validation
    (xp,) = next(iter(dls.test_dl([Image.open(p) for p in paths])))
    assert torch.allclose(xp, x)
    bad = bad_files(folder)
    with pytest.raises(ImageLoadError, match="text.jpg"):
        list(dls.test_dl([paths[0], bad[0]]))
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        dls.test_dl([folder / "nothere.png"])
    with pytest.raises(ValueError, match="test folder"):
        dls.test_dl()


def test_test_folder(folder):
    make_folder(folder, {"test": {"red": 2}})
    dls = ImageDataLoaders.from_folder(folder, valid="val", test="test", size=16, num_workers=0)
    assert len(next(iter(dls.test_dl()))[0]) == 2


def write_csv_layout(tmp_path: Path, n: int = 10) -> pd.DataFrame:
    (tmp_path / "train").mkdir()
    rows = []
    for i in range(n):
        color = ["red", "blue"][i % 2]
        color_image(color, i).save(tmp_path / "train" / f"id{i}.jpg")
        rows.append({"id": f"id{i}", "breed": color, "tags": f"{color} round" if i % 3 else color, "score": i / 10})
    df = pd.DataFrame(rows)
    df.to_csv(tmp_path / "labels.csv", index=False)
    return df


def test_from_csv_dog_breeds_layout(tmp_path):
    write_csv_layout(tmp_path)
    dls = ImageDataLoaders.from_csv(tmp_path, "train", "labels.csv", suffix=".jpg", seed=0, size=16, num_workers=0)
    assert dls.vocab == ["blue", "red"] and len(dls.valid_items.paths) == 2 and len(dls.train_items.paths) == 8
    x, y = next(iter(dls.valid))
    assert dominant(x, dls.normalize) == [dls.vocab[i] for i in y]
    # the seeds' call: a full CSV path and explicit validation indices
    dls2 = ImageDataLoaders.from_csv(
        tmp_path, "train", str(tmp_path / "labels.csv"), "id", "breed", ".jpg", valid_idx=[0, 1, 2], num_workers=0
    )
    assert [p.name for p in dls2.valid_items.paths] == ["id0.jpg", "id1.jpg", "id2.jpg"]


def test_from_csv_missing_files_lists_the_first_few(tmp_path):
    df = write_csv_layout(tmp_path)
    for i in (1, 3, 5, 7, 8, 9):
        (tmp_path / "train" / f"id{i}.jpg").unlink()
    with pytest.raises(FileNotFoundError) as err:
        ImageDataLoaders.from_csv(tmp_path, "train", "labels.csv", suffix=".jpg")
    msg = str(err.value)
    assert "6 of 10 files" in msg and "labels.csv column 'id'" in msg and "suffix '.jpg'" in msg
    assert "id1.jpg" in msg and "id8.jpg" in msg and "id9.jpg" not in msg and "(6 in all)" in msg
    with pytest.raises(KeyError, match=r"label_col='bred'.*\['id', 'breed'"):
        ImageDataLoaders.from_df(df, tmp_path, "id", "bred", folder="train", suffix=".jpg")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        ImageDataLoaders.from_csv(tmp_path, "train", "nope.csv")


def test_from_df_multi_label_and_regression(tmp_path):
    df = write_csv_layout(tmp_path, n=12)
    multi = ImageDataLoaders.from_df(
        df, tmp_path, "id", "tags", folder="train", suffix=".jpg", label_delim=" ", seed=0, num_workers=0
    )
    assert multi.vocab == ["blue", "red", "round"] and multi.target_kind == "multi_category"
    targets = torch.cat([multi.train_items.targets, multi.valid_items.targets])
    assert targets.shape == (12, 3) and targets.sum(1).min() == 1 and targets.sum(1).max() == 2
    assert isinstance(multi.loss_func, nn.BCEWithLogitsLoss)
    labels, mask, _ = multi.decode_pred(torch.tensor([0.9, 0.2, 0.6]))
    assert labels == ["blue", "round"] and mask.tolist() == [True, False, True]

    reg = ImageDataLoaders.from_df(df, tmp_path, "id", "score", folder="train", suffix=".jpg", seed=0, num_workers=0)
    assert reg.vocab is None and reg.c == 1 and reg.target_kind == "float"
    _, y = next(iter(reg.train))
    assert y.dtype == torch.float32 and y.shape[1] == 1
    assert isinstance(reg.loss_func, nn.MSELoss) and reg.decode_pred(torch.tensor([0.25]))[0] == 0.25


def test_from_name_re_and_name_func(folder):
    files = sorted((folder / "train").rglob("*.png"))
    dls = ImageDataLoaders.from_name_re(folder, files, r"/(\w+)_\d+\.png$", seed=0, num_workers=0)
    assert dls.vocab == ["blue", "red"]
    dls2 = ImageDataLoaders.from_name_func(folder, files, lambda p: p.name.split("_")[0], seed=0, num_workers=0)
    assert dls2.train_items.targets.tolist() == dls.train_items.targets.tolist()
    with pytest.raises(ValueError, match=r"matches no label in 11 file name\(s\)"):
        ImageDataLoaders.from_name_re(folder, files, r"(cat)\d+")


def test_export_info_rebuilds_the_same_processing(folder):
    dls = ImageDataLoaders.from_folder(
        folder, valid="val", item_tfms=Resize(20, "pad"), batch_tfms=aug_transforms(), num_workers=0
    )
    dls.set_normalize((0.5,) * 3, (0.5,) * 3)
    info = json.loads(json.dumps(dls.export_info()))
    again = image_dls_from_export(info)
    paths = dls.valid_items.paths[:4]
    assert torch.equal(next(iter(again.test_dl(paths)))[0], next(iter(dls.test_dl(paths)))[0])
    assert again.vocab == dls.vocab and again.decode_pred(torch.tensor([0.2, 0.8]))[:2] == ("red", 1)
    assert again.export_info() == info
    tta = again.augmented(again.test_dl(paths))  # a loaded model can still do TTA
    assert next(iter(tta))[0].shape == (4, 3, 20, 20)


def test_set_normalize_augmented_plain_and_new(folder):
    dls = ImageDataLoaders.from_folder(
        folder, valid="val", item_tfms=RandomResizedCrop(16), batch_tfms=aug_transforms(), num_workers=0
    )
    dls.set_normalize((0.5,) * 3, (0.5,) * 3)
    x, _ = next(iter(dls.valid))
    raw = Resize(16)(dls.valid_items.paths[0]).float()
    assert torch.allclose(x[0], (raw / 255 - 0.5) / 0.5, atol=1e-5)
    aug = dls.augmented()
    (a1, y1), (a2, y2) = next(iter(aug)), next(iter(aug))
    assert torch.equal(y1, y2) and y1.tolist() == dls.valid_items.targets[: len(y1)].tolist()
    assert not torch.allclose(a1, a2) and a1.shape == x.shape
    plain = dls.plain_dl()
    p1, p2 = [torch.cat([b[0] for b in plain]) for _ in range(2)]
    assert torch.equal(p1, p2) and len(p1) == len(dls.train_items.paths)
    assert torch.cat([b[1] for b in plain]).tolist() == dls.train_items.targets.tolist()
    big = dls.new(size=24)
    assert next(iter(big.valid))[0].shape[1:] == (3, 24, 24) and isinstance(big.item_tfm, RandomResizedCrop)
    assert big.vocab == dls.vocab and big.normalize.mean == (0.5, 0.5, 0.5)
    assert dls.to("cpu").train.device == torch.device("cpu")


def test_workers_give_the_same_batches(folder):
    one = ImageDataLoaders.from_folder(folder, valid="val", size=16, bs=4, num_workers=0)
    two = ImageDataLoaders.from_folder(
        folder, valid="val", size=16, bs=4, num_workers=2, batch_tfms=Normalize((0.5,) * 3, (0.5,) * 3)
    )
    threads = torch.get_num_threads()
    for (a, ya), (b, yb) in zip(one.valid, two.valid):
        assert torch.allclose(one.normalize.decode(a), two.normalize.decode(b), atol=1e-5) and torch.equal(ya, yb)
        assert torch.get_num_threads() == threads  # the batch work may use fewer threads, the model not
    assert sum(len(y) for _, y in two.train) == 11


def test_item_and_batch_transform_arguments(folder):
    dls = ImageDataLoaders.from_folder(folder, valid="val", item_tfms=[Resize(12)], num_workers=0)
    assert dls.size == (12, 12) and dls.normalize.mean == imagenet_stats[0]
    with pytest.raises(ValueError, match="size=16 disagrees"):
        ImageDataLoaders.from_folder(folder, valid="val", item_tfms=Resize(12), size=16)
    with pytest.raises(TypeError, match="one item transform"):
        ImageDataLoaders.from_folder(folder, valid="val", item_tfms=[Resize(12), Resize(16)])


def test_training_batches_take_one_grid_sample_each(folder, monkeypatch):
    calls = []
    real = torch.nn.functional.grid_sample
    monkeypatch.setattr(torch.nn.functional, "grid_sample", lambda *a, **k: calls.append(1) or real(*a, **k))
    dls = ImageDataLoaders.from_folder(folder, valid="val", size=16, bs=4, batch_tfms=aug_transforms(), num_workers=0)
    assert sum(1 for _ in dls.train) == 3 and len(calls) == 3
    assert sum(1 for _ in dls.valid) == 2 and len(calls) == 3  # validation: no resampling at all


def test_shards_for_distributed_training(folder):
    dls = ImageDataLoaders.from_folder(folder, valid="val", size=16, bs=2, num_workers=0)
    train = [dls.train.shard(r, 3) for r in range(3)]
    assert [len(t) for t in train] == [2, 2, 2]  # 11 images, padded to 4 per rank: 2 batches of 2
    # an epoch: every rank draws the same permutation from the same seed and takes its every 3rd image
    orders = []
    for t in train:
        torch.manual_seed(5)
        orders.append(list(t._torch_loader().sampler))
    assert [len(o) for o in orders] == [4, 4, 4] and set().union(*orders) == set(range(11))
    torch.manual_seed(5)
    one_process = list(dls.train._torch_loader().sampler)  # what one process draws after the same seed
    assert [orders[r][i] for i in range(3) for r in range(3)] == one_process[:9]
    valid = [dls.valid.shard(r, 4) for r in range(4)]
    assert sum((v.items.paths for v in valid), []) == dls.valid_items.paths  # in order, no repeats
    assert valid[0].augment is False and train[0].augment is True and train[0].shuffle
    x, y = next(iter(valid[1]))
    assert x.shape[1:] == (3, 16, 16) and y.tolist() == valid[1].items.targets[: len(y)].tolist()


def test_drop_last_only_avoids_a_batch_of_one(folder):
    assert len(ImageDataLoaders.from_folder(folder, valid="val", bs=5, num_workers=0).train) == 2  # 11 = 5+5+1
    assert len(ImageDataLoaders.from_folder(folder, valid="val", bs=4, num_workers=0).train) == 3  # 4+4+3


def test_show_batch_draws_labelled_images(folder):
    dls = ImageDataLoaders.from_folder(folder, valid="val", size=16, num_workers=0)
    fig = dls.show_batch(max_n=4, split="valid")
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titled) == 4 and set(titled) <= {"red", "blue"} and len(fig.axes[0].images) == 1


def test_tiny_training_run_learns_the_colours(tmp_path):
    root = make_folder(tmp_path, {"train": {"red": 16, "green": 16, "blue": 16}, "valid": {c: 6 for c in COLORS}})
    dls = ImageDataLoaders.from_folder(
        root, item_tfms=RandomResizedCrop(16), batch_tfms=aug_transforms(), bs=16, num_workers=0
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, dls.c))
    learn = qf.Learner(dls, model, metrics=[qf.accuracy], progress=False, path=tmp_path)
    learn.fit_one_cycle(4, 0.05)
    assert learn.validate()[1] == 1.0


@pytest.mark.slow
def test_shared_hymenoptera_and_mnist_tiny():
    hym = shared_data() / "hymenoptera" / "hymenoptera_data"
    mnist = shared_data() / "mnist_tiny"
    if not hym.is_dir() or not mnist.is_dir():
        pytest.skip("shared data not present")
    dls = ImageDataLoaders.from_folder(hym, valid="val", batch_tfms=aug_transforms(), bs=16, num_workers=2)
    assert dls.vocab == ["ants", "bees"]
    assert len(dls.train_items.paths) == 245 and len(dls.valid_items.paths) == 153  # the GIF placeholder included
    gif = [p for p in dls.train_items.paths if p.suffix == ".gif"]
    assert len(gif) == 1 and next(iter(dls.test_dl(gif)))[0].shape == (1, 3, 224, 224)
    x, y = next(iter(dls.train))
    assert x.shape == (16, 3, 224, 224) and abs(x.mean().item()) < 1.0

    csv = ImageDataLoaders.from_csv(mnist, None, "labels.csv", valid_pct=0.2, seed=0, size=28, num_workers=0)
    assert csv.vocab == ["3", "7"] and len(csv.train_items.paths) + len(csv.valid_items.paths) == 1408
    folder = ImageDataLoaders.from_folder(mnist, test="test", size=28, num_workers=0)
    assert len(folder.test_items) == 20 and next(iter(folder.valid))[0].shape[1:] == (3, 28, 28)
    assert Normalize.from_stats(imagenet_stats).mean == folder.normalize.mean
