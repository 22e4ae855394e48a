"""Loading images with Pillow: fast, upright, always RGB.

A photo is opened lazily (only its header is read), so the item transform can plan its crop from the
size and ask for a JPEG *draft*: libjpeg then decodes at 1/2, 1/4 or 1/8 scale, which makes a 3000px
photo decode almost as fast as a thumbnail when the model only needs 224px. EXIF orientation is
applied, and grayscale / palette / RGBA / CMYK / 16-bit images all come out as 8-bit RGB.

    from quickfit.vision.core.image import get_image_files, load_image, verify_images

    files = get_image_files("data/hymenoptera/train")
    img = load_image(files[0], min_size=(224, 224))   # RGB PIL image, at least 224x224 if the source was
    bad = verify_images("data/hymenoptera")           # files that do not decode, to delete up front
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "IMAGE_EXTENSIONS",
    "get_image_files",
    "open_image",
    "SourceImage",
    "ImageLoadError",
    "oriented_size",
    "decode_rgb",
    "load_image",
    "verify_images",
    "LOAD_ERRORS",
]

# Every extension Pillow can open (jpg, png, gif, bmp, webp, tif, ...), lower-case with the dot.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN
)

# What a broken file raises somewhere between open and decode: OSError for truncated data or an
# unidentified format, SyntaxError / ValueError / struct errors from some plugins' header parsers.
LOAD_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
)


class ImageLoadError(OSError, RuntimeError):
    """An image that does not open or decode; the message names the file. An `OSError` (so code catching
    `LOAD_ERRORS` catches it) and a `RuntimeError` (what it was before it named files)."""


def _name(src: object) -> str:
    return str(src) if isinstance(src, (str, Path)) else type(src).__name__


def _load_error(src: object, e: BaseException) -> ImageLoadError:
    if isinstance(e, ImageLoadError):
        return e
    return ImageLoadError(f"cannot load image {_name(src)}: {type(e).__name__}: {e}")


# EXIF orientations 5-8 swap width and height.
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}


def get_image_files(path: str | Path, recurse: bool = True, folders: Iterable[str] | None = None) -> list[Path]:
    """The image files under `path` (by extension), sorted; hidden files and folders are skipped.

    `folders` limits the search to those sub-folders of `path`.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"image folder {path} does not exist")
    roots = [path / f for f in folders] if folders is not None else [path]
    files: list[Path] = []
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist")
        walker = os.walk(root) if recurse else [(str(root), [], os.listdir(root))]
        for dirpath, dirnames, filenames in walker:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # prune hidden folders in place
            for name in filenames:
                if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                    files.append(Path(dirpath) / name)
    return sorted(files)


def open_image(src: str | Path | Image.Image) -> Image.Image:
    """Open lazily: reads only the header, so `size` is known before any pixel is decoded.

    Raises `ImageLoadError` naming the file when it is not an image Pillow can open."""
    if isinstance(src, Image.Image):
        return src
    try:
        return Image.open(src)
    except LOAD_ERRORS as e:
        raise _load_error(src, e) from e


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except LOAD_ERRORS:  # a corrupt EXIF block should not lose the picture
        return 1


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) as the image will be shown, after its EXIF orientation."""
    w, h = img.size
    return (h, w) if _orientation(img) in _TRANSPOSED_ORIENTATIONS else (w, h)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit grayscale: convert("RGB") would clip everything above 255 to white.
        arr = np.asarray(img, dtype=np.float32)
        top = arr.max()
        arr = arr * (255.0 / top) if top > 255 else arr
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    if (img.mode == "P" and "transparency" in img.info) or img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        # Transparent pixels go on white: their hidden colour is often black or garbage.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def decode_rgb(img: Image.Image, min_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode a lazily opened image to an upright RGB image.

    With `min_size` (width, height, in upright orientation) a JPEG is decoded at the smallest 1/2, 1/4
    or 1/8 scale that still covers it: most of the decode cost of a big photo is saved.
    Raises what Pillow raises for a broken file (see `LOAD_ERRORS`).
    """
    orientation = _orientation(img)
    if min_size is not None and img.format == "JPEG":
        req = tuple(max(1, int(s)) for s in min_size)
        if orientation in _TRANSPOSED_ORIENTATIONS:
            req = (req[1], req[0])
        img.draft(img.mode, req)  # the mode argument only matters for L / YCbCr requests
    img.load()
    if orientation != 1:
        img = ImageOps.exif_transpose(img)
    return _to_rgb(img)


