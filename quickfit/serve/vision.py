"""Serving image exports: classification (single, multi-label), regression, keypoints, segmentation,
image-to-image and GANs.

An upload is checked (`checked_image`: an image, within the pixel limit, that decodes), then written under
a server-made name in a private temporary folder, and the model reads that file: `learn.predict(path)`'s
very path (JPEG draft decoding included), so the answers are those of `learn.predict` on the same file.
The file is deleted once the answer is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from quickfit.serve.handlers import Handler, Limits, RequestInput
from quickfit.serve.inputs import BadInput, checked_image, number
from quickfit.serve.render import image_url, mask_urls, points_url

__all__ = ["ImageItem", "ImagesHandler", "PointsHandler", "SegmentationHandler", "ImageToImageHandler", "GANHandler"]


@dataclass
class ImageItem:
    path: Path  # the server's copy of the upload
    image: Image.Image | None  # decoded and upright, kept only where the answer draws on it
    size: tuple[int, int] = (0, 0)  # (width, height), upright


class _ImageHandler(Handler):
    input = "image"
    keep_image = False  # whether `respond` draws on the photo

    def __init__(self, learn, limits: Limits) -> None:
        super().__init__(learn, limits)
        self._tmp = Path(tempfile.mkdtemp(prefix="quickfit-serve-"))  # mode 0700: ours alone

    def info(self) -> dict:
        return {"input": {"type": "image", "field": "file", "max_bytes": self.limits.max_upload_bytes,
                          "max_pixels": self.limits.max_pixels}}  # fmt: skip

    @property
    def example(self) -> str:
        return "upload the image as the multipart field 'file'"

    def parse(self, req: RequestInput) -> ImageItem:
        if req.upload is None:
            raise BadInput(415, f"this {self.kind} model takes an image: {self.example}")
        img = checked_image(req.upload, self.limits.max_pixels)
        from quickfit.vision.core.image import load_image, oriented_size

        size = oriented_size(img)
        self._tmp.mkdir(mode=0o700, exist_ok=True)  # again, if a stopped app was started anew
        path = self._tmp / uuid.uuid4().hex
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(req.upload)
        if not self.keep_image:
            img.close()
            return ImageItem(path, None, size)
        return ImageItem(path, load_image(img), size)

    def close(self, item: ImageItem) -> None:
        item.path.unlink(missing_ok=True)

    def shutdown(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _preds(self, items: list[ImageItem]) -> torch.Tensor:
        dls = self.learn.dls
        preds, _ = self.learn.get_preds(dl=dls.test_dl([i.path for i in items], bs=len(items)), progress=False)
        return preds


class ImagesHandler(_ImageHandler):
    """Classification, multi-label classification or regression: `dls.decode_pred` of each prediction."""

    @property
    def kind(self) -> str:
        target = getattr(self.learn.dls, "target_kind", "category")
        return {"float": "image_regression", "multi_category": "image_multi_label"}.get(target, "image_classification")

    def info(self) -> dict:
        return {**super().info(), "classes": _classes(self.learn.dls)}

    def predict_batch(self, items: list[ImageItem]) -> list:
        return [self.learn.dls.decode_pred(p) for p in self._preds(items)]

    def respond(self, item: ImageItem, result) -> dict:
        label, index, probs = result
        classes = _classes(self.learn.dls)
        if self.kind == "image_regression":
            return {"prediction": label, "value": label}
        probabilities = dict(zip(classes, probs.tolist()))
        if self.kind == "image_multi_label":
            return {"prediction": label, "labels": label, "probabilities": probabilities, "threshold": 0.5}
        return {"prediction": label, "index": index, "probabilities": probabilities}


def _classes(dls) -> list:
    vocab = getattr(dls, "vocab", None)
    return [str(c) for c in vocab] if vocab is not None else []


class PointsHandler(_ImageHandler):
    """Keypoints, in the uploaded image's pixels (`learn.predict`), drawn on it."""

    keep_image = True
    kind = "keypoints"

    def info(self) -> dict:
        return {**super().info(), "n_points": int(self.learn.image_dls.n_points)}

    def predict_batch(self, items: list[ImageItem]) -> list:
        dls = self.learn.image_dls
        return [dls.target.predict(p, item.path, dls.item_tfm) for item, p in zip(items, self._preds(items))]

    def respond(self, item: ImageItem, result) -> dict:
        points, _ = result
        return {"prediction": points.tolist(), "points": points.tolist(), "image": points_url(item.image, points)}


