"""MixUp and CutMix: train on blends of two examples, with the loss blended in the same proportion.

    learn.fit_one_cycle(10, 1e-3, cbs=[qf.MixUp(0.4)])       # or qf.CutMix(1.0) for images

Each training batch is blended with a shuffled copy of itself: MixUp (Zhang et al. 2018) takes
`lam * x + (1 - lam) * x[perm]`, CutMix (Yun et al. 2019) pastes a box of `x[perm]` covering a
`1 - lam` share of each image, with `lam ~ Beta(alpha, alpha)` drawn once per batch. The loss becomes
`lam * loss(pred, y) + (1 - lam) * loss(pred, y[perm])`, which works for any loss of a prediction
and a target (class indices, multi-hot, soft labels). The targets themselves are untouched, and
validation batches are never mixed, so metrics see the true labels. Inputs must be floating point:
category codes and token ids cannot be blended (an error says so).
"""

from __future__ import annotations

import torch

from quickfit.callbacks.core import Callback

__all__ = ["MixUp", "CutMix"]


class MixUp(Callback):
    """Blend each training batch with a shuffled copy of itself (see the module docstring).

    After each training batch `lam` and `perm` hold what was used (tests and curious users read them)."""

    order = -5  # before GradientAccumulation (5) and the others that look at the loss

    def __init__(self, alpha: float = 0.4):
        if not alpha > 0:
            raise ValueError(f"{type(self).__name__}: alpha must be > 0, got {alpha!r}")
        self.alpha = alpha
        self.lam, self.perm = 1.0, None

    def draw_lam(self) -> float:
        """This batch's share of the original examples, from Beta(alpha, alpha) (torch's RNG: seeded runs repeat)."""
        return float(torch.distributions.Beta(self.alpha, self.alpha).sample())

    def before_fit(self, learn) -> None:
        self.loss_func = learn.loss_func
        learn.loss_func = self._loss

    def cleanup_fit(self, learn) -> None:
        if learn.loss_func == self._loss:
            learn.loss_func = self.loss_func

    def before_batch(self, learn) -> None:
        self.perm = None
        if not learn.training or learn.yb is None:
            return
        for i, x in enumerate(learn.xb):
            if not torch.is_floating_point(x):
                raise TypeError(
                    f"{type(self).__name__} blends inputs, and input {i} is {x.dtype} (category codes or "
                    "token ids cannot be blended): use it on models whose inputs are floats"
                )
        self.lam = self.draw_lam()
        self.perm = torch.randperm(learn.yb.shape[0], device=learn.yb.device)
        learn.xb = tuple(self.mix(x) for x in learn.xb)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        return self.lam * x + (1 - self.lam) * x[self.perm]

    def _loss(self, pred, y):
        if self.perm is None:  # validation, or get_preds: the plain loss
            return self.loss_func(pred, y)
        return self.lam * self.loss_func(pred, y) + (1 - self.lam) * self.loss_func(pred, y[self.perm])


class CutMix(MixUp):
    """Paste a random box of a shuffled copy into each training image; `lam` becomes the share of
    each image left uncovered (the box is clipped at the borders). Inputs are `[B, C, H, W]`."""

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)
        self.box = (0, 0, 0, 0)

    def draw_box(self, h: int, w: int, lam: float) -> tuple[int, int, int, int]:
        """A box `(top, bottom, left, right)` of area about `(1 - lam) * h * w`, centered at random."""
        cut = (1 - lam) ** 0.5
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        return max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise TypeError(f"CutMix cuts boxes out of images [B, C, H, W]; got an input of shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        self.box = top, bottom, left, right = self.draw_box(h, w, self.lam)
        x = x.clone()
        x[:, :, top:bottom, left:right] = x[self.perm, :, top:bottom, left:right]
        self.lam = 1 - (bottom - top) * (right - left) / (h * w)
        return x
