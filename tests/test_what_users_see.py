"""Issue 29 item 18: what users see besides the numbers: progress bars only on a terminal, counts that
add up, logs that agree, tables without noise, one-line CLI warnings, whole-size style predictions,
labelled image grids, and a GAN's show_results(n) that shows n."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.test_cli import _quickfit


def test_crappify_and_style_transfer_draw_bars_only_on_a_terminal(tmp_path, capsys):
    from quickfit.vision import crappify, style_transfer
    from tests.vision.test_image2image import smooth_image
    from tests.vision.test_style import tiny_features

    (tmp_path / "photos").mkdir()
    for i in range(3):
        smooth_image(32, 32, i).save(tmp_path / "photos" / f"{i}.png")
    crappify(tmp_path / "photos", tmp_path / "lr", num_workers=1)  # stderr is not a terminal here: no bar
    style_transfer(tmp_path / "photos" / "0.png", tmp_path / "photos" / "1.png", steps=2, size=16,
                   features=tiny_features(), content_layers=(3,), style_layers=(1,))  # fmt: skip
    assert capsys.readouterr().err == ""
    res = style_transfer(tmp_path / "photos" / "0.png", tmp_path / "photos" / "1.png", steps=4, size=16,
                         features=tiny_features(), content_layers=(3,), style_layers=(1,), progress=True)  # fmt: skip
    err = capsys.readouterr().err
    assert "4/4" in err and "5/5" not in err  # steps=40 counted to 41
    assert len(res.content_loss) == len(res.style_loss) == 5  # before each step and after the last


def test_style_net_predicts_the_photos_size():
    from quickfit.vision import StyleNet

    net = StyleNet(nf=4, n_res=1).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 33, 50)).shape == (1, 3, 33, 50)  # a 500x333 photo came back 500x336
        assert net(torch.rand(1, 3, 32, 48)).shape == (1, 3, 32, 48)


def test_pretrain_critic_shows_no_gen_loss_column(tmp_path):
    from tests.vision.test_gan import tiny_learner

    learn = tiny_learner(tmp_path, n=64)
    before = [m.name for m in learn.metrics]
    learn.pretrain_critic(1)
    assert "gen_loss" not in learn.recorder.names and "crit_loss" in learn.recorder.names
    assert all(v == v for v in learn.recorder.values[-1][1:])  # no nan in the row
    assert [m.name for m in learn.metrics] == before  # the next fit shows both again


def test_gan_show_results_draws_the_n_asked_across_batches_and_says_when_it_cannot(tmp_path):
    from tests.vision.test_gan import tiny_learner

    learn = tiny_learner(tmp_path, n=256)  # validation: 32 images in batches of 32
    grid16 = learn.show_results(16, nrow=4)
    grid_all = learn.show_results(32, nrow=4, dl=[(torch.randn(8, 4), torch.rand(8, 1, 4, 4))] * 4)
    assert grid_all.shape[1] == 2 * grid16.shape[1] - 2  # 8 rows of 4, not the first batch's 8 images
    with pytest.warns(UserWarning, match="the data holds 32 images, fewer than the 64 asked"):
        learn.show_results(64)


def test_image_grids_name_their_columns_in_the_png(tmp_path):
    from quickfit.image_grid import save_image_grid

    images = torch.full((6, 3, 16, 16), 0.5)
    grid = save_image_grid(images, tmp_path / "plain.png", nrow=3)
    titled = save_image_grid(images, tmp_path / "rows.png", nrow=3, titles=("input", "prediction", "target"))
    assert torch.equal(grid, titled)  # the tensor is the same; the file gets a strip of names on top
    plain, named = Image.open(tmp_path / "plain.png"), Image.open(tmp_path / "rows.png")
    assert named.width == plain.width and named.height > plain.height
    strip = np.asarray(named)[: named.height - plain.height]
    assert (strip < 128).any()  # dark text on white


def test_tabular_show_batch_has_no_round_off_from_normalization():
    from quickfit.tabular import TabularDataLoaders

    rng = np.random.default_rng(0)
    gain = np.where(rng.random(400) < 0.9, 0, rng.integers(1000, 99999, 400)).astype(float)
    df = pd.DataFrame({"capital-gain": gain, "age": rng.integers(17, 90, 400).astype(float)})
    df["salary"] = np.where(df["capital-gain"] > 5000, ">50k", "<=50k")
    dls = TabularDataLoaders.from_df(df, "salary", [], ["capital-gain", "age"], seed=0, bs=64)
    rows = dls.decode_batch(dls.one_batch("valid"))
    assert set(np.unique(rows["capital-gain"])) <= set(gain)  # 0.0, not -0.000021
    assert not np.signbit(rows["capital-gain"]).any() and (rows["age"] == rows["age"].round()).all()


def test_cli_warnings_are_one_line_without_python_source(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random(300)
    grade = np.where(x > 0.5, "high", "low")
    pd.DataFrame({"grade": grade, "x": x, "salary": np.where(x > 0.5, "yes", "no")}).to_csv(
        tmp_path / "rows.csv", index=False
    )
    run = _quickfit(
        tmp_path, "train", "rows.csv", "--target", "salary", "--epochs", "1", "--lr", "1e-2", "--no-progress"
    )
    assert run.returncode == 0, run.stderr
    pd.DataFrame({"grade": [1, 2], "x": [0.9, 0.1]}).to_csv(tmp_path / "new.csv", index=False)  # numbers, not words
    run = _quickfit(tmp_path, "predict", "model.qf", "new.csv")
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "warning" in line.lower()]
    assert lines and all(line.startswith("quickfit: warning: ") for line in lines), run.stderr
    assert "Categorify: no value of column 'grade'" in lines[0]
    assert "UserWarning" not in run.stderr and "sys.exit" not in run.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # main() leaves Python's own formatter in place after it returns
        from quickfit.cli import main

        assert main(["--version"]) == 0
        assert warnings.showwarning.__module__ == "warnings"


def test_the_data_summary_line_is_printed_by_rank_0_only(monkeypatch, capsys):
    from quickfit.tabular import TabularDataLoaders

    df = pd.DataFrame({"x": np.arange(40.0), "kind": ["a", "b"] * 20, "y": ["p", "q"] * 20})
    for rank, shown in (("1", False), ("0", True)):  # what torchrun sets in each process
        monkeypatch.setenv("RANK", rank)
        TabularDataLoaders.from_df(df, "y", seed=0)
        assert ("TabularDataLoaders: cat_names=" in capsys.readouterr().out) == shown
