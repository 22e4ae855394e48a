"""Regression targets on their own scale (normalized / log / y_range), the epoch table for large
losses, `dls.one_batch()` / `show_batch()` and `learn.show_results()`."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import quickfit as qf
from quickfit.tabular import LogMSELoss, TabularDataLoaders, tabular_learner
from tests.tabular.conftest import make_regression_frame


def _prices(n: int = 800, seed: int = 0) -> pd.DataFrame:
    """A house-price-like target: 200,000 + 100,000 * (2x - z + 1.5 [group b]) + noise (std ~125,000)."""
    df = make_regression_frame(n, seed).drop(columns="other")
    df["price"] = 200_000 + 100_000 * (df.pop("target") - 3)
    return df


def _fit(df, target="price", epochs=8, **kwargs):
    qf.set_seed(0)
    dls = TabularDataLoaders.from_df(df, target, ["group"], ["x", "z"], seed=0, bs=64)
    learn = tabular_learner(dls, layers=[32, 16], progress=False, **kwargs)
    learn.fit_one_cycle(epochs, 1e-2)
    return learn


def test_a_large_scale_target_is_learned_by_default(capsys):
    """The user's first regression (`median_house_value`): with raw MSE on targets of ~200,000 the model
    never left ~0 (RMSE = the target's mean); on a normalized target it learns."""
    df = _prices()
    learn = _fit(df)
    _, rmse = learn.validate()
    std = df["price"].std()
    assert rmse < 0.1 * std, f"valid RMSE {rmse:,.0f} with target std {std:,.0f}"
    assert isinstance(learn.loss_func, nn.MSELoss)
    value = learn.predict({"group": "b", "x": 0.5, "z": 0.0})  # 200,000 + 100,000 * 2.5
    assert value == pytest.approx(450_000, rel=0.1)
    # the epoch table stays aligned for losses of ~1e10: each value starts under its column's name
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("epoch", "7 "))]
    header, last = table[0], table[-1]
    for name in ("train_loss", "valid_loss", "rmse", "time"):
        col = header.index(name)
        assert last[col - 1] == " " and last[col] != " ", (name, header, last)


def test_log_y_for_a_positive_skewed_target(tmp_path):
    df = make_regression_frame()
    df["count"] = np.exp(df["target"])  # 5 to 8,000: skewed
    learn = _fit(df.drop(columns=["target", "other"]), "count", epochs=10, log_y=True)
    assert isinstance(learn.loss_func, LogMSELoss)
    preds, targs = learn.get_preds()
    assert (preds > 0).all()
    log_rmse = ((preds.log() - targs.log()) ** 2).mean().sqrt()
    assert log_rmse < 0.2, f"RMSE of the logs {log_rmse:.3f} (std of log target {np.log(df['count']).std():.2f})"
    row = {"group": "a", "x": 0.0, "z": 0.0}
    assert learn.predict(row) == pytest.approx(np.exp(3.0), rel=0.25)
    learn.path = tmp_path
    loaded = qf.load_learner(learn.export("count.qf"))  # the target's scale comes back from the JSON
    assert isinstance(loaded.loss_func, LogMSELoss)
    assert loaded.predict(row) == pytest.approx(learn.predict(row), rel=1e-5)


def test_log_y_and_y_range_are_checked(reg_df):
    df = reg_df.assign(target=reg_df["target"] - 3)  # negative values
    dls = TabularDataLoaders.from_df(df, "target", ["group"], ["x", "z"], seed=0)
    with pytest.raises(ValueError, match="log_y=True needs positive targets; column 'target' has -"):
        tabular_learner(dls, log_y=True)
    dls = TabularDataLoaders.from_df(df, "group", cat_names=[], cont_names=["x", "z"], seed=0)
    with pytest.raises(ValueError, match="log_y is for regression"):
        tabular_learner(dls, log_y=True)


