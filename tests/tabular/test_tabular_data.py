"""TabularDataLoaders: column inference, split, targets, batches from prepared tensors, test_dl, export."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from quickfit.tabular.batches import TabularBatches
from quickfit.tabular.data import TabularDataLoaders, cont_cat_split
from quickfit.tabular.procs import NA_TOKEN, Categorify, Normalize

NAMES = {"cat_names": ["shape", "noise_cat"], "cont_names": ["x", "z"]}


def test_column_types_inferred_and_reported(rule_df, capsys):
    df = rule_df.assign(n_kids=np.arange(len(rule_df)) % 4, ident=np.arange(len(rule_df)))
    dls = TabularDataLoaders.from_df(df, "label", seed=0)
    assert dls.input_cat_names == ["shape", "noise_cat", "n_kids"]  # text, and an int with few values
    assert dls.input_cont_names == ["x", "z", "ident"]  # floats, and an int with many values
    assert dls.cat_names == ["shape", "noise_cat", "n_kids", "z_na"]  # z has missing values
    out = capsys.readouterr().out
    assert "cat_names=['shape', 'noise_cat', 'n_kids']" in out and "classification (2 classes)" in out
    # one list given: the other gets the remaining columns, and nothing is printed
    dls = TabularDataLoaders.from_df(rule_df, "label", cat_names=["shape", "noise_cat"], seed=0)
    assert dls.input_cont_names == ["x", "z"] and capsys.readouterr().out == ""
    assert cont_cat_split(pd.DataFrame({"b": [True, False], "f": [1.0, 2.0]})) == (["f"], ["b"])


def test_classification_or_regression_from_the_target(rule_df, reg_df):
    dls = TabularDataLoaders.from_df(rule_df, "label", **NAMES, seed=0)
    assert dls.is_classification and dls.y_vocab == ["no", "yes"] and dls.c == 2
    assert dls.valid.y.dtype == torch.int64 and dls.valid.y.shape == (dls.valid.n,)
    reg = TabularDataLoaders.from_df(reg_df, "target", ["group"], ["x", "z"], seed=0)
    assert not reg.is_classification and reg.c == 1
    assert reg.valid.y.dtype == torch.float32 and reg.valid.y.shape == (reg.valid.n, 1)
    # an integer target is classification by default; y_block overrides it
    ints = reg_df.assign(stars=(reg_df["target"].round().astype(int)))
    assert TabularDataLoaders.from_df(ints, "stars", ["group"], ["x"], seed=0).is_classification
    as_reg = TabularDataLoaders.from_df(ints, "stars", ["group"], ["x"], seed=0, y_block="regression")
    assert not as_reg.is_classification
    as_cat = TabularDataLoaders.from_df(reg_df.assign(t=reg_df["x"] > 0), "t", ["group"], ["z"], y_block="category")
    assert as_cat.y_vocab == [False, True]


def test_multi_target_regression(reg_df):
    dls = TabularDataLoaders.from_df(reg_df, ["target", "other"], ["group"], ["x", "z"], seed=0, bs=64)
    x_cat, x_cont, y = next(iter(dls.train))
    assert y.shape == (64, 2) and dls.c == 2 and not dls.is_classification
    assert dls.decode_pred(torch.tensor([1.0, 2.0])) == {"target": 1.0, "other": 2.0}
    with pytest.raises(ValueError, match="takes one target column"):
        TabularDataLoaders.from_df(reg_df, ["target", "other"], ["group"], ["x"], y_block="category")


def test_bad_inputs_named(rule_df, reg_df):
    with pytest.raises(KeyError, match=r"\['colour'\] not in the DataFrame"):
        TabularDataLoaders.from_df(rule_df, "label", cat_names=["colour"], cont_names=["x"])
    with pytest.raises(KeyError, match=r"\['price'\] not in the DataFrame"):
        TabularDataLoaders.from_df(rule_df, "price")
    nan_target = rule_df.copy()
    nan_target.loc[[3, 7], "label"] = None
    with pytest.raises(ValueError, match=r"target column 'label' has 2 missing value\(s\) \(first at row position 3\)"):
        TabularDataLoaders.from_df(nan_target, "label", **NAMES)
    with pytest.raises(ValueError, match="the DataFrame is empty"):
        TabularDataLoaders.from_df(rule_df.iloc[:0], "label", **NAMES)
    with pytest.raises(ValueError, match="continuous column 'empty' has no values in the training rows"):
        TabularDataLoaders.from_df(rule_df.assign(empty=np.nan), "label", ["shape"], ["x", "empty"])
    with pytest.raises(ValueError, match="y_block must be one of"):
        TabularDataLoaders.from_df(rule_df, "label", **NAMES, y_block="multilabel")
    with pytest.raises(ValueError, match="regression target column 'label' is not numeric"):
        TabularDataLoaders.from_df(rule_df, "label", **NAMES, y_block="regression")
    with pytest.raises(ValueError, match=r"target column\(s\) \['x'\] also listed as inputs"):
        TabularDataLoaders.from_df(rule_df, "x", **NAMES)
    with pytest.raises(ValueError, match=r"\['x'\] in both cat_names and cont_names"):
        TabularDataLoaders.from_df(rule_df, "label", cat_names=["shape", "x"], cont_names=["x"])
    with pytest.raises(ValueError, match="need Categorify in procs"):
        TabularDataLoaders.from_df(rule_df, "label", **NAMES, procs=[Normalize])
    with pytest.raises(ValueError, match="still hold missing"):  # no FillMissing: NaNs must not reach the model
        TabularDataLoaders.from_df(rule_df, "label", **NAMES, procs=[Categorify, Normalize])
    with pytest.raises(TypeError, match="column names must be strings"):
        TabularDataLoaders.from_df(pd.DataFrame({0: [1.0, 2.0, 3.0], 1: ["a", "b", "a"]}), 1)
    with pytest.raises(IndexError, match="valid_idx"):
        TabularDataLoaders.from_df(rule_df, "label", **NAMES, valid_idx=[0, len(rule_df)])
    with pytest.raises(ValueError, match="training row"):
        TabularDataLoaders.from_df(rule_df.iloc[:3], "label", **NAMES, valid_idx=[0, 1])


def test_split_positions_seed_and_fit_on_training_rows_only(rule_df):
    valid_idx = list(range(100, 250))
    dls = TabularDataLoaders.from_df(rule_df, "label", **NAMES, valid_idx=valid_idx)
    assert dls.valid.n == 150 and dls.train.n == len(rule_df) - 150
    train_rows = rule_df.drop(index=rule_df.index[valid_idx])
    norm = next(p for p in dls.processor.procs if isinstance(p, Normalize))
    assert norm.means["x"] == pytest.approx(train_rows["x"].mean())  # validation rows not seen
    fill = dls.processor.procs[0]
    assert fill.fill_values["z"] == pytest.approx(train_rows["z"].median())
    a = TabularDataLoaders.from_df(rule_df, "label", **NAMES, seed=3)
    b = TabularDataLoaders.from_df(rule_df, "label", **NAMES, seed=3)
    c = TabularDataLoaders.from_df(rule_df, "label", **NAMES, seed=4)
    assert a.valid.n == round(0.2 * len(rule_df))
    assert torch.equal(a.valid.x_cont, b.valid.x_cont) and not torch.equal(a.valid.x_cont, c.valid.x_cont)
    # a category seen only in validation rows is unknown (0) there
    only_valid = rule_df.copy()
    only_valid.loc[only_valid.index[:10], "shape"] = "hexagon"
    dls = TabularDataLoaders.from_df(only_valid, "label", **NAMES, valid_idx=range(10))
    assert "hexagon" not in dls.processor.categorify.vocabs["shape"]
    assert (dls.valid.x_cat[:, 0] == 0).all()


def test_batches_from_tensors_prepared_once(rule_df):
    dls = TabularDataLoaders.from_df(rule_df, "label", **NAMES, seed=0, bs=64)
    assert dls.n_inp == 2 and isinstance(dls.train, TabularBatches)
    n = dls.train.n
    assert len(dls.train) == n // 64  # the last partial training batch is dropped (BatchNorm)
    assert len(dls.valid) == -(-dls.valid.n // 64)
    x_cat, x_cont, y = next(iter(dls.train))
    assert x_cat.dtype == torch.int64 and x_cat.shape == (64, 3)  # shape, noise_cat, z_na
    assert x_cont.dtype == torch.float32 and x_cont.shape == (64, 2)
    # validation batches are views of the prepared tensors: no per-row work while iterating
    vb = next(iter(dls.valid))
    assert vb[1].untyped_storage().data_ptr() == dls.valid.x_cont.untyped_storage().data_ptr()
    # each epoch visits training rows in a new random order, each row at most once
    epochs = [torch.cat([b[1][:, 0] for b in dls.train]) for _ in range(2)]
    assert not torch.equal(epochs[0], epochs[1])
    for e in epochs:
        assert len(e) == len(dls.train) * 64 and len(set(e.tolist())) == len(e)
    small = TabularBatches(torch.zeros(5, 0, dtype=torch.long), torch.randn(5, 1), bs=8, drop_last=True)
    assert len(small) == 1 and next(iter(small))[1].shape == (5, 1)  # fewer rows than bs: one batch
    with pytest.raises(ValueError, match="row counts differ"):
        TabularBatches(torch.zeros(5, 1), torch.zeros(4, 1))


def test_test_dl_rows_dicts_unseen_values(rule_df):
    dls = TabularDataLoaders.from_df(rule_df, "label", **NAMES, seed=0, bs=64)
    new = pd.DataFrame({"shape": ["circle", "hexagon", None], "noise_cat": ["a", "b", "z"], "x": [0.5, 1, 2]})
    new["z"] = [np.nan, 0.0, 1e6]
    dl = dls.test_dl(new)
    batch = next(iter(dl))
    assert len(batch) == 2  # no target column: inputs only
    x_cat, x_cont = batch
    shape_vocab = dls.processor.categorify.vocabs["shape"]
    assert x_cat[:, 0].tolist() == [shape_vocab.index("circle"), 0, 0]  # unseen and missing -> #na#
    assert x_cat[:, 2].tolist() == [2, 1, 1]  # z_na flag: True for the missing z
    assert torch.isfinite(x_cont).all()
    one = dls.test_dl({"shape": "star", "noise_cat": "c", "x": 0.1, "z": 0.2})
    series = dls.test_dl([new.iloc[0]])
    assert next(iter(one))[0].shape == (1, 3) and torch.equal(next(iter(series))[0], x_cat[:1])
    labelled = dls.test_dl(rule_df.iloc[:10])
    assert len(next(iter(labelled))) == 3 and labelled.y.tolist() == [
        dls.y_vocab.index(v) for v in rule_df["label"].iloc[:10]
    ]
    with pytest.raises(KeyError, match=r"test_dl: column\(s\) \['x'\] missing"):
        dls.test_dl(new.drop(columns="x"))
    with pytest.raises(ValueError, match="no rows"):
        dls.test_dl(new.iloc[:0])
    with pytest.raises(ValueError, match=r"label\(s\) \['maybe'\] not in the vocab"):
        dls.test_dl(rule_df.iloc[:3].assign(label="maybe"))
    with pytest.raises(TypeError, match="expected a DataFrame"):
        dls.test_dl("circle")
    # rows given one by one (what learn.predict passes) never carry labels, so an unknown one is fine
    row = rule_df.iloc[0].copy()
    row["label"] = "maybe"
    assert len(next(iter(dls.test_dl([row])))) == 2


def test_categorical_type_mismatch_warns(reg_df):
    df = reg_df.assign(level=np.arange(len(reg_df)) % 3)  # ints 0, 1, 2
    dls = TabularDataLoaders.from_df(df, "target", ["level"], ["x"], seed=0)
    with pytest.warns(UserWarning, match="column 'level' is in its training vocab, which holds int values"):
        dl = dls.test_dl(df.iloc[:5].assign(level=["0", "1", "2", "0", "1"]))  # read back as text
    assert (dl.x_cat == 0).all()


def test_decode_pred_and_export_round_trip(rule_df, tmp_path):
    dls = TabularDataLoaders.from_df(rule_df, "label", **NAMES, seed=0)
    label, idx, probs = dls.decode_pred(torch.tensor([0.2, 0.8]))
    assert (label, idx) == ("yes", 1) and torch.equal(probs, torch.tensor([0.2, 0.8]))
    info = json.loads(json.dumps(dls.export_info()))  # plain JSON data
    again = TabularDataLoaders.from_export(info)
    new = rule_df.iloc[:20].drop(columns="label")
    for a, b in zip(next(iter(dls.test_dl(new))), next(iter(again.test_dl(new)))):
        assert torch.equal(a, b)
    assert again.y_vocab == ["no", "yes"] and again.cat_names == dls.cat_names
    assert again.processor.categorify.vocabs["shape"][0] == NA_TOKEN


def test_from_csv(rule_df, tmp_path):
    path = tmp_path / "rows.csv"
    rule_df.to_csv(path, index=False)
    dls = TabularDataLoaders.from_csv(path, "label", **NAMES, seed=0)
    ref = TabularDataLoaders.from_df(rule_df, "label", **NAMES, seed=0)
    assert torch.allclose(dls.valid.x_cont, ref.valid.x_cont) and torch.equal(dls.valid.y, ref.valid.y)
    with pytest.raises(FileNotFoundError, match="no such file .*missing.csv"):
        TabularDataLoaders.from_csv(tmp_path / "missing.csv", "label")


def test_adult_sample_with_real_missing_values(adult_csv):
    df = pd.read_csv(adult_csv)
    cats = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex"]
    conts = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
    dls = TabularDataLoaders.from_df(df, "salary", cats, conts, seed=42)
    assert dls.cat_names == [*cats, "education-num_na"]  # education-num has real NaNs
    assert dls.y_vocab == ["<50k", ">=50k"]
    assert dls.train.n + dls.valid.n == len(df) and torch.isfinite(dls.train.x_cont).all()
    # occupation's NaNs (and nothing else) map to #na#
    occ = cats.index("occupation")
    n_missing = int((dls.train.x_cat[:, occ] == 0).sum() + (dls.valid.x_cat[:, occ] == 0).sum())
    assert n_missing == int(df["occupation"].isna().sum())
