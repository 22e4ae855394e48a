"""Losses for segmentation: pixel cross-entropy (void ignored), class weights, and a soft Dice term.

    from quickfit.vision import SegmentationLoss, class_weights

    loss = SegmentationLoss(void_code=11)                          # plain pixel cross-entropy
    loss = SegmentationLoss(11, weight=class_weights(dls), dice=1.0)  # rare classes count, + Dice
    learn = unet_learner(dls, "efficientnet_lite0", loss_func=loss)

Cross-entropy over pixels is dominated by the large classes (road, sky, building): a class that
covers 0.5% of the pixels (a pole) can stay unpredicted for the whole training. Two remedies, which
can be combined:
- `weight`: one weight per class in the cross-entropy. `class_weights(dls)` computes SegNet's median
  frequency balancing from the training masks (the median class frequency over each class's own
  frequency, where a class's frequency counts only the images it appears in), damped by `power`.
- `dice`: adds `dice` x (1 - the soft Dice coefficient), per class over the batch's pixels and
  averaged over the classes, void excluded: each class weighs the same whatever its size, which is
  what the mean IoU measures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quickfit.vision.segmentation.masks import void_index

__all__ = ["SegmentationLoss", "class_weights", "soft_dice_loss"]


class SegmentationLoss(nn.CrossEntropyLoss):
    """Pixel cross-entropy ([B, C, H, W] scores, [B, H, W] classes) ignoring `void_code`, with optional
    per-class `weight` and a soft Dice term of weight `dice` (an `nn.CrossEntropyLoss` with `dice=0`).
    Its activation (used by `get_preds`) is the softmax over classes (dim 1)."""

    def __init__(
        self,
        void_code: int | None = None,
        weight: Sequence[float] | torch.Tensor | None = None,
        dice: float = 0.0,
        smooth: float = 1.0,
    ) -> None:
        if dice < 0:
            raise ValueError(f"dice must be >= 0 (the weight of the Dice term), got {dice}")
        w = None if weight is None else torch.as_tensor(weight, dtype=torch.float32).flatten()
        if w is not None and (not torch.isfinite(w).all() or (w < 0).any()):
            raise ValueError(f"weight must be finite and >= 0 per class, got {w.tolist()}")
        void_code = void_index(void_code, where="SegmentationLoss: void_code")
        super().__init__(weight=w, ignore_index=-100 if void_code is None else void_code)
        self.void_code = void_code
        self.dice, self.smooth = float(dice), float(smooth)

    def forward(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if w is not None:
            if w.numel() != pred.shape[1]:
                raise ValueError(f"weight has {w.numel()} values for {pred.shape[1]} classes")
            if w.device != pred.device:  # moved once (the Learner does not move losses), not every batch
                self.weight = w = w.to(pred.device)
            w = w.to(pred.dtype)  # a no-op in float32 and under autocast
        loss = F.cross_entropy(pred, targ, weight=w, ignore_index=self.ignore_index)
        if self.dice:
            loss = loss + self.dice * soft_dice_loss(pred, targ, self.void_code, self.smooth)
        return loss

    @staticmethod
    def activation(x: torch.Tensor) -> torch.Tensor:
        return x.softmax(dim=1)

    def extra_repr(self) -> str:
        w = None if self.weight is None else [round(v, 3) for v in self.weight.tolist()]
        return f"void_code={self.void_code}, weight={w}, dice={self.dice}"


def soft_dice_loss(
    pred: torch.Tensor, targ: torch.Tensor, void_code: int | None = None, smooth: float = 1.0
) -> torch.Tensor:
    """1 - the soft Dice coefficient of softmax(`pred`) [B, C, H, W] against `targ` [B, H, W], per class
    over all the batch's non-void pixels, averaged over the classes (the void channel left out).
    `smooth` keeps a class absent from the batch at a loss that falls as its predicted mass falls."""
    n = pred.shape[1]
    prob = pred.float().softmax(dim=1)
    valid = torch.ones_like(targ, dtype=torch.bool) if void_code is None else targ != void_code
    t = torch.where(valid, targ, torch.zeros_like(targ))
    onehot = F.one_hot(t, n).permute(0, 3, 1, 2).to(prob.dtype) * valid.unsqueeze(1)
    prob = prob * valid.unsqueeze(1)
    dims = (0, 2, 3)
    inter = (prob * onehot).sum(dims)
    denom = prob.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    keep = torch.ones(n, dtype=torch.bool, device=pred.device)
    if void_code is not None and void_code < n:
        keep[void_code] = False
    return 1 - dice[keep].mean()


def class_weights(dls, power: float = 0.5, max_weight: float = 10.0) -> torch.Tensor:
    """Per-class weights from the training masks of `dls` (a `SegmentationDataLoaders`): SegNet's median
    frequency balancing, `(median(freq) / freq[c]) ** power`, where `freq[c]` is class c's pixels over
    the pixels of the images it appears in; `power=1` is SegNet's, 0.5 (the default) a milder version.
    Clipped to `max_weight`; void and classes absent from the training masks get 0."""
    from quickfit.vision.segmentation.masks import load_mask

    masks = dls.train_items.targets
    if masks is None:
        raise ValueError("class_weights needs the training masks: these loaders have no targets")
    n = dls.c
    pixels = np.zeros(n, np.float64)
    present_in = np.zeros(n, np.float64)
    for m in masks:
        counts = np.bincount(load_mask(m, dls.target).ravel(), minlength=n)[:n].astype(np.float64)
        pixels += counts
        present_in += (counts > 0) * counts.sum()
    void = dls.void_code
    if void is not None and void < n:
        pixels[void] = 0
    seen = pixels > 0
    freq = np.where(seen, pixels / np.maximum(present_in, 1), 0)
    med = np.median(freq[seen])
    w = np.where(seen, (med / np.maximum(freq, 1e-12)) ** power, 0.0)
    return torch.tensor(np.minimum(w, max_weight), dtype=torch.float32)
