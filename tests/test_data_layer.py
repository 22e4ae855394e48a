"""quickfit.data: TensorBatches and their shards, the one split rule, the one column error; the text loaders' shards."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from quickfit.data import ColumnError, TensorBatches, check_columns, split_rows
from quickfit.text.loaders import LMDataLoader, SortishDataLoader


def _epoch(dl, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    torch.manual_seed(seed)  # outside a process group every shard draws the order itself: the same one here
    return list(dl)


def test_batches_shuffle_drop_last_and_to():
    x = torch.arange(10)
    dl = TensorBatches(x, x * 10, bs=4)
    assert [len(b[0]) for b in dl] == [4, 4, 2] and len(dl) == 3
    assert len(TensorBatches(x, bs=4, drop_last=True)) == 2
    assert len(TensorBatches(x[:3], bs=4, drop_last=True)) == 1  # no full batch: the partial one is kept
    shuffled = TensorBatches(x, x * 10, bs=4, shuffle=True)
    e1, e2 = (torch.cat([b[0] for b in _epoch(shuffled, s)]) for s in (0, 1))
    assert sorted(e1.tolist()) == list(range(10)) and not torch.equal(e1, e2)
    assert all(torch.equal(a * 10, b) for a, b in shuffled)  # rows stay aligned across tensors
    assert dl.to("cpu") is dl
    with pytest.raises(ValueError, match="different numbers of rows"):
        TensorBatches(x, x[:3])
    with pytest.raises(ValueError, match="bs must be a positive int"):
        TensorBatches(x, bs=0)


@pytest.mark.parametrize("n, drop_last", [(24, False), (23, False), (23, True), (5, False)])
def test_training_shards_split_every_global_batch_of_one_process(n, drop_last):
    x = torch.arange(n)
    world, bs = 3, 2
    single = _epoch(TensorBatches(x, bs=world * bs, shuffle=True, drop_last=drop_last))
    shards = [_epoch(TensorBatches(x, bs=bs, shuffle=True, drop_last=drop_last).shard(r, world)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == len(single)  # the same steps on every rank
    for i, batch in enumerate(single):
        parts = [s[i][0] for s in shards]
        assert len({len(p) for p in parts}) == 1  # equal parts: DDP's mean of means is the batch mean
        joined = torch.cat(parts)
        if len(batch[0]) % world == 0:
            assert torch.equal(joined, batch[0])
        else:  # a last partial batch, filled up to a multiple of the ranks with the epoch's first rows
            first = torch.cat([b[0] for b in single])[: len(joined) - len(batch[0])]
            assert torch.equal(joined, torch.cat([batch[0], first]))


def test_validation_shards_are_contiguous_without_repeats():
    x = torch.arange(10)
    shards = [TensorBatches(x, bs=2).shard(r, 3) for r in range(3)]
    assert [s.n for s in shards] == [3, 3, 4]
    assert torch.cat([b[0] for s in shards for b in s]).tolist() == list(range(10))
    with pytest.raises(ValueError, match=r"rank must be in \[0, 3\)"):
        TensorBatches(x).shard(3, 3)


def test_split_rows_one_rule():
    df = pd.DataFrame({"x": range(10), "is_valid": [False] * 7 + [True] * 3})
    train, valid = split_rows(df, valid_col="is_valid")
    assert train.tolist() == list(range(7)) and valid.tolist() == [7, 8, 9]
    train, valid = split_rows(10, valid_idx=[3, 1, 1])
    assert valid.tolist() == [1, 3] and train.tolist() == [0, 2, 4, 5, 6, 7, 8, 9]
    a, b = split_rows(10, valid_pct=0.3, seed=5), split_rows(10, valid_pct=0.3, seed=5)
    assert len(a[1]) == 3 and np.array_equal(a[1], b[1]) and sorted([*a[0], *a[1]]) == list(range(10))
    with pytest.raises(IndexError, match=r"valid_idx must hold row positions in \[0, 10\); got 10"):
        split_rows(10, valid_idx=[10])
    with pytest.raises(TypeError, match="valid_col 'x' must be a boolean column"):
        split_rows(df, valid_col="x")
    with pytest.raises(ValueError, match="no training rows \\(valid_idx selects all 2 rows\\)"):
        split_rows(2, valid_idx=[0, 1])


def test_a_missing_column_is_one_error_type_naming_what_asked_for_it():
    df = pd.DataFrame({"a": [1], "b": [2]})
    check_columns(df, ["a"], "from_df")
    with pytest.raises(ColumnError, match=r"^valid_col: column\(s\) \['c'\] not in the DataFrame \(its columns: "):
        split_rows(df, valid_col="c")
    assert issubclass(ColumnError, KeyError)


def _texts(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    lengths = g.integers(2, 9, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return np.arange(2, 2 + offsets[-1], dtype=np.int32), offsets


def test_language_model_shards_read_the_rows_of_one_process_with_the_global_batch():
    ids, offsets = _texts(40)
    single = list(LMDataLoader(ids, offsets, bs=6, seq_len=5, shuffle=True, seed=3))
    shards = [list(LMDataLoader(ids, offsets, bs=2, seq_len=5, shuffle=True, seed=3).shard(r, 3)) for r in range(3)]
    assert all(len(s) == len(single) for s in shards)
    for i, (x, y) in enumerate(single):
        assert torch.equal(torch.cat([s[i][0] for s in shards]), x) and torch.equal(
            torch.cat([s[i][1] for s in shards]), y
        )
    with pytest.raises(ValueError, match="too few for bs=2 streams on each of 200 ranks"):
        LMDataLoader(ids, offsets, bs=2).shard(0, 200)


def test_classifier_shards_split_each_batch_of_one_process_and_validation_is_contiguous():
    ids, offsets = _texts(40)
    labels = np.arange(40) % 2
    single = SortishDataLoader(ids, offsets, labels, bs=8, shuffle=True, seed=1).batches(np.random.default_rng(7))
    shards = [SortishDataLoader(ids, offsets, labels, bs=4, shuffle=True, seed=1).shard(r, 2) for r in range(2)]
    parts = [s.batches(np.random.default_rng(7)) for s in shards]
    assert [len(p) for p in parts] == [len(single)] * 2
    for i, batch in enumerate(single):
        assert np.array_equal(np.concatenate([parts[0][i], parts[1][i]]), batch)
    valid = [SortishDataLoader(ids, offsets, labels, bs=4).shard(r, 2) for r in range(2)]
    whole = SortishDataLoader(ids, offsets, labels, bs=4)
    assert np.array_equal(np.concatenate([v.order for v in valid]), whole.order)  # contiguous, no repeats
    assert [len(v) for v in valid] == [5, 5] and sum(len(b[0]) for v in valid for b in v) == 40