def load_image(src: str | Path | Image.Image, min_size: tuple[int, int] | None = None) -> Image.Image:
    """Open and decode `src` (a path or a PIL image) to an upright RGB PIL image.

    `min_size` allows JPEG draft decoding to at least that (width, height). A file that does not
    decode raises `ImageLoadError` naming it.
    """
    with SourceImage(src) as img:
        return img.decode(min_size)


class SourceImage:
    """The one place images are opened: a file (or PIL image) whose upright `size` is known from its
    header before any pixel is decoded; `decode(min_size)` then decodes it to upright RGB, at the
    smallest JPEG draft scale that still covers `min_size`. Errors name the file (`ImageLoadError`).

        with SourceImage("photo.jpg") as src:
            w, h = src.size                       # from the header
            img = src.decode((w // 4, h // 4))    # a 1/2 or 1/4 scale decode of a big JPEG

    The loaders' decode cache (`quickfit.vision.core.cache`) hands out objects with the same two members."""

    def __init__(self, src: str | Path | Image.Image) -> None:
        self.src, self._img = src, open_image(src)
        try:
            self.size: tuple[int, int] = oriented_size(self._img)
        except LOAD_ERRORS as e:
            self.close()
            raise _load_error(src, e) from e

    def decode(self, min_size: tuple[int, int] | None = None) -> Image.Image:
        """Upright RGB pixels (a new image, independent of the file)."""
        try:
            if isinstance(self.src, Image.Image):
                img = self.src
                return _to_rgb(ImageOps.exif_transpose(img) if _orientation(img) != 1 else img)
            out = decode_rgb(self._img, min_size)
            # decode_rgb may return the opened image itself when it is RGB: detach it from the file.
            return out.copy() if out is self._img else out
        except LOAD_ERRORS as e:
            raise _load_error(self.src, e) from e

    def pixels(self, min_size: tuple[int, int] | None = None) -> np.ndarray:
        """`decode(min_size)` as a read-only uint8 array [H, W, 3]: one copy out of Pillow's memory, where
        `decode` makes two for an RGB JPEG (0.4 ms each for a 500x375 photo)."""
        try:
            img = self.decode() if isinstance(self.src, Image.Image) else decode_rgb(self._img, min_size)
            return np.asarray(img)  # holds its own bytes: the file may close
        except LOAD_ERRORS as e:
            raise _load_error(self.src, e) from e

    def close(self) -> None:
        if self._img is not self.src:
            self._img.close()

    def __enter__(self) -> SourceImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fails_to_load(path: Path) -> bool:
    try:
        # A tiny draft still runs the whole entropy decoder, so truncation is caught cheaply.
        load_image(path, min_size=(32, 32))
        return False
    except LOAD_ERRORS:
        return True


def verify_images(path: str | Path | Iterable[str | Path], num_workers: int | None = None) -> list[Path]:
    """The image files under `path` (a folder, or an iterable of files) that fail to open or decode.

    Decodes every file fully (at draft scale for JPEGs), in threads: Pillow releases the GIL while
    decoding. Delete or fix what it returns before training; during training such files are skipped
    with a warning.
    """
    files = get_image_files(path) if isinstance(path, (str, Path)) else [Path(p) for p in path]
    workers = num_workers or min(len(os.sched_getaffinity(0)), 8)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        failed = list(pool.map(_fails_to_load, files))
    return [f for f, bad in zip(files, failed) if bad]
