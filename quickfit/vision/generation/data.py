"""Image-to-image data: (input image, target image) pairs, e.g. crappified photos and their originals.

    from quickfit.vision import aug_transforms
    from quickfit.vision.generation.crappify import crappify
    from quickfit.vision.generation.data import ImageToImageDataLoaders

    crappify("photos", "photos_lr", scale=2, draw_text=False)
    dls = ImageToImageDataLoaders.from_folders("photos_lr", "photos", valid_pct=0.2, size=128, bs=8,
                                               batch_tfms=aug_transforms(max_lighting=0.2))
    x, y = next(iter(dls.train))        # x: [8, 3, 128, 128] (bicubic-upsampled input), y: [8, 3, 128, 128] in [0, 1]

Pairs are matched by relative path without the suffix (`a/b.png` in the targets with `a/b.jpg` in the
inputs). The target is `scale` times the input's size (found from the first pair, checked on all).
Training items are random `size` crops of the target and the matching `size / scale` crop of the input
(the same region, pixel-exact); validation items are center crops. On the device the input is upsampled
to the target's size (bicubic: what super-resolution must beat), then input and target get the identical
spatial augmentation (the same sampling matrix and grid), the input alone the lighting change and the
normalization (targets stay in [0, 1], which is what the generator predicts). `predict` on a learner of
this data takes an image of any size and returns `scale` times its size.

It is image classification's pipeline: `ImageLoader`s (quickfit/vision/core/loader.py) over `PairDataset`s
(dataset.py), with the `PairCrop` item transform and `Upsample` first among the batch transforms
(transforms.py); the pairs are found by pairs.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from quickfit.data.core import DataLoaders
from quickfit.vision.core.augment import AffineWarp, BatchTransform, Lighting, Normalize
from quickfit.vision.core.image import get_image_files
from quickfit.vision.core.loader import ImageDataset, ImageItems, ImageLoader
from quickfit.vision.generation.dataset import PairDataset
from quickfit.vision.generation.pairs import PairMismatchError, first_few, match_folders, pair_scale
from quickfit.vision.generation.target import ImageTarget
from quickfit.vision.generation.transforms import IMAGE_TARGET, PairCrop, Upsample, WholeImage

__all__ = ["ImageToImageDataLoaders", "PairMismatchError", "image2image_dls_from_export"]


def _upsampling(scale: int, upsample: bool) -> list[BatchTransform]:
    """The batch transforms that run before any augmentation: the input brought to its target's size."""
    return [Upsample(scale)] if upsample and scale != 1 else []


def _loading(size, bs, scale, batch_tfms, upsample, num_workers, device, cache) -> dict:
    """The loader arguments every `from_*` constructor passes on to the constructor."""
    return dict(size=size, bs=bs, scale=scale, batch_tfms=batch_tfms, upsample=upsample, num_workers=num_workers,
                device=device, cache=cache)  # fmt: skip


def _test_loader(dls, items: Sequence[str | Path | Image.Image], bs: int) -> ImageLoader:
    """Whole input images (any size), upsampled and normalized as in training: what `test_dl` returns."""
    paths = [i if isinstance(i, Image.Image) else Path(i) for i in items]
    ds = ImageDataset(ImageItems(paths, None), WholeImage(), train=False, skip_bad=False)
    return ImageLoader(ds, bs=bs, num_workers=dls.num_workers, batch_tfms=_upsampling(dls.scale, dls.upsample),
                       normalize=dls.normalize, device=dls.device)  # fmt: skip


