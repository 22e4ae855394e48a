"""DetectionDataLoaders: images with boxes and their labels, from a PASCAL VOC folder, a COCO JSON file
or a DataFrame with one row per box.

    from quickfit.vision import DetectionDataLoaders

    dls = DetectionDataLoaders.from_voc("data/bccd", size=320, bs=16)          # trainval / test
    dls = DetectionDataLoaders.from_coco("coco_tiny/train.json", "coco_tiny/train", size=128, seed=42)
    dls = DetectionDataLoaders.from_df(df, "photos")     # columns file, label, x0, y0, x1, y1 (pixels)
    dls.vocab                      # ['Platelets', 'RBC', 'WBC']: the sorted class names
    x, y = dls.one_batch()         # y: float [B, n_max, 5] (x0, y0, x1, y1 in [-1, 1], label), NaN rows pad
    dls.show_batch()               # boxes drawn with their labels

    dls = DetectionDataLoaders.from_coco(..., largest_only=True)   # one box per image: bbox_learner's data

Bad annotations (a box of zero size or outside its image, an unknown class, a missing image, an XML or
JSON entry that does not parse) are skipped with one warning that counts and names them
(quickfit/vision/detection/annotations.py); a box partly outside its image is clipped to it.

Defaults chosen for boxes: the item transform is `Resize(size, method="squish")`, which keeps every box
whole (a crop would cut boxes at the edges, a random crop drop whole objects; padding spends pixels on
black bars); the batch augmentation `detection_aug_transforms()` flips, zooms in up to 1.1 and changes
the lighting, and neither rotates nor warps: a moved box becomes the box enclosing its moved corners,
so a 10-degree turn widens a square object's box by 16% and the target no longer fits the object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from quickfit.apps import get_app
from quickfit.configs import Task
from quickfit.vision.core.augment import BatchTransform, Normalize, aug_transforms, batch_tfm_from_dict, imagenet_stats
from quickfit.vision.core.constructors import _locate
from quickfit.vision.core.data import ImageDataLoaders, random_split
from quickfit.vision.core.loader import ImageItems
from quickfit.vision.core.targets import Target
from quickfit.vision.core.transforms import ItemTransform, Resize, item_tfm_for, item_tfm_from_dict
from quickfit.vision.detection.annotations import ImageBoxes, Problems, clean_annotations
from quickfit.vision.detection.coco import read_coco
from quickfit.vision.detection.largest_box import BBoxLoss, LargestBox
from quickfit.vision.detection.target import Boxes
from quickfit.vision.detection.voc import image_set, read_voc, voc_root

__all__ = ["DetectionDataLoaders", "detection_aug_transforms", "detection_dls_from_export"]


def detection_aug_transforms(
    do_flip: bool = True,
    flip_vert: bool = False,
    max_zoom: float = 1.1,
    max_lighting: float = 0.2,
    p_affine: float = 0.75,
    p_lighting: float = 0.75,
) -> list[BatchTransform]:
    """`aug_transforms` without rotation and warp (see the module's docstring): flips (`flip_vert`: the 8
    dihedral ones, for photos from above such as microscopy), zoom in, lighting."""
    return aug_transforms(do_flip, flip_vert, 0.0, max_zoom, max_lighting, 0.0, p_affine, p_lighting)


class DetectionDataLoaders(ImageDataLoaders):
    """Training and validation loaders of images with boxes (`Boxes`, or `LargestBox` with one box per
    image). Build it with `from_voc`, `from_coco` or `from_df`; the constructor takes prepared items:
    per image a float [n, 5] tensor (x0, y0, x1, y1 in its pixels, label index into `vocab`)."""

    def __init__(
        self,
        train_items: ImageItems,
        valid_items: ImageItems,
        vocab: list[str] | None,
        item_tfms: ItemTransform,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        target: Target | str = "boxes",
        path: str | Path = ".",
        test_items: Sequence[Path | Image.Image] | None = None,
        device: torch.device | str | None = None,
        cache: bool | int = False,
    ) -> None:
        super().__init__(train_items, valid_items, vocab, item_tfms, batch_tfms, bs, num_workers, target, path,
                         test_items, device, cache)  # fmt: skip
        if not isinstance(self.target, Boxes):
            raise ValueError(f"DetectionDataLoaders: the target must be boxes, got {self.target.kind!r}")

    @property
    def largest_only(self) -> bool:
        """One box per image (the largest), as `bbox_learner` needs."""
        return isinstance(self.target, LargestBox)

    @property
    def c(self) -> int:
        """The model's outputs per image: with `largest_only` 4 (the box) + the classes, else the classes."""
        return len(self.vocab or []) + (4 if self.largest_only else 0)

    def export_task(self, loss_func: Any) -> Task:
        """What an export of a `vision_learner` / `bbox_learner` on these images records: the largest object."""
        if not self.largest_only:
            raise ValueError(
                "vision_learner predicts one vector per image: for every box use detection_learner, for the "
                "largest one build the data with largest_only=True (then bbox_learner)"
            )
        # bbox.py (lesson 8) builds on this module: its task is found by name among the vision app's
        weight = loss_func.box_weight if isinstance(loss_func, BBoxLoss) else None
        return get_app("vision").task({"type": "largest_box", "box_weight": weight})

    def n_boxes(self, split: str = "train") -> int:
        """How many boxes the images of `split` ("train" or "valid") have, before augmentation."""
        targets = (self.train_items if split == "train" else self.valid_items).targets
        return sum(int(t.shape[0]) for t in targets) if targets is not None else 0

    def __repr__(self) -> str:
        return (
            f"DetectionDataLoaders({len(self.train_items.paths)} train / {len(self.valid_items.paths)} valid "
            f"images, {self.n_boxes('train')} / {self.n_boxes('valid')} boxes"
            f"{' (the largest of each image)' if self.largest_only else ''}, {len(self.vocab or [])} classes, "
            f"size={self.size}, bs={self.bs})"
        )

    def export_info(self) -> dict:
        """The processing (`ImageDataLoaders.export_info`) and the target with its vocab."""
        return {**super().export_info(), "target": self.target.to_dict()}

    # ---- constructors --------------------------------------------------------------------------------
    @classmethod
    def from_voc(
        cls,
        path: str | Path,
        train: str = "trainval",
        valid: str | None = "test",
        valid_pct: float = 0.2,
        seed: int | None = None,
        vocab: Sequence[str] | None = None,
        largest_only: bool = False,
        size: int | tuple[int, int] | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        cache: bool | int = False,
    ) -> DetectionDataLoaders:
        """A PASCAL VOC folder (`JPEGImages/`, `Annotations/*.xml`, `ImageSets/Main/<set>.txt`), or a folder
        holding one (e.g. `bccd/` with `BCCD/` in it). `train` and `valid` name image sets; `valid=None`
        splits a random `valid_pct` off `train` instead (reproducibly with `seed`). `vocab`: the classes to
        keep (others are counted as unknown); by default every class found, sorted."""
        root = voc_root(path)
        records, problems = read_voc(root, image_set(root, train))
        is_valid = None
        if valid is not None:
            n_train = len(records)
            records += read_voc(root, image_set(root, valid), problems)[0]
            is_valid = [i >= n_train for i in range(len(records))]
        return cls._build(records, problems, f"from_voc({root.name})", is_valid, valid_pct, seed, vocab,
                          largest_only, size, item_tfms, batch_tfms, bs, num_workers, cache, root)  # fmt: skip

    @classmethod
    def from_coco(
        cls,
        json_file: str | Path,
        images_folder: str | Path,
        valid_pct: float = 0.2,
        seed: int | None = None,
        vocab: Sequence[str] | None = None,
        largest_only: bool = False,
        size: int | tuple[int, int] | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        cache: bool | int = False,
    ) -> DetectionDataLoaders:
        """A COCO JSON file with its images in `images_folder` (from the current folder, or beside the
        JSON file); a random `valid_pct` of the usable images is the validation set (fixed by `seed`).
        The vocab is the sorted names of the categories that have a box kept (or `vocab`)."""
        json_file = Path(json_file).absolute()
        folder = Path(images_folder)
        if not folder.is_absolute() and not folder.is_dir() and (json_file.parent / folder).is_dir():
            folder = json_file.parent / folder
        if not folder.is_dir():
            raise FileNotFoundError(f"images folder {folder.absolute()} does not exist")
        records, problems = read_coco(json_file, folder)
        where = f"from_coco({json_file.name})"
        return cls._build(records, problems, where, None, valid_pct, seed, vocab, largest_only, size, item_tfms,
                          batch_tfms, bs, num_workers, cache, json_file.parent)  # fmt: skip

    @classmethod
    def from_df(
        cls,
        df: Any,
        path: str | Path = ".",
        fn_col: str = "file",
        label_col: str = "label",
        box_cols: Sequence[str] = ("x0", "y0", "x1", "y1"),
        folder: str | None = None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        valid_col: str | None = None,
        vocab: Sequence[str] | None = None,
        largest_only: bool = False,
        size: int | tuple[int, int] | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        cache: bool | int = False,
    ) -> DetectionDataLoaders:
        """A pandas DataFrame with one row per box: the image file (under `path/folder`, or from the current
        folder), the class, and the box in the image's pixels. An image is in the validation set when
        the boolean column `valid_col` is true in any of its rows, else by a random `valid_pct` split."""
        cols = [fn_col, label_col, *box_cols, *([valid_col] if valid_col is not None else [])]
        if len(box_cols) != 4:
            raise ValueError(f"from_df: box_cols must name 4 columns (x0, y0, x1, y1), got {list(box_cols)}")
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise KeyError(f"from_df: column(s) {missing} not in the DataFrame; its columns: {list(df.columns)}")
        base = Path(path).absolute() / (folder or "")
        by_file: dict[str, ImageBoxes] = {}
        valid_files: set[str] = set()
        rows = zip(*(df[c].tolist() for c in cols))
        for fname, label, *rest in rows:
            fname = str(fname)
            record = by_file.setdefault(fname, ImageBoxes(_locate(base, fname), source=fname))
            record.boxes.append(rest[:4])
            record.labels.append(None if label is None or label != label else str(label))  # NaN: no class
            if valid_col is not None and bool(rest[4]):
                valid_files.add(fname)
        records = list(by_file.values())
        is_valid = [r.source in valid_files for r in records] if valid_col is not None else None
        where = f"from_df({df.attrs.get('source', 'DataFrame') if hasattr(df, 'attrs') else 'DataFrame'})"
        return cls._build(records, Problems(), where, is_valid, valid_pct, seed, vocab, largest_only, size,
                          item_tfms, batch_tfms, bs, num_workers, cache, base)  # fmt: skip

    @classmethod
    def _build(cls, records: list[ImageBoxes], problems: Problems, where: str, is_valid: list[bool] | None,
               valid_pct: float, seed: int | None, vocab: Sequence[str] | None, largest_only: bool,
               size: int | tuple[int, int] | None, item_tfms: ItemTransform | None,
               batch_tfms: Sequence[Callable] | None, bs: int, num_workers: int | None, cache: bool | int,
               path: Path) -> DetectionDataLoaders:  # fmt: skip
        """Clean the records (one warning), split them, and build the loaders with the detection defaults."""
        paths, rows, classes, kept = clean_annotations(records, problems, where, vocab, largest_only)
        if not paths:
            raise ValueError(f"{where}: no usable image ({len(records)} read; see the warning for why)")
        if not classes:
            raise ValueError(f"{where}: no box with a class in {len(paths)} images")
        if is_valid is None:
            valid = set(random_split(len(paths), valid_pct, seed).tolist())
        else:
            valid = {j for j, i in enumerate(kept) if is_valid[i]}
        tr, va = [j for j in range(len(paths)) if j not in valid], sorted(valid)
        if not tr:
            raise ValueError(f"{where}: every one of the {len(paths)} usable images is in the validation set")
        pick = lambda idx: ImageItems([paths[j] for j in idx], [rows[j] for j in idx])  # noqa: E731
        item_tfm = item_tfm_for(item_tfms, size) if item_tfms is not None else Resize(size or 224, method="squish")
        target = LargestBox(vocab=classes) if largest_only else Boxes(vocab=classes)
        batch_tfms = detection_aug_transforms() if batch_tfms is None else batch_tfms
        return cls(pick(tr), pick(va), classes, item_tfm, batch_tfms, bs, num_workers, target, path, cache=cache)


