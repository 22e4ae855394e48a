"""tabular_learner: tiny learners that must learn, predict on rows, get_preds on frames, export / load."""

import json

import pandas as pd
import pytest
import torch
from safetensors import safe_open
from torch import nn

import quickfit as qf
from quickfit.tabular import TabularDataLoaders, TabularModel, tabular_learner

NAMES = {"cat_names": ["shape", "noise_cat"], "cont_names": ["x", "z"]}


@pytest.fixture(scope="module")
def rule_learner(rule_df_module):
    qf.set_seed(0)
    dls = TabularDataLoaders.from_df(rule_df_module, "label", **NAMES, seed=0, bs=64)
    learn = tabular_learner(dls, layers=[32, 16])
    learn.fit_one_cycle(8, 1e-2)
    return learn


def test_classification_learns_a_rule(rule_learner):
    loss, acc = rule_learner.validate()
    assert acc >= 0.92, f"valid accuracy {acc:.3f} on a learnable rule"
    assert isinstance(rule_learner.loss_func, nn.CrossEntropyLoss)
    assert isinstance(rule_learner.model, TabularModel)


def test_predict_rows_and_get_preds_on_a_frame(rule_learner, rule_df):
    label, idx, probs = rule_learner.predict({"shape": "star", "noise_cat": "a", "x": -1.0, "z": 2.0})
    assert label == "yes" and idx == 1 and probs.shape == (2,) and probs.sum() == pytest.approx(1.0)
    label, _, _ = rule_learner.predict(pd.Series({"shape": "circle", "noise_cat": "b", "x": -2.0, "z": 0.0}))
    assert label == "no"
    # unseen category and missing values at prediction time: still a prediction
    label, _, probs = rule_learner.predict({"shape": "hexagon", "noise_cat": None, "x": float("nan"), "z": 0.1})
    assert label in ("no", "yes") and torch.isfinite(probs).all()
    rows = rule_df.iloc[:200]
    preds, targs = rule_learner.get_preds(dl=rule_learner.dls.test_dl(rows.drop(columns="label")))
    assert preds.shape == (200, 2) and targs is None
    torch.testing.assert_close(preds.sum(1), torch.ones(200))
    _, targs = rule_learner.get_preds(dl=rule_learner.dls.test_dl(rows))  # with the labels: targets too
    assert (preds.argmax(1) == targs).float().mean() >= 0.9


def test_export_and_load_learner_carry_the_processors(rule_learner, rule_df, tmp_path):
    rule_learner.path = tmp_path
    fname = rule_learner.export("rule.qf")
    with safe_open(str(fname), framework="pt") as f:
        info = json.loads(f.metadata()["quickfit"])  # plain JSON next to the weights: no pickle
    assert info["app"] == "tabular" and info["data"]["y_vocab"] == ["no", "yes"]
    loaded = qf.load_learner(fname)
    rows = rule_df.iloc[:50].drop(columns="label")
    before, _ = rule_learner.get_preds(dl=rule_learner.dls.test_dl(rows))
    after, _ = loaded.get_preds(dl=loaded.dls.test_dl(rows))
    torch.testing.assert_close(before.cpu(), after.cpu())
    row = {"shape": "square", "noise_cat": "c", "x": 0.3, "z": 0.0}
    assert loaded.predict(row)[0] == rule_learner.predict(row)[0]


def test_regression_with_y_range_reaches_low_rmse(reg_df):
    qf.set_seed(0)
    dls = TabularDataLoaders.from_df(reg_df, "target", ["group"], ["x", "z"], seed=0, bs=64)
    learn = tabular_learner(dls, layers=[32, 16], y_range=(-1.0, 9.0))
    learn.fit_one_cycle(10, 1e-2)
    loss, rmse = learn.validate()
    assert rmse < 0.2, f"valid RMSE {rmse:.3f} (target std {reg_df['target'].std():.2f})"
    value = learn.predict({"group": "b", "x": 0.5, "z": 0.0})  # 3 + 1 + 1.5
    assert isinstance(value, float) and value == pytest.approx(5.5, abs=0.5)


def test_multi_target_regression_learns(reg_df):
    qf.set_seed(0)
    dls = TabularDataLoaders.from_df(reg_df, ["target", "other"], ["group"], ["x", "z"], seed=0, bs=64)
    learn = tabular_learner(dls, layers=[32, 16])
    learn.fit_one_cycle(10, 3e-2)
    preds, targs = learn.get_preds()
    assert preds.shape == targs.shape == (dls.valid.n, 2)
    rmse_per_target = ((preds - targs) ** 2).mean(0).sqrt()
    assert (rmse_per_target < 0.25).all(), rmse_per_target
    assert set(learn.predict({"group": "a", "x": 0.0, "z": 0.0})) == {"target", "other"}


def test_learner_options_and_errors(rule_df):
    dls = TabularDataLoaders.from_df(rule_df, "label", **NAMES, seed=0)
    learn = tabular_learner(dls, layers=[8], emb_szs={"shape": 7}, ps=0.5, embed_p=0.1, metrics=())
    assert learn.model.embeds[0].weight.shape == (5, 7) and learn.model.emb_drop.p == 0.1
    assert learn.metrics == [] and any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in learn.model.layers)
    with pytest.raises(ValueError, match="y_range is for regression"):
        tabular_learner(dls, y_range=(0, 1))
    with pytest.raises(TypeError, match="needs TabularDataLoaders"):
        tabular_learner(qf.DataLoaders([], []))


def test_adult_sample_learns(adult_csv):
    qf.set_seed(0)
    dls = TabularDataLoaders.from_csv(adult_csv, "salary", valid_pct=0.2, seed=42, bs=512)
    learn = tabular_learner(dls, progress=False)
    learn.fit_one_cycle(1, 1e-2)
    assert learn.validate()[1] >= 0.83  # the majority class alone gives 0.76
