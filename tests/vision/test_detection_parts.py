"""The parts of the detector, each against a hand computation or an oracle: anchors, IoU, box offsets, matching,
the focal loss, NMS (a sequential reference), decoding, and mAP (pycocotools' COCOeval, when installed)."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from quickfit.vision.detection.anchors import anchor_boxes, cell_anchors
from quickfit.vision.detection.box_ops import box_iou, decode_boxes, encode_boxes
from quickfit.vision.detection.loss import BACKGROUND, IGNORE, DetectionLoss, focal_loss, match_anchors
from quickfit.vision.detection.metrics import COCO_IOUS, DetectionMAP, coco_map, detection_ap, map50
from quickfit.vision.detection.nms import decode_detections, decoded_outputs, nms

NAN = float("nan")


# ---- anchors ----------------------------------------------------------------------------------------------
def test_anchors_by_hand():
    # one level: a 2 x 3 grid of 10-pixel cells over a 20 x 30 image, one anchor of 10 px per cell
    a = anchor_boxes([(2, 3)], [(10, 10)], [(10, 10)], (20, 30), scales=(1.0,), ratios=(1.0,))
    assert a.shape == (6, 4)
    px = (a + 1) * torch.tensor([15, 10, 15, 10])  # back to pixels
    want = [[0, 0, 10, 10], [10, 0, 20, 10], [20, 0, 30, 10], [0, 10, 10, 20], [10, 10, 20, 20], [20, 10, 30, 20]]
    torch.testing.assert_close(px, torch.tensor(want, dtype=torch.float32), atol=1e-5, rtol=0)
    # the lesson's 9 per cell: 3 scales x 3 ratios, the ratios keeping the area, width / height = ratio
    wh = cell_anchors((32, 32))
    assert wh.shape == (9, 2)
    torch.testing.assert_close(
        wh[:, 0] * wh[:, 1], (32 * torch.tensor([1, 2 ** (1 / 3), 2 ** (2 / 3)])).repeat_interleave(3) ** 2
    )
    torch.testing.assert_close(wh[:, 0] / wh[:, 1], torch.tensor([0.5, 1.0, 2.0]).repeat(3))
    two = anchor_boxes([(4, 4), (2, 2)], [(8, 8), (16, 16)], [(32, 32), (64, 64)], (32, 32))
    assert two.shape == ((16 + 4) * 9, 4)
    centre = (two[:, :2] + two[:, 2:]) / 2
    torch.testing.assert_close(centre[:9], torch.full((9, 2), 4 / 16 - 1))  # first cell's centre, (4, 4) px
    with pytest.raises(ValueError, match="2 grids, 1 strides"):
        anchor_boxes([(1, 1), (1, 1)], [(8, 8)], [(8, 8)], (8, 8))


# ---- IoU and offsets ---------------------------------------------------------------------------------------
def test_iou_by_hand_and_batched():
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 1, 1]])
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    want = torch.tensor([[1 / 7, 1.0, 0.0], [0.0, 0.25, 0.0]])
    torch.testing.assert_close(box_iou(a, b), want)
    batched = box_iou(a[None].expand(3, -1, -1), b[None].expand(3, -1, -1))
    assert batched.shape == (3, 2, 3) and torch.allclose(batched, want.expand(3, -1, -1))
    # a ratio of areas: the same in pixels and in [-1, 1] of a non-square image
    scale = torch.tensor([2 / 640, 2 / 480, 2 / 640, 2 / 480])
    torch.testing.assert_close(box_iou(a * 100 * scale - 1, b * 100 * scale - 1), want, atol=1e-6, rtol=0)


def test_encode_decode_round_trip():
    g = torch.Generator().manual_seed(0)
    xy, wh = torch.rand(50, 2, generator=g), torch.rand(50, 2, generator=g) * 0.5 + 0.01
    boxes = torch.cat([xy, xy + wh], 1)
    xy, wh = torch.rand(50, 2, generator=g), torch.rand(50, 2, generator=g) * 0.5 + 0.01
    anchors = torch.cat([xy, xy + wh], 1)
    for weights in [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]:
        t = encode_boxes(boxes, anchors, weights)
        torch.testing.assert_close(decode_boxes(t, anchors, weights), boxes, atol=1e-5, rtol=0)
    # by hand: a box twice the anchor's size, its centre one anchor width right and half a height down
    t = encode_boxes(torch.tensor([[1.0, 0.0, 5.0, 4.0]]), torch.tensor([[0.0, 0.0, 2.0, 2.0]]))
    torch.testing.assert_close(t, torch.tensor([[1.0, 0.5, math.log(2), math.log(2)]]))


# ---- matching ------------------------------------------------------------------------------------------------
def test_matching_by_hand():
    anchors = torch.tensor(
        [
            [0.0, 0, 10, 10],  # IoU 1 with box 0: positive
            [0.0, 0, 10, 8],  # IoU 0.8 with box 0: positive
            [5.0, 0, 15, 10],  # IoU 1/3 with box 0: background
            [0.0, 0, 10, 5.5],  # IoU 0.55 with box 0: positive
            [0.0, 0, 10, 4.5],  # IoU 0.45 with box 0: ignored
            [30.0, 30, 40, 40],  # IoU 0.04 with box 1 (its best): forced positive
            [60.0, 60, 70, 70],  # nothing: background
        ]
    )
    boxes = torch.tensor([[[0.0, 0, 10, 10], [38.0, 38, 40, 40], [NAN] * 4]])
    m = match_anchors(anchors, boxes)
    assert m.tolist() == [[0, 0, BACKGROUND, 0, IGNORE, 1, BACKGROUND]]
    # two images, one without boxes; an anchor that is the best of two boxes takes the one it overlaps most
    two = torch.stack([boxes[0], torch.full((3, 4), NAN)])
    assert match_anchors(anchors, two)[1].tolist() == [BACKGROUND] * 7
    rivals = torch.tensor([[[1.0, 1, 10, 10], [0.0, 0, 10, 9]]])  # IoU 0.81 and 0.9 with the first anchor
    assert match_anchors(torch.tensor([[0.0, 0, 10, 10], [70.0, 70, 80, 80]]), rivals).tolist() == [[1, BACKGROUND]]
    assert match_anchors(anchors, torch.zeros(2, 0, 4)).tolist() == [[BACKGROUND] * 7] * 2


# ---- focal loss ----------------------------------------------------------------------------------------------
def test_focal_loss_against_its_formula():
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(40, 3, generator=g) * 3).requires_grad_()
    targets = (torch.rand(40, 3, generator=g) > 0.7).float()
    got = focal_loss(logits, targets, alpha=0.25, gamma=2.0)
    p = torch.sigmoid(logits)
    want = torch.where(targets == 1, -0.25 * (1 - p) ** 2 * torch.log(p), -0.75 * p**2 * torch.log(1 - p))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)  # log(1 - p) itself loses digits
    (ga,) = torch.autograd.grad(got.sum(), logits)
    (gb,) = torch.autograd.grad(want.sum(), logits)
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-4)
    # gamma 0 without alpha is the binary cross-entropy; extreme logits stay finite
    torch.testing.assert_close(
        focal_loss(logits, targets, -1, 0.0), F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    )
    assert torch.isfinite(focal_loss(torch.tensor([-200.0, 200.0]), torch.tensor([1.0, 0.0]))).all()


def test_detection_loss_by_hand():
    anchors = torch.tensor([[-1.0, -1, 0, 0], [0, 0, 1, 1], [-1, 0, 0, 1], [0.0, -1, 1, 0]])
    targ = torch.tensor([[[-1.0, -1, 0, 0, 1], [0.1, 0.1, 1, 1, 0]]])
    offsets = encode_boxes(targ[0, :, :4], anchors[:2])
    out = torch.zeros(1, 4, 4 + 2)
    out[0, :2, :4] = offsets  # the positive anchors' offsets exactly right
    out[0, :, 4:] = torch.tensor([[-5.0, 5.0], [5.0, -5.0], [-5.0, -5.0], [-5.0, -5.0]])  # and their classes
    loss = DetectionLoss(anchors)(out, targ)
    cls = focal_loss(out[0, :, 4:], torch.tensor([[0.0, 1], [1, 0], [0, 0], [0, 0]])).sum()
    torch.testing.assert_close(loss, cls / 2)  # no box loss; divided by the 2 positives
    out[0, 0, 0] += 0.5  # one offset 0.5 off: smooth L1 (beta 1/9) adds 0.5 - 1/18
    torch.testing.assert_close(DetectionLoss(anchors)(out, targ), (cls + 0.5 - 1 / 18) / 2)
    with pytest.raises(ValueError, match="predicts for 4 anchors, the loss has 3"):
        DetectionLoss(anchors[:3])(out, targ)
    with pytest.raises(ValueError, match="neg_iou <= pos_iou"):
        DetectionLoss(anchors, pos_iou=0.3, neg_iou=0.4)


# ---- NMS and decoding ----------------------------------------------------------------------------------------
def _greedy_reference(boxes, scores, labels, thresh):
    """The textbook loop: the best box left is kept, and removes the boxes of its class it overlaps too much."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    keep, removed = set(), set()
    for i in order:
        if i in removed:
            continue
        keep.add(i)
        for j in order:
            if j not in keep and labels[j] == labels[i] and float(box_iou(boxes[i : i + 1], boxes[j : j + 1])) > thresh:
                removed.add(j)
    return [i in keep for i in range(len(scores))]


