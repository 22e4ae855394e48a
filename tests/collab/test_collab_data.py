"""CollabDataLoaders: id mapping, batches from tensors, splits, test_dl, export, and bad inputs."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from collab_helpers import shared_data

from quickfit.collab.data import UNKNOWN, CollabDataLoaders, MissingColumnError, RatingsLoader, UnknownIdError


def ratings_frame(n_users=12, n_items=9, n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user": [f"u{i:02d}" for i in rng.integers(0, n_users, n)],
            "item": rng.integers(100, 100 + n_items, n),
            "rating": rng.integers(1, 6, n).astype(float),
        }
    )


def test_string_ids_map_to_sorted_classes_with_unknown_first():
    df = ratings_frame()
    dls = CollabDataLoaders.from_df(df, valid_pct=0.0, bs=16)
    assert dls.classes["user"][0] == UNKNOWN and dls.classes["item"][0] == UNKNOWN
    assert dls.classes["user"][1:] == sorted(df.user.unique())
    assert dls.classes["item"][1:] == sorted(df.item.unique().tolist())
    assert dls.n_users == df.user.nunique() + 1 and dls.n_items == df.item.nunique() + 1
    # Every (user, item, rating) of the frame comes back, decoded, once per epoch.
    xs, ys = zip(*dls.train)
    x, y = torch.cat(xs), torch.cat(ys)
    assert x.dtype == torch.long and x.shape[1] == 2 and y.dtype == torch.float32
    got = sorted((dls.classes["user"][u], dls.classes["item"][i], r) for (u, i), r in zip(x.tolist(), y.tolist()))
    kept = len(x)  # drop_last drops at most bs - 1 rows
    assert len(df) - 16 < kept <= len(df)
    want = sorted(zip(df.user, df.item.tolist(), df.rating))
    assert set(got) <= set(want)


def test_each_epoch_is_a_new_permutation_of_all_rows():
    x = torch.arange(100).repeat(2, 1).T.contiguous()
    dl = RatingsLoader(x, x[:, 0].float(), bs=10, shuffle=True)
    torch.manual_seed(0)
    e1 = torch.cat([b[0][:, 0] for b in dl])
    e2 = torch.cat([b[0][:, 0] for b in dl])
    assert sorted(e1.tolist()) == list(range(100)) == sorted(e2.tolist())
    assert not torch.equal(e1, e2) and not torch.equal(e1, torch.arange(100))
    assert all(torch.equal(xb[:, 0].float(), yb) for xb, yb in dl)  # x and y stay aligned
    assert len(RatingsLoader(x, bs=30)) == 4 and len(RatingsLoader(x, bs=30, drop_last=True)) == 3
    assert [len(b[0]) for b in RatingsLoader(x, bs=30)] == [30, 30, 30, 10]


def test_shards_for_distributed_training():
    x = torch.stack([torch.arange(10), torch.arange(10)], 1)
    train = [RatingsLoader(x, x[:, 0].float(), bs=2, shuffle=True).shard(r, 3) for r in range(3)]
    assert [len(t) for t in train] == [2, 2, 2]  # 10 rows padded to 12: every rank takes the same number of steps
    batches = []
    for t in train:  # outside a process group each shard draws its own order: the same one after the same seed
        torch.manual_seed(0)
        batches += list(t)
    assert set(torch.cat([xb[:, 0] for xb, _ in batches]).tolist()) == set(range(10))
    assert sum(len(xb) for xb, _ in batches) == 12 and all(torch.equal(xb[:, 0].float(), yb) for xb, yb in batches)
    valid = [RatingsLoader(x, bs=4).shard(r, 3) for r in range(3)]
    assert torch.cat([v.x[:, 0] for v in valid]).tolist() == list(range(10))  # contiguous, no repeats


def test_valid_idx_and_seeded_valid_pct():
    df = ratings_frame()
    dls = CollabDataLoaders.from_df(df, valid_idx=[0, 1, 2], bs=8)
    assert dls.valid.n == 3 and dls.train.n == len(df) - 3
    yv = torch.cat([b[1] for b in dls.valid])
    assert yv.tolist() == df.rating.iloc[:3].tolist()
    a = CollabDataLoaders.from_df(df, valid_pct=0.25, seed=3)
    b = CollabDataLoaders.from_df(df, valid_pct=0.25, seed=3)
    assert a.valid.n == 50 and torch.equal(a.valid.x, b.valid.x)
    with pytest.raises(ValueError, match="valid_pct"):
        CollabDataLoaders.from_df(df, valid_pct=1.5)
    with pytest.raises(IndexError, match="valid_idx"):
        CollabDataLoaders.from_df(df, valid_idx=[len(df)])


def test_vocab_from_training_rows_only_and_unseen_valid_ids_get_index_0():
    df = pd.DataFrame({"user": [1, 1, 2, 9], "item": ["a", "b", "a", "z"], "rating": [1.0, 2, 3, 4]})
    dls = CollabDataLoaders.from_df(df, valid_idx=[3])
    assert dls.classes == {"user": [UNKNOWN, 1, 2], "item": [UNKNOWN, "a", "b"]}
    assert dls.valid.x.tolist() == [[0, 0]]


def test_bad_inputs_have_clear_messages():
    df = ratings_frame()
    with pytest.raises(ValueError, match="empty"):
        CollabDataLoaders.from_df(df.iloc[:0])
    with pytest.raises(MissingColumnError, match=r"\['score'\] not in the DataFrame.*its columns"):
        CollabDataLoaders.from_df(df, rating_name="score")
    with pytest.raises(KeyError, match="movie"):
        CollabDataLoaders.from_df(df, item_name="movie")
    nan = df.copy()
    nan.loc[[3, 7], "rating"] = np.nan
    with pytest.raises(ValueError, match=r"'rating' has 2 NaN.*\[3, 7\]"):
        CollabDataLoaders.from_df(nan)
    bad_user = df.astype({"user": object})
    bad_user.loc[5, "user"] = None
    with pytest.raises(ValueError, match="'user' has 1 missing id"):
        CollabDataLoaders.from_df(bad_user)
    text = df.astype({"rating": object})
    text.loc[0, "rating"] = "five"
    with pytest.raises(TypeError, match="'rating' must hold numeric"):
        CollabDataLoaders.from_df(text)
    with pytest.raises(TypeError, match="DataFrame"):
        CollabDataLoaders.from_df([(1, 2, 3.0)])
    with pytest.raises(ValueError, match="bs"):
        RatingsLoader(torch.zeros(3, 2, dtype=torch.long), bs=0)


def test_test_dl_by_original_ids_and_unknown_ids():
    df = ratings_frame()
    dls = CollabDataLoaders.from_df(df, valid_pct=0.0)
    (x,) = next(iter(dls.test_dl([("u03", 101), ("u00", 100)])))
    cu, ci = dls.classes["user"], dls.classes["item"]
    assert x.tolist() == [[cu.index("u03"), ci.index(101)], [cu.index("u00"), ci.index(100)]]
    with pytest.raises(UnknownIdError, match=r"unknown user id\(s\) 'nobody'.*unknown=\"index\""):
        dls.test_dl([("u03", 101), ("nobody", 100)])
    with pytest.raises(KeyError, match=r"unknown item id\(s\) 5000"):
        dls.test_dl(pd.DataFrame({"user": ["u03"], "item": [5000]}))
    (x,) = next(iter(dls.test_dl([("nobody", 5000), ("u03", 101)], unknown="index")))
    assert x.tolist() == [[0, 0], [cu.index("u03"), ci.index(101)]]
    with pytest.raises(ValueError, match="unknown must be"):
        dls.test_dl([("u03", 101)], unknown="skip")
    with pytest.raises(TypeError, match="pairs"):
        dls.test_dl(["u03"])
    with pytest.raises(MissingColumnError, match="item"):
        dls.test_dl(pd.DataFrame({"user": ["u03"]}))
    # With the rating column, test batches carry targets (so validate / get_preds report them).
    xb, yb = next(iter(dls.test_dl(df.iloc[:5])))
    assert xb.shape == (5, 2) and yb.tolist() == df.rating.iloc[:5].tolist()
    assert dls.decode_pred(torch.tensor([3.25])) == 3.25


def test_export_info_is_json_and_rebuilds_the_same_encoding():
    df = ratings_frame()
    dls = CollabDataLoaders.from_df(df, valid_pct=0.2, seed=0, bs=32)
    info = json.loads(json.dumps(dls.export_info()))
    back = CollabDataLoaders.from_export(info)
    assert back.classes == dls.classes and back.train.bs == 32
    pairs = list(zip(df.user[:20], df.item[:20].tolist()))
    assert torch.equal(back.encode(pairs, unknown="index"), dls.encode(pairs, unknown="index"))


def test_from_csv_with_names_and_sep(tmp_path):
    f = tmp_path / "u.data"
    f.write_text("1\t10\t4\t881250949\n2\t10\t3\t891717742\n1\t20\t5\t878887116\n3\t30\t1\t880606923\n")
    dls = CollabDataLoaders.from_csv(f, sep="\t", names=["user", "item", "rating", "ts"], valid_idx=[3], bs=2)
    assert dls.classes["user"] == [UNKNOWN, 1, 2] and dls.train.n == 3
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        CollabDataLoaders.from_csv(tmp_path / "nope.csv")
    with pytest.raises(MissingColumnError, match=r"u\.data.*'user'"):
        CollabDataLoaders.from_csv(f, sep="\t")  # first row taken as a header: no 'user' column


def test_movie_lens_sample_from_csv():
    path = shared_data() / "movie_lens_sample" / "ratings.csv"
    if not path.exists():
        pytest.skip("shared movie_lens_sample data not present")
    dls = CollabDataLoaders.from_csv(path, user_name="userId", item_name="movieId", seed=42)
    assert dls.train.n + dls.valid.n == 6031
    assert dls.n_users == 101 and dls.n_items == 101
    assert next(iter(dls.train))[0].shape == (64, 2)
