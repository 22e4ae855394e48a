"""The two networks of a GAN: `GANModule(generator, critic)`; the course's DCGAN-style
`basic_generator` and `gan_critic`."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


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
