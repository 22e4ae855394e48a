"""ImageDataLoaders: from a folder, a CSV, a DataFrame or file names to training-ready batches.

    from quickfit.vision.core.data import ImageDataLoaders
    from quickfit.vision.core.augment import aug_transforms

    dls = ImageDataLoaders.from_folder("data/hymenoptera", valid="val", size=224, batch_tfms=aug_transforms())
    dls.vocab                      # ['ants', 'bees']
    x, y = next(iter(dls.train))   # float [64, 3, 224, 224] augmented + normalized, int64 [64]
    dls.show_batch()

    # the course's dog-breeds layout: train/<id>.jpg and labels.csv with columns id, breed
    dls = ImageDataLoaders.from_csv("data/dogbreeds", "train", "labels.csv", suffix=".jpg", seed=42)

Labels become `dls.vocab` (sorted) and int64 class indices. With `label_delim` a label column holds
several labels per image (multi-hot float targets); a float label column gives regression targets.
Batches are `(x, y)`; training batches use random crops and the `train_only` batch transforms,
validation batches center crops and normalization only. Normalization defaults to ImageNet
statistics; `set_normalize` switches to a model's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch import nn

from quickfit.data.core import DataLoaders, random_split
from quickfit.vision.core.augment import Normalize, batch_tfm_from_dict, imagenet_stats
from quickfit.vision.core.cache import DecodeCache, default_cache_bytes
from quickfit.vision.core.constructors import FromLabels, _first
from quickfit.vision.core.loader import ImageDataset, ImageItems, ImageLoader
from quickfit.vision.core.targets import Target, make_target
from quickfit.vision.core.transforms import ItemTransform, item_tfm_for, item_tfm_from_dict

__all__ = ["ImageDataLoaders", "image_dls_from_export", "random_split"]


class ImageDataLoaders(FromLabels, DataLoaders):
    """Training and validation `ImageLoader`s over labelled images, plus what predicting needs.

    Build it with a `from_*` class method; the constructor takes prepared items and targets.
    """

    onnx_input_names = ("image",)  # what image_onnx_input feeds an ONNX export

    def __init__(
        self,
        train_items: ImageItems,
        valid_items: ImageItems,
        vocab: list[str] | None,
        item_tfms: ItemTransform,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        target: Target | str = "category",
        path: str | Path = ".",
        test_items: Sequence[Path | Image.Image] | None = None,
        device: torch.device | str | None = None,
        cache: bool | int = False,
    ) -> None:
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise ValueError(f"ImageDataLoaders: bs must be a positive whole number (images per batch), got {bs!r}")
        item_tfms = item_tfm_for(item_tfms, None)
        tfms = [batch_tfms] if callable(batch_tfms) else list(batch_tfms or [])
        norms = [t for t in tfms if isinstance(t, Normalize)]
        # Normalization always runs last and is kept apart, so a model can swap in its statistics.
        self.normalize: Normalize = norms[-1] if norms else Normalize.from_stats(imagenet_stats)
        self.batch_tfms = [t for t in tfms if not isinstance(t, Normalize)]
        self.vocab, self.target, self.item_tfm = vocab, make_target(target, vocab), item_tfms
        self.bs, self.num_workers, self.path = bs, num_workers, Path(path)
        self.test_items = list(test_items) if test_items is not None else None
        self.device = None if device is None else torch.device(device)
        if not isinstance(cache, (bool, int)) or (not isinstance(cache, bool) and cache < 1):
            raise ValueError(f"ImageDataLoaders: cache must be True, False or a number of bytes, got {cache!r}")
        self.cache = cache
        train_ds = ImageDataset(
            train_items, item_tfms, train=True, target=self.target, cache=self._decode_cache(train_items)
        )
        train = ImageLoader(
            train_ds,
            bs=bs,
            shuffle=True,
            drop_last=len(train_ds) % bs == 1,  # a batch of one image breaks BatchNorm
            num_workers=num_workers,
            batch_tfms=self.batch_tfms,
            normalize=self.normalize,
            augment=True,
            persistent=True,
            device=device,
        )
        valid = self._loader(valid_items, train=False, augment=False, persistent=True, device=device, cached=True)
        super().__init__(train, valid, n_inp=1, device=device)

    def _loader(
        self,
        items: ImageItems,
        train: bool,
        augment: bool,
        persistent: bool = False,
        skip_bad: bool = True,
        bs: int | None = None,
        device: torch.device | str | None = None,
        cached: bool = False,
    ) -> ImageLoader:
        dc = self._decode_cache(items) if cached else None
        return ImageLoader(
            ImageDataset(items, self.item_tfm, train=train, skip_bad=skip_bad, target=self.target, cache=dc),
            bs=bs or self.bs,
            num_workers=self.num_workers,
            batch_tfms=self.batch_tfms,
            normalize=self.normalize,
            augment=augment,
            persistent=persistent,
            device=device if device is not None else self.device,
        )

    def _decode_cache(self, items: ImageItems) -> DecodeCache | None:
        if self.cache is False or self.cache is None or not items.paths:
            return None
        max_bytes = default_cache_bytes() if self.cache is True else int(self.cache)
        return DecodeCache(items.paths, self.item_tfm.cover_size, max_bytes)

    # ---- what the data is -------------------------------------------------------------------------
    @property
    def c(self) -> int:
        """Number of model outputs: classes, or target columns for regression."""
        if self.vocab is not None:
            return len(self.vocab)
        targets = self.train_items.targets
        return 1 if targets is None or targets.ndim == 1 else int(targets.shape[1])

    @property
    def target_kind(self) -> str:
        """The name of the targets' kind ("category", "multi_category", "float", "mask", ...)."""
        return self.target.kind

    @property
    def loss_func(self) -> nn.Module:
        """The loss that fits the targets (the Learner uses it when given none): the target kind's
        (`target.loss`): cross-entropy for classes, binary cross-entropy on logits for multi-label,
        mean squared error for floats, ..."""
        return self.target.loss(self)

    @property
    def train_items(self) -> ImageItems:
        """(paths, targets) of the training set, in dataset order."""
        return self.train.items

    @property
    def valid_items(self) -> ImageItems:
        return self.valid.items

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the images in a batch."""
        return self.item_tfm.size

    def example_item(self) -> Image.Image:
        """A blank image of the batches' size (what `export_onnx` traces when the data has no images)."""
        h, w = self.size
        return Image.new("RGB", (w, h))

    def __repr__(self) -> str:
        return (
            f"ImageDataLoaders({len(self.train_items.paths)} train / {len(self.valid_items.paths)} valid images, "
            f"{self.c} {'classes' if self.vocab is not None else 'targets'}, size={self.size}, bs={self.bs})"
        )

    # ---- loaders for other uses ----------------------------------------------------------------------
    def test_dl(self, items: Sequence[str | Path | Image.Image] | None = None, bs: int | None = None) -> ImageLoader:
        """Batches `(x,)` of unlabelled images (paths or PIL images; the `test` folder by default),
        with validation processing. A file that does not load raises `ImageLoadError` naming it."""
        if items is None:
            if self.test_items is None:
                raise ValueError("test_dl() needs items: this ImageDataLoaders was built without a test folder")
            items = self.test_items
        paths = [i if isinstance(i, Image.Image) else Path(i) for i in items]
        missing = [p for p in paths if isinstance(p, Path) and not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} test image(s) do not exist: {_first(missing)}")
        return self._loader(ImageItems(paths, None), train=False, augment=False, skip_bad=False, bs=bs)

    def plain_dl(self, items: ImageItems | None = None, bs: int | None = None) -> ImageLoader:
        """Batches `(x, y)` over `items` (the training set by default) in a fixed order, with
        center crops and no augmentation: for precomputing activations."""
        return self._loader(self.train_items if items is None else items, train=False, augment=False, bs=bs)

    def augmented(self, dl: ImageLoader | None = None) -> ImageLoader:
        """`dl` (the validation loader by default) in the same order, with the training crops and
        batch augmentation: one pass is one set of test-time-augmented predictions."""
        dl = self.valid if dl is None else dl
        return dl.replace(train=True, augment=True, shuffle=False)

    def set_normalize(self, mean: Sequence[float], std: Sequence[float]) -> ImageDataLoaders:
        """Normalize with a model's statistics, e.g. (0.5,)*3 / (0.5,)*3 for EfficientNet-Lite."""
        self.normalize = Normalize(mean, std)
        for dl in (self.train, self.valid):
            dl.normalize = self.normalize
        return self

    def new(
        self,
        size: int | tuple[int, int] | None = None,
        bs: int | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
    ) -> ImageDataLoaders:
        """The same images, split and vocab with other settings, e.g. `dls.new(size=299)` for
        progressive resizing (the item transform keeps its kind and gets the new size)."""
        if item_tfms is None:
            item_tfms = self.item_tfm.resized(size) if size is not None else self.item_tfm
        item_tfms = item_tfm_for(item_tfms, size)
        dls = type(self)(
            self.train_items,
            self.valid_items,
            self.vocab,
            item_tfms,
            batch_tfms=[*self.batch_tfms, self.normalize] if batch_tfms is None else batch_tfms,
            bs=bs or self.bs,
            num_workers=self.num_workers,
            target=self.target,
            path=self.path,
            test_items=self.test_items,
            device=self.device,
            cache=self.cache,
        )
        if batch_tfms is None or not any(isinstance(t, Normalize) for t in batch_tfms):
            dls.set_normalize(self.normalize.mean, self.normalize.std)
        return dls

    # ---- predictions ---------------------------------------------------------------------------------
    def decode_pred(self, pred: torch.Tensor, thresh: float = 0.5) -> tuple[Any, Any, torch.Tensor]:
        """One prediction (after the activation) -> (label, index, probabilities).

        Multi-label: (list of labels, bool mask, probabilities) with `thresh`; regression:
        (value or list of values, None, raw output)."""
        return self.target.decode(pred, thresh)

    def export_info(self) -> dict:
        """JSON-serializable description of the processing; `image_dls_from_export` rebuilds it."""
        tfms = []
        for t in self.batch_tfms:
            if hasattr(t, "to_dict"):
                tfms.append(t.to_dict())
            elif not getattr(t, "train_only", False):
                raise ValueError(
                    f"cannot export batch transform {t!r}: it runs on every batch but has no to_dict(), "
                    "so a loaded model would see differently processed images"
                )
        return {
            "vocab": self.vocab,
            "target_kind": self.target.kind,
            "item_tfm": self.item_tfm.to_dict(),
            "batch_tfms": tfms,
            "normalize": {"mean": list(self.normalize.mean), "std": list(self.normalize.std)},
            "bs": self.bs,
        }

    def one_batch(self, split: Literal["train", "valid"] = "train") -> tuple[torch.Tensor, ...]:
        """One batch `(x, y)` as the model sees it: float images [bs, 3, H, W] (augmented for "train",
        normalized) and targets, on the loaders' device."""
        if split not in ("train", "valid"):
            raise ValueError(f"one_batch: split must be 'train' or 'valid', got {split!r}")
        dl = self.train if split == "train" else self.valid
        if len(dl.dataset) == 0:
            raise ValueError(f"one_batch: the {split} set has no images")
        return next(iter(dl))

    def show_batch(self, max_n: int = 9, split: Literal["train", "valid"] = "train", ncols: int | None = None):
        """A grid of up to `max_n` images of one batch with their targets, drawn by the target's kind
        (`target.show`: labels as titles, masks overlaid, points and boxes drawn); returns the Figure."""
        x, y = self.one_batch(split)
        n = min(max_n, x.shape[0])
        return self.target.show(self, x[:n], y[:n], None, ncols)

    def pred_text(self, pred: torch.Tensor, thresh: float = 0.5) -> str:
        """A prediction (after the activation) as a short caption: "bees 0.98", "chair;tv", "3.14"."""
        return self.target.caption(pred, thresh)

    def _label_text(self, y: torch.Tensor) -> str:
        return self.target.text(y)


def image_dls_from_export(info: dict, device: torch.device | str | None = None) -> ImageDataLoaders:
    """An ImageDataLoaders with no items but the exported processing: it can `test_dl`,
    `decode_pred` and `augmented` (for TTA), as `load_learner` needs."""
    empty = ImageItems([], None)
    batch_tfms = [batch_tfm_from_dict(d) for d in info.get("batch_tfms", [])]
    norm = info.get("normalize") or {"mean": imagenet_stats[0], "std": imagenet_stats[1]}
    batch_tfms.append(Normalize(norm["mean"], norm["std"]))
    dls = ImageDataLoaders(
        empty,
        empty,
        info.get("vocab"),
        item_tfm_from_dict(info["item_tfm"]),
        batch_tfms=batch_tfms,
        bs=int(info.get("bs", 64)),
        target=info.get("target_kind", "category"),
        device=device,
    )
    return dls
