"""Shared fixtures: tiny real-training problems and the location of the shared data sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import quickfit as qf

os.environ.setdefault("MPLBACKEND", "Agg")
# The tests train tiny models: one thread is faster for them than two fighting over two cores
# (and pytest-xdist-style parallel runs or a loaded machine make that much worse).
torch.set_num_threads(1)


def shared_data() -> Path:
    """`../shared/data` beside the project (or $QUICKFIT_SHARED_DATA); tests using it skip when absent."""
    env = os.environ.get("QUICKFIT_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[1].parent / "shared" / "data", Path("/work/shared/data")]
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


def xor_data(n: int = 512, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    return x, y


def make_dls(n: int = 512, bs: int = 32, shuffle: bool = True, seed: int = 0) -> qf.DataLoaders:
    x, y = xor_data(n, seed)
    cut = int(n * 0.8)
    train = DataLoader(TensorDataset(x[:cut], y[:cut]), batch_size=bs, shuffle=shuffle)
    valid = DataLoader(TensorDataset(x[cut:], y[cut:]), batch_size=bs * 2)
    return qf.DataLoaders(train, valid)


def mlp(bn: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(2, 32)] + ([nn.BatchNorm1d(32)] if bn else []) + [nn.ReLU(), nn.Linear(32, 32), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(32, 2))


def three_groups(model: nn.Sequential):
    mods = list(model)
    return [
        [p for m in mods[:2] for p in m.parameters()],
        [p for m in mods[2:-1] for p in m.parameters()],
        list(mods[-1].parameters()),
    ]


@pytest.fixture
def dls():
    return make_dls()


@pytest.fixture
def learner(tmp_path):
    def build(bn: bool = False, splitter=None, **kwargs) -> qf.Learner:
        kwargs.setdefault("progress", False)
        return qf.Learner(make_dls(), mlp(bn), nn.CrossEntropyLoss(), splitter=splitter, path=tmp_path, **kwargs)

    return build
