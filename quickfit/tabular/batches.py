"""Batches of a table, sliced from tensors prepared once: no per-row Python in the training loop.

    >>> import torch
    >>> from quickfit.tabular.batches import TabularBatches
    >>> b = TabularBatches(torch.zeros(10, 2, dtype=torch.long), torch.randn(10, 3), torch.arange(10), bs=4)
    >>> len(b), [xb[0].shape[0] for xb in b]
    (3, [4, 4, 2])

An epoch costs one gather per tensor (a random permutation of all rows, when shuffling) and then
`len(self)` zero-copy slices; after `to(device)` both happen on the device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

__all__ = ["TabularBatches"]


class TabularBatches:
    """Iterable of `(x_cat, x_cont, y)` batches (or `(x_cat, x_cont)` when `y` is None).

    `x_cat` is `(n, n_cat)` int64 codes, `x_cont` `(n, n_cont)` float32, `y` `(n,)` int64 class indices
    or `(n, n_targets)` float32. With `shuffle`, rows are visited in a fresh random order each epoch
    (torch's global generator, so `torch.manual_seed` makes it reproducible); with `drop_last`, a last
    partial batch is dropped when there is at least one full batch (BatchNorm needs more than one row).
    """

    def __init__(
        self,
        x_cat: torch.Tensor,
        x_cont: torch.Tensor,
        y: torch.Tensor | None = None,
        bs: int = 256,
        shuffle: bool = False,
        drop_last: bool = False,
    ) -> None:
        if bs < 1:
            raise ValueError(f"bs must be a positive batch size, got {bs}")
        n = x_cat.shape[0]
        if x_cont.shape[0] != n or (y is not None and y.shape[0] != n):
            raise ValueError(
                f"TabularBatches: row counts differ (x_cat {n}, x_cont {x_cont.shape[0]}, "
                f"y {None if y is None else y.shape[0]})"
            )
        self.x_cat, self.x_cont, self.y = x_cat, x_cont, y
        self.bs, self.shuffle, self.drop_last = bs, shuffle, drop_last

    @property
    def n(self) -> int:
        """Number of rows."""
        return self.x_cat.shape[0]

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.x_cat, self.x_cont) if self.y is None else (self.x_cat, self.x_cont, self.y)

    def __len__(self) -> int:
        if self.drop_last and self.n >= self.bs:
            return self.n // self.bs
        return math.ceil(self.n / self.bs)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        tensors = self.tensors
        if self.shuffle:
            perm = torch.randperm(self.n, device=self.x_cat.device)
            tensors = tuple(t[perm] for t in tensors)  # one gather per epoch, then views
        bs = self.bs
        for i in range(len(self)):
            yield tuple(t[i * bs : (i + 1) * bs] for t in tensors)

    def to(self, device: torch.device | str) -> TabularBatches:
        """Move the prepared tensors to `device` once, so batches are sliced there."""
        self.x_cat, self.x_cont = self.x_cat.to(device), self.x_cont.to(device)
        if self.y is not None:
            self.y = self.y.to(device)
        return self

    def __repr__(self) -> str:
        return f"TabularBatches({self.n} rows, bs={self.bs}, {len(self)} batches, shuffle={self.shuffle})"
