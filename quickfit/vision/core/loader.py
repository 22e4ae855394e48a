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
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from quickfit.data.loader import EndlessEpochs, LoaderBase, ShardSampler
from quickfit.vision.core.augment import AffineWarp, Lighting, Normalize, sampling_grid
from quickfit.vision.core.cache import DecodeCache
from quickfit.vision.core.image import LOAD_ERRORS, ImageLoadError
from quickfit.vision.core.targets import Target
from quickfit.vision.core.transforms import ItemTransform

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

# A failing image is replaced by a random other one; this many failures in a row means the data is
# mostly unreadable, and going on would only hide it.
_MAX_TRIES = 10
_reported: set[str] = set()  # paths already warned about in this process


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


def _fusable(tfms: Sequence[Callable]) -> tuple[AffineWarp | None, Lighting | None] | None:
    """(affine, lighting) when `tfms` is [AffineWarp?, Lighting?] in that order, else None."""
    kinds = [type(t) for t in tfms]
    if kinds not in ([], [AffineWarp], [Lighting], [AffineWarp, Lighting]):
        return None
    affine = next((t for t in tfms if isinstance(t, AffineWarp)), None)
    if affine is not None and affine.pad_mode == "zeros":  # zeros padding does not commute with the affine map below
        return None
    return affine, next((t for t in tfms if isinstance(t, Lighting)), None)


