"""Every application's own loaders under DDP: 2 CPU processes (gloo) with a per-rank batch b train like
one process with batch 2b (the same weights, the same epoch table).

The two processes are started once for the module and train all five applications; so is the one
process. BatchNorm layers are replaced by identities (their statistics depend on the per-rank batch, which
is what DDP changes on purpose, docs/distributed.md) and dropout is off (each rank draws its own
masks); the data, models, losses and optimizers are the applications' own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import quickfit as qf
from tests.test_distributed import _spawn

GLOBAL_BS = 16


def _deterministic(model: nn.Module) -> None:
    """BatchNorm -> identity, dropout off (the classifier head keeps a fixed 0.1, as fastai's does)."""
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, nn.Identity())
        elif isinstance(child, nn.Dropout):
            child.p = 0.0
        else:
            _deterministic(child)


def _tabular(bs: int, path: str):
    from quickfit.tabular import TabularDataLoaders, tabular_learner

    g = np.random.default_rng(0)
    n = 192
    df = pd.DataFrame({"a": g.choice(["x", "y", "z", "w"], n), "b": g.choice(["p", "q"], n), "u": g.normal(size=n)})
    df["v"] = g.normal(size=n)
    df["y"] = np.where((df.a.isin(["x", "y"])) ^ (df.u > 0), "yes", "no")
    # 160 training rows: 10 global batches of 16; 32 validation rows split 16 / 16
    dls = TabularDataLoaders.from_df(df, "y", ["a", "b"], ["u", "v"], valid_idx=range(160, n), bs=bs)
    learn = tabular_learner(dls, layers=[16], path=path, progress=False)
    return learn, 3e-2


def _collab(bs: int, path: str):
    from quickfit.collab import CollabDataLoaders, collab_learner

    g = np.random.default_rng(0)
    n = 320
    users, items = g.integers(0, 30, n), g.integers(0, 20, n)
    ratings = np.clip(np.round(3 + (users % 3) - (items % 2) + g.normal(0, 0.5, n)), 1, 5)
    df = pd.DataFrame({"user": users, "item": items, "rating": ratings})
    dls = CollabDataLoaders.from_df(df, valid_idx=range(256, n), bs=bs, valid_bs=24)  # 256 = 16 x 16
    learn = collab_learner(dls, n_factors=8, path=path, progress=False)
    return learn, 5e-2


def _texts(n: int) -> pd.DataFrame:
    g = np.random.default_rng(0)
    words = ["the", "film", "plot", "actors", "was", "a", "story", "scene", "music", "long", "it", "and"]
    texts, labels = [], []
    for i in range(n):
        text = list(g.choice(words, int(g.integers(3, 12))))
        if i % 2:
            text.insert(int(g.integers(0, len(text))), "great")
        texts.append(" ".join(text) + ".")
        labels.append("pos" if i % 2 else "neg")
    return pd.DataFrame({"text": texts, "label": labels, "is_valid": np.arange(n) >= 80})


SMALL = dict(emb_sz=16, n_hid=24, n_layers=2)


def _language_model(bs: int, path: str):
    from quickfit.text import TextDataLoaders, language_model_learner

    dls = TextDataLoaders.from_df(
        _texts(120), "text", is_lm=True, valid_col="is_valid", seed=0, bs=bs // 2, seq_len=8, cache_dir=False
    )
    learn = language_model_learner(dls, pretrained=False, config=SMALL, drop_mult=0.0, path=path)
    return learn, 1e-2


def _text_classifier(bs: int, path: str):
    from quickfit.text import TextDataLoaders, text_classifier_learner

    # 80 training texts: 5 global batches of 16; the 40 validation texts are sorted by length, 20 / 20
    dls = TextDataLoaders.from_df(_texts(120), "text", "label", valid_col="is_valid", seed=0, bs=bs, cache_dir=False)
    # AR / TAR average over each rank's real tokens, and the ranks' halves of a batch hold different
    # numbers of tokens: their mean is not the batch's. Off here; the classification loss is per text.
    learn = text_classifier_learner(dls, config=SMALL, drop_mult=0.0, alpha=0.0, beta=0.0, path=path)
    return learn, 1e-2