def test_y_range_and_no_normalization_stay_available(reg_df):
    learn = _fit(reg_df, "target", epochs=1, y_range=(-1.0, 9.0))
    assert type(learn.model.layers[-1]).__name__ == "SigmoidRange"
    learn = _fit(reg_df, "target", epochs=1, norm_y=False)
    assert isinstance(learn.model.layers[-1], nn.Linear)
    learn = _fit(reg_df, "target", epochs=1)
    scale = learn.model.layers[-1]
    assert type(scale).__name__ == "TargetScale"
    y = learn.dls.train.y
    assert scale.means.item() == pytest.approx(y.mean().item(), rel=1e-5)
    assert scale.stds.item() == pytest.approx(y.std().item(), rel=1e-4)
    assert set(learn.model.state_dict()).isdisjoint({"layers.4.means", "layers.4.stds"})  # from the JSON


# ---- one_batch, show_batch, show_results --------------------------------------------------------------
def test_one_batch_and_show_batch_decode_the_rows(rule_df, capsys):
    valid_idx = list(range(100))
    dls = TabularDataLoaders.from_df(rule_df, "label", ["shape"], ["x"], valid_idx=valid_idx, bs=32)
    x_cat, x_cont, y = dls.one_batch()
    assert x_cat.shape == (32, 1) and x_cont.shape == (32, 1) and y.shape == (32,)
    assert x_cat.dtype == torch.long and x_cont.dtype == torch.float32
    rows = dls.decode_batch(dls.one_batch("valid"), max_n=5)
    expected = rule_df.iloc[:5].reset_index(drop=True)
    assert list(rows.columns) == ["shape", "x", "label"]
    assert rows["shape"].tolist() == expected["shape"].tolist() and rows["label"].tolist() == expected["label"].tolist()
    np.testing.assert_allclose(rows["x"], expected["x"], rtol=1e-5, atol=1e-5)
    shown = dls.show_batch(max_n=4)
    assert len(shown) == 4 and "shape" in capsys.readouterr().out
    with pytest.raises(ValueError, match="split must be 'train' or 'valid', got 'test'"):
        dls.one_batch("test")


def test_one_batch_of_collab_loaders():
    from quickfit.collab import CollabDataLoaders

    rng = np.random.default_rng(0)
    ratings = pd.DataFrame(
        {"user": rng.integers(0, 20, 300), "item": rng.integers(0, 15, 300), "rating": rng.uniform(1, 5, 300)}
    )
    dls = CollabDataLoaders.from_df(ratings, seed=0, bs=16)
    x, y = dls.one_batch()
    assert x.shape == (16, 2) and x.dtype == torch.long and y.shape[0] == 16
    assert (x[:, 0] < len(dls.classes["user"])).all() and (x[:, 1] < len(dls.classes["item"])).all()
    xv, _ = dls.one_batch("valid")
    assert xv.shape[1] == 2


def test_show_results_rows_with_target_and_prediction(capsys):
    df = _prices()
    learn = _fit(df)
    res = learn.show_results(max_n=6)
    assert list(res.columns) == ["group", "x", "z", "price", "price_pred"] and len(res) == 6
    preds, targs = learn.get_preds()
    np.testing.assert_allclose(res["price"], targs[:6, 0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(res["price_pred"], preds[:6, 0].numpy(), rtol=1e-4)
    assert "price_pred" in capsys.readouterr().out


def test_show_results_for_a_classification(rule_df):
    qf.set_seed(0)
    dls = TabularDataLoaders.from_df(rule_df, "label", ["shape", "noise_cat"], ["x", "z"], seed=0, bs=64)
    learn = tabular_learner(dls, layers=[32, 16], progress=False)
    learn.fit_one_cycle(4, 1e-2)
    res = learn.show_results(max_n=20, show=False)
    assert {"label", "label_pred", "probability", "z_na"} <= set(res.columns)
    assert set(res["label_pred"]) <= {"no", "yes"} and ((res["probability"] >= 0.5) & (res["probability"] <= 1)).all()
    assert (res["label"] == res["label_pred"]).mean() >= 0.7
    new = learn.show_results(max_n=3, dl=dls.test_dl(rule_df.iloc[:3].drop(columns="label")), show=False)
    assert "label" not in new.columns and len(new) == 3
    with pytest.raises(TypeError, match="TabularBatches"):
        learn.show_results(dl=[(torch.zeros(1),)])
