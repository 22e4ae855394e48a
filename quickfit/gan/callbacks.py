"""Callbacks of GAN training: samples drawn each epoch (`GANSamples`) and an averaged generator (`GeneratorEMA`)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from quickfit.callbacks.core import Callback


# ---- showing samples ----------------------------------------------------------------------------------------
class GANSamples(Callback):
    """Every `every` epochs, `learn.show_results(n, path)` to `folder/epoch_<i>.png` (the same inputs each
    time: the first validation batch, or fixed noise)."""

    def __init__(self, folder: str | Path = "gan_samples", every: int = 1, n: int = 16) -> None:
        self.folder, self.every, self.n = Path(folder), every, n

    def after_epoch(self, learn) -> None:
        if learn.is_main_process and (learn.epoch + 1) % self.every == 0:
            learn.show_results(self.n, path=self.folder / f"epoch_{learn.epoch}.png")


class GeneratorEMA(Callback):
    """An exponential moving average of the generator's weights, updated after every generator step:
    `avg = decay * avg + (1 - decay) * weights` (BatchNorm statistics too). The average of the last
    ~1 / (1 - decay) steps draws cleaner samples than the last step's weights, which wander around it.

    The first steps use `min(decay, (1 + n) / (10 + n))` (n: the steps averaged so far), so the untrained
    start is soon forgotten. `ema.generator` is the averaged copy (in eval mode); with `replace_at_end`
    the learner's generator takes its weights after each fit, so `show_results`, `save` and any later
    sampling use them. Critic steps, cancelled steps and `lr_find` leave the average alone. Checkpoints
    keep the average (`state_dict`), so a resumed fit ends with the same one as an uninterrupted fit.

        ema = GeneratorEMA(0.999)
        learn.fit(20, 2e-4, cbs=[ema])      # learn.generator now holds the average
    """

    def __init__(self, decay: float = 0.999, replace_at_end: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"GeneratorEMA: decay must be in [0, 1), got {decay!r}")
        self.decay, self.replace_at_end = float(decay), replace_at_end
        self.generator: nn.Module | None = None
        self.n_averaged = 0

    def _active(self, learn) -> bool:
        from quickfit.callbacks.lr_finder import LRFinder

        return not any(isinstance(cb, LRFinder) for cb in learn.cbs)

    def before_fit(self, learn) -> None:
        if self.generator is None and self._active(learn):
            self.generator = copy.deepcopy(learn.generator).eval().requires_grad_(False)

    def state_dict(self) -> dict:
        avg = {} if self.generator is None else {k: v.detach().cpu() for k, v in self.generator.state_dict().items()}
        return {"n_averaged": self.n_averaged, "generator": avg}

    def load_state_dict(self, state: dict) -> None:  # called by a resume, after before_fit made the copy
        self.n_averaged = int(state.get("n_averaged", 0))
        if state.get("generator") and self.generator is not None:
            self.generator.load_state_dict(state["generator"])

    def before_step(self, learn) -> None:
        self._stepped = True

    def after_cancel_step(self, learn) -> None:
        self._stepped = False

    def after_step(self, learn) -> None:
        if self.generator is None or learn.stepping_opt is not learn.opt or not getattr(self, "_stepped", False):
            return
        if not learn.training or not self._active(learn):
            return
        self.n_averaged += 1
        d = min(self.decay, (1 + self.n_averaged) / (10 + self.n_averaged))
        with torch.no_grad():
            avg, live = self.generator.state_dict(), learn.generator.state_dict()
            floats = [k for k, v in avg.items() if v.is_floating_point()]
            torch._foreach_lerp_([avg[k] for k in floats], [live[k].detach() for k in floats], 1.0 - d)
            for k, v in avg.items():
                if not v.is_floating_point():
                    v.copy_(live[k])

    def after_fit(self, learn) -> None:
        if self.replace_at_end and self.generator is not None and self._active(learn):
            learn.generator.load_state_dict(self.generator.state_dict())
