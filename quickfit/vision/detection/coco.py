"""COCO's JSON: `images` (id, file_name), `annotations` (image_id, bbox [x, y, width, height],
category_id) and `categories` (id, name).

    records, problems = read_coco("train.json", "train")     # ImageBoxes per image (annotations.py)

A file that is not JSON, or lacks one of the three lists, is refused with its name (nothing of it could
be used). Within it, an entry that is malformed is skipped and counted: an image without id or file
name, an annotation of an image the file does not list, a bbox that is not 4 numbers, a category id
the file does not define (an unknown class).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quickfit.vision.detection.annotations import ImageBoxes, Problems

__all__ = ["read_coco"]


def _load(json_file: Path) -> dict:
    if not json_file.is_file():
        raise FileNotFoundError(f"COCO annotation file {json_file} does not exist")
    try:
        data = json.loads(json_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{json_file} is not valid JSON: {e}") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or k not in data]
    if missing or not all(isinstance(data[k], list) for k in ("images", "annotations", "categories")):
        raise ValueError(
            f"{json_file} is not a COCO annotation file: it needs the lists 'images', 'annotations' and "
            f"'categories'{f' (missing: {missing})' if missing else ''}"
        )
    return data


def _get(entry: Any, key: str) -> Any:
    return entry.get(key) if isinstance(entry, dict) else None


def read_coco(
    json_file: str | Path, images_folder: str | Path, problems: Problems | None = None
) -> tuple[list[ImageBoxes], Problems]:
    """An `ImageBoxes` per image of `json_file` (in its order; images under `images_folder`), the boxes
    as (x0, y0, x1, y1). An image without annotations is kept with no box."""
    json_file, folder = Path(json_file).absolute(), Path(images_folder).absolute()
    problems = Problems() if problems is None else problems
    data = _load(json_file)
    names = {
        _get(c, "id"): _get(c, "name")
        for c in data["categories"]
        if isinstance(_get(c, "id"), (int, str)) and isinstance(_get(c, "name"), str)
    }
    by_id: dict[Any, ImageBoxes] = {}
    for entry in data["images"]:
        image_id, file_name = _get(entry, "id"), _get(entry, "file_name")
        if not isinstance(image_id, (int, str)) or not isinstance(file_name, str) or not file_name:
            problems.add("malformed file", f"{json_file.name}: image entry {str(entry)[:60]}")
            continue
        by_id[image_id] = ImageBoxes(folder / file_name, source=f"{json_file.name}: {file_name}")
    for ann in data["annotations"]:
        image_id = _get(ann, "image_id")
        record = by_id.get(image_id) if isinstance(image_id, (int, str)) else None
        if record is None:
            problems.add("malformed box", f"{json_file.name}: annotation of unknown image {image_id!r}")
            continue
        bbox = _get(ann, "bbox")
        try:
            x, y, w, h = (float(v) for v in bbox)
            box: Any = (x, y, x + w, y + h)
        except (TypeError, ValueError):
            box = bbox  # clean_annotations counts it as malformed
        record.boxes.append(box)
        category = _get(ann, "category_id")
        record.labels.append(names.get(category) if isinstance(category, (int, str)) else None)  # None: unknown
    return list(by_id.values()), problems
