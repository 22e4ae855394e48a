"""The PASCAL VOC layout: `JPEGImages/<id>.jpg`, `Annotations/<id>.xml`, `ImageSets/Main/<set>.txt`.

    root = voc_root("data/bccd")                       # the VOC folder itself, or a folder holding one (BCCD/)
    names = image_set(root, "trainval")                # ['BloodImage_00000', ...]
    records, problems = read_voc(root, names)          # ImageBoxes per image (annotations.py)

Each `<object>` gives a class `<name>` and a `<bndbox>` (xmin, ymin, xmax, ymax), read as pixel
coordinates as written (the tools that write VOC today, such as labelImg, write them 0-based; VOC's
own 1-based convention shifts a box by one pixel, which no model here resolves). `difficult` objects
are kept. An XML file that does not parse, or is missing, skips its image and is counted.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from quickfit.vision.detection.annotations import ImageBoxes, Problems

__all__ = ["voc_root", "image_set", "read_voc"]


def _is_voc(path: Path) -> bool:
    return (path / "Annotations").is_dir() and (path / "JPEGImages").is_dir()


def voc_root(path: str | Path) -> Path:
    """The absolute VOC folder: `path` itself, or its one sub-folder in the VOC layout (e.g. BCCD/)."""
    path = Path(path).absolute()
    if not path.is_dir():
        raise FileNotFoundError(f"VOC folder {path} does not exist")
    if _is_voc(path):
        return path
    inner = [p for p in sorted(path.iterdir()) if p.is_dir() and _is_voc(p)]
    if len(inner) == 1:
        return inner[0]
    if inner:
        raise ValueError(f"{path} holds {len(inner)} VOC folders ({', '.join(p.name for p in inner)}): pass one")
    raise FileNotFoundError(
        f"{path} is not in the PASCAL VOC layout: no Annotations/ and JPEGImages/ in it or in a sub-folder"
    )


def image_set(root: Path, name: str) -> list[str]:
    """The image ids of `ImageSets/Main/<name>.txt` (the first word of each line)."""
    f = root / "ImageSets" / "Main" / f"{name}.txt"
    if not f.is_file():
        sets = sorted(p.stem for p in (root / "ImageSets" / "Main").glob("*.txt"))
        raise FileNotFoundError(f"no image set {f}; the sets in {f.parent}: {sets}")
    return [line.split()[0] for line in f.read_text().splitlines() if line.strip()]


def read_voc(root: Path, names: list[str], problems: Problems | None = None) -> tuple[list[ImageBoxes], Problems]:
    """An `ImageBoxes` per image id of `names` (one whose XML is missing or broken is left out and counted)."""
    problems = Problems() if problems is None else problems
    records = []
    for name in names:
        xml = root / "Annotations" / f"{name}.xml"
        try:
            tree = ET.parse(xml).getroot()
        except (ET.ParseError, OSError):
            problems.add("malformed file", xml.name)
            continue
        image = root / "JPEGImages" / f"{name}.jpg"
        written = (tree.findtext("filename") or "").strip()
        if not image.is_file() and written and Path(written).name == written:  # a plain file name, no folder
            image = root / "JPEGImages" / written
        record = ImageBoxes(image, source=xml.name)
        for obj in tree.iter("object"):
            box = obj.find("bndbox")
            values = [box.findtext(k) if box is not None else None for k in ("xmin", "ymin", "xmax", "ymax")]
            label = (obj.findtext("name") or "").strip()
            record.boxes.append(values)
            record.labels.append(label or None)
        records.append(record)
    return records, problems
