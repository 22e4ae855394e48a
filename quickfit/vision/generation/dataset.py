"""Image-to-image items: the classification pipeline's `ImageDataset` over (input, target image) file pairs.

    from quickfit.vision.generation.dataset import PairDataset
    from quickfit.vision.generation.transforms import PairCrop

    ds = PairDataset([(Path("lr/a.jpg"), Path("hr/a.png"))], PairCrop(128, scale=2), train=True, cache=True)
    x, y, failed = ds[0]     # uint8 [3, 64, 64] and [3, 128, 128]: the same region of input and target

The inputs are the dataset's images and the target files its targets (an image `Target`), so the item
transform's `pair` crops both, the loader collates and shards them as it does any image, and a file that
fails to load is reported and replaced as there. `cache=True` decodes each input and each target once, into
two `DecodeCache`s shared by the worker processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from quickfit.vision.core.cache import DecodeCache, default_cache_bytes
from quickfit.vision.core.image import SourceImage
from quickfit.vision.core.loader import ImageDataset, ImageItems
from quickfit.vision.core.transforms import ItemTransform
from quickfit.vision.generation.transforms import IMAGE_TARGET

__all__ = ["PairDataset"]


class _TargetImages(Sequence):
    """The target files of a dataset's pairs; item i comes from `cache` when it keeps it (`DecodeCache.source`)."""

    def __init__(self, files: list[Path], cache: DecodeCache | None) -> None:
        self.files, self.cache = files, cache

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Path | SourceImage:
        return self.files[i] if self.cache is None else self.cache.source(i, self.files[i])


class PairDataset(ImageDataset):
    """Item i -> (uint8 input crop, uint8 target crop, [(path, error) of files that failed]); see the module
    docstring. The decoded pixels take at most `default_cache_bytes()`, shared in proportion to the sizes."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]], item_tfm: ItemTransform, train: bool, cache: bool = False):
        inputs, targets = [a for a, _ in pairs], [b for _, b in pairs]
        input_cache = target_cache = None
        if cache and pairs:
            budget, area = default_cache_bytes(), getattr(item_tfm, "scale", 1) ** 2  # target pixels per input pixel
            target_cache = DecodeCache(targets, None, budget * area // (area + 1))
            input_cache = DecodeCache(inputs, item_tfm.cover_size, budget - target_cache.nbytes)
        items = ImageItems(inputs, _TargetImages(targets, target_cache))
        super().__init__(items, item_tfm, train, target=IMAGE_TARGET, cache=input_cache)

    @property
    def pairs(self) -> list[tuple[Path, Path]]:
        """(input file, target file) of each item, in order."""
        return list(zip(self.items.paths, self.items.targets.files))

    @property
    def target_cache(self) -> DecodeCache | None:
        return self.items.targets.cache

    def subset(self, idx: Sequence[int]) -> PairDataset:
        """Pairs `idx` (a distributed rank's share of the validation set), cached when this dataset is."""
        pairs = self.pairs
        return PairDataset([pairs[int(i)] for i in idx], self.item_tfm, self.train, cache=self.cache is not None)
