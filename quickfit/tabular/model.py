"""TabularModel: an embedding per categorical column, concatenated with the continuous ones, through an MLP.

    >>> import torch
    >>> from quickfit.tabular.model import TabularModel, emb_sz_rule
    >>> emb_sz_rule(10), emb_sz_rule(100_000)
    (6, 600)
    >>> model = TabularModel([(10, 6), (3, 3)], n_cont=4, out_sz=2)
    >>> x_cat, x_cont = torch.randint(0, 3, (8, 2)), torch.randn(8, 4)
    >>> model(x_cat, x_cont).shape
    torch.Size([8, 2])

Per hidden layer: Linear (no bias: BatchNorm follows), ReLU, BatchNorm1d, Dropout; the final Linear has
a bias. For a regression, the output is brought to the target's scale: with `y_range=(lo, hi)` a scaled
sigmoid `lo + (hi - lo) * sigmoid(x)` (the regression starts inside the target's range and cannot leave
it), with `y_norm=(means, stds)` the affine `mean + std * x` (the network works on a normalized target:
what it starts predicting is the training mean). `log_y=True` does either in log space and outputs
`exp(...)`: a positive, skewed target (prices, counts) is learned as its logarithm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from quickfit.configs import ModelConfig

__all__ = ["SigmoidRange", "TargetScale", "TabularModel", "TabularModelConfig", "emb_sz_rule", "get_emb_szs"]


def emb_sz_rule(n_cat: int) -> int:
    """Embedding size for a categorical column of `n_cat` values (fast.ai's rule of thumb)."""
    return min(600, round(1.6 * n_cat**0.56))


def get_emb_szs(
    cat_names: Sequence[str], cardinalities: Sequence[int], sizes: dict[str, int] | None = None
) -> list[tuple[int, int]]:
    """`(n_values, emb_size)` per categorical column; `sizes` overrides the rule for named columns."""
    sizes = dict(sizes or {})
    unknown = sorted(set(sizes) - set(cat_names))
    if unknown:
        raise KeyError(f"emb_szs: {unknown} are not categorical inputs (those are {list(cat_names)})")
    return [(n, sizes.get(name, emb_sz_rule(n))) for name, n in zip(cat_names, cardinalities)]


class SigmoidRange(nn.Module):
    """`lo + (hi - lo) * sigmoid(x)`: squashes outputs into `(lo, hi)`."""

    def __init__(self, lo: float, hi: float) -> None:
        super().__init__()
        if not hi > lo:
            raise ValueError(f"y_range must be (low, high) with high > low, got {(lo, hi)}")
        self.lo, self.hi = float(lo), float(hi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) * (self.hi - self.lo) + self.lo

    def extra_repr(self) -> str:
        return f"lo={self.lo}, hi={self.hi}"


class TargetScale(nn.Module):
    """`mean + std * x` per output column: a normalized prediction back on the target's scale
    (`exp` of it with `log=True`, for a target normalized in log space)."""

    def __init__(self, means: Sequence[float], stds: Sequence[float], log: bool = False) -> None:
        super().__init__()
        if len(means) != len(stds) or not all(s > 0 for s in stds):
            raise ValueError(f"y_norm must be (means, stds) of equal length with stds > 0, got {(means, stds)}")
        # not in the state dict: they come back from the exported configuration
        self.register_buffer("means", torch.tensor([float(m) for m in means]), persistent=False)
        self.register_buffer("stds", torch.tensor([float(s) for s in stds]), persistent=False)
        self.log = log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.addcmul(self.means, x, self.stds)
        return x.exp() if self.log else x

    def extra_repr(self) -> str:
        return f"means={self.means.tolist()}, stds={self.stds.tolist()}, log={self.log}"


class Exp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.exp()


class TabularModel(nn.Module):
    """Embeddings + continuous inputs -> `layers` hidden sizes -> `out_sz` outputs.

    `emb_szs`: `(n_values, size)` per categorical column; `ps`: dropout after each hidden layer (one
    float for all, or one per layer); `embed_p`: dropout on the concatenated embeddings; `bn_cont`:
    BatchNorm on the continuous inputs. `y_range` / `y_norm` / `log_y`: the regression's output scale
    (module docstring); `y_range` wins over `y_norm`, and with `log_y` both are in log space.
    """

    def __init__(
        self,
        emb_szs: Sequence[tuple[int, int]],
        n_cont: int,
        out_sz: int,
        layers: Sequence[int] = (200, 100),
        ps: float | Sequence[float] = 0.0,
        embed_p: float = 0.0,
        y_range: tuple[float, float] | None = None,
        bn_cont: bool = True,
        y_norm: tuple[Sequence[float], Sequence[float]] | None = None,
        log_y: bool = False,
    ) -> None:
        super().__init__()
        ps = [float(ps)] * len(layers) if isinstance(ps, (int, float)) else list(ps)
        if len(ps) != len(layers):
            raise ValueError(f"ps: one dropout per layer expected ({len(layers)}), got {len(ps)}")
        self.embeds = nn.ModuleList([nn.Embedding(n, sz) for n, sz in emb_szs])
        for emb in self.embeds:
            # small embeddings (fast.ai's choice): at N(0, 1) they would swamp the normalized inputs
            nn.init.trunc_normal_(emb.weight, std=0.01, a=-0.02, b=0.02)
        self.emb_drop = nn.Dropout(embed_p)
        self.bn_cont = nn.BatchNorm1d(n_cont) if bn_cont and n_cont else None
        self.n_emb, self.n_cont = sum(sz for _, sz in emb_szs), n_cont
        sizes = [self.n_emb + n_cont, *layers]
        if sizes[0] == 0:
            raise ValueError("TabularModel: no inputs (no categorical and no continuous columns)")
        blocks: list[nn.Module] = []
        for n_in, n_out, p in zip(sizes[:-1], sizes[1:], ps):
            blocks += [nn.Linear(n_in, n_out, bias=False), nn.ReLU(inplace=True), nn.BatchNorm1d(n_out)]
            if p:
                blocks.append(nn.Dropout(p))
        blocks.append(nn.Linear(sizes[-1], out_sz))
        if y_range is not None:
            blocks.append(SigmoidRange(*y_range))
            if log_y:
                blocks.append(Exp())
        elif y_norm is not None:
            blocks.append(TargetScale(*y_norm, log=log_y))
        elif log_y:
            blocks.append(Exp())
        self.layers = nn.Sequential(*blocks)

    def forward(self, x_cat: torch.Tensor, x_cont: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.embeds:
            emb = torch.cat([e(x_cat[:, i]) for i, e in enumerate(self.embeds)], 1)
            parts.append(self.emb_drop(emb))
        if self.n_cont:
            parts.append(self.bn_cont(x_cont) if self.bn_cont is not None else x_cont)
        return self.layers(torch.cat(parts, 1) if len(parts) > 1 else parts[0])


@dataclass
class TabularModelConfig(ModelConfig):
    """A `TabularModel`: `emb_szs` as `[n_values, size]` pairs, the rest its arguments (`y_norm`: the
    regression target's `[means, stds]`)."""

    type: ClassVar[str] = "tabular_model"
    emb_szs: list
    n_cont: int
    out_sz: int
    layers: list[int]
    ps: float | list[float] = 0.0
    embed_p: float = 0.0
    y_range: list[float] | None = None
    y_norm: list | None = None
    log_y: bool = False

    def build(self) -> TabularModel:
        return TabularModel(
            [tuple(e) for e in self.emb_szs],
            self.n_cont,
            self.out_sz,
            layers=self.layers,
            ps=self.ps,
            embed_p=self.embed_p,
            y_range=None if self.y_range is None else tuple(self.y_range),
            y_norm=None if self.y_norm is None else tuple(self.y_norm),
            log_y=self.log_y,
        )