def detection_dls_from_export(info: dict, device: torch.device | str | None = None) -> DetectionDataLoaders:
    """A DetectionDataLoaders with no images but the exported processing and target (for `load_learner`):
    it can `test_dl`, `decode_pred` and draw."""
    if not isinstance(info, dict) or "item_tfm" not in info:
        raise ValueError("not a detection export: the metadata lacks the data processing")
    target = Target.from_dict(info.get("target") or {"kind": "boxes", "vocab": info.get("vocab")})
    if not isinstance(target, Boxes):
        raise ValueError(f"not a detection export: its target is {target.kind!r}, not boxes")
    vocab = info.get("vocab")
    if not isinstance(vocab, list) or not all(isinstance(v, str) for v in vocab):
        raise ValueError(f"a detection export's vocab must be a list of class names, got {vocab!r}")
    batch_tfms: list[Callable] = [batch_tfm_from_dict(d) for d in info.get("batch_tfms", [])]
    norm = info.get("normalize") or {"mean": imagenet_stats[0], "std": imagenet_stats[1]}
    batch_tfms.append(Normalize(norm["mean"], norm["std"]))
    empty = ImageItems([], None)
    return DetectionDataLoaders(empty, empty, vocab, item_tfm_from_dict(info["item_tfm"]), batch_tfms,
                                int(info.get("bs", 64)), target=target, device=device)  # fmt: skip