def _segmentation(bs: int, path: str):
    from PIL import Image

    from quickfit.vision import Resize, SegmentationDataLoaders, unet_learner

    # 32 training images (2 global batches of 16), 8 validation images; masks of 3 classes + void
    g = np.random.default_rng(0)
    root = Path(path) / f"data_{os.environ.get('RANK', '0')}"  # each process writes its own (identical) copy
    colours = np.array([[220, 30, 30], [30, 220, 30], [30, 30, 220], [0, 0, 0]])
    for split, n in (("train", 32), ("val", 8)):
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(exist_ok=True)
        for i in range(n):
            mask = np.kron(g.integers(0, 3, (2, 3)), np.ones((8, 8), np.int64)).astype(np.uint8)
            mask[0] = 3
            img = np.clip(colours[mask] + g.integers(-20, 20, (16, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / split / f"{i}.png")
            Image.fromarray(mask).save(root / f"{split}annot" / f"{i}.png")
    # squish: no random crop position, whose draws per item would advance each rank's RNG differently
    dls = SegmentationDataLoaders.from_folders(root, codes=["r", "g", "b", "void"], void_code=3, bs=bs,
                                               item_tfms=Resize((16, 24), method="squish"), num_workers=0)  # fmt: skip
    conv = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3, 2, 1), nn.BatchNorm2d(o), nn.ReLU())  # noqa: E731
    learn = unet_learner(dls, nn.Sequential(conv(3, 8), conv(8, 16)), path=path, progress=False)
    return learn, 1e-2


APPS = {
    "tabular": _tabular,
    "collab": _collab,
    "language_model": _language_model,
    "text_classifier": _text_classifier,
    "segmentation": _segmentation,
}


class _ShardSizes(qf.Callback):
    """Records how many training batches and rows this rank saw in each epoch (the shard at work)."""

    def __init__(self):
        self.seen = []

    def before_epoch(self, learn) -> None:
        self.seen.append([len(learn.dls.train), 0])

    def after_batch(self, learn) -> None:
        if learn.training:
            self.seen[-1][1] += learn.yb.shape[0]


def _run_all(rank: int, world_size: int, port: int, out_dir: str) -> None:
    if world_size > 1:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1")
        os.environ["MASTER_PORT"] = str(port)
        sys.stdout = open(Path(out_dir) / f"stdout{rank}.txt", "w")  # noqa: SIM115 -- closed at process exit
    torch.set_num_threads(1)
    for app, build in APPS.items():
        torch.manual_seed(0)
        learn, lr = build(GLOBAL_BS // world_size, str(Path(out_dir) / app))
        _deterministic(learn.model)
        learn.progress_cb.enabled = False
        sizes = _ShardSizes()
        learn.fit_one_cycle(2, lr, cbs=[sizes])
        result = {
            "state": learn.model.state_dict(),
            "values": [row[:-1] for row in learn.recorder.values],
            "seen": sizes.seen,
        }
        torch.save(result, Path(out_dir) / f"{app}_rank{rank}.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_apps")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
            mp.delenv(var, raising=False)
        (out / "ddp").mkdir()
        (out / "single").mkdir()
        _spawn(_run_all, 2, out / "ddp", timeout=240)
        threads = torch.get_num_threads()
        try:
            _run_all(0, 1, 0, str(out / "single"))
        finally:
            torch.set_num_threads(threads)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("app", list(APPS))
def test_two_processes_train_each_application_like_one_with_the_same_global_batch(runs, app):
    single = torch.load(runs / "single" / f"{app}_rank0.pt", weights_only=True)
    ranks = [torch.load(runs / "ddp" / f"{app}_rank{r}.pt", weights_only=True) for r in range(2)]
    assert single["values"][-1][1] < single["values"][0][1]  # it learned something
    for r, res in enumerate(ranks):
        # each rank saw its half of every epoch's batches, as many batches as the single process
        for (n_batches, rows), (ref_batches, ref_rows) in zip(res["seen"], single["seen"], strict=True):
            assert n_batches == ref_batches and rows * 2 == ref_rows, (app, r, res["seen"], single["seen"])
        for k, w in single["state"].items():
            torch.testing.assert_close(res["state"][k], w, rtol=1e-4, atol=1e-5, msg=f"{app} rank {r} {k}")
        for row, ref in zip(res["values"], single["values"], strict=True):  # epoch, losses, metrics
            assert row == pytest.approx(ref, rel=1e-4, abs=1e-5), app
