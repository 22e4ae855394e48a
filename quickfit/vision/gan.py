"""GANs on the Learner: a generator and a critic, each with its optimizer, trained in alternation.

    import torch, quickfit as qf
    from quickfit.vision.gan import GANLearner, basic_generator, gan_critic, noise_dls

    real = torch.rand(512, 1, 28, 28) * 2 - 1                 # images in [-1, 1]
    dls = noise_dls(real, z_dim=32, bs=64)                    # batches of (noise, real images)
    learn = GANLearner(dls, basic_generator(28, n_channels=1, z_dim=32), gan_critic(n_channels=1, n_blocks=2),
                       loss="nonsaturating")
    learn.fit(2, 2e-4)                                        # Adam with beta1 = 0: "GANs hate momentum"
    learn.show_results(path="samples.png")                    # look at the images: the losses say little

The model is `GANModule(generator, critic)`; `learn.opt` trains the generator, the step's own
optimizer (`learn.step.crit_opt`) the critic; both follow the fit's schedule (the critic at
`critic_lr_mult` times the rate) and both are saved by checkpoints. Each training batch is one
critic step or one generator step; a switcher (`FixedGANSwitcher`, `AdaptiveGANSwitcher`) decides which
comes next. A batch is `(generator input, real image)`: noise for an unconditional GAN, the
low-resolution image for an image-to-image one (then a `content_loss` such as `FeatureLoss` compares the
generated image with its target, the course's "generator pre-trained with the feature loss, then
critic pre-training (`pretrain_critic`), then GAN fine-tuning").

Distributed training: the step calls only `learn.model(x, mode=...)`, so under DDP every forward goes
through DDP's wrapper (gradient sync); a GANLearner asks DDP for `find_unused_parameters`, since each
phase leaves the other network's parameters without gradients.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.utils.data import DataLoader, Dataset

from quickfit import env
from quickfit.callbacks.core import Callback
from quickfit.configs import ModelConfig, Task, export_record
from quickfit.data.core import DataLoaders, first_batch
from quickfit.learner import Learner
from quickfit.metrics import Metric
from quickfit.optim import Adam, param_groups
from quickfit.step import TrainStep
from quickfit.vision.image_grid import save_image_grid

__all__ = [
    "GANModule",
    "GANLoss",
    "GANSwitcher",
    "FixedGANSwitcher",
    "AdaptiveGANSwitcher",
    "GANStep",
    "GANLearner",
    "GANSamples",
    "GeneratorEMA",
    "gan_critic",
    "basic_generator",
    "noise_dls",
    "GANConfig",
    "GANTask",
    "AdamNoMomentum",
]

Phase = Literal["critic", "generator"]
AdamNoMomentum = partial(Adam, mom=0.0)  # "GANs hate momentum": beta1 = 0


# ---- the two networks ------------------------------------------------------------------------------
class GANModule(nn.Module):
    """Generator and critic in one module, so DDP (and checkpoints) see one model.

    `forward(x, mode)`: "generate" -> generator(x); "critic" -> critic(x); "generate_critic" ->
    (generator(x), critic(generator(x))), the generator step's one forward."""

    def __init__(self, generator: nn.Module, critic: nn.Module) -> None:
        super().__init__()
        self.generator, self.critic = generator, critic

    def forward(self, x: torch.Tensor, mode: str = "generate"):
        if mode == "generate":
            return self.generator(x)
        if mode == "critic":
            return self.critic(x)
        if mode == "generate_critic":
            fake = self.generator(x)
            return fake, self.critic(fake)
        raise ValueError(f"GANModule mode must be 'generate', 'critic' or 'generate_critic', got {mode!r}")


def _recorded(model: nn.Sequential, name: str, **kwargs) -> nn.Sequential:
    """`model` with the builder's name and arguments on it (`arch_config`): what an export records to
    rebuild it (`GANLearner.export`)."""
    model.arch_config = {"name": name, "kwargs": kwargs}
    return model


def _conv(c_in: int, c_out: int, k: int, stride: int, sn: bool) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=(k - 1) // 2 if stride == 1 else 1)
    return spectral_norm(conv) if sn else conv


class _MeanOut(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))


