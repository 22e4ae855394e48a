"""Test-time augmentation for images out (EDSR's "self-ensemble", Lim et al. 2017): run the model on the 8
rotations and flips of each input, turn each output back and average them.

    from quickfit.vision.generation.tta import DihedralEnsemble, dihedral_tta

    sharper = DihedralEnsemble(learn.model)        # any image -> image model, any size in, any scale out
    preds, targs = dihedral_tta(learn, n=8)         # what learn.tta() gives on image-to-image data

8 forward passes, no retraining: a sharper mean for any convolutional model. `ImageTarget.tta` calls
`dihedral_tta`, so `learn.tta()` and `learn.predict(item, tta=True)` of an image-to-image learner use it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["DihedralEnsemble", "dihedral_tta"]

_DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]  # the identity first


def _turn(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, k, dims=(-2, -1)) if k else x
    return x.flip(-1) if flip else x


def _unturn(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = x.flip(-1) if flip else x
    return torch.rot90(x, -k, dims=(-2, -1)) if k else x


class DihedralEnsemble(nn.Module):
    """The mean of `model`'s outputs over the first `n` of the 8 rotations / flips of its input, each
    output turned back: `model` must map an image batch to an image batch (any size in, any scale out)."""

    def __init__(self, model: nn.Module, n: int = 8) -> None:
        super().__init__()
        if not 1 <= n <= 8:
            raise ValueError(f"DihedralEnsemble: n must be in 1..8 (the rotations and flips), got {n}")
        self.model, self.n = model, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for k, flip in _DIHEDRAL[: self.n]:
            y = _unturn(self.model(_turn(x, k, flip)), k, flip).float()
            out = y if out is None else out + y
        return out / self.n


def dihedral_tta(learn, dl: Iterable | None = None, n: int = 8) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`(preds, targets)` of `learn` on `dl` (the validation set by default), each prediction the mean over
    the first `n` rotations / flips of its input. The learner's model is put back afterwards."""
    model = learn.model
    learn.model = DihedralEnsemble(model, n)
    try:
        return learn.get_preds(dl=dl)
    finally:
        learn.model = model
