"""The detector end to end: RetinaNet's shapes and anchors (pyramid and SSD heads, a registered body), a tiny
detector that must learn coloured shapes on a plain background to mAP@0.5 >= 0.9, and what a user does with
it: predict in the image's pixels, show_results, get_preds, export / load_learner, ONNX; and the failure paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

import quickfit as qf
from quickfit.loading import ExportError
from quickfit.vision import Boxes, ImageDataLoaders, ImageItems, Resize, RetinaNet, detection_learner
from quickfit.vision.detection.learner import DetectorConfig, detection_body
from quickfit.vision.detection.metrics import detection_ap
from quickfit.vision.detection.nms import decoded_outputs
from quickfit.vision.models.registry import get_arch

VOCAB = ["circle", "square", "triangle"]
COLOURS = {"circle": (60, 220, 60), "square": (230, 60, 60), "triangle": (70, 90, 240)}


def shapes(folder: Path, n: int, size: int = 64, seed: int = 0) -> tuple[list[Path], list]:
    """Images of 1-3 non-overlapping filled shapes of 12-26 px on a dark background; y = (boxes, names)."""
    rng = np.random.default_rng(seed)
    paths, ys = [], []
    for i in range(n):
        img = Image.new("RGB", (size, size), (30, 30, 30))
        draw = ImageDraw.Draw(img)
        boxes, labels = [], []
        for _ in range(int(rng.integers(1, 4))):
            s = rng.uniform(12, 26)
            x0, y0 = rng.uniform(0, size - s, 2)
            b = (x0, y0, x0 + s, y0 + s)
            if any(not (b[2] < c[0] or c[2] < b[0] or b[3] < c[1] or c[3] < b[1]) for c in boxes):
                continue
            name = VOCAB[int(rng.integers(0, 3))]
            if name == "square":
                draw.rectangle(b, fill=COLOURS[name])
            elif name == "circle":
                draw.ellipse(b, fill=COLOURS[name])
            else:
                draw.polygon([(b[0], b[3]), (b[2], b[3]), ((b[0] + b[2]) / 2, b[1])], fill=COLOURS[name])
            boxes.append(b)
            labels.append(name)
        paths.append(folder / f"{i}.png")
        img.save(paths[-1])
        ys.append((torch.tensor(boxes), labels))
    return paths, ys


def tiny_body() -> nn.Sequential:
    """Four stages of two convolutions, strides 2, 4, 8, 16."""
    conv = lambda i, o, s: [nn.Conv2d(i, o, 3, s, 1), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(
        *[nn.Sequential(*conv(i, o, 2), *conv(o, o, 1)) for i, o in [(3, 16), (16, 32), (32, 64), (64, 64)]]
    )


def shapes_dls(folder: Path, n: int = 160, n_valid: int = 32, bs: int = 8) -> ImageDataLoaders:
    paths, ys = shapes(folder, n)
    train, valid = ImageItems(paths[:-n_valid], ys[:-n_valid]), ImageItems(paths[-n_valid:], ys[-n_valid:])
    return ImageDataLoaders(train, valid, VOCAB, Resize(64), bs=bs, num_workers=0, target=Boxes(vocab=VOCAB))


def test_retinanet_shapes_and_anchors():
    x = torch.randn(2, 3, 64, 96)
    model = RetinaNet(tiny_body(), 3, (64, 96), levels=(2, 3, 4, 5), channels=16, n_convs=1)
    assert model.grids() == [(16, 24), (8, 12), (4, 6), (2, 3)]  # P5 from the body's last map by a stride-2 conv
    out = model(x)
    assert out.shape == (2, (16 * 24 + 8 * 12 + 4 * 6 + 2 * 3) * 9, 4 + 3) and model.anchors().shape == (
        out.shape[1],
        4,
    )
    # untrained: every class at the prior probability 0.01, so the focal loss starts small
    assert torch.sigmoid(out[..., 4:]).mean().item() == pytest.approx(0.01, rel=0.3)
    ssd = RetinaNet(tiny_body(), 3, (64, 96), head="ssd", channels=16)
    assert ssd.grids() == [(4, 4), (2, 2), (1, 1)] and ssd(x).shape == (2, 21 * 9, 7)
    centre = (ssd.anchors()[:, :2] + ssd.anchors()[:, 2:]) / 2
    assert torch.allclose(centre[-9:], torch.zeros(9, 2), atol=1e-6)  # the 1x1 grid's anchors at the centre
    # a registered body: EfficientNet-Lite0's /8, /16, /32 maps feed P3-P5, P6 a stride-2 conv
    lite = RetinaNet(detection_body(get_arch("efficientnet_lite0")), 2, (96, 128))
    assert lite.taps == {3: 3, 4: 5, 5: 7} and lite.grids() == [(12, 16), (6, 8), (3, 4), (2, 2)]
    with pytest.raises(ValueError, match=r"levels \[0, 1\] need body strides \[1, 2\]; the body has \[2, 4, 8, 16\]"):
        RetinaNet(tiny_body(), 3, 64, levels=(0, 1))
    with pytest.raises(ValueError, match="head must be 'fpn' or 'ssd'"):
        RetinaNet(tiny_body(), 3, 64, head="yolo")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    qf.set_seed(0)
    dls = shapes_dls(folder)
    learn = detection_learner(dls, tiny_body(), levels=(2, 3), channels=32, n_convs=1, progress=False, path=folder)
    learn.fit_one_cycle(8, 5e-3)
    return learn, folder


@pytest.mark.slow
def test_detector_learns_shapes(trained):
    learn, _ = trained
    loss, ap50, ap = learn.validate()
    assert learn.recorder.metric_names == ["mAP50", "mAP"]
    assert ap50 >= 0.9, f"mAP@0.5 {ap50:.3f} (COCO mAP {ap:.3f})"
    preds, targs = learn.get_preds()
    assert preds.shape == (32, 100, 6) and targs.shape[0] == 32 and targs.shape[2] == 5
    per_class = detection_ap(preds, targs, iou_thresholds=(0.5,))[0]
    assert float(per_class.mean()) == pytest.approx(ap50) and (per_class > 0.8).all()


@pytest.mark.slow
def test_predict_show_export_onnx(trained):
    learn, folder = trained
    truth = learn.dls.valid_items.targets[-1]
    item = Image.open(learn.dls.valid_items.paths[-1]).resize((128, 96))  # the boxes come back in its pixels
    got_boxes, got_labels, scores = learn.predict(item)
    confident = scores >= 0.5
    assert got_boxes.shape == (len(scores), 4) and len(got_labels) == len(scores)
    assert sorted(np.array(got_labels)[confident.numpy()].tolist()) == sorted(truth[1])
    scale = torch.tensor([2.0, 1.5, 2.0, 1.5])
    iou = qf.vision.detection.box_ops.box_iou(got_boxes[confident], truth[0].float() * scale)
    assert (iou.max(1).values > 0.5).all()
    fig = learn.show_results(max_n=4, path=folder / "results.png")
    assert (folder / "results.png").stat().st_size > 0 and len(fig.axes) == 8
    with pytest.raises(ExportError, match="built over a body of its own"):  # no code in files
        qf.load_learner(learn.export("shapes.qf"))
    onnxruntime = pytest.importorskip("onnxruntime")
    onnx_file = learn.export_onnx("shapes.onnx")
    x = learn.dls.one_batch("valid")[0][:2].cpu()
    sess = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    learn.model.eval()
    with torch.no_grad():
        want = decoded_outputs(learn.model(x.to(learn.device)).cpu(), learn.loss_func.anchors.cpu())
    assert got.shape == want.shape and np.allclose(got, want.numpy(), atol=1e-4)


def test_registered_body_export_round_trip(tmp_path):
    dls = shapes_dls(tmp_path, n=12, n_valid=4, bs=4)
    learn = detection_learner(dls, "efficientnet_lite0", pretrained=False, levels=(3, 4), progress=False, path=tmp_path)
    learn.fit(1, 1e-3)
    assert learn.export_info["task"]["type"] == "detection" and learn.export_info["model"]["type"] == "retinanet"
    loaded = qf.load_learner(learn.export("lite.qf"))
    item = dls.valid_items.paths[0]
    a, b = learn.predict(item), loaded.predict(item)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[2], b[2])
    assert a[1] == b[1] and loaded.loss_func.settings() == learn.loss_func.settings()
    ssd = detection_learner(dls, tiny_body(), head="ssd", progress=False, path=tmp_path)
    ssd.fit(1, 1e-3)
    assert np.isfinite(ssd.recorder.losses).all()


def test_failure_paths(tmp_path):
    paths, ys = shapes(tmp_path, 4)
    items = ImageItems(paths, torch.tensor([0, 1, 0, 1]))
    labels = ImageDataLoaders(items, items, ["a", "b"], Resize(64), bs=2, num_workers=0)
    with pytest.raises(ValueError, match="target must be boxes with a vocab of classes, got 'category'"):
        detection_learner(labels, tiny_body())
    with pytest.raises(ValueError, match="built over a body of its own"):
        DetectorConfig(None, 3, [64, 64]).build()
    with pytest.raises(ValueError, match="img_size"):
        DetectorConfig.from_dict(
            {"type": "retinanet", "arch": "efficientnet_lite0", "n_classes": 3, "img_size": [99999]}
        )
    dls = shapes_dls(tmp_path, n=8, n_valid=4, bs=4)
    learn = detection_learner(dls, tiny_body(), levels=(2, 3), progress=False, path=tmp_path)
    with pytest.raises(ValueError, match="not of the size the detector was built for"):
        learn.loss_func(learn.model(torch.randn(1, 3, 32, 32)), torch.zeros(1, 1, 5))


@pytest.mark.slow
def test_quickfit_train_and_predict_on_a_voc_folder(tmp_path, capsys, monkeypatch):
    from quickfit.cli import main

    voc = tmp_path / "VOC"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    paths, ys = shapes(tmp_path, 10)
    for i, (p, (boxes, labels)) in enumerate(zip(paths, ys)):
        Image.open(p).save(voc / "JPEGImages" / f"{i}.jpg")
        objects = "".join(
            f"<object><name>{n}</name><bndbox><xmin>{b[0]:.0f}</xmin><ymin>{b[1]:.0f}</ymin><xmax>{b[2]:.0f}</xmax>"
            f"<ymax>{b[3]:.0f}</ymax></bndbox></object>"
            for b, n in zip(boxes.tolist(), labels)
        )
        (voc / "Annotations" / f"{i}.xml").write_text(f"<annotation><filename>{i}.jpg</filename>{objects}</annotation>")
    (voc / "ImageSets/Main/train.txt").write_text("\n".join(map(str, range(7))))
    (voc / "ImageSets/Main/val.txt").write_text("\n".join(map(str, range(7, 10))))
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(tmp_path), "--epochs", "2", "--size", "64", "--out", "shapes.qf", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "trained on 'train', validated on 'val'" in out and (tmp_path / "shapes.qf").is_file()
    assert {p.name for p in tmp_path.iterdir()} == {"VOC", "shapes.qf", *(p.name for p in paths)}  # nothing else
    assert main(["predict", "shapes.qf", str(voc / "JPEGImages" / "9.jpg")]) == 0
    assert "9.jpg: " in capsys.readouterr().out