def gan_critic(
    n_channels: int = 3,
    nf: int = 64,
    n_blocks: int = 3,
    p: float = 0.15,
    sn: bool = True,
    in_size: int | None = None,
    n_extra: int = 0,
) -> nn.Sequential:
    """The course's critic: stride-2 4x4 convolutions with LeakyReLU and dropout, spectral norm on every
    layer (`sn`), then one score per image: by default a last 3x3 convolution to one channel averaged over
    the image (any input size; each score sees a patch); with `in_size` (the images' height = width) a
    linear layer over the whole last feature map instead (a global critic: it judges the whole digit or
    face at once, which small images want).

    Each block halves the size and doubles the channels: 28x28 digits want `n_blocks=1` or 2, 128px photos
    3-4. `n_extra` 3x3 stride-1 convolutions follow each stride-2 one (a deeper critic at the same
    sizes). `p=0` leaves out the dropout."""
    if n_blocks < 1:
        raise ValueError(f"gan_critic: n_blocks must be at least 1, got {n_blocks}")
    config = dict(n_channels=n_channels, nf=nf, n_blocks=n_blocks, p=p, sn=sn, in_size=in_size, n_extra=n_extra)
    drop = (lambda q: [nn.Dropout2d(q)]) if p > 0 else (lambda q: [])

    def extra(c: int) -> list[nn.Module]:
        return [m for _ in range(n_extra) for m in (_conv(c, c, 3, 1, sn), nn.LeakyReLU(0.2, inplace=True))]

    layers: list[nn.Module] = [*drop(p / 2), _conv(n_channels, nf, 4, 2, sn), nn.LeakyReLU(0.2, inplace=True)]
    layers += extra(nf)
    for _ in range(n_blocks):
        layers += [*drop(p), _conv(nf, nf * 2, 4, 2, sn), nn.LeakyReLU(0.2, inplace=True), *extra(nf * 2)]
        nf *= 2
    if in_size is None:
        return _recorded(nn.Sequential(*layers, _conv(nf, 1, 3, 1, sn), _MeanOut()), "gan_critic", **config)
    size = in_size
    for _ in range(n_blocks + 1):
        size //= 2  # a 4x4 stride-2 convolution with padding 1
    if size < 1:
        raise ValueError(f"gan_critic: in_size {in_size} is too small for {n_blocks + 1} halvings")
    linear = nn.Linear(nf * size * size, 1)
    critic = nn.Sequential(*layers, nn.Flatten(), spectral_norm(linear) if sn else linear, nn.Flatten(0))
    return _recorded(critic, "gan_critic", **config)


class _Reshape(nn.Module):
    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], *self.shape)


