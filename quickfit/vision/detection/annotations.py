"""Box annotations as read from a file, checked once before any training: every reader (VOC XML, COCO
JSON, a DataFrame) makes `ImageBoxes` records, and `clean_annotations` turns them into training rows.

    records, problems = read_voc(root, ["BloodImage_00001", ...])     # quickfit/vision/detection/voc.py
    paths, rows, vocab = clean_annotations(records, problems, where="from_voc(BCCD)")
    # rows[i]: float [n, 5] (x0, y0, x1, y1 in pixels of image i, label index into the sorted vocab)

A bad annotation is skipped, never raised at batch 3,000: a box of zero size, a box outside its image
(clipped; skipped when nothing is left), a box of an unknown class, coordinates that are not numbers,
an image file that is missing or unreadable, an annotation file that does not parse. They are counted
by kind and named by file in ONE warning, so a data set with thousands of them is still readable.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from quickfit.vision.core.image import LOAD_ERRORS, SourceImage
from quickfit.vision.core.loader import user_stacklevel

__all__ = ["ImageBoxes", "Problems", "clean_annotations"]


@dataclass
class ImageBoxes:
    """One image's annotations as read: its file, boxes (x0, y0, x1, y1 as written; anything for a
    malformed one), their class names (None: a class the file does not define), and `source`, which
    names the annotation in messages ('BloodImage_00338.xml', 'train.json: 000042.jpg', 'rows 7-9')."""

    image: Path
    boxes: list[Any] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    source: str = ""


# kind -> (is it a box or an image, how the warning says it). Clipped boxes are kept, only reported.
_KINDS = {
    "zero size": ("box", "of zero size"),
    "outside": ("box", "outside their image"),
    "unknown class": ("box", "of an unknown class"),
    "malformed box": ("box", "with coordinates that are not 4 numbers"),
    "missing image": ("image", "whose file is missing"),
    "unreadable image": ("image", "that cannot be opened"),
    "malformed file": ("image", "whose annotation does not parse"),
    "no box": ("image", "left without a box (largest_only needs one)"),
    "clipped": ("box", "clipped to their image (kept)"),
}


class Problems:
    """Bad annotations found while reading and cleaning: `add(kind, where)`; `warn` says them all at once."""

    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}

    def add(self, kind: str, where: str) -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown annotation problem {kind!r}; known: {sorted(_KINDS)}")
        self.found.setdefault(kind, []).append(where)

    def count(self, kind: str) -> int:
        return len(self.found.get(kind, []))

    def message(self) -> str | None:
        """One sentence per kind with its count and the first files, or None when all is well."""
        parts = []
        for kind, (unit, said) in _KINDS.items():
            where = self.found.get(kind, [])
            if where:
                names = list(dict.fromkeys(where))  # one name per file, in order
                shown = ", ".join(names[:5]) + (f", ... ({len(names)} files)" if len(names) > 5 else "")
                noun = unit if len(where) == 1 else {"box": "boxes", "image": "images"}[unit]
                parts.append(f"{len(where)} {noun} {said} ({shown})")
        return "; ".join(parts) or None

    def warn(self, where: str, n_boxes: int, n_images: int) -> None:
        text = self.message()
        if text is not None:
            warnings.warn(
                f"{where}: bad annotations skipped (of {n_boxes:,} boxes in {n_images:,} images): {text}",
                stacklevel=user_stacklevel(),
            )


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) upright, from the file's header: the image the boxes are clipped to is the one
    trained on (an annotation's written size may be 0 or stale); no pixel is decoded."""
    with SourceImage(path) as src:
        return src.size


def _box(values: Any) -> tuple[float, float, float, float] | None:
    try:
        box = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return box if len(box) == 4 and all(math.isfinite(v) for v in box) else None


def clean_annotations(
    records: Sequence[ImageBoxes],
    problems: Problems,
    where: str,
    vocab: Sequence[str] | None = None,
    largest_only: bool = False,
) -> tuple[list[Path], list[torch.Tensor], list[str], list[int]]:
    """The usable images and boxes of `records`: (image paths, rows [n, 5] in their pixels with label
    indices, the vocab (sorted class names, or `vocab` as given: other classes are unknown), and the
    index in `records` of each kept image). With `largest_only` each image keeps its largest box (by
    area, after clipping), and an image without one is skipped. Warns once (naming `where`) about
    everything skipped or clipped, with the reader's `problems`."""
    known = None if vocab is None else [str(v) for v in vocab]
    kept: list[tuple[int, list[tuple[tuple[float, ...], str]]]] = []
    n_boxes = sum(len(r.boxes) for r in records)
    for i, r in enumerate(records):
        name = r.source or r.image.name
        if not r.image.is_file():
            problems.add("missing image", name if r.image.name in name else f"{r.image.name} ({name})")
            continue
        try:
            w, h = _image_size(r.image)
        except LOAD_ERRORS:
            problems.add("unreadable image", r.image.name)
            continue
        boxes = []
        for values, label in zip(r.boxes, r.labels):
            box = _box(values)
            if box is None:
                problems.add("malformed box", name)
                continue
            if label is None or (known is not None and str(label) not in known):
                problems.add("unknown class", name)
                continue
            x0, y0, x1, y1 = box
            if x1 <= x0 or y1 <= y0:
                problems.add("zero size", name)
                continue
            clipped = (max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h)))
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                problems.add("outside", name)
                continue
            if clipped != box:
                problems.add("clipped", name)
            boxes.append((clipped, str(label)))
        if largest_only:
            if not boxes:
                problems.add("no box", name)
                continue
            boxes = [max(boxes, key=lambda b: (b[0][2] - b[0][0]) * (b[0][3] - b[0][1]))]  # the first of ties
        kept.append((i, boxes))
    problems.warn(where, n_boxes, len(records))
    if known is None:
        known = sorted({label for _, boxes in kept for _, label in boxes})
    index = {v: j for j, v in enumerate(known)}
    rows = [
        torch.tensor([[*b, float(index[label])] for b, label in boxes], dtype=torch.float32).reshape(-1, 5)
        for _, boxes in kept
    ]
    return [records[i].image for i, _ in kept], rows, known, [i for i, _ in kept]