class SegmentationHandler(_ImageHandler):
    """A mask of class indices at the image's size (`learn.predict`), and the image with it overlaid."""

    keep_image = True
    kind = "segmentation"

    def info(self) -> dict:
        return {**super().info(), "classes": [str(c) for c in self.learn.dls.codes]}

    def predict_batch(self, items: list[ImageItem]) -> list:
        return list(self.learn.predict_many([i.path for i in items], bs=len(items)))

    def respond(self, item: ImageItem, result) -> dict:
        mask, _ = result
        codes = [str(c) for c in self.learn.dls.codes]
        counts = torch.bincount(mask.flatten(), minlength=len(codes)).tolist()
        share = {c: n / mask.numel() for c, n in zip(codes, counts)}
        mask_png, overlay = mask_urls(item.image, mask, len(codes))
        return {"prediction": max(share, key=share.get), "shares": share, "mask": mask_png, "image": overlay}


class ImageToImageHandler(_ImageHandler):
    """The generated image (`learn.predict` of image-to-image data: `ImageTarget.predict`), as a PNG."""

    kind = "image_to_image"

    def predict_batch(self, items: list[ImageItem]) -> list:
        """Images of one size go through the model together (the output is at the input's scale)."""
        dls = self.learn.dls
        groups: dict[tuple[int, int], list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(item.size, []).append(i)
        out: list = [None] * len(items)
        for idx in groups.values():
            paths = [items[i].path for i in idx]
            preds, _ = self.learn.get_preds(dl=dls.test_dl(paths, bs=len(paths)), progress=False)
            for i, p in zip(idx, preds):
                out[i] = dls.decode_pred(p)
        return out

    def respond(self, item: ImageItem, result: torch.Tensor) -> dict:
        size = [int(result.shape[-1]), int(result.shape[-2])]
        return {"prediction": "image", "size": size, "image": image_url(result)}


class GANHandler(Handler):
    """An image drawn from noise: `{"seed": 3}` is the noise `torch.randn(z_dim)` of that seed, and the
    answer is `learn.predict(that noise)`; without a seed, a random one is drawn (and returned)."""

    input = "seed"
    kind = "gan"
    example = '{"seed": 3}'

    def info(self) -> dict:
        return {"input": {"type": "seed", "field": "seed", "z_dim": int(self.learn.z_dim)}}

    def parse(self, req: RequestInput) -> int:
        body = req.json or {}
        seed = body.get("seed")
        if seed is None or seed == "":
            return int(torch.randint(0, 2**31 - 1, ()).item())
        x = number(seed, "'seed'")
        if x != int(x) or not 0 <= x < 2**63:
            raise BadInput(422, f"'seed' must be a whole number from 0 to 2**63 - 1, got {seed!r}")
        return int(x)

    def noise(self, seed: int) -> torch.Tensor:
        return torch.randn(1, self.learn.z_dim, generator=torch.Generator().manual_seed(seed))[0]

    def predict_batch(self, items: list[int]) -> list:
        z = torch.stack([self.noise(s) for s in items])
        return list(self.learn.generate(z=z))

    def respond(self, item: int, result: torch.Tensor) -> dict:
        return {"prediction": "image", "seed": item, "image": image_url(result)}


HANDLERS = {
    "images": ImagesHandler,
    "points": PointsHandler,
    "segmentation": SegmentationHandler,
    "image_to_image": ImageToImageHandler,
    "gan": GANHandler,
}
