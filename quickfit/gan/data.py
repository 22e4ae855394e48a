"""Unconditional GAN data: batches of (noise, real image)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from quickfit.data.core import DataLoaders


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