def basic_generator(
    out_size: int,
    n_channels: int = 3,
    z_dim: int = 100,
    nf: int = 64,
    n_up: int | None = None,
    upsample: Literal["nearest", "transposed"] = "nearest",
    n_extra: int = 0,
) -> nn.Sequential:
    """A DCGAN-style generator: noise [B, z_dim] -> Linear -> [nf * 2**(n_up-1), s, s] -> `n_up` times
    (2x upsampling halving the channels, BatchNorm, ReLU) -> [n_channels, out_size, out_size] through tanh
    (images in [-1, 1]). `upsample`: "nearest" (nearest-neighbour 2x then a 3x3 convolution: no
    checkerboard artefacts, Odena et al., 2016) or "transposed" (DCGAN's 4x4 stride-2 transposed
    convolution). `n_extra` 3x3 convolutions (BatchNorm, ReLU) follow each upsampling but the last (a
    deeper generator at the same sizes). `n_up` defaults to the most doublings that keep s >= 4."""
    if upsample not in ("nearest", "transposed"):
        raise ValueError(f"basic_generator: upsample must be 'nearest' or 'transposed', got {upsample!r}")
    if n_up is None:
        n_up = 0
        while out_size % 2 ** (n_up + 1) == 0 and out_size // 2 ** (n_up + 1) >= 4:
            n_up += 1
    if n_up < 1 or out_size % 2**n_up:
        raise ValueError(f"basic_generator: out_size {out_size} is not a multiple of 2**n_up (n_up={n_up})")
    config = dict(out_size=out_size, n_channels=n_channels, z_dim=z_dim, nf=nf, n_up=n_up, upsample=upsample,
                  n_extra=n_extra)  # fmt: skip
    s, c = out_size // 2**n_up, nf * 2 ** (n_up - 1)
    layers: list[nn.Module] = [nn.Linear(z_dim, c * s * s, bias=False), _Reshape(c, s, s), nn.BatchNorm2d(c), nn.ReLU()]
    for i in range(n_up):
        last = i == n_up - 1
        c_out = n_channels if last else c // 2
        if upsample == "nearest":
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c_out, 3, padding=1, bias=last)]
        else:
            layers += [nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1, bias=last)]
        layers += [nn.Tanh()] if last else [nn.BatchNorm2d(c_out), nn.ReLU()]
        if not last:
            for _ in range(n_extra):
                layers += [nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        c = c_out
    return _recorded(nn.Sequential(*layers), "basic_generator", **config)


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


# ---- switchers ----------------------------------------------------------------------------------------
class GANSwitcher:
    """Decides after each training batch which network the next batch trains."""

    first: Phase = "critic"

    def next_phase(self, phase: Phase, loss: torch.Tensor) -> Phase:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class FixedGANSwitcher(GANSwitcher):
    """`n_crit` critic batches, then `n_gen` generator batches, and again. `n_gen=0` trains only the
    critic (critic pre-training), `n_crit=0` only the generator. No CPU-GPU sync."""

    def __init__(self, n_crit: int = 1, n_gen: int = 1) -> None:
        for name, v in (("n_crit", n_crit), ("n_gen", n_gen)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"FixedGANSwitcher: {name} must be a whole number >= 0, got {v!r}")
        if n_crit == n_gen == 0:
            raise ValueError("FixedGANSwitcher: n_crit and n_gen cannot both be 0 (nothing would train)")
        self.n_crit, self.n_gen, self.count = n_crit, n_gen, 0
        self.first = "critic" if n_crit else "generator"

    def next_phase(self, phase: Phase, loss: torch.Tensor) -> Phase:
        self.count += 1
        limit, other = (self.n_crit, "generator") if phase == "critic" else (self.n_gen, "critic")
        if self.count >= limit and (self.n_gen if other == "generator" else self.n_crit):
            self.count = 0
            return other
        return phase

    def state_dict(self) -> dict:
        return {"count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state.get("count", 0))


class AdaptiveGANSwitcher(GANSwitcher):
    """Train the critic until its loss falls below `critic_thresh`, then the generator until its loss
    falls below `gen_thresh` (None: switch after every batch). Reads the loss every batch (`.item()`: one
    CPU-GPU sync per batch, which the fixed switcher avoids)."""

    def __init__(self, critic_thresh: float | None = None, gen_thresh: float | None = None) -> None:
        self.critic_thresh, self.gen_thresh = critic_thresh, gen_thresh

    def next_phase(self, phase: Phase, loss: torch.Tensor) -> Phase:
        thresh = self.critic_thresh if phase == "critic" else self.gen_thresh
        if thresh is None or loss.detach().float().item() < thresh:
            return "generator" if phase == "critic" else "critic"
        return phase


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


# ---- data -------------------------------------------------------------------------------------------------------
class _NoiseImages(Dataset):
    def __init__(self, images: torch.Tensor, z_dim: int) -> None:
        self.images, self.z_dim = images, z_dim

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(self.z_dim), self.images[i]


def noise_dls(
    images: torch.Tensor, z_dim: int = 100, bs: int = 64, valid_pct: float = 0.1, seed: int | None = None
) -> DataLoaders:
    """DataLoaders of (noise [bs, z_dim], real images [bs, C, H, W]) for an unconditional GAN; a
    `valid_pct` of the images is held out (its noise is drawn anew each pass; `seed` fixes the split)."""
    if images.ndim != 4:
        raise ValueError(f"noise_dls: images must be [N, C, H, W], got shape {tuple(images.shape)}")
    gen = torch.Generator()
    gen.manual_seed(seed) if seed is not None else gen.seed()
    perm = torch.randperm(len(images), generator=gen)
    n_valid = int(len(images) * valid_pct)
    train, valid = images[perm[n_valid:]], images[perm[:n_valid]]
    tdl = DataLoader(_NoiseImages(train, z_dim), batch_size=bs, shuffle=True, drop_last=True)
    vdl = DataLoader(_NoiseImages(valid, z_dim), batch_size=bs) if n_valid else None
    return DataLoaders(tdl, vdl)


# ---- the learner --------------------------------------------------------------------------------------------------
def _generator_params(model: nn.Module) -> list[list[nn.Parameter]]:
    return [list(getattr(model, "module", model).generator.parameters())]


class GANLearner(Learner):
    """A Learner of `GANModule(generator, critic)` with `GANStep`: see the module docstring.

    `loss`: "wgan", "nonsaturating" or a `GANLoss` (with a content loss for image-to-image GANs);
    `switcher` defaults to one critic batch per generator batch; `opt_func` (both networks) is Adam with
    beta1 = 0 ("GANs hate momentum"); the critic trains at `critic_lr_mult` times the fit's rate.
    `metrics` defaults to the epoch means of the critic's and the generator's losses."""

    def __init__(
        self,
        dls: DataLoaders,
        generator: nn.Module,
        critic: nn.Module,
        loss: GANLoss | str = "wgan",
        switcher: GANSwitcher | None = None,
        opt_func: Callable = AdamNoMomentum,
        lr: float = 2e-4,
        critic_lr_mult: float = 1.0,
        wd: float | None = 0.0,
        metrics: Iterable | None = None,
        cbs: Iterable[Callback] = (),
        path: str | Path = ".",
        model_dir: str | Path = "models",
        progress: bool | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        gan_loss = loss if isinstance(loss, GANLoss) else GANLoss(loss)
        if env.world_size() > 1 and gan_loss.r1 > 0:  # its torch.autograd.grad cannot go through DDP's wrapper
            raise ValueError(
                f"GANLoss(r1={gan_loss.r1}) cannot train under DDP ({env.world_size()} processes): the R1 penalty "
                "differentiates the critic with torch.autograd.grad, which DistributedDataParallel does not "
                "support; train it in one process, or use r1=0 (spectral norm alone) under torchrun"
            )
        step = GANStep(gan_loss, switcher, opt_func, critic_lr_mult, wd)
        cbs = list(cbs)
        if env.world_size() > 1:  # each phase leaves the other network without gradients
            from quickfit.callbacks.distributed import DistributedCallback

            cbs.append(DistributedCallback(find_unused_parameters=True))
        super().__init__(
            dls,
            GANModule(generator, critic),
            gan_loss.content_loss,
            opt_func=opt_func,
            lr=lr,
            wd=wd,
            metrics=step.metrics() if metrics is None else metrics,
            splitter=_generator_params,
            cbs=cbs,
            path=path,
            model_dir=model_dir,
            progress=progress,
            device=device,
            step=step,
        )
        self.gan_loss = gan_loss
        configs = [getattr(m, "arch_config", None) for m in (generator, critic)]
        if all(c is not None for c in configs):
            self.export_info = export_record("vision", GANTask(), GANConfig(configs[0], configs[1]))

    def export(self, fname: str | Path = "export.qf") -> Path:
        """Generator and critic (safetensors) with the arguments that built them (JSON), no pickle:
        `load_learner(file).generate(n)` draws images. Needs networks made by `basic_generator` and
        `gan_critic`; the generator of an image-to-image GAN is exported by the learner that built it
        (e.g. `image2image_learner(...).export()`: it holds the same module)."""
        if (self.export_info.get("task") or {}).get("type") != GANTask.type:
            raise ValueError(
                "GANLearner.export: only networks made by basic_generator() and gan_critic() can be exported "
                "(their arguments are what the file records); export an image-to-image generator with the learner "
                "that built it (image2image_learner(...).export()), or save a checkpoint with learn.save(name)"
            )
        return super().export(fname)

    @property
    def z_dim(self) -> int:
        """The size of the generator's noise input (a `basic_generator`'s `z_dim`, else its first Linear's)."""
        kwargs = (getattr(self.generator, "arch_config", None) or {}).get("kwargs", {})
        if "z_dim" in kwargs:
            return int(kwargs["z_dim"])
        first = next((m for m in self.generator.modules() if isinstance(m, nn.Linear)), None)
        if first is None:
            raise ValueError("GANLearner: this generator's noise size is unknown (no z_dim, no Linear layer)")
        return first.in_features

    def generate(self, n: int = 16, seed: int | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """`n` images from a noise GAN's generator, `[n, C, H, W]` floats in [0, 1] (a tanh generator's
        [-1, 1] mapped), from noise drawn with `seed` (repeatable) or the given `z` `[n, z_dim]`."""
        if z is None:
            gen = torch.Generator().manual_seed(seed) if seed is not None else None
            z = torch.randn(n, self.z_dim, generator=gen)
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                fake = self.generator(z.to(self.device)).float()
        finally:
            self.model.train(was)
        return ((fake + 1) / 2 if self._tanh_output() else fake).clamp(0, 1).cpu()

    def predict(self, item):
        """For a noise vector `item` `[z_dim]`: the image `[C, H, W]` in [0, 1] the generator draws from it;
        any other item (an image-to-image GAN's input) goes through `Learner.predict`."""
        if isinstance(item, torch.Tensor) and item.ndim == 1:
            return self.generate(z=item.float()[None])[0]
        return super().predict(item)

    def _tanh_output(self) -> bool:
        """Whether the generator ends in tanh (images in [-1, 1]), looking past parameter-free reshapes."""
        for m in reversed([m for m in self.generator.modules() if not list(m.children())]):
            if isinstance(m, nn.Tanh):
                return True
            if any(True for _ in m.parameters()) or type(m).__module__.startswith("torch.nn.modules.activation"):
                return False
        return False

    @property
    def generator(self) -> nn.Module:
        return self._unwrapped().generator

    @property
    def critic(self) -> nn.Module:
        return self._unwrapped().critic

    def fit_one_cycle(
        self,
        n_epoch: int,
        lr_max=None,
        div: float = 25.0,
        div_final: float = 1e5,
        pct_start: float = 0.25,
        moms: tuple[float, float, float] | None = None,
        wd: float | None = None,
        cbs: Iterable[Callback] = (),
        checkpoint: str | None = None,
        resume: bool = False,
    ) -> None:
        """As `Learner.fit_one_cycle`, but momentum is not cycled by default (it stays 0)."""
        super().fit_one_cycle(n_epoch, lr_max, div, div_final, pct_start, moms, wd, cbs, checkpoint, resume)

    def pretrain_critic(self, n_epoch: int, lr: float | None = None) -> None:
        """Train only the critic (real images against the current generator's), then go back to the
        switcher there was: the course's second stage, after the generator's pre-training. The epoch
        table has no `gen_loss` column meanwhile (the generator does not train: it would read nan)."""
        was, metrics = self.step.switcher, self.metrics
        self.step.set_switcher(FixedGANSwitcher(n_crit=1, n_gen=0))
        self.metrics = [m for m in metrics if not (isinstance(m, _PhaseLoss) and m.phase == "generator")]
        try:
            self.fit(n_epoch, lr)
        finally:
            self.step.set_switcher(was)
            self.metrics = metrics

    def show_results(
        self, n: int = 16, path: str | Path | None = None, dl: Iterable | None = None, nrow: int | None = None
    ):
        """`n` generated images from the first batches of `dl` (the validation set by default): a grid of
        samples for a noise GAN, rows of input / generated / target for an image-to-image one. Saved as a
        PNG at `path` when given (the columns named); returns the grid as a [3, H, W] tensor in [0, 1].
        Fewer than `n` only when `dl` holds fewer, with a warning saying so."""
        dl = dl if dl is not None else (self.dls.valid if self.dls.valid is not None else self.dls.train)
        xs, reals, got = [], [], 0
        for batch in dl:
            xs.append(batch[0][: n - got])
            reals.append(batch[1][: n - got])
            got += len(xs[-1])
            if got >= n:
                break
        if not xs:
            first_batch(dl, "show_results")  # the error that says what to pass
        if got < n:
            warnings.warn(f"show_results: the data holds {got} images, fewer than the {n} asked", stacklevel=2)
        x, real = torch.cat(xs).to(self.device), torch.cat(reals).to(self.device)
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                fake = self._unwrapped()(x, mode="generate").float()
        finally:
            self.model.train(was)
        lo = float(min(real.min(), fake.min()))
        to01 = (lambda t: (t + 1) / 2) if lo < -0.01 else (lambda t: t)  # tanh generators: [-1, 1]
        if x.ndim == 4 and x.shape[1] in (1, 3):  # image-to-image: input / generated / target
            x = F.interpolate(x.float(), size=fake.shape[-2:], mode="bilinear", align_corners=False)
            images = torch.stack([to01(x), to01(fake), to01(real.float())], 1).flatten(0, 1)
            return save_image_grid(images, path, nrow=3, titles=("input", "generated", "target"))
        return save_image_grid(to01(fake), path, nrow=nrow)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {"basic_generator": basic_generator, "gan_critic": gan_critic}


@dataclass
class GANConfig(ModelConfig):
    """Generator and critic (a `GANModule`), each `{"name": builder, "kwargs": its arguments}` of
    `basic_generator` or `gan_critic` (what their `arch_config` records; no other name is accepted)."""

    type: ClassVar[str] = "gan"
    generator: dict
    critic: dict

    def build(self) -> GANModule:
        nets = []
        for part, conf in (("generator", self.generator), ("critic", self.critic)):
            conf = conf if isinstance(conf, dict) else {}
            build = _BUILDERS.get(conf.get("name"))
            if build is None:
                raise ValueError(f"not a GAN export: its {part} names no known builder ({conf.get('name')!r})")
            nets.append(build(**conf.get("kwargs", {})))
        return GANModule(*nets)


@dataclass
class GANTask(Task):
    """A generator trained against a critic: a `GANLearner` (no data: `generate` draws from noise)."""

    type: ClassVar[str] = "gan"

    def learner(self, dls, model: nn.Module, config: GANConfig) -> GANLearner:
        return GANLearner(dls, model.generator, model.critic, device="cpu")
