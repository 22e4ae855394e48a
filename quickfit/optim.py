"""Optimizers on `torch.optim`, with layer groups, per-group learning rates and decoupled weight decay.

    import quickfit as qf
    opt = qf.Adam(qf.optim.param_groups([[w1], [w2, b2]]), lr=1e-3, wd=0.01)

An `opt_func(param_groups, lr, wd) -> torch.optim.Optimizer` builds the optimizer. Each layer group
is one torch group, carrying its index in `group["layer_group"]` and a `group["decay_mask"]` (one
bool per parameter): biases and normalization weights, i.e. parameters with fewer than two
dimensions, are not decayed by default. One group per layer group, not a decayed and a not-decayed
half, because foreach optimizers launch their kernels once per group: Adam's dozen kernels per step
then run once, not twice. The decoupled decay itself is one `_foreach_mul_` over the masked weights
(what AdamW does, to the bit). The L2 variants (`decouple_wd=False`) put the decay in the gradient,
which torch does per group: they split each layer group in two (`group["decay"]` True / False).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "SGD",
    "Adam",
    "RMSprop",
    "Optimizers",
    "checkpoint_opt_state",
    "param_groups",
    "set_hyper",
    "get_hyper",
    "lr_per_group",
]


def param_groups(layer_groups: Sequence[Sequence[nn.Parameter]], decay_1d: bool = False) -> list[dict]:
    """One torch parameter group per layer group, with the mask of the parameters weight decay applies to."""
    return [
        {"params": list(params), "layer_group": i, "decay_mask": [decay_1d or p.ndim > 1 for p in params]}
        for i, params in enumerate(layer_groups)
    ]


def _apply_wd(groups: list[dict], wd: float, decoupled: bool) -> list[dict]:
    """Set each group's decay: `decoupled_wd` (applied by `_DecoupledWD`) or torch's L2 `weight_decay`."""
    out = []
    for g in groups:
        g.setdefault("layer_group", 0)
        group_wd = wd if g.get("decay", True) else 0.0
        mask = g.pop("decay_mask", None)
        if decoupled:
            g["decoupled_wd"], g["weight_decay"] = group_wd, 0.0
            if mask is not None and not all(mask):
                g["decay_mask"] = [bool(m) for m in mask]
            out.append(g)
        elif mask is None or all(mask):
            out.append({**g, "weight_decay": group_wd})
        else:  # L2 is torch's per-group weight_decay: the masked-out parameters need a group of their own
            for flag in (True, False):
                params = [p for p, m in zip(g["params"], mask) if bool(m) == flag]
                out.append({**g, "params": params, "decay": flag, "weight_decay": group_wd if flag else 0.0})
    return out


class _DecoupledWD:
    """Mixin: decay weights by lr*wd before the update (AdamW-style), not through the gradient."""

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            wd = g.get("decoupled_wd", 0.0)
            if not wd:
                continue
            mask = g.get("decay_mask")
            if mask is None:
                params = [p for p in g["params"] if p.grad is not None]
            else:
                params = [p for p, m in zip(g["params"], mask) if m and p.grad is not None]
            if params:
                torch._foreach_mul_(params, 1 - g["lr"] * wd)
        return super().step(closure)


class _SGDW(_DecoupledWD, torch.optim.SGD):
    pass


class _RMSpropW(_DecoupledWD, torch.optim.RMSprop):
    pass


class _AdamW(_DecoupledWD, torch.optim.AdamW):
    """torch's AdamW with its decay (`weight_decay=0` here) done by the mixin, on the masked weights only."""


def SGD(params, lr: float = 1e-2, mom: float = 0.9, wd: float = 0.0, decouple_wd: bool = True):
    """SGD with momentum (the momentum is what one-cycle cycles)."""
    groups = _apply_wd(_as_groups(params), wd, decouple_wd)
    return (_SGDW if decouple_wd else torch.optim.SGD)(groups, lr=lr, momentum=mom)


def Adam(
    params,
    lr: float = 1e-3,
    mom: float = 0.9,
    sqr_mom: float = 0.99,
    eps: float = 1e-5,
    wd: float = 0.01,
    decouple_wd: bool = True,
):
    """Adam (AdamW when `decouple_wd`); beta1 = `mom` is what one-cycle cycles."""
    groups = _apply_wd(_as_groups(params), wd, decouple_wd)
    cls = _AdamW if decouple_wd else torch.optim.Adam
    # foreach kernels update every tensor of a group in a few launches instead of one per parameter
    return cls(groups, lr=lr, betas=(mom, sqr_mom), eps=eps, foreach=True)


def RMSprop(
    params,
    lr: float = 1e-3,
    mom: float = 0.0,
    sqr_mom: float = 0.99,
    eps: float = 1e-8,
    wd: float = 0.0,
    decouple_wd: bool = True,
):
    """RMSprop; with `mom > 0` one-cycle also cycles its momentum.

    Momentum follows torch's rule: it averages the *normalised* step, `buf = mom * buf + g / (sqrt(v) + eps)`,
    `p -= lr * buf`. The course's library (fastai's `RMSProp`) averages the *gradient* first and divides
    the average, `p -= lr * avg(g) / (sqrt(v) + eps)`. Both are plain RMSprop at `mom=0` (the default);
    with momentum, a run ported from fastai may need its rate retuned."""
    groups = _apply_wd(_as_groups(params), wd, decouple_wd)
    return (_RMSpropW if decouple_wd else torch.optim.RMSprop)(groups, lr=lr, alpha=sqr_mom, eps=eps, momentum=mom)


