"""Oversampling: draw the rows of each training epoch by weight, with replacement, so rare classes
are seen as often as common ones ("make copies of the rare cases").

    from quickfit.data import TensorBatches
    dl = TensorBatches(x, y, bs=64, oversample=True)          # every class equally likely per draw
    dl = TensorBatches(x, y, bs=64, weights=w)                # or any weight per row

An epoch draws `len(weights)` rows with replacement, each with probability `w[i] / sum(w)`:
`oversample=True` takes `w[i] = 1 / count(class of row i)`, so each class makes about the same share of
every epoch, rare rows repeating and common ones left out in turn. Under torchrun the ranks share one
draw per epoch (made from the torch seed, identical on every rank, as an unsharded loader would draw
it) and each takes its part of each global batch, so N ranks see what one process would.
"""

from __future__ import annotations

import torch

__all__ = ["balanced_weights", "weighted_draw"]


def balanced_weights(targets: torch.Tensor) -> torch.Tensor:
    """`1 / count(class)` for each row of `targets` (class indices): every class as likely as another."""
    targets = torch.as_tensor(targets)
    if targets.is_floating_point() or targets.ndim != 1:
        raise ValueError(
            f"oversample=True needs one class index per row (an integer vector); got {targets.dtype} "
            f"of shape {tuple(targets.shape)}: pass weights= instead"
        )
    counts = torch.bincount(targets.cpu())
    return 1.0 / counts[targets.cpu()].double()


def check_weights(weights, n: int) -> torch.Tensor:
    """`weights` as a float64 CPU tensor of `n` non-negative values with a positive sum, or an error."""
    w = torch.as_tensor(weights, dtype=torch.float64).cpu()
    if w.ndim != 1 or len(w) != n:
        raise ValueError(f"weights must have one value per row ({n}), got shape {tuple(w.shape)}")
    if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    return w


def weighted_draw(weights: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """`n` (default `len(weights)`) row indices drawn with replacement by weight. The generator is seeded
    from torch's global one, so every rank of a seeded run draws the same rows (and it moves on per epoch)."""
    seed = int(torch.empty((), dtype=torch.int64).random_().item())
    gen = torch.Generator().manual_seed(seed)
    return torch.multinomial(weights, len(weights) if n is None else n, replacement=True, generator=gen)
