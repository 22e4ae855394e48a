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

import torch

from quickfit.data.batches import TensorBatches

__all__ = ["TabularBatches"]


class TabularBatches(TensorBatches):
    """Iterable of `(x_cat, x_cont, y)` batches (or `(x_cat, x_cont)` when `y` is None).

    `x_cat` is `(n, n_cat)` int64 codes, `x_cont` `(n, n_cont)` float32, `y` `(n,)` int64 class indices
    or `(n, n_targets)` float32. Shuffling, `drop_last`, `to(device)` and `shard(rank, world_size)` (for
    torchrun) are those of `quickfit.data.TensorBatches`.
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
        n = x_cat.shape[0]
        if x_cont.shape[0] != n or (y is not None and y.shape[0] != n):
            raise ValueError(
                f"TabularBatches: row counts differ (x_cat {n}, x_cont {x_cont.shape[0]}, "
                f"y {None if y is None else y.shape[0]})"
            )
        tensors = (x_cat, x_cont) if y is None else (x_cat, x_cont, y)
        super().__init__(*tensors, bs=bs, shuffle=shuffle, drop_last=drop_last)

    @property
    def x_cat(self) -> torch.Tensor:
        return self.tensors[0]

    @property
    def x_cont(self) -> torch.Tensor:
        return self.tensors[1]

    @property
    def y(self) -> torch.Tensor | None:
        return self.tensors[2] if len(self.tensors) > 2 else None