def _buffer(
    workspace: dict | None,
    name: str,
    shape: tuple[int, ...],
    device: torch.device,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """A float32 scratch tensor, kept in `workspace` between batches when given.

    Why: on CPU a fresh batch-sized tensor (38 MB at 64 x 224px) is above glibc's mmap threshold, so
    every batch pays page faults for it; measured here they cost more than the arithmetic."""
    if workspace is None:
        return torch.empty(shape, device=device, memory_format=memory_format)
    buf = workspace.get(name)
    if buf is None or buf.shape != shape or buf.device != device or not buf.is_contiguous(memory_format=memory_format):
        buf = workspace[name] = torch.empty(shape, device=device, memory_format=memory_format)
    return buf


def apply_batch_tfms(
    x: torch.Tensor,
    tfms: Sequence[Callable],
    normalize: Normalize | None = None,
    augment: bool = True,
    workspace: dict | None = None,
) -> torch.Tensor:
    """uint8 batch [B, C, H, W] -> float batch: /255, the transforms (those marked `train_only` only
    when `augment`), then `normalize`.

    For the standard [AffineWarp, Lighting] + Normalize the work is one uint8 -> float pass, one
    grid_sample and one clamp: /255, lighting and normalization are all per-image, per-channel
    affine maps, and bilinear resampling with reflection / border padding commutes with them (its
    weights sum to 1), so they fold into the conversion; the lighting clamp to [0, 1] becomes a
    clamp to the normalized image of [0, 1]. Random draws happen in the same order as the plain
    path, so both give the same batch for the same seed. `workspace` (a dict the caller keeps)
    holds scratch buffers between batches; the returned tensor is always new.
    """
    active = [t for t in tfms if augment or not getattr(t, "train_only", False)]
    fused = _fusable(active) if x.dtype == torch.uint8 else None
    if fused is None:
        x = _to_float(x)
        for t in active:
            x = t(x)
        return normalize(x) if normalize is not None else x
    affine, lighting = fused
    n, _, h, w = x.shape
    mats = affine.matrices(n, h, w, x.device) if affine is not None else None
    light = lighting.coefficients(n, x.device) if lighting is not None else None
    return _fused(x, mats, affine.pad_mode if affine is not None else "reflection", light, normalize, workspace)[0]


def _to_float(x: torch.Tensor) -> torch.Tensor:
    """A uint8 batch -> float in [0, 1], contiguous [B, C, H, W] whatever the batch's memory order."""
    return x.to(torch.float32, memory_format=torch.contiguous_format).div_(255) if x.dtype == torch.uint8 else x


def _fused(
    x: torch.Tensor,
    mats: torch.Tensor | None,
    pad_mode: str,
    light: tuple[torch.Tensor, torch.Tensor] | None,
    normalize: Normalize | None,
    workspace: dict | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fused path of `apply_batch_tfms` with its random draws made: (batch, sampling grid or None)."""
    n, c, h, w = x.shape
    scale = torch.full((n, c, 1, 1), 1 / 255, device=x.device)
    shift = torch.zeros((n, c, 1, 1), device=x.device)
    if light is not None:
        light_scale, light_shift = light
        scale, shift = scale * light_scale, shift + light_shift
    lo, hi = [0.0] * c, [1.0] * c
    if normalize is not None:
        mean, std = normalize.stats(x.device)
        scale, shift = scale / std, (shift - mean) / std
        lo = [(0 - m) / s for m, s in zip(normalize.mean, normalize.std)]
        hi = [(1 - m) / s for m, s in zip(normalize.mean, normalize.std)]
    # In-place float ops on one buffer: mixed uint8 * float kernels are several times slower on CPU.
    grid = None
    if mats is None:
        out = torch.empty(x.shape, device=x.device).copy_(x).mul_(scale).add_(shift)
    else:
        # The float copy keeps the batch's memory order (channels-last from the collate): no reordering,
        # and grid_sample reads a channels-last batch 20% faster on CPU (2.1 against 2.7 ms an image at
        # 224 px, the same values); its output is contiguous [B, C, H, W] either way.
        order = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        src = _buffer(workspace, "src", tuple(x.shape), x.device, order)
        src = src.copy_(x).mul_(scale).add_(shift)
        grid_buf = _buffer(workspace, "grid", (n, h, w, 2), x.device)
        grid = sampling_grid(mats.to(device=x.device, dtype=torch.float32), h, w, grid_buf)
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode=pad_mode, align_corners=False)
    if light is not None:
        for ch in range(c):  # scalar bounds per channel: much faster than broadcast tensor bounds
            out[:, ch].clamp_(lo[ch], hi[ch])
    return out, grid


def apply_batch_tfms_pair(
    x: torch.Tensor,
    y: torch.Tensor,
    target: Target,
    tfms: Sequence[Callable],
    normalize: Normalize | None = None,
    augment: bool = True,
    workspace: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`apply_batch_tfms` for a batch with spatial targets (masks, points, boxes, images; see
    `quickfit.vision.core.targets`): the same random draws move the targets with their images, and a mask
    or image target is resampled once, on the images' grid. Masks come out int64, image targets float.

    A transform that moves pixels must say how its targets move (`BatchTransform.pair`); one that
    has no `pair` and is not marked `spatial = False` is refused rather than left to misalign them."""
    active = [t for t in tfms if augment or not getattr(t, "train_only", False)]
    for t in active:
        if not hasattr(t, "pair") and getattr(t, "spatial", None) is not False:
            raise TypeError(
                f"batch transform {t!r} cannot be used with {target.kind} targets: quickfit cannot tell whether "
                "it moves pixels. Subclass quickfit.vision.BatchTransform (spatial ones implement pair(x, y, target)), "
                "or set its attribute spatial = False"
            )
    y = target.prepare(y)
    fused = _fusable(active) if x.dtype == torch.uint8 else None
    if fused is None:
        x = _to_float(x)
        for t in active:
            x, y = t.pair(x, y, target) if hasattr(t, "pair") else (t(x), y)
        if normalize is not None:
            x, y = normalize.pair(x, y, target)
        return x, target.finish(y)
    affine, lighting = fused
    n, _, h, w = x.shape
    mats = affine.matrices(n, h, w, x.device) if affine is not None else None
    light = lighting.coefficients(n, x.device) if lighting is not None else None
    pad_mode = affine.pad_mode if affine is not None else "reflection"
    x, grid = _fused(x, mats, pad_mode, light, normalize, workspace)
    if mats is not None:
        y = target.warp(y, mats, grid, pad_mode)
    if light is not None:
        y = target.relight(y, light)
    if normalize is not None:
        y = target.normalized(y, normalize)
    return x, target.finish(y)


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
