"""`GANStep`: one training batch is a critic step or a generator step; the critic has its own optimizer."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch

from quickfit.gan.loss import GANLoss
from quickfit.gan.switchers import FixedGANSwitcher, GANSwitcher, Phase
from quickfit.metrics import Metric
from quickfit.optim import Adam, param_groups
from quickfit.step import TrainStep

AdamNoMomentum = partial(Adam, mom=0.0)  # "GANs hate momentum": beta1 = 0


# ---- the step -------------------------------------------------------------------------------------------
class GANStep(TrainStep):
    """One critic or generator batch (see the module docstring); validation runs the generator and
    reports its loss. `learn.loss` is the loss of whichever network this batch trained; the epoch means of
    each are the metrics `crit_loss` / `gen_loss` (`learn.step.metrics()`)."""

    def __init__(
        self,
        loss: GANLoss,
        switcher: GANSwitcher | None = None,
        critic_opt_func: Callable = AdamNoMomentum,
        critic_lr_mult: float = 1.0,
        critic_wd: float | None = None,
    ) -> None:
        self.loss, self.switcher = loss, switcher or FixedGANSwitcher()
        self.critic_opt_func, self.critic_lr_mult, self.critic_wd = critic_opt_func, critic_lr_mult, critic_wd
        self.phase: Phase = self.switcher.first
        self.crit_opt: torch.optim.Optimizer | None = None
        self.losses: dict[str, list[torch.Tensor]] = {"critic": [], "generator": []}  # this epoch's, on the device

    def create_opts(self, learn) -> None:
        critic = learn._unwrapped().critic
        kw = {} if self.critic_wd is None else {"wd": self.critic_wd}
        lr = float(learn.opt.param_groups[-1]["lr"]) * self.critic_lr_mult
        self.crit_opt = self.critic_opt_func(param_groups([list(critic.parameters())]), lr=lr, **kw)
        self.set_lr_max(lr)

    def start_fit(self, learn, lr_max: list[float]) -> None:
        self.set_lr_max(lr_max[-1] * self.critic_lr_mult)  # the critic follows the fit's rate

    def set_lr_max(self, lr: float) -> None:
        for g in self.crit_opt.param_groups:
            g["lr_max"] = g["lr"] = lr

    def extra_opts(self, learn) -> list[torch.optim.Optimizer]:
        return [] if self.crit_opt is None else [self.crit_opt]

    def set_switcher(self, switcher: GANSwitcher) -> None:
        self.switcher, self.phase = switcher, switcher.first

    def __call__(self, learn) -> None:
        x, real = learn.xb[0], learn.yb
        if not learn.training:
            with learn.autocast:
                learn.pred = learn.model(x, mode="generate")
                learn("after_pred")
                if real is None:
                    return
                learn.loss = self.loss.generator(learn.model(learn.pred, mode="critic"), learn.pred, real)
            learn("after_loss")
            return
        if learn.iter == 0:  # a new epoch: fresh means
            self.losses = {"critic": [], "generator": []}
        if self.phase == "critic":
            self._critic_batch(learn, x, real)
        else:
            self._generator_batch(learn, x, real)
        self.losses[self.phase].append(learn.loss.detach())  # summed once per epoch, not per batch
        self.phase = self.switcher.next_phase(self.phase, learn.loss)

    def _critic_batch(self, learn, x: torch.Tensor, real: torch.Tensor) -> None:
        with torch.no_grad(), learn.autocast:
            fake = learn.model(x, mode="generate")
        r1 = getattr(self.loss, "r1", 0.0) > 0
        if r1:
            real = real.detach().requires_grad_(True)
        with learn.autocast:
            # real and fake in one forward: one DDP forward per backward, one pass over the critic
            preds = learn.model(torch.cat([real, fake.to(real.dtype)]), mode="critic")
            learn.pred = fake
            learn("after_pred")
            learn.loss = learn.loss_grad = self.loss.critic(preds[: len(real)], preds[len(real) :])
            if r1:
                learn.loss_grad = learn.loss_grad + self.loss.r1_penalty(preds[: len(real)], real)
        learn("after_loss")
        learn.backward()
        learn.opt_step(self.crit_opt)

    def _generator_batch(self, learn, x: torch.Tensor, real: torch.Tensor) -> None:
        critic = learn._unwrapped().critic
        trainable = [p for p in critic.parameters() if p.requires_grad]
        for p in trainable:  # no critic weight gradients: half the critic's backward work saved
            p.requires_grad_(False)
        try:
            with learn.autocast:
                fake, fake_pred = learn.model(x, mode="generate_critic")
                learn.pred = fake
                learn("after_pred")
                learn.loss = learn.loss_grad = self.loss.generator(fake_pred, fake, real)
            learn("after_loss")
            learn.backward()
        finally:
            for p in trainable:
                p.requires_grad_(True)
        learn.opt_step(learn.opt)

    def metrics(self) -> list[Metric]:
        return [_PhaseLoss(self, "critic", "crit_loss"), _PhaseLoss(self, "generator", "gen_loss")]

    def state_dict(self) -> dict:
        return {"phase": self.phase, "switcher": self.switcher.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.phase = state.get("phase", self.switcher.first)
        self.switcher.load_state_dict(state.get("switcher", {}))


class _PhaseLoss(Metric):
    """The mean training loss of one phase over the epoch (shown in the epoch table, summed over DDP ranks)."""

    def __init__(self, step: GANStep, phase: str, name: str) -> None:
        self.step, self.phase, self.name = step, phase, name

    def reset(self) -> None:  # called before validation: the training epoch just ended
        losses = self.step.losses[self.phase]
        if not losses:
            self.totals = torch.zeros(2, dtype=torch.float64)
            return
        total = torch.stack(losses).double().sum()
        self.totals = torch.stack([total, torch.full_like(total, len(losses))])

    def accumulate(self, pred, targ) -> None:
        pass

    def compute(self, totals: torch.Tensor) -> float:
        return float(totals[0] / totals[1]) if totals[1] > 0 else math.nan
