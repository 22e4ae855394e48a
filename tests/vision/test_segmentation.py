"""Segmentation: SegmentationDataLoaders (and every bad input), the metrics against hand counts, DynamicUnet
over several encoders, unet_learner training / predict at original size / export, interpretation, camvid_tiny."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import quickfit as qf
from quickfit.vision import (
    DynamicUnet,
    Resize,
    SegmentationDataLoaders,
    SegmentationInterpretation,
    aug_transforms,
    dice,
    get_image_files,
    mean_iou,
    pixel_accuracy,
    unet_learner,
)
from quickfit.vision.models import efficientnet_lite0, resnet18
from quickfit.vision.models.unet import PixelShuffleICNR
from quickfit.vision.segmentation.masks import MaskError
from tests.conftest import shared_data

CODES = ["red", "green", "blue", "void"]
COLOURS = np.array([[220, 30, 30], [30, 220, 30], [30, 30, 220], [0, 0, 0]], np.uint8)


def make_pair(rng, h=40, w=60):
    """A picture of colour blocks and its mask; a 2-pixel void frame."""
    mask = np.kron(rng.integers(0, 3, (h // 10, w // 10)), np.ones((10, 10), np.int64)).astype(np.uint8)
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 3, 3, 3, 3
    img = COLOURS[mask].astype(np.int64) + rng.integers(-20, 20, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)), Image.fromarray(mask)


@pytest.fixture
def seg_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("val", 8)):
        (tmp_path / split).mkdir()
        (tmp_path / f"{split}annot").mkdir()
        for i in range(n):
            img, mask = make_pair(rng)
            img.save(tmp_path / split / f"{i}.png")
            mask.save(tmp_path / f"{split}annot" / f"{i}.png")
    return tmp_path


def folder_dls(path, **kw):
    kw.setdefault("item_tfms", Resize((32, 48)))
    return SegmentationDataLoaders.from_folders(path, codes=CODES, void_code=3, bs=8, num_workers=0, **kw)


def tiny_encoder() -> nn.Sequential:
    conv = lambda i, o, s: nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.BatchNorm2d(o), nn.ReLU())
    return nn.Sequential(conv(3, 8, 2), conv(8, 16, 2), conv(16, 16, 2))


# ---- data -------------------------------------------------------------------------------------------
def test_from_folders_batches_masks_moved_with_their_images(seg_folder):
    dls = folder_dls(seg_folder, batch_tfms=aug_transforms(max_rotate=20, max_lighting=0))
    assert (len(dls.train_items.paths), len(dls.valid_items.paths), dls.c, dls.codes) == (24, 8, 4, CODES)
    torch.manual_seed(0)
    x, y = next(iter(dls.train))
    assert x.shape == (8, 3, 32, 48) and y.shape == (8, 32, 48) and y.dtype == torch.int64
    # the colour under each pixel still names its class after flip / rotation / zoom / warp
    rgb = dls.normalize.decode(x).clamp(0, 1) * 255
    seen = (rgb[:, :, None] - torch.tensor(COLOURS[:3], dtype=torch.float32)[None, :, :, None, None]).abs().sum(1)
    colour_class = seen.argmin(1)
    inner = (y != 3) & (seen.min(1).values < 60)  # clearly one colour, away from blended block edges
    assert (colour_class == y)[inner].float().mean() > 0.97
    assert isinstance(dls.loss_func, nn.CrossEntropyLoss) and dls.loss_func.ignore_index == 3


def test_from_label_func_with_valid_func_and_a_codes_file(seg_folder):
    (seg_folder / "codes.txt").write_text("\n".join(CODES) + "\n")
    files = get_image_files(seg_folder / "train")
    dls = SegmentationDataLoaders.from_label_func(
        seg_folder,
        files,
        lambda p: seg_folder / "trainannot" / p.name,
        codes="codes.txt",
        valid_func=lambda p: int(p.stem) < 4,
        void_code=3,
        item_tfms=Resize((32, 48)),
        num_workers=0,
    )
    assert len(dls.valid_items.paths) == 4 and dls.codes == CODES
    assert all(int(p.stem) < 4 for p in dls.valid_items.paths)


def test_bad_inputs_are_named(seg_folder):
    (seg_folder / "trainannot" / "3.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 32 images have no mask file: .*train/3.png -> .*3.png"):
        folder_dls(seg_folder)
    Image.new("L", (30, 20)).save(seg_folder / "trainannot" / "3.png")
    with pytest.raises(ValueError, match=r"mask .*3.png is 30x20 but its image .*3.png is 60x40"):
        folder_dls(seg_folder)
    Image.new("RGB", (60, 40), (220, 30, 30)).save(seg_folder / "trainannot" / "3.png")
    with pytest.raises(ValueError, match="is an RGB colour image; pass palette="):
        folder_dls(seg_folder)
    palette = {tuple(int(v) for v in c): i for i, c in enumerate(COLOURS)}
    dls = folder_dls(seg_folder, palette=palette)  # colour masks with a palette are fine
    Image.fromarray(np.full((40, 60), 9, np.uint8)).save(seg_folder / "trainannot" / "3.png")
    with pytest.raises(MaskError, match=r"3.png has values \[9\] outside the 4 codes \(0-3 or the void code 3\)"):
        list(folder_dls(seg_folder).train)  # values are checked as each mask loads
    with pytest.raises(FileNotFoundError, match="folder .*nothere does not exist"):
        SegmentationDataLoaders.from_folders(seg_folder, images="nothere", codes=CODES)
    with pytest.raises(ValueError, match="codes must be unique"):
        SegmentationDataLoaders.from_folders(seg_folder, codes=["a", "a"])
    assert dls.c == 4


# ---- metrics ------------------------------------------------------------------------------------------
def test_metrics_match_hand_counts_and_accumulate_exactly():
    torch.manual_seed(0)
    pred = torch.randn(6, 4, 5, 7)
    targ = torch.randint(0, 4, (6, 5, 7))
    cls = pred.argmax(1)
    keep = targ != 3
    acc = ((cls == targ) & keep).sum() / keep.sum()
    ious = []
    for c in range(3):  # class 3 is void: neither counted nor averaged
        p, t = (cls == c) & keep, (targ == c) & keep
        ious.append((p & t).sum() / (p | t).sum())
    for metric, expect in [(pixel_accuracy(3), acc), (mean_iou(3), torch.stack(ious).mean())]:
        metric.reset()
        for i in range(0, 6, 2):  # three batches: the totals, not a mean of batch scores
            metric.accumulate(pred[i : i + 2], targ[i : i + 2])
        assert metric.value == pytest.approx(float(expect)) and metric(pred, targ) == pytest.approx(float(expect))
    # dice, binary (one logit channel) and multi-class
    logit, t2 = torch.randn(4, 1, 6, 6), torch.randint(0, 2, (4, 6, 6))
    p2 = (logit[:, 0] > 0).long()
    assert dice()(logit, t2) == pytest.approx(
        float(2 * ((p2 == 1) & (t2 == 1)).sum() / ((p2 == 1).sum() + (t2 == 1).sum()))
    )
    d = [2 * ((cls == c) & (targ == c)).sum() / ((cls == c).sum() + (targ == c).sum()) for c in range(4)]
    assert dice()(pred, targ) == pytest.approx(float(torch.stack(d).mean()))
    with pytest.raises(ValueError, match=r"scores \[B, C, H, W\] and targets \[B, H, W\]"):
        mean_iou()(pred, targ[:, :4])


# ---- the model ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(64, 96), (50, 70)])  # also sizes that are not multiples of 32
def test_dynamic_unet_over_resnet_lite0_and_a_plain_module(size):
    bodies = [
        nn.Sequential(*list(resnet18().children())[:-2]),
        efficientnet_lite0().features[:-1],
        tiny_encoder(),
    ]
    for body in bodies:
        m = DynamicUnet(body, 5, size).eval()
        with torch.no_grad():
            assert m(torch.randn(2, 3, *size)).shape == (2, 5, *size)
    assert DynamicUnet(bodies[0], 5, size).skip_idx == [2, 4, 5, 6]  # relu (/2), layer1, layer2, layer3
    assert DynamicUnet(bodies[1], 5, size).skip_idx == [1, 2, 3, 5]  # the stages before each stride
    t = DynamicUnet(tiny_encoder(), 2, size, upsample="transpose").eval()
    assert t(torch.randn(1, 3, *size)).shape == (1, 2, *size)


def test_icnr_starts_pixel_shuffle_as_nearest_upsampling():
    up = PixelShuffleICNR(4, 3).eval()
    out = up(torch.randn(1, 4, 5, 5))
    # every 2x2 block holds one value: no checkerboard at initialization
    assert torch.allclose(out, torch.nn.functional.interpolate(out[:, :, ::2, ::2], scale_factor=2, mode="nearest"))


def test_bad_encoders_are_refused():
    with pytest.raises(ValueError, match="encoder made of child modules"):
        DynamicUnet(nn.Conv2d(3, 8, 3, 2), 2, 32)
    with pytest.raises(ValueError, match="never reduces the resolution"):
        DynamicUnet(nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1)), 2, 32)


# ---- the learner ------------------------------------------------------------------------------------------
def test_unet_learner_trains_predicts_at_original_size_and_interprets(seg_folder, tmp_path):
    torch.manual_seed(0)
    dls = folder_dls(seg_folder, batch_tfms=aug_transforms(max_lighting=0))
    learn = unet_learner(dls, tiny_encoder(), progress=False, path=tmp_path)
    assert [m.name for m in learn.metrics] == ["pixel_accuracy", "mean_iou"]
    assert len(learn.layer_groups) == 3
    learn.fit_one_cycle(6, 1e-2)
    _, acc, iou = learn.validate()
    assert acc > 0.9 and iou > 0.8, (acc, iou)
    mask, probs = learn.predict(dls.valid_items.paths[0])  # images are 60x40, the model sees 48x32
    assert mask.shape == (40, 60) and probs.shape == (4, 40, 60) and torch.allclose(probs.sum(0), torch.ones(40, 60))
    truth = torch.from_numpy(np.asarray(Image.open(dls.valid_items.targets[0])).astype(np.int64))
    assert (mask == truth)[truth != 3].float().mean() > 0.9
    interp = SegmentationInterpretation.from_learner(learn)
    assert interp.pixel_accuracy > 0.9 and set(interp.per_class_iou()) <= {"red", "green", "blue"}
    assert "mean IoU" in interp.iou_table() and "red" in interp.iou_table()
    assert len(interp.worst(2)) == 2 and interp.worst(2)[0][1] <= interp.worst(2)[1][1]
    interp.plot_worst(2)
    learn.show_results(max_n=2)
    dls.show_batch(max_n=2)
    with pytest.raises(ValueError, match="precompute is for classification"):
        learn.precompute = True


def test_unet_learner_pretrained_encoder_frozen_and_export_roundtrip(seg_folder, tmp_path):
    dls = folder_dls(seg_folder)
    learn = unet_learner(dls, "efficientnet_lite0", pretrained=True, progress=False, path=tmp_path)
    enc_w = [p for n, p in learn.model.named_parameters() if n.startswith("body.") and p.ndim == 4]
    assert enc_w and not any(p.requires_grad for p in enc_w)  # the encoder is frozen
    assert all(p.requires_grad for p in learn.model.head.parameters())
    assert learn.loss_func.ignore_index == 3
    learn.unfreeze()
    assert all(p.requires_grad for p in enc_w)
    item = dls.valid_items.paths[1]
    mask, probs = learn.predict(item)
    f = learn.export("seg.qf")
    loaded = qf.load_learner(f)
    mask2, probs2 = loaded.predict(item)
    assert torch.allclose(probs, probs2, atol=1e-5) and loaded.dls.codes == CODES and mask2.shape == (40, 60)


def test_camvid_tiny_batches_when_present():
    path = shared_data() / "camvid_tiny"
    if not path.is_dir():
        pytest.skip("camvid_tiny not in the shared data")
    dls = SegmentationDataLoaders.from_label_func(
        path,
        get_image_files(path / "images"),
        lambda p: path / "labels" / f"{p.stem}_P.png",
        codes="codes.txt",
        void_code=30,
        seed=0,
        item_tfms=Resize((48, 64)),
        batch_tfms=aug_transforms(),
        bs=4,
        num_workers=0,
    )
    assert dls.c == 32 and len(dls.train_items.paths) == 80
    x, y = next(iter(dls.train))
    assert x.shape == (4, 3, 48, 64) and y.shape == (4, 48, 64) and 0 <= int(y.min()) and int(y.max()) < 32


def test_unet_learner_with_the_engine_features(seg_folder, tmp_path):
    """lr_find, fine_tune, bf16, checkpoints / resume and load all run on a U-Net (a pretrained-like encoder)."""
    torch.manual_seed(0)
    dls = folder_dls(seg_folder, item_tfms=Resize((16, 24)))
    learn = unet_learner(dls, tiny_encoder(), progress=False, path=tmp_path)
    learn.freeze()  # a custom encoder is not frozen by default; freezing works on its layer groups
    assert not any(p.requires_grad for p in learn.model.body[0][0].parameters())
    suggestions = learn.lr_find(num_it=6, show_plot=False)
    assert suggestions.valley > 0
    learn.to_bf16()
    learn.fine_tune(1, 1e-2, freeze_epochs=1)
    learn.to_fp32()
    learn.fit_one_cycle(2, 1e-3, checkpoint="seg")
    before = learn.validate()
    learn.save("seg_final")
    learn2 = unet_learner(dls, tiny_encoder(), progress=False, path=tmp_path).load("seg_final")
    assert learn2.validate()[1:] == pytest.approx(before[1:])