class ImageToImageDataLoaders(DataLoaders):
    """Training and validation `ImageLoader`s of `PairDataset`s, the loader of image classification (its
    workers, decode cache and DDP sharding); see the module docstring and the `from_*` constructors.

    `cache=True` keeps every pair decoded in shared memory after its first read (3 bytes a pixel: the
    398 hymenoptera photos and their half-size inputs take about 280 MB; bounded by
    `quickfit.vision.core.cache.default_cache_bytes()`), so each later epoch only crops: for a small set of
    photos trained for many epochs, decoding would otherwise cost as much as the model. With it the
    loaders use no worker processes unless `num_workers` says so (the workers then share the one cache)."""

    onnx_input_names = ("image",)
    target: ImageTarget = IMAGE_TARGET  # what a batch's `y` is: `VisionLearner` predicts and shows by it

    def __init__(
        self,
        train_pairs: list[tuple[Path, Path]],
        valid_pairs: list[tuple[Path, Path]],
        size: int = 128,
        bs: int = 16,
        scale: int | None = None,
        batch_tfms: Sequence | None = None,
        upsample: bool = True,
        num_workers: int | None = None,
        device: torch.device | str | None = None,
        cache: bool = False,
    ) -> None:
        if not train_pairs:
            raise ValueError("ImageToImageDataLoaders: no training pairs")
        self.scale = pair_scale(list(train_pairs) + list(valid_pairs), scale)
        item_tfm = PairCrop(size, self.scale)
        self.size, self.bs, self.upsample = size, bs, upsample
        self.batch_tfms = [t for t in (batch_tfms or []) if not isinstance(t, Normalize)]
        for t in self.batch_tfms:
            if not isinstance(t, (AffineWarp, Lighting)):
                raise TypeError(
                    f"image-to-image batch_tfms may be AffineWarp (moves input and target alike) and Lighting "
                    f"(input only); got {t!r}. Normalization is set with dls.set_normalize(mean, std)"
                )
        norm = next((t for t in (batch_tfms or []) if isinstance(t, Normalize)), None)
        if num_workers is None:  # decoded images in memory: cropping them costs less than starting workers
            num_workers = 0 if cache else min(4, len(os.sched_getaffinity(0)))
        self.num_workers = num_workers
        tfms = [*_upsampling(self.scale, upsample), *self.batch_tfms]

        def loader(pairs: Sequence[tuple[Path, Path]], train: bool) -> ImageLoader:
            ds = PairDataset(list(pairs), item_tfm, train, cache=cache)
            # a cached data set keeps its workers from epoch to epoch: they are started once
            drop = train and len(ds) >= bs  # BatchNorm dislikes a last batch of 1
            return ImageLoader(ds, bs, shuffle=train, drop_last=drop, num_workers=num_workers, batch_tfms=tfms,
                               normalize=norm, augment=train, persistent=cache, device=device)  # fmt: skip

        super().__init__(loader(train_pairs, True), loader(valid_pairs, False) if valid_pairs else None, device=device)

    @property
    def normalize(self) -> Normalize | None:
        return self.train.normalize

    def set_normalize(self, mean: Sequence[float], std: Sequence[float]) -> ImageToImageDataLoaders:
        """Normalize the inputs (only) with these statistics (`unet_learner` sets its encoder's)."""
        norm = Normalize(mean, std)
        for dl in (self.train, self.valid):
            if dl is not None:
                dl.normalize = norm
        return self

    def test_dl(self, items: Sequence[str | Path | Image.Image], bs: int = 1) -> ImageLoader:
        """Whole input images (any size; one per batch unless they share a size), as the model sees them."""
        return _test_loader(self, items, bs)

    def decode_pred(self, pred: torch.Tensor) -> torch.Tensor:
        """A generated image: [3, H, W] floats in [0, 1]."""
        return self.target.predict(pred, None, None)

    def export_info(self) -> dict:
        norm = self.normalize
        return {
            "kind": "image2image",
            "scale": self.scale,
            "size": self.size,
            "upsample": self.upsample,
            "normalize": None if norm is None else [list(norm.mean), list(norm.std)],
        }

    def show_batch(self, max_n: int = 4, split: str = "train", path: str | Path | None = None) -> torch.Tensor:
        """Rows of input / target from one batch, as a [3, H, W] grid (saved as a PNG at `path` when given,
        its columns named)."""
        x, y = next(iter(self.train if split == "train" else self.valid))
        return self.target.show(self, x[:max_n], y[:max_n], path=path)

    def __repr__(self) -> str:
        n_valid = 0 if self.valid is None else len(self.valid.dataset)
        return (
            f"ImageToImageDataLoaders({len(self.train.dataset)} train / {n_valid} valid pairs, "
            f"size={self.size}, scale={self.scale})"
        )

    # ---- constructors -------------------------------------------------------------------------
    @classmethod
    def from_pairs(
        cls,
        pairs: Sequence[tuple[str | Path, str | Path]],
        valid_pct: float = 0.2,
        seed: int | None = None,
        valid_pairs: Sequence[tuple[str | Path, str | Path]] | None = None,
        size: int = 128,
        bs: int = 16,
        scale: int | None = None,
        batch_tfms: Sequence | None = None,
        upsample: bool = True,
        num_workers: int | None = None,
        device: torch.device | str | None = None,
        cache: bool = False,
    ) -> ImageToImageDataLoaders:
        """(input file, target file) pairs; a random `valid_pct` held out (`seed` fixes it; None, as in
        every application, draws a new split) unless `valid_pairs` are given. The other arguments are
        the constructor's."""
        pairs = [(Path(a), Path(b)) for a, b in pairs]
        missing = [str(p) for pair in pairs for p in pair if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} image files of the pairs do not exist: {first_few(missing)}")
        kw = _loading(size, bs, scale, batch_tfms, upsample, num_workers, device, cache)
        if valid_pairs is not None:
            return cls(pairs, [(Path(a), Path(b)) for a, b in valid_pairs], **kw)
        if not 0 <= valid_pct < 1:
            raise ValueError(f"valid_pct must be in [0, 1), got {valid_pct!r}")
        order = np.random.default_rng(seed).permutation(len(pairs))
        n_valid = int(round(len(pairs) * valid_pct))
        valid = [pairs[i] for i in sorted(order[:n_valid])]
        train = [pairs[i] for i in sorted(order[n_valid:])]
        return cls(train, valid, **kw)

    @classmethod
    def from_folders(
        cls,
        inputs: str | Path,
        targets: str | Path,
        valid_pct: float = 0.2,
        valid: tuple[str | Path, str | Path] | None = None,
        size: int = 128,
        bs: int = 16,
        batch_tfms: Sequence | None = None,
        scale: int | None = None,
        seed: int | None = None,
        upsample: bool = True,
        num_workers: int | None = None,
        device: torch.device | str | None = None,
        cache: bool = False,
    ) -> ImageToImageDataLoaders:
        """Pairs from two folders with the same relative paths (suffixes may differ). `valid`: the
        (inputs, targets) folders of the validation set; otherwise a random `valid_pct` (with `seed`)."""
        inputs, targets = Path(inputs), Path(targets)
        for name, p in (("inputs", inputs), ("targets", targets)):
            if not p.is_dir():
                raise FileNotFoundError(f"{name} folder {p} does not exist")
        pairs = match_folders(inputs, targets)
        vpairs = match_folders(Path(valid[0]), Path(valid[1])) if valid is not None else None
        loading = _loading(size, bs, scale, batch_tfms, upsample, num_workers, device, cache)
        return cls.from_pairs(pairs, valid_pct, seed, vpairs, **loading)

    @classmethod
    def from_func(
        cls,
        inputs: str | Path | Sequence[str | Path],
        target_func: Callable[[Path], str | Path],
        valid_pct: float = 0.2,
        size: int = 128,
        bs: int = 16,
        batch_tfms: Sequence | None = None,
        scale: int | None = None,
        seed: int | None = None,
        upsample: bool = True,
        num_workers: int | None = None,
        device: torch.device | str | None = None,
        cache: bool = False,
    ) -> ImageToImageDataLoaders:
        """Inputs (a folder or a list of files) and `target_func(input path) -> target path`."""
        files = get_image_files(inputs) if isinstance(inputs, (str, Path)) else [Path(f) for f in inputs]
        pairs = [(f, Path(target_func(f))) for f in files]
        missing = [f"{a.name} -> {b}" for a, b in pairs if not b.is_file()]
        if missing:
            raise PairMismatchError(f"target_func names {len(missing)} targets that do not exist: {first_few(missing)}")
        loading = _loading(size, bs, scale, batch_tfms, upsample, num_workers, device, cache)
        return cls.from_pairs(pairs, valid_pct, seed, None, **loading)


