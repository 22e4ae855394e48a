"""What the serving tests share: the exports of every application (tests/fixtures/exports_v1, loaded as
they are: no training), a client for each, and the fixed inputs they send."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from PIL import Image

import quickfit as qf
from tests.fixtures.make_exports import register_tiny_arch, test_images

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exports_v1"
IMAGE_CASES = ["image_classifier", "multi_label", "regression", "points", "unet_segmentation", "image_to_image"]

register_tiny_arch()


@cache
def learner(case: str) -> qf.Learner:
    return qf.load_learner(FIXTURES / f"{case}.qf")


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def images() -> list[Image.Image]:
    """Three test images of different sizes (the models resize them; some answers come at the original size)."""
    a, b, c = test_images()
    return [a, b.resize((30, 20)), c.resize((17, 29))]


def upload(data: bytes, name: str = "photo.png", ctype: str = "image/png") -> dict:
    return {"files": {"file": (name, data, ctype)}}
