"""Test-time augmentation: average the predictions of several augmented views of each image.

    preds, targs = learn.tta()            # validation set: 25% plain + 75% mean of 4 augmented passes
    preds, _ = learn.tta(dls.test_dl(files), n=8)
    accuracy = (preds.argmax(1) == targs).float().mean()

The augmented passes use the training crops and batch augmentation of the data (`dls.augmented(dl)`),
over the same items in the same order, so the passes line up image by image.
"""

from __future__ import annotations

import torch

__all__ = ["tta"]


def tta(learn, dl=None, n: int = 4, beta: float | None = 0.25) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`(preds, targets)` on `dl` (the validation images by default): `beta * plain + (1 - beta) * mean
    of n augmented`, or the augmented mean alone when `beta` is None."""
    if n < 1:
        raise ValueError(f"tta needs n >= 1 augmented passes, got {n}")
    image_dls = learn.image_dls
    if not hasattr(image_dls, "augmented"):
        raise TypeError(f"tta needs data that can augment a loader (ImageDataLoaders); got {type(image_dls).__name__}")
    dl = image_dls.valid if dl is None else dl
    aug_dl = image_dls.augmented(dl)
    aug = torch.stack([learn.get_preds(dl=aug_dl)[0] for _ in range(n)]).mean(0)
    if beta is None:
        return aug, learn.get_preds(dl=dl)[1]
    preds, targs = learn.get_preds(dl=dl)
    return torch.lerp(aug, preds, beta), targs
