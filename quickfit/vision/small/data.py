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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from quickfit.data.batches import TensorBatches
from quickfit.data.core import random_split
from quickfit.vision.classification.targets import Category
from quickfit.vision.core.augment import Normalize
from quickfit.vision.core.labels import class_folder_labels, labels_to_targets, subfolders
from quickfit.vision.core.transforms import Resize
from quickfit.vision.small.images import (
    SMALL_IMAGE_MAX_SIDE,
    PadCropFlip,
    channel_stats,
    decode_images,
    is_small_image,
    resize_images,
)

__all__ = [
    "SMALL_IMAGE_MAX_SIDE",
    "PadCropFlip",
    "SmallImageBatches",
    "SmallImageDataLoaders",
    "decode_images",
    "channel_stats",
    "is_small_image",
]


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
