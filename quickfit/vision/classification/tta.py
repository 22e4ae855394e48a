"""Test-time augmentation: average the predictions of several augmented views of each image.

    preds, targs = learn.tta()            # validation set: 25% plain + 75% mean of 4 augmented passes
    preds, _ = learn.tta(dls.test_dl(files), n=8)
    accuracy = (preds.argmax(1) == targs).float().mean()

Each image is decoded and resized once (the loader's center crop); the plain view and the `n`
augmented views are then made from that uint8 batch on the device, by the data's batch transforms
(flip, rotation, zoom, warp, lighting). Decoding is most of the cost of a pass on CPU, so `n=4` costs
about one decode plus five forward passes, not five of each.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

__all__ = ["tta"]


class _Views:
    """Yields, for each batch of `dl`, the plain batch then `n` augmented ones made from the same pixels."""

    def __init__(self, dl, n: int) -> None:
        self.dl, self.n, self.sizes = dl, n, []

    def __len__(self) -> int:
        return len(self.dl) * (self.n + 1)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        self.sizes = []
        for xb, yb in self.dl.raw_batches():
            self.sizes.append(xb.shape[0])
            for k in range(self.n + 1):
                x = self.dl.transform(xb, augment=k > 0)
                yield (x,) if yb is None else (x, yb)


def tta(learn, dl=None, n: int = 4, beta: float | None = 0.25) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`(preds, targets)` on `dl` (the validation images by default): `beta * plain + (1 - beta) * mean
    of n augmented`, or the augmented mean alone when `beta` is None."""
    if n < 1:
        raise ValueError(f"tta needs n >= 1 augmented passes, got {n}")
    dl = learn.image_dls.valid if dl is None else dl
    if not hasattr(dl, "raw_batches"):
        raise TypeError(f"tta needs an image loader (ImageDataLoaders' valid or test_dl); got {type(dl).__name__}")
    views = _Views(dl, n)
    preds, targs = learn.get_preds(dl=views)
    plain, aug, kept = [], [], []
    start = 0
    for b in views.sizes:  # rows come batch by batch: plain, then the n augmented views
        chunk = preds[start : start + (n + 1) * b].view(n + 1, b, *preds.shape[1:])
        plain.append(chunk[0])
        aug.append(chunk[1:].mean(0))
        if targs is not None:
            kept.append(targs[start : start + b])
        start += (n + 1) * b
    plain_p, aug_p = torch.cat(plain), torch.cat(aug)
    targs = torch.cat(kept) if targs is not None else None
    return (aug_p if beta is None else torch.lerp(aug_p, plain_p, beta)), targs
