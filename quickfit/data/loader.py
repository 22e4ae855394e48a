"""LoaderBase: the bookkeeping quickfit's own loaders share (the device, a shard's rank and world size).

    from quickfit.data.loader import LoaderBase

    class Squares(LoaderBase):                      # batches (x, x**2) of 0..n-1, made on the device
        def __init__(self, n, bs):
            self.n, self.bs = n, bs
        def __len__(self):
            return -(-self.n // self.bs)
        def __iter__(self):
            x = torch.arange(self.n, device=self.device, dtype=torch.float32)[:, None]
            for i in range(0, self.n, self.bs):
                yield x[i : i + self.bs], x[i : i + self.bs] ** 2

    dl = Squares(10, bs=4).to("cpu")                # what the Learner calls: dls.to(learn.device)

A loader that can be split over torchrun's ranks adds `shard(rank, world_size)`, starting from
`self._shard_copy(rank, world_size, training)` (see `quickfit.data.TensorBatches`). The loader
contract itself (what the engine calls, what is optional) is `quickfit.contracts.Loader`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from quickfit.data.sampling import check_weights, weighted_draw

__all__ = ["LoaderBase", "ShardSampler", "EndlessEpochs"]


class ShardSampler(Sampler):
    """One rank's part of a shuffled epoch, the one sharding rule of quickfit's sample loaders (images,
    image pairs): the permutation `RandomSampler` would draw (seeded from the torch RNG, the same state on
    every rank), padded to a multiple of `world_size`, every `world_size`-th index from `rank` on. The
    ranks' batches together are a one-process loader's batches at `world_size` times the batch size.

    With `weights` (one per sample: oversampling, quickfit/data/sampling.py) the epoch is `n` indices
    drawn by weight with replacement instead of a permutation, from the same seed on every rank, and
    sharded the same way."""

    def __init__(self, n: int, rank: int, world_size: int, weights: torch.Tensor | None = None) -> None:
        self.n, self.rank, self.world_size = n, rank, world_size
        self.weights = None if weights is None else check_weights(weights, n)

    def __len__(self) -> int:
        return -(-self.n // self.world_size)

    def __iter__(self) -> Iterator[int]:
        if self.weights is not None:
            perm = weighted_draw(self.weights).tolist()
        else:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed)).tolist()
        perm += perm[: len(self) * self.world_size - self.n]
        yield from perm[self.rank :: self.world_size]


class EndlessEpochs(Sampler):
    """A torch `batch_sampler`: the batches of `n` indices, epoch after epoch without end, so that a
    loader's persistent workers go on into the next epoch while the main process still works on the
    last batches of this one (the loader takes `len` batches per epoch; `quickfit.vision.core.loader`).

    Why: a small dataset's epoch is a few batches, all in flight at once (2 per worker); at the end of
    each epoch the workers stopped while the main process augmented what was left on one thread,
    leaving a core idle. Each epoch is a permutation (when `shuffle`) from a generator seeded once from
    the torch RNG, the way `RandomSampler` seeds each epoch (the first epoch is the same)."""

    def __init__(self, n: int, bs: int, shuffle: bool, drop_last: bool) -> None:
        self.n, self.bs, self.shuffle, self.drop_last = n, bs, shuffle, drop_last

    def __iter__(self) -> Iterator[list[int]]:
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        generator = torch.Generator().manual_seed(seed)
        stop = self.n - self.n % self.bs if self.drop_last else self.n
        while stop > 0:
            order = torch.randperm(self.n, generator=generator).tolist() if self.shuffle else list(range(self.n))
            for i in range(0, stop, self.bs):
                yield order[i : i + self.bs]


class LoaderBase:
    """`to(device)` remembers the device the batches are made on; `_shard_copy` starts a `shard`.

    Subclasses implement `__iter__` and `__len__` (and `shard` when they can be split over ranks).
    A training shard keeps all the data and takes part `rank` of each global batch of
    `world_size * bs` items; a validation shard keeps `rank` 0 and `world_size` 1 and holds a
    contiguous part of the data (the subclass cuts it).
    """

    device: torch.device | None = None
    rank: int = 0
    world_size: int = 1

    def to(self, device: torch.device | str) -> LoaderBase:
        self.device = torch.device(device)
        return self

    @staticmethod
    def _check_shard(rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"shard: rank must be in [0, {world_size}), got {rank}")

    def _shard_copy(self, rank: int, world_size: int, training: bool = True) -> LoaderBase:
        """A shallow copy for `shard`, with `rank` / `world_size` set when `training`; checks `rank`."""
        self._check_shard(rank, world_size)
        out = copy.copy(self)
        if training:
            out.rank, out.world_size = rank, world_size
        return out