def test_nms_against_the_sequential_loop():
    g = torch.Generator().manual_seed(2)
    for trial in range(6):
        b, k = 3, 60
        xy = torch.rand(b, k, 2, generator=g) * 0.6
        boxes = torch.cat([xy, xy + 0.1 + torch.rand(b, k, 2, generator=g) * 0.3], -1)
        scores = torch.rand(b, k, generator=g)
        labels = torch.randint(0, 1 + trial % 3, (b, k), generator=g)
        thresh = [0.3, 0.5, 0.7][trial % 3]
        keep = nms(boxes, scores, thresh, labels)
        for i in range(b):
            assert keep[i].tolist() == _greedy_reference(boxes[i], scores[i], labels[i].tolist(), thresh)
    # unbatched, and invalid boxes neither kept nor suppressing
    boxes = torch.tensor([[0.0, 0, 1, 1], [0.0, 0, 1, 0.9], [0.0, 0, 1, 0.8]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [True, False, False]
    assert nms(boxes, scores, 0.5, valid=torch.tensor([False, True, True])).tolist() == [False, True, False]


def test_decode_detections():
    anchors = torch.tensor([[-1.0, -1, 0, 0], [-0.95, -1, 0.05, 0], [0, 0, 1, 1]])
    out = torch.zeros(2, 3, 4 + 2)
    out[..., 4:] = -10.0
    out[0, 0, 4], out[0, 1, 4], out[0, 2, 5] = 3.0, 2.0, 1.0  # two overlapping boxes of class 0, one of class 1
    out[0, 1, 5] = 2.5  # the second anchor is also a class-1 candidate: NMS is per class
    dets = decode_detections(out, anchors, score_thresh=0.05, nms_iou=0.5, max_det=5)
    assert dets.shape == (2, 5, 6) and dets[1].isnan().all()
    got = dets[0][~dets[0, :, 0].isnan()]
    torch.testing.assert_close(got[:, 4], torch.tensor([0.0, 1.0, 1.0]))
    torch.testing.assert_close(got[:, 5], torch.sigmoid(torch.tensor([3.0, 2.5, 1.0])))
    torch.testing.assert_close(got[:, :4], anchors[[0, 1, 2]])
    assert decode_detections(out, anchors, score_thresh=0.99, max_det=4).isnan().all()
    whole = decoded_outputs(out, anchors)
    torch.testing.assert_close(whole[..., :4], anchors.expand(2, -1, -1))
    torch.testing.assert_close(whole[..., 4:], torch.sigmoid(out[..., 4:]))


# ---- mAP -------------------------------------------------------------------------------------------------------
def test_ap_by_hand():
    targs = [torch.tensor([[0.0, 0, 10, 10, 0], [20, 20, 30, 30, 0]]), torch.tensor([[0.0, 0, 10, 10, 1]])]
    perfect = [
        torch.tensor([[0.0, 0, 10, 10, 0, 0.9], [20, 20, 30, 30, 0, 0.8]]),
        torch.tensor([[0.0, 0, 10, 10, 1, 0.5]]),
    ]
    torch.testing.assert_close(detection_ap(perfect, targs), torch.ones(10, 2, dtype=torch.float64))
    # class 0: a box, a false positive, the other box: precision 1 up to recall 1/2 (51 of the 101 recalls),
    # then 2/3; a false positive first would not matter (precision is interpolated from higher recalls)
    worse = [torch.cat([torch.tensor([[50.0, 50, 60, 60, 0, 0.85]]), perfect[0]]), torch.zeros(0, 6)]
    ap = detection_ap(worse, targs, iou_thresholds=(0.5,))
    assert ap[0, 0] == pytest.approx((51 + 50 * 2 / 3) / 101) and ap[0, 1] == 0
    worse[0][0, 5] = 0.95
    assert detection_ap(worse, targs, iou_thresholds=(0.5,))[0, 0] == pytest.approx(2 / 3)
    # a class nobody has boxes of is left out (NaN); padded tensors are read as lists
    padded = torch.full((2, 3, 6), NAN)
    padded[0, :2], padded[1, :1] = perfect[0], perfect[1]
    padded[1, 1] = torch.tensor([0.0, 0, 5, 5, 2, 0.3])
    ap = detection_ap(padded, targs)
    assert ap.shape == (10, 3) and ap[:, 2].isnan().all() and torch.allclose(ap[:, :2], torch.ones(10, 2).double())
    with pytest.raises(ValueError, match="detections of 2 images but boxes of 1"):
        detection_ap(perfect, targs[:1])


def _fixture(seed: int, n_images: int = 14, n_classes: int = 4):
    """Boxes and detections with what COCOeval must get right: several classes (the last one with detections
    but no boxes), images without boxes or without detections, duplicate detections, boxes nobody finds, and
    an image with more than 100 detections of one class."""
    rng = np.random.default_rng(seed)
    targs, dets = [], []
    for i in range(n_images):
        n = 0 if i % 5 == 4 else int(rng.integers(1, 7))
        xy = rng.uniform(0, 200, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 60, (n, 2))], 1)
        labels = rng.integers(0, n_classes - 1, n)
        targs.append(torch.tensor(np.concatenate([boxes, labels[:, None]], 1), dtype=torch.float64))
        rows = []
        for b, lab in zip(boxes, labels):
            for _ in range(int(rng.integers(0, 3))):  # 0: missed; 2: a duplicate-ish second try
                jitter = b + rng.normal(0, 4, 4)
                rows.append([*jitter, lab if rng.random() > 0.15 else rng.integers(0, n_classes), rng.random()])
        if i % 3 == 0 and rows:
            rows.append(list(rows[0]))  # an exact duplicate
        for _ in range(int(rng.integers(0, 5))):  # noise, some of the class without boxes
            xy = rng.uniform(0, 200, 2)
            rows.append([*xy, *(xy + rng.uniform(8, 60, 2)), rng.integers(0, n_classes), rng.random()])
        if i == 7:
            for _ in range(120):
                xy = rng.uniform(0, 200, 2)
                rows.append([*xy, *(xy + rng.uniform(8, 60, 2)), 0, rng.random()])
        if i == 9:
            rows = []
        dets.append(torch.tensor(rows, dtype=torch.float64).reshape(-1, 6))
    return dets, targs


