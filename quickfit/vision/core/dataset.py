"""One image loader's items: `ImageItems` (paths and targets), `ImageDataset` (an item decoded,
transformed with its target; a bad file skipped and reported) and the collation of a batch of them
into one uint8 tensor."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate, get_worker_info

from quickfit.vision.core.cache import DecodeCache
from quickfit.vision.core.image import LOAD_ERRORS, ImageLoadError
from quickfit.vision.core.targets import Target
from quickfit.vision.core.transforms import ItemTransform

__all__ = ["ImageItems", "default_num_workers", "ImageDataset"]


# A failing image is replaced by a random other one; this many failures in a row means the data is
# mostly unreadable, and going on would only hide it.
_MAX_TRIES = 10


class ImageItems(NamedTuple):
    """What a loader iterates over: image paths (or PIL images) and their targets, in order.

    targets: int64 class indices [n], float multi-hot [n, n_classes], float values [n, k], or None
    (a test set); with a spatial `Target` (see `quickfit.vision.core.targets`): a list of masks / target
    images (paths), or of point / box tensors in the original images' pixels."""

    paths: list[Path | Image.Image]
    targets: torch.Tensor | list | None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1


def default_num_workers() -> int:
    """The cores this process may use, at most 8 (more rarely helps decoding and costs memory)."""
    return min(_cores(), 8)


class ImageDataset(Dataset):
    """Item i -> (uint8 image [3, H, W], target or None, [(path, error) of images that failed]).

    With a spatial `target` the item transform's `pair` gives the target the image's crop. With a
    `cache` (`quickfit.vision.core.cache.DecodeCache` of these items) each image is decoded once, then cropped
    from memory (the targets are still read each time)."""

    def __init__(
        self,
        items: ImageItems,
        item_tfm: ItemTransform,
        train: bool = False,
        skip_bad: bool = True,
        target: Target | None = None,
        cache: DecodeCache | None = None,
    ):
        if items.targets is not None and len(items.targets) != len(items.paths):
            raise ValueError(f"{len(items.paths)} images but {len(items.targets)} targets")
        if cache is not None and len(cache.index) != len(items.paths):
            raise ValueError(f"a decode cache of {len(cache.index)} images for {len(items.paths)} items")
        self.items, self.item_tfm, self.train, self.skip_bad = items, item_tfm, train, skip_bad
        self.cache = cache
        self.target = target if target is not None and target.spatial and items.targets is not None else None

    def __len__(self) -> int:
        return len(self.items.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None, list[tuple[str, str]]]:
        failed: list[tuple[str, str]] = []
        j = i
        for _ in range(_MAX_TRIES):
            src = self.items.paths[j]
            try:
                if self.cache is not None:
                    src = self.cache.source(j, src)
                if self.target is not None:
                    x, y = self.item_tfm.pair(src, self.items.targets[j], self.target, train=self.train)
                    return x, y, failed
                x = self.item_tfm(src, train=self.train)
            except LOAD_ERRORS as e:
                name = self.items.paths[j]
                if not self.skip_bad:
                    if isinstance(e, ImageLoadError):  # from quickfit.vision.core.image: names the file already
                        raise
                    raise ImageLoadError(f"cannot load image {name}: {type(e).__name__}: {e}") from e
                failed.append((str(name), f"{type(e.__cause__ or e).__name__}: {e.__cause__ or e}"))
                j = int(torch.randint(len(self), ()).item())
                continue
            return x, None if self.items.targets is None else self.items.targets[j], failed
        raise ImageLoadError(
            f"{_MAX_TRIES} images in a row failed to load, the last {failed[-1][0]} ({failed[-1][1]}); "
            "find the bad files with quickfit.vision.verify_images(folder)"
        )

    def subset(self, idx: Sequence[int]) -> ImageDataset:
        """Items `idx` with this dataset's transforms and target, not cached (a DDP rank's validation share);
        a subclass returns its own kind."""
        items = ImageItems([self.items.paths[i] for i in idx], _take(self.items.targets, idx))
        return ImageDataset(items, self.item_tfm, self.train, self.skip_bad, self.target)


def _collate(
    batch: list, target: Target | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, list[tuple[str, str]]]:
    xs = _stack_images([b[0] for b in batch])
    ys = [b[1] for b in batch]
    if ys[0] is None:
        ys = None
    else:
        ys = default_collate(ys) if target is None else target.collate(ys)
    return xs, ys, [f for b in batch for f in b[2]]


def _stack_images(xs: list[torch.Tensor]) -> torch.Tensor:
    """[3, H, W] images -> a uint8 batch [B, 3, H, W] stored channels-last ([B, H, W, 3] in memory).

    The item transforms return views of Pillow's [H, W, 3] pixels, so each image is one contiguous copy
    here, no transposition (that took 0.4 ms an image); the float conversion reads the channels-last
    batch into a channels-last buffer just as fast (`_fused`). Inside a worker the batch is made in
    shared memory, as `default_collate` does: the parent maps it, nothing more is copied."""
    if any(x.shape != xs[0].shape for x in xs):
        return default_collate(xs)  # raises its error naming the sizes
    c, h, w = xs[0].shape
    out = None
    if get_worker_info() is not None:
        storage = xs[0].untyped_storage()._new_shared(len(xs) * c * h * w * xs[0].element_size())
        out = xs[0].new(storage).view(len(xs), h, w, c)
    return torch.stack([x.permute(1, 2, 0) for x in xs], 0, out=out).permute(0, 3, 1, 2)


def _take(targets: torch.Tensor | list | None, idx: Sequence[int]) -> torch.Tensor | list | None:
    if targets is None or isinstance(targets, torch.Tensor):
        return None if targets is None else targets[idx]
    return [targets[int(i)] for i in idx]
