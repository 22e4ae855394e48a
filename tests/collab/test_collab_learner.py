"""collab_learner: tiny learners that must learn, analysis of the embeddings, prediction by id, export."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from collab_helpers import low_rank_ratings, one_thread, shared_data

import quickfit as qf
from quickfit.collab import CollabDataLoaders, CollabLearner, EmbeddingNN, UnknownIdError, collab_learner


def fitted(df, n_factors=4, epochs=10, lr=5e-2, wd=0.01, seed=0, **kwargs) -> CollabLearner:
    one_thread()
    torch.manual_seed(seed)
    dls = CollabDataLoaders.from_df(df, valid_pct=0.2, seed=seed, bs=32)
    learn = collab_learner(dls, n_factors=n_factors, wd=wd, metrics=[qf.rmse], progress=False, **kwargs)
    learn.fit_one_cycle(epochs, lr)
    return learn


@pytest.fixture(scope="module")
def low_rank():
    df, _, _ = low_rank_ratings()
    return df, fitted(df)


def test_dot_model_fits_a_low_rank_rating_matrix(low_rank):
    df, learn = low_rank
    valid_loss, rmse = learn.validate()
    # Predicting the mean scores about df.rating.std() = 0.70; the rank-2 structure is recovered on
    # ratings never seen in training.
    assert rmse < 0.1, rmse
    assert abs(valid_loss - rmse**2) < 1e-4
    assert isinstance(learn, CollabLearner) and learn.recorder.values[-1][1] < 0.01


def test_bias_ordering_recovers_planted_item_biases():
    df, item_bias, _ = low_rank_ratings(n_users=50, n_items=30, rank=0, noise=0.3, seed=1)
    learn = fitted(df, n_factors=2, epochs=8, lr=3e-2, wd=0.05, seed=1)
    items = 1000 + np.arange(len(item_bias))
    learned = learn.bias(items.tolist()).numpy()
    rank_corr = pd.Series(learned).corr(pd.Series(item_bias), method="spearman")
    assert rank_corr > 0.9, rank_corr
    top, bottom = learn.most_liked(3), learn.least_liked(3)
    assert list(top.columns) == ["item", "bias"] and top.bias.is_monotonic_decreasing
    assert top.item[0] == items[np.argmax(item_bias)] and bottom.item[0] == items[np.argmin(item_bias)]
    assert bottom.bias.is_monotonic_increasing and len(learn.most_liked(100)) == len(items)
    # A subset of ids keeps its own ranking.
    sub = learn.most_liked(2, ids=[1000, 1001, 1002])
    assert set(sub.item) <= {1000, 1001, 1002} and len(sub) == 2


def test_predict_by_original_ids_and_unknown_ids(low_rank):
    df, learn = low_rank
    user, item = df.user[0], int(df.item[0])
    x = learn.dls.encode([(user, item)]).to(learn.device)
    learn.model.eval()
    expected = learn.model(x).item()
    assert learn.predict((user, item)) == pytest.approx(expected, abs=1e-6)
    preds = learn.predict_pairs(df.iloc[:5])
    assert preds.shape == (5,)
    assert preds[0].item() == pytest.approx(expected, abs=1e-6)
    assert torch.allclose(preds, learn.predict_pairs(list(zip(df.user[:5], df.item[:5].tolist()))))
    with pytest.raises(UnknownIdError, match=r"unknown user id\(s\) 'stranger'"):
        learn.predict(("stranger", item))
    with pytest.raises(UnknownIdError, match=r"unknown item id\(s\) 77"):
        learn.predict_pairs([(user, item), (user, 77)])
    # unknown="index": the unknown index 0 (its small random embedding), still a rating in y_range.
    p = learn.predict(("stranger", item), unknown="index")
    assert 0 < p < 5.5
    x0 = torch.tensor([[0, learn.dls.classes["item"].index(item)]], device=learn.device)
    assert p == pytest.approx(learn.model(x0).item(), abs=1e-6)


def test_weight_bias_and_pca_shapes_and_oracle(low_rank):
    _, learn = low_rank
    n_items = learn.dls.n_items - 1
    assert learn.weight().shape == (n_items, 4) and learn.bias().shape == (n_items,)
    assert learn.weight(["user03"], is_item=False).shape == (1, 4)
    assert learn.bias(["user03", "user04"], is_item=False).shape == (2,)
    with pytest.raises(UnknownIdError, match="item"):
        learn.bias([123456])
    pcs = learn.pca(2)
    assert list(pcs.columns) == ["pc1", "pc2"] and list(pcs.index) == learn.dls.classes["item"][1:]
    # Oracle: NumPy's SVD of the centered item factors (components agree up to sign).
    w = learn.weight().double().numpy()
    w = w - w.mean(0)
    u, s, _ = np.linalg.svd(w, full_matrices=False)
    np.testing.assert_allclose(np.abs(pcs.to_numpy()), np.abs(u[:, :2] * s[:2]), atol=1e-6)
    ratio = pcs.attrs["explained_variance_ratio"]
    assert ratio[0] >= ratio[1] and sum(ratio) <= 1 + 1e-9
    with pytest.raises(ValueError, match="n must be between 1 and 4"):
        learn.pca(5)


def test_neural_model_learns_and_has_no_bias():
    df, _, _ = low_rank_ratings()
    learn = fitted(df, epochs=15, lr=1e-2, use_nn=True, layers=(32,), emb_szs={"user": 8, "item": 8}, ps=0.0)
    assert isinstance(learn.model, EmbeddingNN) and learn.model.emb_szs == [(41, 8), (31, 8)]
    assert learn.validate()[1] < 0.7 * df.rating.std()  # predicting the mean scores about the std
    assert learn.weight([1000]).shape == (1, 8)
    with pytest.raises(TypeError, match="dot-product model"):
        learn.bias()
    default = collab_learner(learn.dls, use_nn=True, progress=False)
    assert default.model.emb_szs == [(41, 13), (31, 11)]  # min(600, round(1.6 * n**0.56))


def test_export_and_load_learner_round_trip(low_rank, tmp_path):
    df, learn = low_rank
    learn.path = tmp_path
    f = learn.export("collab.qf")
    from safetensors import safe_open

    with safe_open(str(f), framework="pt") as sf:
        info = json.loads(sf.metadata()["quickfit"])
    assert info["app"] == "collab" and info["model"]["type"] == "embedding_dot_bias" and info["format"] == 2
    loaded = qf.load_learner(f)
    assert isinstance(loaded, CollabLearner) and loaded.dls.classes == learn.dls.classes
    pairs = list(zip(df.user[:8], df.item[:8].tolist()))
    torch.testing.assert_close(loaded.predict_pairs(pairs).cpu(), learn.predict_pairs(pairs).cpu())
    with pytest.raises(UnknownIdError, match="stranger"):
        loaded.predict(("stranger", 1000))


def test_export_of_the_neural_model(tmp_path):
    df, _, _ = low_rank_ratings(n_users=6, n_items=5, frac=1.0)
    dls = CollabDataLoaders.from_df(df, valid_pct=0.2, seed=0, bs=8)
    learn = collab_learner(dls, use_nn=True, layers=(6,), ps=0.1, progress=False, path=tmp_path)
    learn.fit(1, 1e-3)
    loaded = qf.load_learner(learn.export())
    pairs = list(zip(df.user[:4], df.item[:4].tolist()))
    torch.testing.assert_close(loaded.predict_pairs(pairs).cpu(), learn.predict_pairs(pairs).cpu())


def test_bad_arguments_are_named():
    df, _, _ = low_rank_ratings(n_users=5, n_items=4)
    dls = CollabDataLoaders.from_df(df, valid_pct=0.2, seed=0)
    with pytest.raises(ValueError, match=r"'rating' span \[.*outside y_range=\(0.0, 2.0\)"):
        collab_learner(dls, y_range=(0.0, 2.0))
    with pytest.raises(ValueError, match="emb_szs is for the neural model"):
        collab_learner(dls, emb_szs={"user": 3})
    with pytest.raises(ValueError, match="emb_szs keys"):
        collab_learner(dls, use_nn=True, emb_szs={"movie": 3})
    with pytest.raises(TypeError, match="CollabDataLoaders"):
        collab_learner(qf.DataLoaders([], None))
    assert collab_learner(dls, y_range=None, progress=False).model.y_range is None


def test_movie_lens_sample_learns():
    path = shared_data() / "movie_lens_sample" / "ratings.csv"
    if not path.exists():
        pytest.skip("shared movie_lens_sample data not present")
    one_thread()
    torch.manual_seed(0)
    dls = CollabDataLoaders.from_csv(path, user_name="userId", item_name="movieId", seed=42)
    learn = collab_learner(dls, n_factors=20, y_range=(0, 5.5), metrics=[qf.rmse], progress=False)
    baseline = float(dls.valid.y.std())
    learn.fit_one_cycle(4, 5e-3)
    rmse = learn.validate()[1]
    assert rmse < 0.93 * baseline, (rmse, baseline)  # the course's sample: about 0.87 vs 1.0
    assert learn.most_liked(1).movieId[0] in learn.dls.classes["item"]


def test_weight_decay_reaches_the_factors_not_the_biases():
    df, _, _ = low_rank_ratings(n_users=5, n_items=4)
    dls = CollabDataLoaders.from_df(df, valid_pct=0.2, seed=0)
    learn = collab_learner(dls, progress=False)
    opt = learn.create_opt()
    decay = {  # one torch group per layer group; its mask says which parameters decay
        id(p): g["decoupled_wd"] if on else 0.0
        for g in opt.param_groups
        for p, on in zip(g["params"], g.get("decay_mask", [True] * len(g["params"])))
    }
    m = learn.model
    assert decay[id(m.u_weight.weight)] == decay[id(m.i_weight.weight)] == 0.2
    assert decay[id(m.u_bias)] == decay[id(m.i_bias)] == 0.0
    assert collab_learner(dls, use_nn=True, progress=False).wd == 0.01
