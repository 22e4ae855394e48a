"""DataLoaders: a train and a valid iterable of batches, plus what the Learner needs to move them.

    import torch, quickfit as qf
    from torch.utils.data import DataLoader, TensorDataset
    ds = TensorDataset(torch.randn(100, 3), torch.randint(0, 2, (100,)))
    dls = qf.DataLoaders(DataLoader(ds, batch_size=16, shuffle=True), DataLoader(ds, batch_size=32))

A batch is a tuple `(*xs, y)`; `n_inp` says how many leading items are model inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["DataLoaders", "first_batch", "random_split", "to_device"]


def first_batch(dl: Any, what: str) -> tuple:
    """The first batch of `dl`, or a ValueError saying what to do: a learner from `load_learner` has no data."""
    batch = next(iter(dl), None) if dl is not None else None
    if batch is None:
        raise ValueError(
            f"{what}: the data has no batches (a learner from load_learner keeps only the data processing): "
            "pass dl=learn.dls.test_dl(items) with labelled items, or call learn.set_data(dls) first"
        )
    return tuple(batch)


def to_device(batch: Any, device: torch.device | str | None) -> Any:
    """Move a tensor or a (nested) tuple / list / dict of tensors to `device`.

    `non_blocking` lets the copy from pinned host memory overlap with compute on CUDA;
    on CPU it is a no-op, and a tensor already on the device is returned as is.
    """
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        # the check is cheaper than .to()'s argument parsing, on every tensor of every batch
        return batch if batch.device == device else batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def random_split(n: int, valid_pct: float = 0.2, seed: int | None = None) -> np.ndarray:
    """Indices of a random validation set: `round(n * valid_pct)` of `range(n)`, sorted.

    The same `seed` gives the same split (the course's `get_cv_idxs`).
    """
    if not 0 <= valid_pct < 1:
        raise ValueError(f"valid_pct must be in [0, 1), got {valid_pct}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(n)[: int(round(n * valid_pct))])


class DataLoaders:
    """The training and validation iterables of batches (any iterable with `len()` works)."""

    def __init__(self, train: Iterable, valid: Iterable | None = None, n_inp: int = 1, device=None):
        self.train, self.valid, self.n_inp = train, valid, n_inp
        self.device = None if device is None else torch.device(device)

    def to(self, device: torch.device | str) -> DataLoaders:
        """Remember the device batches go to (loaders that move batches themselves read it)."""
        self.device = torch.device(device)
        for dl in (self.train, self.valid):
            if dl is not None and hasattr(dl, "to") and not isinstance(dl, torch.utils.data.DataLoader):
                dl.to(self.device)
        return self

    def __getitem__(self, i: int) -> Iterable:
        return (self.train, self.valid)[i]

    def one_batch(self, split: str = "train") -> Any:
        """The first batch of the `"train"` (shuffled, as training sees it) or `"valid"` loader, on the
        loaders' device: a tuple `(*inputs, target)`, to check shapes and types before training."""
        if split not in ("train", "valid"):
            raise ValueError(f"one_batch: split must be 'train' or 'valid', got {split!r}")
        dl = self.train if split == "train" else self.valid
        batch = next(iter(dl), None) if dl is not None else None
        if batch is None:
            raise ValueError(f"one_batch: the {split} loader has no batches")
        return to_device(batch, self.device)

    def __repr__(self) -> str:
        def size(dl):
            return len(dl) if hasattr(dl, "__len__") else "?"

        return f"{type(self).__name__}(train: {size(self.train)} batches, valid: {size(self.valid)} batches)"


def batch_size_of(batch: Sequence) -> int:
    """Number of items in a batch (the length of its first tensor)."""
    first = batch[0]
    while isinstance(first, (list, tuple)):
        first = first[0]
    return first.shape[0]
