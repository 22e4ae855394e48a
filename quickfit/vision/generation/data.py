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
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from quickfit.data.core import DataLoaders
from quickfit.data.loader import LoaderBase, ShardSampler
from quickfit.vision.core.augment import AffineWarp, Lighting, Normalize, apply_matrices
from quickfit.vision.core.cache import DecodeCache, default_cache_bytes
from quickfit.vision.core.image import SourceImage, get_image_files, load_image

__all__ = ["ImageToImageDataLoaders", "PairLoader", "PairMismatchError", "image2image_dls_from_export"]


class PairMismatchError(ValueError):
    """Input and target files that do not pair up: missing partners, or sizes that do not match the scale."""


def _first(items: Sequence, n: int = 5) -> str:
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def _to_uint8(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)


class _PairDataset(Dataset):
    """uint8 (input crop [3, size/scale, size/scale], target crop [3, size, size]). `cache`: keep the
    decoded inputs and targets in two shared-memory `DecodeCache`s (each file decoded once, whatever the
    worker processes), at most `default_cache_bytes()` together."""

    def __init__(self, pairs: list[tuple[Path, Path]], size: int, scale: int, train: bool, cache: bool = False):
        self.pairs, self.size, self.scale, self.train = pairs, size, scale, train
        self.cache: DecodeCache | None = None  # the inputs' (len: how many are kept)
        self.target_cache: DecodeCache | None = None
        if cache and pairs:
            budget = default_cache_bytes()
            self.target_cache = DecodeCache([b for _, b in pairs], None, budget * scale**2 // (scale**2 + 1))
            self.cache = DecodeCache([a for a, _ in pairs], None, budget - self.target_cache.nbytes)

    def __len__(self) -> int:
        return len(self.pairs)

    def _arrays(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """[H, W, 3] uint8 pixels of pair i (read only: views of the cache when it keeps them)."""
        a, b = self.pairs[i]
        if self.cache is None or self.target_cache is None:
            return np.asarray(load_image(a), dtype=np.uint8), np.asarray(load_image(b), dtype=np.uint8)
        return self.cache.pixels(i, a), self.target_cache.pixels(i, b)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x_arr, y_arr = self._arrays(i)
        s, k = self.size, self.scale
        h, w = x_arr.shape[:2]
        # the crop in input pixels (so it is exact in both images), at most the image
        cw, ch = min(s // k, w), min(s // k, h)
        if self.train:
            x0 = int(torch.randint(0, w - cw + 1, ()))  # torch's RNG: seeded per DataLoader worker
            y0 = int(torch.randint(0, h - ch + 1, ()))
        else:
            x0, y0 = (w - cw) // 2, (h - ch) // 2
        x = x_arr[y0 : y0 + ch, x0 : x0 + cw]
        y = y_arr[y0 * k : (y0 + ch) * k, x0 * k : (x0 + cw) * k]
        if (cw, ch) != (s // k, s // k):  # an image smaller than the crop: stretched up to it
            x = np.asarray(Image.fromarray(x).resize((s // k, s // k), Image.Resampling.BICUBIC))
            y = np.asarray(Image.fromarray(y).resize((s, s), Image.Resampling.BICUBIC))
        return _hwc_to_tensor(x), _hwc_to_tensor(y)


def _hwc_to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


class _TestDataset(Dataset):
    def __init__(self, items: Sequence[str | Path | Image.Image]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor]:
        return (_to_uint8(load_image(self.items[i])),)


class PairLoader(LoaderBase):
    """Batches of (input, target) on the device, transformed as the module docstring says; a test
    loader (no targets) yields (input,) batches of whole images, one image per batch by default."""

    def __init__(
        self,
        dataset: Dataset,
        bs: int,
        scale: int,
        upsample: bool,
        batch_tfms: Sequence = (),
        normalize: Normalize | None = None,
        shuffle: bool = False,
        augment: bool = False,
        num_workers: int = 0,
        device: torch.device | None = None,
    ) -> None:
        self.dataset, self.bs, self.scale, self.upsample = dataset, bs, scale, upsample
        self.batch_tfms, self.normalize, self.shuffle, self.augment = list(batch_tfms), normalize, shuffle, augment
        self.num_workers, self.device = num_workers, device
        self._loader: DataLoader | None = None
        self._shard: tuple[int, int] | None = None  # (rank, world_size) of a sharded training loader
        for t in self.batch_tfms:
            if not isinstance(t, (AffineWarp, Lighting)):
                raise TypeError(
                    f"image-to-image batch_tfms may be AffineWarp (moves input and target alike) and Lighting "
                    f"(input only); got {t!r}. Normalization is set with dls.set_normalize(mean, std)"
                )

    def __len__(self) -> int:
        n = len(self.dataset)
        drop = self.shuffle and n >= self.bs
        n = n if self._shard is None else -(-n // self._shard[1])
        return n // self.bs if drop else math.ceil(n / self.bs)

    def _torch_loader(self) -> DataLoader:
        drop = self.shuffle and len(self.dataset) >= self.bs  # BatchNorm dislikes a last batch of 1
        if self._loader is None or not self._loader.persistent_workers:
            # a cached data set keeps its workers from epoch to epoch: they are started once
            keep = self.num_workers > 0 and getattr(self.dataset, "cache", None) is not None
            sampler = None if self._shard is None else ShardSampler(len(self.dataset), *self._shard)
            self._loader = DataLoader(
                self.dataset, self.bs, shuffle=self.shuffle and sampler is None, sampler=sampler, drop_last=drop,
                num_workers=self.num_workers, persistent_workers=keep,
            )  # fmt: skip
        return self._loader

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for batch in self._torch_loader():
            if self.device is not None:
                batch = [b.to(self.device, non_blocking=True) for b in batch]
            yield self.transform(*batch)

    def transform(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """uint8 (input, target) -> the float batch: upsample, shared geometry, input lighting, input normalization."""
        x = x.float().div_(255)
        if self.upsample and self.scale != 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp_(0, 1)
        y = None if y is None else y.float().div_(255)
        if self.augment:
            for t in self.batch_tfms:
                if isinstance(t, AffineWarp):  # one set of matrices for both: the identical warp
                    mats = t.matrices(x.shape[0], x.shape[2], x.shape[3], x.device)
                    x = apply_matrices(x, mats, t.pad_mode)
                    y = None if y is None else apply_matrices(y, mats, t.pad_mode)
                else:
                    x = t(x)
        if self.normalize is not None:
            x = self.normalize(x)
        return (x,) if y is None else (x, y)

    def shard(self, rank: int, world_size: int) -> PairLoader:
        """This DDP rank's share, by the rule of image classification (`quickfit.data.ShardSampler`): a
        training loader takes every `world_size`-th pair of one permutation drawn alike on every rank
        (padded with repeats so all ranks run the same steps); a validation loader a contiguous slice."""
        from quickfit.callbacks.distributed import shard_indices  # only needed under torchrun

        self._check_shard(rank, world_size)
        if self.shuffle:
            out = self._shard_copy(rank, world_size)
            out._loader, out._shard = None, (rank, world_size)
            return out
        ds = self.dataset
        pairs = [ds.pairs[i] for i in shard_indices(len(ds.pairs), rank, world_size, pad=False)]
        sub = _PairDataset(pairs, ds.size, ds.scale, ds.train, cache=ds.cache is not None)
        return PairLoader(sub, self.bs, self.scale, self.upsample, self.batch_tfms, self.normalize, self.shuffle,
                          self.augment, self.num_workers, self.device)  # fmt: skip

    def __repr__(self) -> str:
        return f"PairLoader({len(self.dataset)} items, bs={self.bs}, scale={self.scale})"


def _key(rel: Path) -> str:
    return rel.with_suffix("").as_posix()


def _by_key(folder: Path, role: str) -> dict[str, Path]:
    """The images of `folder` by relative path without suffix; two files that differ only by their
    suffix (`x.jpg` and `x.png`) are ambiguous: refused by name, never one kept silently."""
    found: dict[str, Path] = {}
    for f in get_image_files(folder):
        key = _key(f.relative_to(folder))
        if key in found:
            raise PairMismatchError(
                f"the {role} folder {folder} has {found[key].name} and {f.name}: pairs match by name without the "
                "suffix, so one of them must go (or move to another folder)"
            )
        found[key] = f
    return found


def _match(inputs: Path, targets: Path) -> list[tuple[Path, Path]]:
    ins, outs = _by_key(inputs, "input"), _by_key(targets, "target")
    if not ins:
        raise FileNotFoundError(f"no images in the input folder {inputs}")
    no_target, no_input = sorted(set(ins) - set(outs)), sorted(set(outs) - set(ins))
    if no_target or no_input:
        parts = []
        if no_target:
            parts.append(f"{len(no_target)} inputs in {inputs} have no target in {targets}: {_first(no_target)}")
        if no_input:
            parts.append(f"{len(no_input)} targets in {targets} have no input in {inputs}: {_first(no_input)}")
        raise PairMismatchError("; ".join(parts) + " (pairs match by relative path without the suffix)")
    return [(ins[k], outs[k]) for k in sorted(ins)]


def _sizes(f: Path) -> tuple[int, int]:
    with SourceImage(f) as img:
        return img.size


def _check_scale(pairs: list[tuple[Path, Path]], scale: int | None) -> int:
    """The integer target/input size ratio; every pair must have it (up to the rounding of a downscale)."""
    sizes = [(_sizes(a), _sizes(b)) for a, b in pairs]
    if scale is None:
        (iw, ih), (tw, th) = sizes[0]
        scale = max(1, round(tw / iw))
    bad = []
    for (a, b), ((iw, ih), (tw, th)) in zip(pairs, sizes):
        if not (iw * scale <= tw < (iw + 1) * scale and ih * scale <= th < (ih + 1) * scale):
            bad.append(f"{a.name} is {iw}x{ih} but {b.name} is {tw}x{th}")
    if bad:
        raise PairMismatchError(
            f"{len(bad)} of {len(pairs)} pairs do not have targets {scale}x their input's size: {_first(bad)}"
        )
    return scale


class ImageToImageDataLoaders(DataLoaders):
    """Training and validation `PairLoader`s; see the module docstring and the `from_*` constructors.

    `cache=True` keeps every pair decoded in shared memory after its first read (3 bytes a pixel: the
    398 hymenoptera photos and their half-size inputs take about 280 MB; bounded by
    `quickfit.vision.core.cache.default_cache_bytes()`), so each later epoch only crops: for a small set of
    photos trained for many epochs, decoding would otherwise cost as much as the model. With it the
    loaders use no worker processes unless `num_workers` says so (the workers then share the one cache)."""

    onnx_input_names = ("image",)

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
        self.scale = _check_scale(list(train_pairs) + list(valid_pairs), scale)
        if size % self.scale:
            raise ValueError(f"size ({size}) must be a multiple of the scale ({self.scale})")
        self.size, self.bs, self.upsample = size, bs, upsample
        self.batch_tfms = [t for t in (batch_tfms or []) if not isinstance(t, Normalize)]
        norm = next((t for t in (batch_tfms or []) if isinstance(t, Normalize)), None)
        if num_workers is None:  # decoded images in memory: cropping them costs less than starting workers
            num_workers = 0 if cache else min(4, len(os.sched_getaffinity(0)))
        workers = num_workers

        def loader(pairs, train):
            ds = _PairDataset(list(pairs), size, self.scale, train, cache=cache)
            return PairLoader(ds, bs, self.scale, upsample, self.batch_tfms, norm, shuffle=train, augment=train,
                              num_workers=workers)  # fmt: skip

        super().__init__(loader(train_pairs, True), loader(valid_pairs, False) if valid_pairs else None)
        if device is not None:
            self.to(device)

    def to(self, device: torch.device | str) -> ImageToImageDataLoaders:
        self.device = torch.device(device)
        for dl in (self.train, self.valid):
            if dl is not None:
                dl.to(self.device)
        return self

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

    def test_dl(self, items: Sequence[str | Path | Image.Image], bs: int = 1) -> PairLoader:
        """Whole input images (any size; one per batch unless they share a size), as the model sees them."""
        return PairLoader(_TestDataset(items), bs, self.scale, self.upsample, (), self.normalize,
                          device=getattr(self, "device", None))  # fmt: skip

    def decode_pred(self, pred: torch.Tensor) -> torch.Tensor:
        """A generated image: [3, H, W] floats in [0, 1]."""
        return pred.float().clamp(0, 1)

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
        from quickfit.image_grid import save_image_grid

        dl = self.train if split == "train" else self.valid
        x, y = next(iter(dl))
        x, y = x[:max_n], y[:max_n]
        if self.normalize is not None:
            x = self.normalize.decode(x)
        x = F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=False)
        return save_image_grid(torch.stack([x, y], 1).flatten(0, 1), path, nrow=2, titles=("input", "target"))

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
            raise FileNotFoundError(f"{len(missing)} image files of the pairs do not exist: {_first(missing)}")
        kw = dict(size=size, bs=bs, scale=scale, batch_tfms=batch_tfms, upsample=upsample, num_workers=num_workers,
                  device=device, cache=cache)  # fmt: skip
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
        kw = dict(size=size, bs=bs, scale=scale, batch_tfms=batch_tfms, upsample=upsample, num_workers=num_workers,
                  device=device, cache=cache)  # fmt: skip
        pairs = _match(inputs, targets)
        vpairs = _match(Path(valid[0]), Path(valid[1])) if valid is not None else None
        return cls.from_pairs(pairs, valid_pct, seed, vpairs, **kw)

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
            raise PairMismatchError(f"target_func names {len(missing)} targets that do not exist: {_first(missing)}")
        return cls.from_pairs(pairs, valid_pct, seed, None, size=size, bs=bs, batch_tfms=batch_tfms, scale=scale,
                              upsample=upsample, num_workers=num_workers, device=device, cache=cache)  # fmt: skip


class _ExportedData(DataLoaders):
    """What a loaded image-to-image export needs: `test_dl` and `decode_pred`, no training files."""

    def __init__(self, info: dict) -> None:
        super().__init__([], None)
        self.scale, self.size, self.upsample = int(info["scale"]), int(info.get("size", 128)), bool(info["upsample"])
        norm = info.get("normalize")
        self._normalize = None if norm is None else Normalize(norm[0], norm[1])

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

    def to(self, device):
        self.device = torch.device(device)
        return self

    onnx_input_names = ImageToImageDataLoaders.onnx_input_names
    test_dl = ImageToImageDataLoaders.test_dl
    decode_pred = ImageToImageDataLoaders.decode_pred
    export_info = ImageToImageDataLoaders.export_info


def image2image_dls_from_export(info: dict) -> DataLoaders:
    """The data side of an exported image-to-image learner (see `ImageToImageDataLoaders.export_info`)."""
    if info.get("kind") != "image2image":
        raise ValueError(f"not image-to-image data: kind {info.get('kind')!r}")
    return _ExportedData(info)
