"""The image loader: workers decode to uint8, the device does the float work on whole batches.

`ImageDataset` opens, decodes and crops one image to a uint8 [3, H, W] tensor (the item transform);
a torch `DataLoader` runs it in worker processes over the cores and stacks batches in shared memory.
`ImageLoader` wraps that: it moves each uint8 batch to the device (4x less to copy than float),
then converts, augments and normalizes it there with `apply_batch_tfms`. A file that fails to load
is reported once by path and replaced by another image of the dataset, so a bad file found at batch
3,000 costs a warning, not the run.

    from quickfit.vision.core.loader import ImageDataset, ImageItems, ImageLoader
    from quickfit.vision.core.transforms import Resize
    from quickfit.vision.core.augment import aug_transforms, Normalize, imagenet_stats

    items = ImageItems([Path("a.jpg"), Path("b.jpg")], torch.tensor([0, 1]))
    dl = ImageLoader(ImageDataset(items, Resize(224), train=True), bs=64, shuffle=True,
                     batch_tfms=aug_transforms(), normalize=Normalize.from_stats(imagenet_stats), augment=True)
    for x, y in dl.to("cuda"):   # x: float [64, 3, 224, 224] on the GPU, augmented and normalized
        ...
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import partial

import torch
from torch.utils.data import DataLoader

from quickfit.data.loader import EndlessEpochs, LoaderBase, ShardSampler
from quickfit.vision.core.augment import Normalize
from quickfit.vision.core.batch import apply_batch_tfms, apply_batch_tfms_pair
from quickfit.vision.core.dataset import (
    ImageDataset,
    ImageItems,
    _collate,
    _cores,
    default_num_workers,
)
from quickfit.vision.core.image import ImageLoadError

__all__ = [
    "ImageItems",
    "ImageDataset",
    "ImageLoader",
    "ImageLoadError",
    "apply_batch_tfms",
    "apply_batch_tfms_pair",
    "default_num_workers",
    "user_stacklevel",
]

_reported: set[str] = set()  # paths already warned about in this process


def _library_dirs() -> tuple[str, ...]:
    import tqdm

    return tuple(os.path.dirname(m.__file__) + os.sep for m in (sys.modules["quickfit"], torch, tqdm))


def user_stacklevel() -> int:
    """The `stacklevel` for `warnings.warn` (called by the caller of this function) that names the first
    frame outside quickfit, torch and tqdm: the user's line (`learn.fit_one_cycle(...)`, `for x, y in dl`),
    not the progress bar or the training loop that happened to pull the batch."""
    skip, frame, level = _library_dirs(), sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(skip):
        frame, level = frame.f_back, level + 1
    return level


def _report(failed: list[tuple[str, str]]) -> None:
    for path, err in failed:
        if path not in _reported:
            _reported.add(path)
            warnings.warn(
                f"skipped image {path} ({err}); a random other image took its place. "
                "Find such files before training with quickfit.vision.verify_images(folder).",
                stacklevel=user_stacklevel(),
            )


class ImageLoader(LoaderBase):
    """Batches `(x, y)` (or `(x,)` without targets) of float images on `device`.

    The uint8 work runs in `num_workers` processes (persistent across epochs when `persistent`);
    the float work (`apply_batch_tfms`) on the device. `augment` turns the `train_only` batch
    transforms on; the dataset's `train` flag picks random (training) or center crops.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        bs: int = 64,
        shuffle: bool = False,
        drop_last: bool = False,
        num_workers: int | None = None,
        batch_tfms: Sequence[Callable] = (),
        normalize: Normalize | None = None,
        augment: bool = False,
        persistent: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        if bs < 1:
            raise ValueError(f"bs must be at least 1, got {bs}")
        self.dataset, self.bs, self.shuffle, self.drop_last = dataset, bs, shuffle, drop_last
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self._default_workers = num_workers is None  # `_torch_loader` may then run without them
        self.batch_tfms, self.normalize, self.augment, self.persistent = (
            list(batch_tfms),
            normalize,
            augment,
            persistent,
        )
        self.device = None if device is None else torch.device(device)
        self._loader: DataLoader | None = None
        # (torch loader, its iterator, batches of the epoch not yet taken) of an endless loader
        self._epoch: tuple[DataLoader, Iterator, int] | None = None
        self._workspace: dict[str, torch.Tensor] = {}  # CPU scratch buffers of apply_batch_tfms
        self._shard: tuple[int, int] | None = None  # (rank, world_size) of a sharded training loader

    @property
    def items(self) -> ImageItems:
        return self.dataset.items

    def __len__(self) -> int:
        n = len(self.dataset) if self._shard is None else -(-len(self.dataset) // self._shard[1])
        return n // self.bs if self.drop_last else -(-n // self.bs)

    def to(self, device: torch.device | str) -> ImageLoader:
        device = torch.device(device)
        if self.device is None or device.type != self.device.type:
            self._loader = None  # pin_memory depends on the device type: rebuild the torch loader
        return super().to(device)

    def _torch_loader(self) -> DataLoader:
        if self._loader is None:
            workers = self.num_workers
            if len(self.dataset) <= self.bs:  # one batch: starting processes costs more than they save
                workers = min(workers, 1) if self.persistent else 0
            cache = self.dataset.cache
            if self._default_workers and cache is not None and cache.n_cached == len(self.dataset):
                if self.device is None or self.device.type == "cpu":
                    # Every image decoded once into memory, the batch work on this CPU: cropping in this
                    # process costs less than passing batches between processes, and the batch transforms
                    # get every core (hymenoptera, 2 cores: about 600 against 390 training images/s after
                    # the first epoch, which decodes here). A GPU keeps the workers: they crop while it trains.
                    workers = 0
            pin = self.device is not None and self.device.type == "cuda"
            # Persistent workers run on from epoch to epoch (`EndlessEpochs`, see `_epoch_batches`); without
            # workers nothing runs ahead, and each epoch draws its order from the torch RNG as it starts.
            if self.persistent and workers > 0 and self._shard is None:
                batching = {"batch_sampler": EndlessEpochs(len(self.dataset), self.bs, self.shuffle, self.drop_last)}
            else:
                sampler = None if self._shard is None else ShardSampler(len(self.dataset), *self._shard)
                batching = {
                    "batch_size": self.bs,
                    "shuffle": self.shuffle and sampler is None,
                    "sampler": sampler,
                    "drop_last": self.drop_last,
                }
            self._loader = DataLoader(
                self.dataset,
                **batching,
                num_workers=workers,
                collate_fn=_collate if self.dataset.target is None else partial(_collate, target=self.dataset.target),
                pin_memory=pin,
                persistent_workers=self.persistent and workers > 0,
            )
        return self._loader

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        spatial = self.dataset.target is not None
        for xb, yb in self.raw_batches():
            if spatial and yb is not None:  # masks, points, boxes, images: moved with their images
                yield self.transform_pair(xb, yb)
                continue
            x = self.transform(xb)
            yield (x,) if yb is None else (x, yb)

    def transform_pair(
        self, xb: torch.Tensor, yb: torch.Tensor, augment: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`transform` for a batch with spatial targets: (images, targets) through the same geometry."""
        augment = self.augment if augment is None else augment
        if xb.device.type == "cpu":
            return self._on_cpu(xb, augment, yb)
        return apply_batch_tfms_pair(xb, yb, self.dataset.target, self.batch_tfms, self.normalize, augment)

    def raw_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """(uint8 images [B, 3, H, W], targets or None) on the device: decoded and resized, before the
        batch transforms. `transform` finishes them; test-time augmentation transforms each one n times."""
        for xb, yb, failed in self._epoch_batches():
            if failed:
                _report(failed)
            if self.device is not None:
                xb = xb.to(self.device, non_blocking=True)
                yb = yb.to(self.device, non_blocking=True) if yb is not None else None
            yield xb, yb

    def _epoch_batches(self) -> Iterator[tuple]:
        """This epoch's collated batches from the torch loader. An endless one (persistent workers) gives
        them from the iterator the last epoch left, whose workers are already on them, unless that epoch
        was left unfinished (then, and the first time, a new epoch starts, as a torch loader starts one)."""
        loader = self._torch_loader()
        if not isinstance(loader.batch_sampler, EndlessEpochs):
            yield from loader
            return
        n = len(self)
        if n == 0:
            return
        it = self._epoch[1] if self._epoch is not None and self._epoch[0] is loader and self._epoch[2] == 0 else None
        it = iter(loader) if it is None else it
        for left in range(n, 0, -1):
            self._epoch = (loader, it, left)
            batch = next(it)
            self._epoch = (loader, it, left - 1)
            yield batch

    def transform(self, xb: torch.Tensor, augment: bool | None = None) -> torch.Tensor:
        """A uint8 batch of `raw_batches` -> the float batch the model sees (augmented when `augment`,
        by default the loader's setting)."""
        augment = self.augment if augment is None else augment
        if xb.device.type == "cpu":
            return self._on_cpu(xb, augment)
        # CUDA's caching allocator already reuses memory: no workspace needed
        return apply_batch_tfms(xb, self.batch_tfms, self.normalize, augment)

    def _on_cpu(self, xb: torch.Tensor, augment: bool, yb: torch.Tensor | None = None):
        # The workers keep `num_workers` cores busy decoding. More torch threads here than the cores
        # left over oversubscribe the CPU, and OpenMP threads then spin at every barrier waiting for a
        # descheduled sibling: measured on 2 cores with 2 workers, the batch work took 2x the CPU time.
        # So the thread count is lowered for these few ops only, and restored before the batch is yielded.
        threads = torch.get_num_threads()
        workers = self._loader.num_workers if self._loader is not None else 0
        wanted = max(1, min(threads, _cores() - workers)) if workers else threads
        if wanted != threads:
            torch.set_num_threads(wanted)
        try:
            if yb is not None:
                tfms, target = self.batch_tfms, self.dataset.target
                return apply_batch_tfms_pair(xb, yb, target, tfms, self.normalize, augment, self._workspace)
            return apply_batch_tfms(xb, self.batch_tfms, self.normalize, augment, self._workspace)
        finally:
            if wanted != threads:
                torch.set_num_threads(threads)

    def replace(
        self,
        items: ImageItems | None = None,
        train: bool | None = None,
        augment: bool | None = None,
        shuffle: bool | None = None,
        bs: int | None = None,
        skip_bad: bool | None = None,
    ) -> ImageLoader:
        """A new loader like this one with the given settings changed (its own, non-persistent workers).

        `train` picks the crop (random vs center); `augment` the batch augmentation."""
        ds = self.dataset
        dataset = ImageDataset(
            ds.items if items is None else items,
            ds.item_tfm,
            ds.train if train is None else train,
            ds.skip_bad if skip_bad is None else skip_bad,
            ds.target,
            ds.cache if items is None else None,  # the same images: their decoded pixels serve again
        )
        return ImageLoader(
            dataset,
            bs=self.bs if bs is None else bs,
            shuffle=self.shuffle if shuffle is None else shuffle,
            drop_last=False,
            num_workers=self.num_workers,
            batch_tfms=self.batch_tfms,
            normalize=self.normalize,
            augment=self.augment if augment is None else augment,
            persistent=False,
            device=self.device,
        )

    def shard(self, rank: int, world_size: int) -> ImageLoader:
        """This rank's images for distributed training (called by quickfit's DDP callback).

        A shuffling (training) loader draws one permutation of all the images per epoch, the same on
        every rank (from the torch seed, as a one-process loader draws its own), padded with repeats so
        every rank runs the same number of batches, and takes every `world_size`-th image of it: the
        ranks' batches together are the one-process loader's batches at `world_size` times the batch
        size. A validation loader takes a contiguous slice without repeats, so summed metrics are exact."""
        from quickfit.callbacks.distributed import shard_indices  # only needed under torchrun

        self._check_shard(rank, world_size)
        ds = self.dataset
        if self.shuffle:
            out = self._shard_copy(rank, world_size)
            out._loader, out._workspace, out._shard = None, {}, (rank, world_size)
            return out
        return ImageLoader(
            ds.subset(shard_indices(len(ds), rank, world_size, pad=False)),
            bs=self.bs,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            batch_tfms=self.batch_tfms,
            normalize=self.normalize,
            augment=self.augment,
            persistent=self.persistent,
            device=self.device,
        )

    def __repr__(self) -> str:
        return (
            f"ImageLoader({len(self.dataset)} images, bs={self.bs}, shuffle={self.shuffle}, "
            f"augment={self.augment}, workers={self.num_workers}, device={self.device})"
        )