class _ExportedData(DataLoaders):
    """What a loaded image-to-image export needs: `test_dl` and `decode_pred`, no training files."""

    def __init__(self, info: dict) -> None:
        super().__init__([], None)
        self.scale, self.size, self.upsample = int(info["scale"]), int(info.get("size", 128)), bool(info["upsample"])
        norm = info.get("normalize")
        self._normalize = None if norm is None else Normalize(norm[0], norm[1])
        self.num_workers = 0  # predictions of a few images: starting worker processes would cost more

    @property
    def normalize(self) -> Normalize | None:
        return self._normalize

    def set_normalize(self, mean: Sequence[float], std: Sequence[float]) -> _ExportedData:
        self._normalize = Normalize(mean, std)
        return self

    def example_item(self) -> Image.Image:
        """A blank input image (what `export_onnx` traces: a loaded export has no images)."""
        side = self.size // self.scale if not self.upsample else self.size
        return Image.new("RGB", (side, side))

    onnx_input_names = ImageToImageDataLoaders.onnx_input_names
    target = ImageToImageDataLoaders.target
    test_dl = ImageToImageDataLoaders.test_dl
    decode_pred = ImageToImageDataLoaders.decode_pred
    export_info = ImageToImageDataLoaders.export_info


def image2image_dls_from_export(info: dict) -> DataLoaders:
    """The data side of an exported image-to-image learner (see `ImageToImageDataLoaders.export_info`)."""
    if info.get("kind") != "image2image":
        raise ValueError(f"not image-to-image data: kind {info.get('kind')!r}")
    return _ExportedData(info)
