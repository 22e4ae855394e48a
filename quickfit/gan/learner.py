"""GANs on the Learner: a generator and a critic, each with its optimizer, trained in alternation.

    import torch, quickfit as qf
    from quickfit.gan import GANLearner, basic_generator, gan_critic, noise_dls

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

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from quickfit import env
from quickfit.callbacks.core import Callback
from quickfit.configs import ModelConfig, Task, export_record
from quickfit.data.core import DataLoaders, first_batch
from quickfit.gan.loss import GANLoss
from quickfit.gan.models import GANModule, basic_generator, gan_critic
from quickfit.gan.step import AdamNoMomentum, GANStep, _PhaseLoss
from quickfit.gan.switchers import FixedGANSwitcher, GANSwitcher
from quickfit.image_grid import save_image_grid
from quickfit.learner import Learner

__all__ = ["GANLearner", "GANConfig", "GANTask"]


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
