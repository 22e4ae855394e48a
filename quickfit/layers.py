"""Layers the applications share.

head = nn.Sequential(AdaptiveConcatPool2d(), Flatten(), *LinBnDrop(1024, 512, p=0.25), nn.Linear(512, 2))
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AdaptiveConcatPool2d", "Flatten", "LinBnDrop", "ScaledSigmoid", "embedding_size"]


class AdaptiveConcatPool2d(nn.Module):
    """Max pool and average pool to `size`, concatenated: twice the features of either alone."""

    def __init__(self, size: int = 1):
        super().__init__()
        self.max, self.avg = nn.AdaptiveMaxPool2d(size), nn.AdaptiveAvgPool2d(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.max(x), self.avg(x)], dim=1)


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


def LinBnDrop(
    n_in: int,
    n_out: int,
    bn: bool = True,
    p: float = 0.0,
    act: nn.Module | None = None,
    lin_first: bool = False,
) -> list[nn.Module]:
    """BatchNorm1d, Dropout, Linear (and an activation): the blocks of the heads and the tabular model."""
    norm_drop = ([nn.BatchNorm1d(n_out if lin_first else n_in)] if bn else []) + ([nn.Dropout(p)] if p else [])
    lin = [nn.Linear(n_in, n_out, bias=not bn)] + ([act] if act is not None else [])
    return lin + norm_drop if lin_first else norm_drop + lin


class ScaledSigmoid(nn.Module):
    """Squash outputs into `(low, high)`: regression targets in a known range train faster."""

    def __init__(self, low: float, high: float):
        super().__init__()
        self.low, self.high = float(low), float(high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) * (self.high - self.low) + self.low

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


def embedding_size(n_categories: int) -> int:
    """The course's rule of thumb for an embedding width: min(600, round(1.6 * n**0.56))."""
    return int(min(600, round(1.6 * n_categories**0.56)))
