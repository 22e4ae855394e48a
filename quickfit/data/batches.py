"""Batches sliced from tensors held in memory: shuffling, `drop_last`, `to(device)`, `shard(rank, world)`.

    import torch
    from quickfit.data import TensorBatches
    x, y = torch.randn(10, 3), torch.arange(10)
    dl = TensorBatches(x, y, bs=4, shuffle=True)      # batches (x[i:j], y[i:j]) in a new order each epoch
    dl = TensorBatches(x, y, bs=4, oversample=True)   # rows drawn by 1 / their class's count (sampling.py)
    [len(xb) for xb, _ in dl]                         # [4, 4, 2]
    shard = dl.shard(rank=1, world_size=2)            # what rank 1 of 2 trains on under torchrun

An epoch costs one random permutation and one gather per tensor, then `len(self)` zero-copy
slices; after `to(device)` both happen on the device. The tabular, collab and precomputed-feature
loaders are this class with named tensors.

Sharding (what `DistributedCallback` asks of a loader under torchrun):
- a training loader (`shuffle` or `drop_last`) keeps all rows and, each epoch, cuts batches of
  `world_size * bs` rows exactly as one process with that batch size would, in the order rank 0
  draws (broadcast to the others), and gives rank `r` the `r`-th equal part of each. Every rank
  takes the same number of steps, and N ranks with `bs` train like one process with `N * bs`. Rows
  are padded by repeating the first ones to a multiple of `world_size` (as `DistributedSampler` does)
  unless `drop_last` drops the partial batch.
- a validation loader takes a contiguous slice of the rows, sizes differing by at most one, no
  repeats: summed metrics are exact and predictions gathered in rank order keep their order.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch
import torch.distributed as dist

from quickfit.data.loader import LoaderBase
from quickfit.data.sampling import balanced_weights, check_weights, weighted_draw

__all__ = ["TensorBatches", "broadcast_from_rank0"]


def broadcast_from_rank0(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's value of `t` on every rank while a process group of several ranks is up, else `t`."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    on_gpu = dist.get_backend() == dist.Backend.NCCL
    out = t.to(torch.device("cuda", torch.cuda.current_device()) if on_gpu else "cpu", copy=True)
    dist.broadcast(out, src=0)
    return out.to(t.device)


class TensorBatches(LoaderBase):
    """Batches `tuple(t[i:j] for t in tensors)` of tensors with the same number of rows.

    With `shuffle`, rows are visited in a fresh random order each epoch (torch's global generator, so
    `torch.manual_seed` makes it repeatable); with `drop_last`, a last partial batch is dropped when
    there is at least one full batch (a training batch of one row breaks BatchNorm).
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        bs: int = 64,
        shuffle: bool = False,
        drop_last: bool = False,
        weights: torch.Tensor | None = None,
        oversample: bool = False,
    ):
        if not isinstance(bs, int) or bs < 1:
            raise ValueError(f"{type(self).__name__}: bs must be a positive int, got {bs!r}")
        if not tensors:
            raise ValueError(f"{type(self).__name__}: needs at least one tensor")
        rows = [t.shape[0] for t in tensors]
        if len(set(rows)) > 1:
            raise ValueError(f"{type(self).__name__}: the tensors have different numbers of rows {rows}")
        self.tensors = tuple(tensors)
        self.bs, self.shuffle, self.drop_last = bs, shuffle, drop_last
        if oversample and weights is not None:
            raise ValueError(f"{type(self).__name__}: give weights= or oversample=True, not both")
        # each epoch draws its rows by weight, with replacement (quickfit/data/sampling.py); the last
        # tensor holds the class of each row for oversample=True
        self.weights = balanced_weights(tensors[-1]) if oversample else weights
        if self.weights is not None:
            self.weights = check_weights(self.weights, self.n)

    @property
    def n(self) -> int:
        """Number of rows (of the whole data, for a training shard)."""
        return self.tensors[0].shape[0]

    def _n_padded(self) -> int:
        return math.ceil(self.n / self.world_size) * self.world_size

    def __len__(self) -> int:
        global_bs = self.bs * self.world_size
        if self.drop_last and self.n >= global_bs:
            return self.n // global_bs
        return math.ceil(self._n_padded() / global_bs)

    def _order(self) -> torch.Tensor | None:
        """This epoch's row order (None: as stored); every shard of a group uses rank 0's."""
        if self.weights is not None:
            perm = weighted_draw(self.weights).to(self.tensors[0].device)
            return broadcast_from_rank0(perm) if self.world_size > 1 else perm
        if not self.shuffle:
            return None
        perm = torch.randperm(self.n, device=self.tensors[0].device)
        return broadcast_from_rank0(perm) if self.world_size > 1 else perm

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self._order()
        if self.world_size == 1:
            tensors = self.tensors if order is None else tuple(t[order] for t in self.tensors)
            sizes = [self.bs] * len(self)
        else:
            order, sizes = self._shard_rows(order)
            tensors = tuple(t[order] for t in self.tensors)
        start = 0  # one gather per epoch above, views below
        for size in sizes:
            yield tuple(t[start : start + size] for t in tensors)
            start += size

    def _shard_rows(self, order: torch.Tensor | None) -> tuple[torch.Tensor, list[int]]:
        """This rank's rows for the epoch and its batch sizes: part `rank` of each global batch."""
        n, w, r, global_bs = self.n, self.world_size, self.rank, self.bs * self.world_size
        if order is None:
            order = torch.arange(n, device=self.tensors[0].device)
        n_batches = len(self)
        used = min(n_batches * global_bs, self._n_padded())
        if used > n:  # pad with the first rows (again, if there are fewer rows than ranks)
            order = order[torch.arange(used, device=order.device) % n]
        parts, sizes = [], []
        for start in range(0, used, global_bs):
            part = min(global_bs, used - start) // w  # the last batch's length is a multiple of w
            parts.append(order[start + r * part : start + (r + 1) * part])
            sizes.append(part)
        return torch.cat(parts), sizes

    def shard(self, rank: int, world_size: int) -> TensorBatches:
        """This rank's part for distributed training (see the module docstring); the same class."""
        training = self.shuffle or self.drop_last or self.weights is not None
        out = self._shard_copy(rank, world_size, training)
        if not training:
            lo, hi = rank * self.n // world_size, (rank + 1) * self.n // world_size
            out.tensors = tuple(t[lo:hi] for t in self.tensors)
        return out

    def oversampled(self, weights: torch.Tensor | None = None) -> TensorBatches:
        """A copy that draws each epoch's rows by `weights` (default: 1 / the count of each row's class,
        read from the last tensor): `dls.train = dls.train.oversampled()` on any loader of this class."""
        out = copy.copy(self)
        out.weights = check_weights(balanced_weights(self.tensors[-1]) if weights is None else weights, self.n)
        return out

    def to(self, device: torch.device | str) -> TensorBatches:
        """Move the tensors to `device` once, so batches are sliced there."""
        super().to(device)
        self.tensors = tuple(t.to(self.device) for t in self.tensors)
        return self

    def __repr__(self) -> str:
        shard = f", rank {self.rank} of {self.world_size}" if self.world_size > 1 else ""
        return f"{type(self).__name__}({self.n} rows, bs={self.bs}, {len(self)} batches, shuffle={self.shuffle}{shard})"