def _as_groups(params) -> list[dict]:
    params = list(params)
    if params and isinstance(params[0], dict):
        return [dict(g) for g in params]
    return [{"params": params, "layer_group": 0}]


def _mom_key(group: dict) -> str | None:
    if "betas" in group:
        return "betas"
    return "momentum" if "momentum" in group else None


def get_hyper(opt: torch.optim.Optimizer, name: str) -> list[float]:
    """The value of hyper-parameter `name` ("lr", "mom", "wd", ...) for each layer group, first to last."""
    values: dict[int, float] = {}
    for g in opt.param_groups:
        i = g.get("layer_group", 0)
        if i in values:
            continue
        if name == "mom":
            key = _mom_key(g)
            values[i] = g["betas"][0] if key == "betas" else g.get("momentum", 0.0)
        elif name == "wd":
            values[i] = g.get("decoupled_wd", g.get("weight_decay", 0.0)) if g.get("decay", True) else None
        else:
            values[i] = g[name]
    return [values[i] for i in sorted(values)]


def set_hyper(opt: torch.optim.Optimizer, name: str, values: Sequence[float] | float) -> None:
    """Set hyper-parameter `name` per layer group (a scalar sets every group)."""
    # Schedules call this before every batch: floats and lists skip NumPy (np.ndim copies a list to an array).
    scalar = isinstance(values, (int, float)) or (not isinstance(values, (list, tuple)) and np.ndim(values) == 0)
    values = float(values) if scalar else [float(v) for v in values]
    for g in opt.param_groups:
        v = values if scalar else values[g.get("layer_group", 0)]
        if name == "mom":
            key = _mom_key(g)
            if key == "betas":
                g["betas"] = (v, g["betas"][1])
            elif key == "momentum" and g["momentum"] > 0:  # no momentum buffers to cycle otherwise
                g["momentum"] = v
        elif name == "wd":
            if g.get("decay", True):
                g["decoupled_wd" if "decoupled_wd" in g else "weight_decay"] = v
        else:
            g[name] = v


def lr_per_group(lr, n_groups: int, slice_div: float = 3.0) -> np.ndarray:
    """Learning rates for `n_groups` layer groups from a float, a slice or a sequence.

    float -> the same for every group; `slice(hi)` -> the last group `hi`, the others `hi/slice_div`;
    `slice(lo, hi)` -> a geometric spread from `lo` (first group) to `hi` (last group);
    a sequence -> one rate per group.
    """
    if isinstance(lr, slice):
        if lr.stop is None:
            raise ValueError(f"a learning-rate slice needs an upper bound, got {lr}")
        if lr.start is None:
            rates = np.full(n_groups, lr.stop / slice_div)
            rates[-1] = lr.stop
            return rates
        if n_groups == 1:
            return np.array([float(lr.stop)])
        return np.geomspace(lr.start, lr.stop, n_groups)
    rates = np.asarray(lr, dtype=float)
    if rates.ndim == 0:
        return np.full(n_groups, float(rates))
    if len(rates) != n_groups:
        raise ValueError(f"got {len(rates)} learning rates for {n_groups} layer groups")
    return rates


class Optimizers:
    """Several optimizers as one, for the engine: `learn.opts` (the model's `learn.opt` and those a step
    owns, such as a GAN's critic). Schedules set hyper-parameters on `param_groups` (every group of
    every optimizer), checkpoints save `state_dict()` and restore `load_state_dict()`; stepping stays
    with whoever owns each optimizer (`learn.opt_step(opt)`).

    One optimizer's state dict is that optimizer's own (checkpoints of a plain learner are what
    `torch.optim` writes); several are `{"optimizers": [...]}`.
    """

    def __init__(self, optimizers: Sequence[torch.optim.Optimizer]):
        self.optimizers = list(optimizers)

    @property
    def param_groups(self) -> list[dict]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    def state_dict(self) -> dict:
        if len(self.optimizers) == 1:
            return self.optimizers[0].state_dict()
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        states = state["optimizers"] if "optimizers" in state else [state]
        if len(states) != len(self.optimizers):
            raise ValueError(f"the saved state has {len(states)} optimizers, this learner {len(self.optimizers)}")
        for opt, s in zip(self.optimizers, states):
            opt.load_state_dict(s)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def __iter__(self):
        return iter(self.optimizers)

    def __len__(self) -> int:
        return len(self.optimizers)


def checkpoint_opt_state(state: dict) -> dict | None:
    """The optimizers' state of a checkpoint, in `Optimizers.state_dict`'s form; files written before it
    kept a step's own optimizers apart, under "extra_opts"."""
    if "opt" not in state:
        return None
    if state.get("extra_opts"):
        return {"optimizers": [state["opt"], *state["extra_opts"]]}
    return state["opt"]
