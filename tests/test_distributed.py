"""DDP: two CPU processes (gloo) with per-rank batch b/2 train like one process with batch b."""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import quickfit as qf
from quickfit.callbacks.distributed import DistributedCallback, all_reduce_sum, shard_indices, shard_loader

N_TRAIN, N_VALID, BS = 96, 37, 16  # 37 validation items: uneven shards (18 / 19) and partial batches


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_TRAIN + N_VALID, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # 3 classes, learnable
    return TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), TensorDataset(x[N_TRAIN:], y[N_TRAIN:])


def _join(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """In a spawned rank (world_size > 1): torchrun's environment, and stdout to a file of its own."""
    if world_size > 1:
        os.environ.update(
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world_size),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        sys.stdout = open(Path(out_dir) / f"stdout{rank}.txt", "w")  # noqa: SIM115 -- closed at process exit


def _train(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """Train, lr_find, save what the test compares; in a spawned process when world_size > 1."""
    _join(rank, world_size, port, out_dir)
    torch.set_num_threads(1)  # 2 processes on a small machine; and the same arithmetic as one process
    train_ds, valid_ds = _data()
    bs = BS // world_size  # the same global batch
    dls = qf.DataLoaders(DataLoader(train_ds, batch_size=bs), DataLoader(valid_ds, batch_size=16))
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))  # no BatchNorm: batch-size free
    learn = qf.Learner(dls, model, nn.CrossEntropyLoss(), metrics=[qf.accuracy], path=out_dir, progress=False)
    learn.fit_one_cycle(4, 3e-2, checkpoint="run")
    assert learn.model is model and learn.dls.train.batch_size == bs  # unwrapped, data restored
    suggestions = learn.lr_find(num_it=30, show_plot=False)
    result = {
        "state": model.state_dict(),
        "values": [row[:-1] for row in learn.recorder.values],  # without the time column
        "lr_find": (list(suggestions), len(learn.recorder.lr_find_lrs)),
    }
    if rank == 0:  # outside a fit nothing is reduced: one rank can validate alone without a hang
        result["validate"] = learn.validate()
        result["preds"] = learn.get_preds()
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(fn, world_size: int, out_dir: Path, timeout: float = 90) -> None:
    ctx = mp.start_processes(
        fn, args=(world_size, _free_port(), str(out_dir)), nprocs=world_size, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the {world_size} DDP processes did not finish in {timeout} s (a collective hung?)")


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "ddp").mkdir()
    _spawn(_train, 2, tmp_path / "ddp", timeout=240)  # starting two processes takes long on a loaded machine
    threads = torch.get_num_threads()
    try:
        _train(0, 1, 0, str(tmp_path / "single"))
    finally:
        torch.set_num_threads(threads)
    single = torch.load(tmp_path / "single" / "rank0.pt", weights_only=False)
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=False) for r in range(2)]

    assert single["values"][-1][1] < 0.6 * single["values"][0][1]  # it learned
    for r, res in enumerate(ranks):
        for k, w in single["state"].items():  # the same weights as one process with the global batch
            torch.testing.assert_close(res["state"][k], w, rtol=1e-4, atol=1e-5, msg=f"rank {r} {k}")
        for row, ref in zip(res["values"], single["values"], strict=True):  # epoch, train/valid loss, accuracy
            assert row[0] == ref[0]
            assert row[1:] == pytest.approx(ref[1:], rel=1e-5, abs=1e-6)
        # lr_find: the shared loss stops every rank at the batch one process stops at
        assert res["lr_find"][1] == single["lr_find"][1]
        assert res["lr_find"][0] == pytest.approx(single["lr_find"][0], rel=1e-3)
    assert ranks[0]["validate"] == pytest.approx(single["validate"], rel=1e-5)
    preds, targs = ranks[0]["preds"]
    assert preds.shape == (N_VALID, 3) and torch.equal(targs, _data()[1].tensors[1])  # all items, in order

    # only rank 0 prints and saves
    out0, out1 = ((tmp_path / "ddp" / f"stdout{r}.txt").read_text() for r in range(2))
    assert "train_loss" in out0 and "accuracy" in out0
    assert out1 == ""
    assert (tmp_path / "ddp" / "models" / "run.pth").exists()


def test_valid_shards_are_contiguous_without_repeats():
    _, valid_ds = _data()
    dl = DataLoader(valid_ds, batch_size=16)
    shards = [shard_loader(dl, r, 2, train=False) for r in range(2)]
    ys = [torch.cat([y for _, y in s]) for s in shards]
    assert [len(y) for y in ys] == [18, 19]
    assert torch.equal(torch.cat(ys), valid_ds.tensors[1])  # every item once, in the original order
    assert shards[0].batch_size == 16 and shards[0].collate_fn is dl.collate_fn


