"""Detection data: the VOC, COCO and DataFrame readers on tiny files written here, every kind of bad
annotation (skipped, named, counted in one warning), largest_only, relative paths, boxes through the
default item transform and the augmentation against the pixels they frame, and the export round trip."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from quickfit.vision import AffineWarp, DetectionDataLoaders, Resize, Target, detection_dls_from_export
from quickfit.vision.core.loader import ImageItems
from quickfit.vision.detection.largest_box import LargestBox
from quickfit.vision.detection.target import Boxes


def _image(path, w=40, h=20, square=None):
    img = np.zeros((h, w, 3), dtype=np.uint8)
    if square is not None:
        x0, y0, x1, y1 = square
        img[y0:y1, x0:x1] = 255
    Image.fromarray(img).save(path)


def _xml(objects, filename="x.jpg"):
    objs = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
        f"<ymax>{b[3]}</ymax></bndbox></object>"
        for n, b in objects
    )
    return f"<annotation><filename>{filename}</filename>{objs}</annotation>"


def _voc(root):
    """A VOC folder: 4 good images, then one of every kind of bad annotation."""
    for d in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / d).mkdir(parents=True)
    ann = {
        "a": [("cat", (2, 2, 12, 10)), ("dog", (20, 5, 38, 18))],
        "b": [("dog", (0, 0, 5, 5)), ("cat", (7, 7, 7, 12))],  # the second: zero width
        "c": [("cat", (30, 10, 50, 30)), ("dog", (45, 0, 60, 10))],  # clipped to (30, 10, 40, 20); outside
        "d": [("bird", (1, 1, 9, 9)), ("dog", (1, 1, "x", 9))],  # unknown class (vocab given); not a number
        "e": [("cat", (1, 1, 5, 5))],  # its image is missing
    }
    for name, objects in ann.items():
        (root / "Annotations" / f"{name}.xml").write_text(_xml(objects, f"{name}.jpg"))
        if name != "e":
            _image(root / "JPEGImages" / f"{name}.jpg")
    (root / "Annotations" / "f.xml").write_text("<annotation><object>")  # does not parse
    _image(root / "JPEGImages" / "f.jpg")
    (root / "ImageSets/Main/trainval.txt").write_text("a\nb\nc\nf\n")
    (root / "ImageSets/Main/test.txt").write_text("d  1\ne\n")  # class sets carry a second column


def _one_warning(record):
    assert len(record) == 1, [str(w.message) for w in record]
    return str(record[0].message)


def test_voc_reads_boxes_and_skips_every_kind_of_bad_annotation_with_one_warning(tmp_path, monkeypatch):
    _voc(tmp_path / "voc" / "VOC")
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning) as record:  # the parent of the VOC folder, relative to the current one
        dls = DetectionDataLoaders.from_voc("voc", vocab=["cat", "dog"], size=10, bs=2, num_workers=0)
    text = _one_warning(record)
    assert "from_voc(VOC): bad annotations skipped (of 9 boxes in 5 images)" in text  # f.xml has no record
    said = [
        "1 box of zero size (b.xml)",
        "1 box outside their image (c.xml)",
        "1 box of an unknown class (d.xml)",
        "1 box with coordinates that are not 4 numbers (d.xml)",
        "1 image whose file is missing (e.jpg (e.xml))",
        "1 image whose annotation does not parse (f.xml)",
        "1 box clipped to their image (kept) (c.xml)",
    ]
    assert [s for s in said if s not in text] == [], text
    assert dls.vocab == ["cat", "dog"] and isinstance(dls.target, Boxes) and not dls.largest_only
    assert [p.name for p in dls.train_items.paths] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [p.name for p in dls.valid_items.paths] == ["d.jpg"] and dls.valid_items.targets[0].shape == (0, 5)
    a, b, c = dls.train_items.targets
    assert torch.equal(a, torch.tensor([[2.0, 2, 12, 10, 0], [20, 5, 38, 18, 1]]))
    assert torch.equal(b, torch.tensor([[0.0, 0, 5, 5, 1]])) and torch.equal(c, torch.tensor([[30.0, 10, 40, 20, 0]]))
    assert dls.train_items.paths[0].is_absolute() and dls.c == 2


def test_voc_errors_name_what_is_missing(tmp_path):
    _voc(tmp_path / "VOC")
    with pytest.raises(FileNotFoundError, match=r"no image set .*val.txt; the sets in .*\['test', 'trainval'\]"):
        DetectionDataLoaders.from_voc(tmp_path / "VOC", valid="val")
    with pytest.raises(FileNotFoundError, match="not in the PASCAL VOC layout"):
        DetectionDataLoaders.from_voc(tmp_path / "VOC" / "JPEGImages")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # valid=None: a random split of the training set, and every class found (sorted) is the vocab
        dls = DetectionDataLoaders.from_voc(tmp_path / "VOC", valid=None, valid_pct=0.34, seed=0, num_workers=0)
    assert len(dls.train_items.paths) == 2 and len(dls.valid_items.paths) == 1 and dls.vocab == ["cat", "dog"]


def _coco(root, annotations, extra_images=()):
    (root / "imgs").mkdir(parents=True)
    images = [{"id": 1, "file_name": "one.png"}, {"id": 2, "file_name": "two.png"}, *extra_images]
    for name in ("one.png", "two.png"):
        _image(root / "imgs" / name)
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 7, "name": "tv"}, {"id": 3, "name": "book"}]}  # fmt: skip
    (root / "ann.json").write_text(json.dumps(data))


def test_coco_reads_xywh_boxes_and_skips_bad_entries(tmp_path, monkeypatch):
    anns = [
        {"image_id": 1, "bbox": [2, 3, 10, 5], "category_id": 7},
        {"image_id": 1, "bbox": [1, 1, 30, 15], "category_id": 3},  # the largest of image 1
        {"image_id": 2, "bbox": [5, 5, 4, 4], "category_id": 3},
        {"image_id": 2, "bbox": [5, 5, 0, 4], "category_id": 3},  # zero width
        {"image_id": 2, "bbox": [5, 5, 4, 4], "category_id": 99},  # unknown category
        {"image_id": 2, "bbox": [5, 5, 4], "category_id": 3},  # three numbers
        {"image_id": 42, "bbox": [5, 5, 4, 4], "category_id": 3},  # an image the file does not list
        {"image_id": 3, "bbox": [1, 1, 4, 4], "category_id": 7},  # its file is missing
    ]
    _coco(tmp_path / "coco", anns, extra_images=[{"id": 3, "file_name": "gone.png"}, {"file_name": "no_id.png"}])
    monkeypatch.chdir(tmp_path / "coco")
    with pytest.warns(UserWarning) as record:  # the images folder relative to the current one
        dls = DetectionDataLoaders.from_coco("ann.json", "imgs", valid_pct=0.5, seed=1, num_workers=0, size=8)
    text = _one_warning(record)
    assert "(of 7 boxes in 3 images)" in text  # the annotation of image 42 has no image
    said = [
        "1 box of zero size (ann.json: two.png)",
        "1 box of an unknown class (ann.json: two.png)",
        "2 boxes with coordinates that are not 4 numbers (ann.json: annotation of unknown image 42, ann.json: two.png)",
        "1 image whose file is missing (ann.json: gone.png)",
        "1 image whose annotation does not parse (ann.json: image entry {'file_name': 'no_id.png'})",
    ]
    assert [s for s in said if s not in text] == [], text
    assert dls.vocab == ["book", "tv"]
    got = {p.name: t for p, t in zip(dls.train_items.paths + dls.valid_items.paths,
                                      dls.train_items.targets + dls.valid_items.targets)}  # fmt: skip
    assert torch.equal(got["one.png"], torch.tensor([[2.0, 3, 12, 8, 1], [1, 1, 31, 16, 0]]))
    assert torch.equal(got["two.png"], torch.tensor([[5.0, 5, 9, 9, 0]]))
    with pytest.warns(UserWarning):  # the same seed, the same split; largest_only keeps one box per image
        largest = DetectionDataLoaders.from_coco("ann.json", "imgs", 0.5, 1, largest_only=True, num_workers=0)
    assert [p.name for p in largest.valid_items.paths] == [p.name for p in dls.valid_items.paths]
    # the vocab is the classes of the boxes kept: no tv is the largest box of an image
    assert isinstance(largest.target, LargestBox) and largest.vocab == ["book"] and largest.c == 4 + 1
    assert all(t.shape == (1, 5) for t in largest.train_items.targets + largest.valid_items.targets)
    assert torch.equal(next(t for p, t in zip(largest.train_items.paths + largest.valid_items.paths,
                            largest.train_items.targets + largest.valid_items.targets) if p.name == "one.png"),
                       torch.tensor([[1.0, 1, 31, 16, 0]]))  # fmt: skip


def test_coco_files_that_cannot_be_read_are_refused_by_name(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "bad.json").write_text('{"images": [')
    with pytest.raises(ValueError, match=r"bad.json is not valid JSON"):
        DetectionDataLoaders.from_coco(tmp_path / "bad.json", tmp_path / "imgs")
    (tmp_path / "list.json").write_text('{"images": [], "annotations": []}')
    with pytest.raises(ValueError, match=r"list.json is not a COCO annotation file.*missing: \['categories'\]"):
        DetectionDataLoaders.from_coco(tmp_path / "list.json", tmp_path / "imgs")
    with pytest.raises(FileNotFoundError, match="images folder .*nowhere does not exist"):
        DetectionDataLoaders.from_coco(tmp_path / "list.json", tmp_path / "nowhere")


def test_from_df_one_row_per_box_with_a_valid_column_and_largest_only(tmp_path, monkeypatch):
    (tmp_path / "pics").mkdir()
    for name in ("p.png", "q.png", "r.png"):
        _image(tmp_path / "pics" / name)
    df = pd.DataFrame(
        [("p.png", "car", 1, 1, 5, 5, False), ("p.png", "bus", 2, 2, 20, 12, False), ("q.png", "car", 3, 3, 9, 9, True),
         ("r.png", "bus", 0, 0, 3, 3, False), ("r.png", None, 0, 0, 30, 15, False)],  # no class: skipped
        columns=["file", "label", "x0", "y0", "x1", "y1", "is_valid"],
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match=r"1 box of an unknown class \(r.png\)"):
        dls = DetectionDataLoaders.from_df(df, "pics", valid_col="is_valid", num_workers=0, size=16)
    assert [p.name for p in dls.train_items.paths] == ["p.png", "r.png"] and dls.vocab == ["bus", "car"]
    assert torch.equal(dls.train_items.targets[0], torch.tensor([[1.0, 1, 5, 5, 1], [2, 2, 20, 12, 0]]))
    assert [p.name for p in dls.valid_items.paths] == ["q.png"]
    with pytest.warns(UserWarning):
        largest = DetectionDataLoaders.from_df(df, "pics", valid_col="is_valid", largest_only=True, num_workers=0)
    assert torch.equal(largest.train_items.targets[0], torch.tensor([[2.0, 2, 20, 12, 0]]))
    with pytest.raises(KeyError, match=r"column\(s\) \['x9'\] not in the DataFrame"):
        DetectionDataLoaders.from_df(df, "pics", box_cols=("x0", "y0", "x1", "x9"))


def test_largest_only_skips_an_image_left_without_a_box(tmp_path):
    for name in ("p.png", "q.png", "r.png"):
        _image(tmp_path / name)
    df = pd.DataFrame([("p.png", "a", 1, 1, 5, 5), ("q.png", "b", 1, 1, 1, 5), ("r.png", "b", 2, 2, 4, 4)],
                      columns=["file", "label", "x0", "y0", "x1", "y1"])  # fmt: skip
    with pytest.warns(UserWarning) as record:
        dls = DetectionDataLoaders.from_df(df, tmp_path, largest_only=True, valid_pct=0.0, num_workers=0)
    assert "1 image left without a box (largest_only needs one) (q.png)" in _one_warning(record)
    assert [p.name for p in dls.train_items.paths] == ["p.png", "r.png"]


def test_the_default_item_transform_keeps_every_box_and_the_augmentation_moves_boxes_with_the_pixels(tmp_path):
    # a 40x20 image with a white square at x 10-30, y 5-15; the default Resize(8) squishes it whole:
    # x' = x / 40 * 2 - 1, y' = y / 20 * 2 - 1 (a crop would have cut the box)
    _image(tmp_path / "a.png", square=(10, 5, 30, 15))
    df = pd.DataFrame([("a.png", "sq", 10, 5, 30, 15)] * 2, columns=["file", "label", "x0", "y0", "x1", "y1"])
    df["file"] = ["a.png", "b.png"]
    _image(tmp_path / "b.png", square=(10, 5, 30, 15))
    dls = DetectionDataLoaders.from_df(df, tmp_path, size=8, valid_pct=0.5, seed=0, bs=1, num_workers=0)
    assert dls.item_tfm.method == "squish" and isinstance(dls.batch_tfms[0], AffineWarp)
    assert dls.batch_tfms[0].max_rotate == 0 and dls.batch_tfms[0].max_warp == 0  # boxes of moved corners grow
    _, y = dls.one_batch("valid")
    assert torch.allclose(y[0, 0], torch.tensor([-0.5, -0.5, 0.5, 0.5, 0.0]))
    # flips and zooms: the box still frames the white pixels, to a pixel of the 64x64 output
    items = ImageItems([tmp_path / "a.png"] * 16, [torch.tensor([[10.0, 5, 30, 15, 0]])] * 16)
    tfms = [AffineWarp(max_rotate=0, max_warp=0, max_zoom=1.6, p_affine=1)]
    aug = DetectionDataLoaders(items, items, ["sq"], Resize(64, method="squish"), tfms, 16, 0, Boxes(vocab=("sq",)))
    torch.manual_seed(0)
    x, y = aug.one_batch("train")
    white = aug.normalize.decode(x).mean(1) > 0.5  # [16, 64, 64]
    for img, row in zip(white, y[:, 0]):
        ys, xs = img.nonzero(as_tuple=True)
        framed = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / 64 * 2 - 1
        assert torch.allclose(row[:4], framed, atol=2 / 64 + 1e-4), (row, framed)
    assert (y[:, 0, 4] == 0).all() and (y[:, 0, 0] > -0.5 + 0.1).any()  # some were zoomed or moved


def test_export_info_rebuilds_the_processing_and_the_target(tmp_path):
    _image(tmp_path / "a.png")
    df = pd.DataFrame(
        [("a.png", "x", 1, 1, 9, 9), ("a.png", "y", 2, 2, 4, 4)], columns=["file", "label", "x0", "y0", "x1", "y1"]
    )
    df = pd.concat([df, df.assign(file="b.png")])
    _image(tmp_path / "b.png")
    for largest in (False, True):
        dls = DetectionDataLoaders.from_df(
            df, tmp_path, size=(12, 16), valid_pct=0.5, seed=0, largest_only=largest, num_workers=0
        )
        info = json.loads(json.dumps(dls.export_info()))
        back = detection_dls_from_export(info)
        vocab = ["x"] if largest else ["x", "y"]  # the largest boxes are all x
        assert type(back.target) is type(dls.target) and back.vocab == vocab and back.target.vocab == tuple(vocab)
        assert back.size == (12, 16) and back.item_tfm.method == "squish" and back.c == dls.c
        assert [t.to_dict() for t in back.batch_tfms] == [t.to_dict() for t in dls.batch_tfms]
    with pytest.raises(ValueError, match="its target is 'category', not boxes"):
        detection_dls_from_export({**info, "target": {"kind": "category"}})
    with pytest.raises(ValueError, match="the target must be boxes"):
        DetectionDataLoaders(dls.train_items, dls.valid_items, ["x", "y"], Resize(8), target=Target("category"))
