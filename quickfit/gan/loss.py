"""`GANLoss`: the critic's and the generator's losses (non-saturating, WGAN, hinge), with an optional content loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F


# ---- losses ------------------------------------------------------------------------------------------
class GANLoss:
    """The two losses of a GAN. `kind`: "wgan" (Wasserstein: the critic maximizes real - fake scores; keep
    it Lipschitz, here with spectral norm) or "nonsaturating" (Goodfellow's: the generator maximizes
    log D(fake), whose gradient does not vanish when the critic wins).

    `content_loss(fake, target)` (an image-to-image GAN, e.g. `FeatureLoss`) is added to the generator's
    adversarial loss: `content_weight * content + adv_weight * adversarial`.

    `r1` > 0 adds Mescheder et al.'s R1 penalty to the critic's loss: `r1 / 2 * E[|grad_x D(x)|^2]` over
    the real images (the critic kept smooth where the data is; one more backward per critic batch)."""

    def __init__(
        self,
        kind: Literal["wgan", "nonsaturating"] = "wgan",
        content_loss: Callable | None = None,
        content_weight: float = 1.0,
        adv_weight: float = 1.0,
        r1: float = 0.0,
    ) -> None:
        if kind not in ("wgan", "nonsaturating"):
            raise ValueError(f"GANLoss kind must be 'wgan' or 'nonsaturating', got {kind!r}")
        if not r1 >= 0:
            raise ValueError(f"GANLoss r1 must be >= 0 (the penalty's weight), got {r1!r}")
        self.kind, self.content_loss = kind, content_loss
        self.content_weight, self.adv_weight, self.r1 = float(content_weight), float(adv_weight), float(r1)

    def r1_penalty(self, real_pred: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """`r1 / 2 * mean |d real_pred / d real|^2` (per image, summed over its pixels); `real` must
        require grad and `real_pred` be computed from it."""
        (grad,) = torch.autograd.grad(real_pred.float().sum(), real, create_graph=True)
        return 0.5 * self.r1 * grad.float().pow(2).flatten(1).sum(1).mean()

    def critic(self, real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
        if self.kind == "wgan":
            return fake_pred.float().mean() - real_pred.float().mean()
        return F.softplus(-real_pred.float()).mean() + F.softplus(fake_pred.float()).mean()

    def adversarial(self, fake_pred: torch.Tensor) -> torch.Tensor:
        if self.kind == "wgan":
            return -fake_pred.float().mean()
        return F.softplus(-fake_pred.float()).mean()

    def generator(self, fake_pred: torch.Tensor, fake: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        loss = self.adv_weight * self.adversarial(fake_pred)
        if self.content_loss is not None and target is not None:
            loss = loss + self.content_weight * self.content_loss(fake, target)
        return loss

    def __repr__(self) -> str:
        return f"GANLoss({self.kind!r}, content_loss={self.content_loss!r})"
