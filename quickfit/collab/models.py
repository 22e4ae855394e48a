"""Collaborative-filtering models: embeddings for users and items, from index pairs `x` of shape `(bs, 2)`.

- `EmbeddingDotBias`: rating = dot(user factors, item factors) + user bias + item bias, squashed by a
  scaled sigmoid into `y_range` (the course's model; the biases say who rates high and what is liked).
- `EmbeddingNN`: the two embeddings concatenated and passed through an MLP.

Usage:
    import torch
    from quickfit.collab.models import EmbeddingDotBias

    model = EmbeddingDotBias(n_factors=50, n_users=944, n_items=1683, y_range=(0, 5.5))
    x = torch.tensor([[1, 10], [2, 20]])       # [user_index, item_index] per row
    model(x).shape                             # torch.Size([2])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from quickfit.configs import ModelConfig

__all__ = ["sigmoid_range", "emb_sz_rule", "EmbeddingDotBias", "EmbeddingNN", "DotBiasConfig", "EmbeddingNNConfig"]


def sigmoid_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Sigmoid scaled to `(low, high)`: predictions cannot leave the rating range."""
    return torch.sigmoid(x) * (high - low) + low


def emb_sz_rule(n_cat: int) -> int:
    """fast.ai's rule of thumb for an embedding size from the number of categories."""
    return min(600, round(1.6 * n_cat**0.56))


def _embedding(n: int, dim: int) -> nn.Embedding:
    emb = nn.Embedding(n, dim)
    # Small init (std 0.01, as in fastai): dot products start near 0, so predictions start mid-range.
    nn.init.trunc_normal_(emb.weight, std=0.01, a=-0.02, b=0.02)
    return emb


def _check_y_range(y_range: Sequence[float] | None) -> tuple[float, float] | None:
    if y_range is None:
        return None
    low, high = (float(v) for v in y_range)
    if not low < high:
        raise ValueError(f"y_range must be (low, high) with low < high, got {tuple(y_range)}")
    return low, high


class EmbeddingDotBias(nn.Module):
    """Dot product of user and item factors plus a bias for each, optionally in `y_range`."""

    def __init__(self, n_factors: int, n_users: int, n_items: int, y_range: Sequence[float] | None = None) -> None:
        super().__init__()
        self.n_factors, self.n_users, self.n_items = n_factors, n_users, n_items
        self.y_range = _check_y_range(y_range)
        self.u_weight, self.i_weight = _embedding(n_users, n_factors), _embedding(n_items, n_factors)
        # Biases are 1-D parameters, so quickfit's optimizers do not weight-decay them (as for every
        # bias): on MovieLens 100k, decaying the factors only gives a ~0.004 lower test RMSE.
        self.u_bias, self.i_bias = nn.Parameter(torch.zeros(n_users)), nn.Parameter(torch.zeros(n_items))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        users, items = x[:, 0], x[:, 1]
        dot = (self.u_weight(users) * self.i_weight(items)).sum(1)
        res = dot + self.u_bias[users] + self.i_bias[items]
        return res if self.y_range is None else sigmoid_range(res, *self.y_range)

    def config(self) -> DotBiasConfig:
        """The configuration that builds this model (with fresh weights)."""
        y_range = list(self.y_range) if self.y_range else None
        return DotBiasConfig(self.n_factors, self.n_users, self.n_items, y_range)


class EmbeddingNN(nn.Module):
    """Concatenated user and item embeddings through `Linear -> ReLU -> BatchNorm -> Dropout` blocks.

    `emb_szs` is `[(n_users, user_dim), (n_items, item_dim)]`; `ps` is one dropout probability per
    layer (or one for all); `embed_p` is dropout on the concatenated embeddings.
    """

    def __init__(
        self,
        emb_szs: Sequence[tuple[int, int]],
        layers: Sequence[int] = (100, 50),
        ps: float | Sequence[float] = 0.0,
        embed_p: float = 0.0,
        y_range: Sequence[float] | None = None,
        use_bn: bool = True,
    ) -> None:
        super().__init__()
        if len(emb_szs) != 2:
            raise ValueError(f"emb_szs must be [(n_users, dim), (n_items, dim)], got {list(emb_szs)}")
        layers = list(layers)
        ps = [float(ps)] * len(layers) if isinstance(ps, (int, float)) else [float(p) for p in ps]
        if len(ps) != len(layers):
            raise ValueError(f"ps has {len(ps)} values but layers has {len(layers)}")
        self.emb_szs = [(int(n), int(d)) for n, d in emb_szs]
        self.layer_sizes, self.ps, self.embed_p, self.use_bn = layers, ps, float(embed_p), use_bn
        self.y_range = _check_y_range(y_range)
        self.embeds = nn.ModuleList([_embedding(n, d) for n, d in self.emb_szs])
        self.emb_drop = nn.Dropout(self.embed_p)
        blocks: list[nn.Module] = []
        n_in = sum(d for _, d in self.emb_szs)
        for n_out, p in zip(layers, ps):
            blocks += [nn.Linear(n_in, n_out), nn.ReLU(inplace=True)]
            blocks += [nn.BatchNorm1d(n_out)] if use_bn else []
            blocks += [nn.Dropout(p)] if p > 0 else []
            n_in = n_out
        blocks.append(nn.Linear(n_in, 1))
        self.layers = nn.Sequential(*blocks)

    @property
    def n_users(self) -> int:
        return self.emb_szs[0][0]

    @property
    def n_items(self) -> int:
        return self.emb_szs[1][0]

    @property
    def u_weight(self) -> nn.Embedding:
        return self.embeds[0]

    @property
    def i_weight(self) -> nn.Embedding:
        return self.embeds[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = torch.cat([self.embeds[0](x[:, 0]), self.embeds[1](x[:, 1])], dim=1)
        res = self.layers(self.emb_drop(emb)).squeeze(1)
        return res if self.y_range is None else sigmoid_range(res, *self.y_range)

    def config(self) -> EmbeddingNNConfig:
        """The configuration that builds this model (with fresh weights)."""
        y_range = list(self.y_range) if self.y_range else None
        emb_szs = [list(e) for e in self.emb_szs]
        return EmbeddingNNConfig(emb_szs, self.layer_sizes, self.ps, self.embed_p, y_range, self.use_bn)


@dataclass
class DotBiasConfig(ModelConfig):
    """An `EmbeddingDotBias`."""

    type: ClassVar[str] = "embedding_dot_bias"
    n_factors: int
    n_users: int
    n_items: int
    y_range: list[float] | None = None

    def build(self) -> EmbeddingDotBias:
        return EmbeddingDotBias(self.n_factors, self.n_users, self.n_items, self.y_range)


@dataclass
class EmbeddingNNConfig(ModelConfig):
    """An `EmbeddingNN`: `emb_szs` is `[[n_users, dim], [n_items, dim]]`."""

    type: ClassVar[str] = "embedding_nn"
    emb_szs: list
    layers: list[int]
    ps: float | list[float] = 0.0
    embed_p: float = 0.0
    y_range: list[float] | None = None
    use_bn: bool = True

    def build(self) -> EmbeddingNN:
        emb_szs = [tuple(s) for s in self.emb_szs]
        return EmbeddingNN(emb_szs, self.layers, self.ps, self.embed_p, self.y_range, self.use_bn)