def _cocoeval(dets, targs, n_classes):
    """pycocotools' AP per IoU threshold and class ([10, C], NaN where a class has no boxes)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i + 1, "width": 300, "height": 300} for i in range(len(targs))]
    anns, results = [], []
    for i, t in enumerate(targs):
        for x0, y0, x1, y1, lab in t.tolist():
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(lab) + 1, "iscrowd": 0,
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)})  # fmt: skip
    for i, d in enumerate(dets):
        for x0, y0, x1, y1, lab, score in d.tolist():
            results.append({"image_id": i + 1, "category_id": int(lab) + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "score": score})  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c + 1, "name": str(c)} for c in range(n_classes)]}  # fmt: skip
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"][:, :, :, 0, 2]  # [T, R, K] at area "all", 100 detections
    ap = np.where((precision > -1).all(1), precision.mean(1), np.nan)
    return torch.from_numpy(ap), ev.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_equals_pycocotools(seed):
    pytest.importorskip("pycocotools", reason="pycocotools is the oracle (pip install quickfit[detection])")
    dets, targs = _fixture(seed)
    want, stats = _cocoeval(dets, targs, 4)
    got = detection_ap(dets, targs, n_classes=4)
    assert got[:, 3].isnan().all() and want[:, 3].isnan().all()
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0, equal_nan=True)
    assert abs(float(got.nanmean(1).mean()) - stats[0]) < 1e-6  # COCO's mAP
    assert abs(float(got[0].nanmean()) - stats[1]) < 1e-6  # AP at IoU 0.5
    # the metrics of the epoch table, over batches of padded rows, say the same
    k, n = max(len(d) for d in dets), max(len(t) for t in targs)
    pad = lambda rows, m: torch.cat([rows, torch.full((m - len(rows), rows.shape[1]), NAN, dtype=rows.dtype)])
    coco, fifty = coco_map(), map50()
    for m in (coco, fifty):
        m.reset()
        for start in range(0, len(dets), 4):
            m.accumulate(torch.stack([pad(d, k) for d in dets[start : start + 4]]),
                         torch.stack([pad(t, n) for t in targs[start : start + 4]]))  # fmt: skip
    assert abs(coco.value - stats[0]) < 1e-6 and abs(fifty.value - stats[1]) < 1e-6
    assert isinstance(coco, DetectionMAP) and (coco.name, fifty.name) == ("mAP", "mAP50")
    assert COCO_IOUS[0] == 0.5 and len(COCO_IOUS) == 10
