"""Categorify, FillMissing, Normalize: fitted on training rows, applied to others, state as JSON."""

import json

import numpy as np
import pandas as pd
import pytest

from quickfit.tabular.procs import (
    NA_TOKEN,
    Categorify,
    FillMissing,
    Normalize,
    TabularProcessor,
    proc_from_state,
)


@pytest.fixture
def frames():
    train = pd.DataFrame(
        {
            "color": ["red", "blue", None, "red", "green"],
            "n_doors": [2, 4, 4, 2, 5],
            "size": [1.0, np.nan, 3.0, 5.0, 9.0],
            "weight": [10.0, 20.0, 30.0, 40.0, 50.0],
        }
    )
    other = pd.DataFrame(
        {
            "color": ["purple", "blue", None],
            "n_doors": [3, 4, 2],
            "size": [np.nan, 2.0, 100.0],
            "weight": [np.nan, 20.0, 30.0],
        }
    )
    return train, other


def test_categorify_vocab_from_training_rows_and_unknown_to_zero(frames):
    train, other = frames
    cat = Categorify()
    cat.setup(train, ["color", "n_doors"], [])
    assert cat.vocabs["color"] == [NA_TOKEN, "blue", "green", "red"]
    assert cat.vocabs["n_doors"] == [NA_TOKEN, 2, 4, 5]
    assert cat(train)["color"].tolist() == [3, 1, 0, 3, 2]
    out = cat(other)  # 'purple' and 3 doors never seen in training; None is missing: all -> 0
    assert out["color"].tolist() == [0, 1, 0]
    assert out["n_doors"].tolist() == [0, 2, 1]
    assert out["color"].dtype == np.int64
    assert cat.decode("color", [3, 0]) == ["red", NA_TOKEN]
    assert other["color"].tolist()[:2] == ["purple", "blue"]  # the input is not modified


def test_fill_missing_median_of_training_rows_and_na_flag(frames):
    train, other = frames
    fm = FillMissing()
    cats, conts = fm.setup(train, ["color"], ["size", "weight"])
    assert fm.fill_values["size"] == np.nanmedian(train["size"]) == 4.0
    assert fm.na_cols == ["size"]  # weight was complete in training: no flag
    assert cats == ["color", "size_na"] and conts == ["size", "weight"]
    out = fm(other)
    assert out["size"].tolist() == [4.0, 2.0, 100.0]
    assert out["size_na"].tolist() == [True, False, False]
    assert out["weight"].tolist() == [30.0, 20.0, 30.0]  # filled (median 30), but no flag column
    assert "weight_na" not in out


@pytest.mark.parametrize("strategy,expected", [("mean", 4.5), ("constant", -1.0)])
def test_fill_missing_other_strategies(frames, strategy, expected):
    train, _ = frames
    fm = FillMissing(fill_strategy=strategy, fill_val=-1.0, add_col=False)
    cats, _ = fm.setup(train, [], ["size"])
    assert fm.fill_values["size"] == expected
    assert cats == [] and "size_na" not in fm(train)


def test_fill_missing_errors(frames):
    train, _ = frames
    with pytest.raises(ValueError, match="fill_strategy"):
        FillMissing(fill_strategy="mode")
    all_nan = train.assign(empty=np.nan)
    with pytest.raises(ValueError, match="'empty' has no values in the training rows"):
        FillMissing().setup(all_nan, [], ["size", "empty"])
    with pytest.raises(ValueError, match="'color' holds non-numeric values"):
        FillMissing().setup(train, [], ["color"])


def test_normalize_uses_training_statistics(frames):
    train, other = frames
    norm = Normalize()
    norm.setup(train, [], ["weight"])
    mean, std = train["weight"].mean(), train["weight"].std(ddof=0)
    np.testing.assert_allclose(norm(train)["weight"], (train["weight"] - mean) / std)
    np.testing.assert_allclose(norm(other)["weight"].iloc[1:], (other["weight"].iloc[1:] - mean) / std)
    const = Normalize()
    const.setup(pd.DataFrame({"c": [3.0, 3.0]}), [], ["c"])
    assert const.stds["c"] == 1.0 and const(pd.DataFrame({"c": [4.0]}))["c"].tolist() == [1.0]


def test_processor_runs_in_order_whatever_the_listing(frames):
    train, other = frames
    a = TabularProcessor((Categorify, FillMissing, Normalize), ["color"], ["size", "weight"])
    b = TabularProcessor((Normalize, FillMissing(), Categorify), ["color"], ["size", "weight"])
    pd.testing.assert_frame_equal(a.fit_transform(train), b.fit_transform(train))
    pd.testing.assert_frame_equal(a(other), b(other))
    assert a.cat_names == ["color", "size_na"]
    # the _na flag is categorified (vocab #na#, False, True) and `size` normalized after filling
    assert a.categorify.vocabs["size_na"] == [NA_TOKEN, False, True]
    assert a(other)["size_na"].tolist() == [2, 1, 1]
    assert np.isfinite(a(other)["size"]).all()


def test_state_round_trips_through_json(frames):
    train, other = frames
    tp = TabularProcessor((Categorify, FillMissing, Normalize), ["color", "n_doors"], ["size", "weight"])
    tp.fit_transform(train)
    state = json.loads(json.dumps(tp.state()))
    again = TabularProcessor.from_state(state)
    pd.testing.assert_frame_equal(tp(other), again(other))
    assert again.cat_names == tp.cat_names and again.cont_names == tp.cont_names


def test_bad_processors():
    with pytest.raises(ValueError, match="unknown tabular processor 'os.system'"):
        proc_from_state({"name": "os.system", "state": {}})
    with pytest.raises(TypeError, match="not a TabularProc"):
        TabularProcessor([str], [], [])
    tp = TabularProcessor([Categorify], ["a"], [])
    with pytest.raises(RuntimeError, match="fit_transform"):
        tp(pd.DataFrame({"a": [1]}))
    tp.fit_transform(pd.DataFrame({"a": [1]}))
    with pytest.raises(KeyError, match=r"Categorify: column\(s\) \['a'\] not in the DataFrame"):
        tp(pd.DataFrame({"b": [1]}))