def test_train_shards_have_the_same_number_of_batches():
    ds = TensorDataset(torch.arange(11.0), torch.arange(11))
    shards = [shard_loader(DataLoader(ds, batch_size=2, shuffle=True), r, 3, train=True, seed=5) for r in range(3)]
    assert [len(s) for s in shards] == [2, 2, 2]  # 11 items -> 4 per rank (one repeat), 2 batches
    for s in shards:
        s.sampler.set_epoch(1)
    items = torch.cat([torch.cat([x for x, _ in s]) for s in shards])
    assert set(items.tolist()) == set(range(11)) and len(items) == 12


def test_shard_indices_pad_training_shards_and_split_validation_contiguously():
    train = [shard_indices(10, r, 4, pad=True) for r in range(4)]
    assert train == [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]]  # 3 each: items 0 and 1 twice
    valid = [shard_indices(10, r, 4, pad=False) for r in range(4)]
    assert valid == [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]


def test_a_loader_with_a_shard_method_shards_itself():
    class Halves(list):
        def shard(self, rank: int, world_size: int):
            return Halves(self[rank::world_size])

    assert shard_loader(Halves([1, 2, 3, 4]), 1, 2, train=True) == [2, 4]


def test_unshardable_data_fails_with_a_clear_message():
    with pytest.raises(TypeError, match="cannot shard the training data \\(list\\).*shard\\(rank, world_size\\)"):
        shard_loader([(torch.zeros(2, 1), torch.zeros(2))], 0, 2, train=True)

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(3))

    with pytest.raises(TypeError, match="IterableDataset"):
        shard_loader(DataLoader(Stream(), batch_size=2), 0, 2, train=False)
    ds = TensorDataset(torch.zeros(4, 1))
    weighted = torch.utils.data.WeightedRandomSampler([1.0] * 4, 4)
    with pytest.raises(TypeError, match="sampler WeightedRandomSampler"):
        shard_loader(DataLoader(ds, batch_size=2, sampler=weighted), 0, 2, train=True)


def test_outside_distributed_training_nothing_is_reduced_and_the_callback_does_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    t = torch.tensor([1.0, 2.0])
    assert all_reduce_sum(t) is t
    train_ds, valid_ds = _data()
    dls = qf.DataLoaders(DataLoader(train_ds, batch_size=BS), DataLoader(valid_ds, batch_size=BS))
    model = nn.Linear(8, 3)
    cb = DistributedCallback()
    learn = qf.Learner(dls, model, nn.CrossEntropyLoss(), progress=False, cbs=[cb])
    learn.fit(1, 1e-3)
    assert learn.model is model and not cb.active and math.isfinite(learn.recorder.values[-1][1])


def _train_phases(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """Two phases with their own data (batch 16, then 32: the same global batches in both runs)."""
    _join(rank, world_size, port, out_dir)
    torch.set_num_threads(1)
    train_ds, valid_ds = _data()
    small, big = (
        qf.DataLoaders(DataLoader(train_ds, batch_size=bs // world_size), DataLoader(valid_ds, batch_size=16))
        for bs in (BS, 2 * BS)
    )
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    learn = qf.Learner(small, model, nn.CrossEntropyLoss(), metrics=[qf.accuracy], path=out_dir, progress=False)
    phases = [
        qf.Phase(1, lr=3e-2 * qf.SchedCos(1, 0.5), opt_func=qf.SGD, dls=small),
        qf.Phase(1.5, lr=qf.SchedLin(1e-2, 1e-3), opt_func=qf.Adam, dls=big),
    ]
    learn.fit_phases(phases, checkpoint="phases")
    # unwrapped, and both phases' data restored to what the user built
    assert learn.model is model and learn.dls is big
    assert small.train.batch_size == BS // world_size and big.train.batch_size == 2 * BS // world_size
    result = {"state": model.state_dict(), "values": [row[:-1] for row in learn.recorder.values]}
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow
def test_phases_with_their_own_data_shard_each_and_match_one_process(tmp_path, monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "ddp").mkdir()
    _spawn(_train_phases, 2, tmp_path / "ddp", timeout=240)
    threads = torch.get_num_threads()
    try:
        _train_phases(0, 1, 0, str(tmp_path / "single"))
    finally:
        torch.set_num_threads(threads)
    single = torch.load(tmp_path / "single" / "rank0.pt", weights_only=False)
    assert len(single["values"]) == 3
    for r in range(2):
        res = torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=False)
        for k, w in single["state"].items():
            torch.testing.assert_close(res["state"][k], w, rtol=1e-4, atol=1e-5, msg=f"rank {r} {k}")
        for row, ref in zip(res["values"], single["values"], strict=True):
            assert row[1:] == pytest.approx(ref[1:], rel=1e-5, abs=1e-6)
