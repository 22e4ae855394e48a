"""Small images (CIFAR-10 and the like) decoded once into one uint8 tensor, augmented per batch on the device.

    from quickfit.vision import ImageDataLoaders
    dls = ImageDataLoaders.from_folder("cifar10", valid="test", small=True)    # a SmallImageDataLoaders
    dls.train.images.shape        # torch.Size([50000, 3, 32, 32]) uint8: 150 MB, each file decoded once
    x, y = next(iter(dls.train))  # float [512, 3, 32, 32]: reflect-pad 4, random 32 px crop, flip, normalized
    dls24 = dls.new(size=24)      # the same pixels resized once to 24 px (progressive resizing), no decoding

For 50,000 JPEGs of 1 KB, decoding is a few milliseconds of work per batch but, per epoch, more than a
small network's step on a GPU; so every file is decoded once (threads: Pillow releases the GIL while
decoding) into `[N, 3, H, W]` uint8 (4x smaller than float). An epoch is then one permutation and
gathers: the augmentation (`PadCropFlip`: reflection padding, a random crop per image with its
horizontal flip folded into the same gather index, optional cutout) and the normalization with the
training images' own per-channel statistics run on the whole batch where the tensors live
(`dls.to("cuda")` moves the 150 MB once). Images larger than `size` are resized to it once (antialiased).

The loaders are `TensorBatches` (shuffle, `drop_last`, `shard(rank, world_size)` for torchrun) whose
batches are transformed; `test_dl(files)` decodes new files the same way, and `export_info()` is an
`ImageDataLoaders` record (Resize to the size, the statistics), so `load_learner` predicts from files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from quickfit.data.batches import TensorBatches
from quickfit.data.core import random_split
from quickfit.vision.classification.targets import Category
from quickfit.vision.core.augment import Normalize
from quickfit.vision.core.labels import class_folder_labels, labels_to_targets, subfolders
from quickfit.vision.core.transforms import Resize

__all__ = [
    "SMALL_IMAGE_MAX_SIDE",
    "PadCropFlip",
    "SmallImageBatches",
    "SmallImageDataLoaders",
    "decode_images",
    "channel_stats",
    "is_small_image",
]

SMALL_IMAGE_MAX_SIDE = 64  # up to 64 x 64 px, a whole data set decoded fits in memory (CIFAR: 150 MB)


def is_small_image(path: str | Path) -> bool:
    "Whether an image's sides are both at most SMALL_IMAGE_MAX_SIDE (reads the header only)."
    with Image.open(path) as im:
        return max(im.size) <= SMALL_IMAGE_MAX_SIDE


def _decode_one(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size, size):  # squish to a square once; CIFAR-like sets are square already
            im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
        return np.asarray(im).transpose(2, 0, 1)


def decode_images(paths: Sequence[Path], size: int, threads: int | None = None) -> torch.Tensor:
    """`[len(paths), 3, size, size]` uint8, each file decoded once, in threads."""
    out = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    arr = out.numpy()

    def work(i: int) -> None:
        arr[i] = _decode_one(paths[i], size)

    with ThreadPoolExecutor(threads or min(8, max(1, len(paths) // 256 + 1))) as pool:
        list(pool.map(work, range(len(paths)), chunksize=256))
    return out


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images as [0, 1] pixels (in float64, chunk by chunk)."""
    s = torch.zeros(images.shape[1], dtype=torch.float64)
    s2 = torch.zeros_like(s)
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].to(torch.float64) / 255
        s += x.sum((0, 2, 3))
        s2 += (x * x).sum((0, 2, 3))
    n = images.numel() / images.shape[1]
    mean = s / n
    std = (s2 / n - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def resize_images(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 images resized to `size` x `size` (antialiased bilinear), once."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    parts = []
    for i in range(0, len(images), chunk):
        x = F.interpolate(images[i : i + chunk].float(), size=(size, size), mode="bilinear", antialias=True)
        parts.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(parts) if parts else images.new_empty(0, images.shape[1], size, size)


class PadCropFlip:
    """The standard small-image augmentation of a uint8 batch: reflection padding `pad`, a random crop
    of the original size, a horizontal flip with probability 1/2; `cutout` > 0 zeroes a random
    `cutout` x `cutout` square of each normalized image (DeVries & Taylor 2017; 0 is the mean pixel).

    `draw(b, device)` gives the random offsets and flips; `apply(x, oy, ox, flip)` uses them: the
    crop and the flip are one gather."""

    def __init__(self, pad: int = 4, flip: bool = True, cutout: int = 0) -> None:
        if pad < 0 or cutout < 0:
            raise ValueError(f"PadCropFlip: pad and cutout must be >= 0, got pad={pad}, cutout={cutout}")
        self.pad, self.flip, self.cutout = int(pad), bool(flip), int(cutout)

    def draw(self, b: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        oy = torch.randint(0, 2 * self.pad + 1, (b,), device=device)
        ox = torch.randint(0, 2 * self.pad + 1, (b,), device=device)
        flip = torch.rand(b, device=device) < 0.5 if self.flip else torch.zeros(b, dtype=torch.bool, device=device)
        return oy, ox, flip

    def apply(self, x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.pad
        # reflection padding is defined for float tensors; for a uint8 batch pad its float copy
        xp = F.pad(x.float(), (p, p, p, p), mode="reflect").to(x.dtype) if p else x
        dev = x.device
        rows = oy[:, None] + torch.arange(h, device=dev)  # [b, h]
        cols = ox[:, None] + torch.arange(w, device=dev)  # [b, w]
        cols = torch.where(flip[:, None], cols.flip(1), cols)
        bi = torch.arange(b, device=dev)[:, None, None, None]
        ci = torch.arange(c, device=dev)[None, :, None, None]
        return xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]

    def cutout_mask(self, x: torch.Tensor) -> torch.Tensor:
        """A [b, 1, h, w] mask, 0 inside each image's square (centre anywhere, clipped at the border)."""
        b, _, h, w = x.shape
        cy = torch.randint(0, h, (b, 1, 1), device=x.device)
        cx = torch.randint(0, w, (b, 1, 1), device=x.device)
        ys = torch.arange(h, device=x.device)[None, :, None]
        xs = torch.arange(w, device=x.device)[None, None, :]
        y0, x0 = cy - self.cutout // 2, cx - self.cutout // 2
        inside = (ys >= y0) & (ys < y0 + self.cutout) & (xs >= x0) & (xs < x0 + self.cutout)
        return (~inside)[:, None].to(x.dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, *self.draw(x.shape[0], x.device))

    def to_dict(self) -> dict:
        return {"pad": self.pad, "flip": self.flip, "cutout": self.cutout}

    def __repr__(self) -> str:
        return f"PadCropFlip(pad={self.pad}, flip={self.flip}, cutout={self.cutout})"


class SmallImageBatches(TensorBatches):
    """Batches `(x, y)` (or `(x,)`) of in-memory uint8 images: augmented when `augment` is given,
    converted to float and normalized where the images are (`to(device)`), channels_last."""

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor | None,
        normalize: Normalize,
        bs: int = 512,
        shuffle: bool = False,
        drop_last: bool = False,
        augment: PadCropFlip | None = None,
    ) -> None:
        tensors = (images,) if targets is None else (images, targets)
        super().__init__(*tensors, bs=bs, shuffle=shuffle, drop_last=drop_last)
        self.normalize, self.augment = normalize, augment

    @property
    def images(self) -> torch.Tensor:
        return self.tensors[0]

    def raw_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        "(uint8 x, y or None) per batch, before any transform (what TTA builds its views from)."
        for batch in super().__iter__():
            yield batch[0], (batch[1] if len(batch) > 1 else None)

    def transform(self, xb: torch.Tensor, augment: bool = False) -> torch.Tensor:
        "A uint8 batch as the model sees it: augmented (when `augment` and the loader has one), float, normalized."
        aug = self.augment if augment else None
        if aug is not None:
            xb = aug(xb)
        x = self.normalize(xb.float().div_(255))
        if aug is not None and aug.cutout:
            x = x * aug.cutout_mask(x)
        return x.contiguous(memory_format=torch.channels_last)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for batch in super().__iter__():
            yield (self.transform(batch[0], augment=True), *batch[1:])

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, {tuple(self.images.shape[1:])} uint8, augment={self.augment})"


class SmallImageDataLoaders:
    """Training and validation `SmallImageBatches` over images decoded once; `vocab`, `c`, `loss_func`,
    `test_dl`, `decode_pred`, `export_info` as `ImageDataLoaders` has them. Build with `from_folder`
    (or `from_tensors`); `new(size=24)` for progressive resizing."""

    onnx_input_names = ("image",)
    n_inp = 1
    target_kind = "category"

    @property
    def target(self) -> Category:
        """The targets' kind: one class per image."""
        return Category(vocab=self.vocab)

    def __init__(
        self,
        train_images: torch.Tensor,
        train_targets: torch.Tensor,
        valid_images: torch.Tensor | None,
        valid_targets: torch.Tensor | None,
        vocab: list[str],
        bs: int = 512,
        augment: PadCropFlip | None = None,
        stats: tuple[Sequence[float], Sequence[float]] | None = None,
        path: str | Path = ".",
        device: torch.device | str | None = None,
    ) -> None:
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise ValueError(f"SmallImageDataLoaders: bs must be a positive whole number, got {bs!r}")
        self.vocab, self.bs, self.path = list(vocab), bs, Path(path)
        self.augment = PadCropFlip() if augment is None else augment
        self.stats = channel_stats(train_images) if stats is None else (tuple(stats[0]), tuple(stats[1]))
        self.normalize = Normalize(*self.stats)
        self.train = SmallImageBatches(
            train_images, train_targets, self.normalize, bs, shuffle=True, drop_last=True, augment=self.augment
        )
        self.valid = None
        if valid_images is not None:
            self.valid = SmallImageBatches(valid_images, valid_targets, self.normalize, bs * 2)
        self.device = None
        if device is not None:
            self.to(device)

    # ---- what the data is ----------------------------------------------------------------------------
    @property
    def c(self) -> int:
        return len(self.vocab)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.train.images.shape[-2:])

    @property
    def loss_func(self) -> torch.nn.Module:
        return torch.nn.CrossEntropyLoss()

    def to(self, device: torch.device | str) -> SmallImageDataLoaders:
        "Move the images once; batches are then augmented and normalized there."
        self.device = torch.device(device)
        for dl in (self.train, self.valid):
            if dl is not None:
                dl.to(self.device)
        return self

    def set_normalize(self, mean: Sequence[float], std: Sequence[float]) -> SmallImageDataLoaders:
        "Normalize with other statistics (the training images' own are the default)."
        self.stats = (tuple(mean), tuple(std))
        self.normalize = Normalize(mean, std)
        for dl in (self.train, self.valid):
            if dl is not None:
                dl.normalize = self.normalize
        return self

    def __repr__(self) -> str:
        nv = 0 if self.valid is None else self.valid.n
        what = f"{self.train.n} train / {nv} valid images, {self.c} classes"
        return f"SmallImageDataLoaders({what}, size={self.size}, bs={self.bs})"

    # ---- other sizes, other images ---------------------------------------------------------------------
    def new(
        self, size: int | None = None, bs: int | None = None, augment: PadCropFlip | None = None
    ) -> SmallImageDataLoaders:
        """The same images at `size` (resized once, no decoding; the padding scales with the size:
        3 px at 24 px), split, classes and statistics: one phase of progressive resizing."""
        size = self.size[0] if size is None else int(size)
        if augment is None:
            pad = round(self.augment.pad * size / self.size[0])
            augment = PadCropFlip(pad, self.augment.flip, round(self.augment.cutout * size / self.size[0]))
        valid = self.valid
        out = SmallImageDataLoaders(
            resize_images(self.train.images, size),
            self.train.tensors[1],
            None if valid is None else resize_images(valid.images, size),
            None if valid is None else valid.tensors[1],
            self.vocab,
            bs=bs or self.bs,
            augment=augment,
            stats=self.stats,
            path=self.path,
            device=self.device,
        )
        return out

    def test_dl(self, items: Sequence[str | Path | Image.Image], bs: int | None = None) -> SmallImageBatches:
        """Batches `(x,)` of files (or PIL images), decoded and resized like the training images."""
        paths = [Path(i) if not isinstance(i, Image.Image) else i for i in items]
        missing = [p for p in paths if isinstance(p, Path) and not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} test image(s) do not exist: {missing[:5]}")
        size = self.size[0]
        if all(isinstance(p, Path) for p in paths):
            images = decode_images(paths, size)
        else:
            images = torch.stack(
                [
                    torch.from_numpy(np.asarray(p.convert("RGB").resize((size, size))).transpose(2, 0, 1).copy())
                    for p in paths
                ]
            )
        dl = SmallImageBatches(images, None, self.normalize, bs or self.bs * 2)
        return dl.to(self.device) if self.device is not None else dl

    def decode_pred(self, pred: torch.Tensor) -> tuple[str, int, torch.Tensor]:
        pred = pred.detach().cpu()
        idx = int(pred.argmax())
        return self.vocab[idx], idx, pred

    def example_item(self) -> Image.Image:
        h, w = self.size
        return Image.new("RGB", (w, h))

    def export_info(self) -> dict:
        """The record of an `ImageDataLoaders` that squishes files to this size and normalizes with the
        training statistics: `load_learner` rebuilds that one (augmentation is training-only)."""
        h, w = self.size
        return {
            "vocab": self.vocab,
            "target_kind": "category",
            "item_tfm": Resize((h, w), method="squish").to_dict(),
            "batch_tfms": [],
            "normalize": {"mean": list(self.stats[0]), "std": list(self.stats[1])},
            "bs": self.bs,
        }

    # ---- constructors -----------------------------------------------------------------------------------
    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        train: str = "train",
        valid: str = "valid",
        valid_pct: float | None = None,
        seed: int | None = None,
        bs: int = 512,
        size: int | None = None,
        augment: PadCropFlip | None = None,
        limit: int | None = None,
        device: torch.device | str | None = None,
    ) -> SmallImageDataLoaders:
        """`path/train/<class>/` and `path/valid/<class>/` (or a random `valid_pct` of train), every
        file decoded once. `size`: the side the images are made (default: the first image's longer
        side). `limit`: keep an evenly spread `limit` training images (every class keeps its share), for
        quick runs; the validation images stay whole."""
        path = Path(path).absolute()
        if not path.is_dir():
            raise FileNotFoundError(f"image folder {path} does not exist")
        files, labels = class_folder_labels(path, train)
        if valid_pct is not None:
            vi = set(random_split(len(files), valid_pct, seed))
            vfiles, vlabels = [f for i, f in enumerate(files) if i in vi], [x for i, x in enumerate(labels) if i in vi]
            files, labels = (
                [f for i, f in enumerate(files) if i not in vi],
                [x for i, x in enumerate(labels) if i not in vi],
            )
        else:
            if not (path / valid).is_dir():
                raise FileNotFoundError(
                    f"no validation folder {path / valid}; folders in {path}: {subfolders(path)}. "
                    "Pass valid='<its name>' (e.g. valid='test'), or valid_pct=0.2 to split the training images"
                )
            vfiles, vlabels = class_folder_labels(path, valid)
        if limit is not None:
            files, labels = _spread(files, labels, limit)
        targets, vocab, kind = labels_to_targets(
            labels, vlabels, None, f"class folders of {path}", strict=valid_pct is None
        )
        if kind != "category":
            raise ValueError(f"SmallImageDataLoaders: class folders give categories, got {kind}")
        if size is None:
            with Image.open(files[0]) as im:
                size = max(im.size)
        paths = [Path(f) for f in files] + [Path(f) for f in vfiles]
        images = decode_images(paths, int(size))
        n = len(files)
        return cls(images[:n], targets[:n], images[n:], targets[n:], vocab, bs, augment, path=path, device=device)

    @classmethod
    def from_tensors(
        cls,
        train: tuple[torch.Tensor, torch.Tensor],
        valid: tuple[torch.Tensor, torch.Tensor] | None,
        vocab: Sequence[Any],
        bs: int = 512,
        augment: PadCropFlip | None = None,
    ) -> SmallImageDataLoaders:
        "From uint8 images `[N, 3, H, W]` and int64 class indices (generated data, torchvision's arrays)."
        v = (None, None) if valid is None else valid
        return cls(train[0], train[1], v[0], v[1], [str(c) for c in vocab], bs, augment)


def _spread(files: list, labels: list, n: int) -> tuple[list, list]:
    "`n` items taken at even steps (class folders are listed in order: every class keeps its share)."
    if n >= len(files):
        return files, labels
    idx = np.linspace(0, len(files) - 1, n).round().astype(int)
    return [files[i] for i in idx], [labels[i] for i in idx]
