"""The `quickfit` command, called through `main(argv)` (which returns the exit status)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from quickfit.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # These models are tiny: on a shared CPU, threads competing for cores made them 5-30x slower.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _is_png(path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


# ---- help, version, bad arguments ------------------------------------------------------------------
def test_help_describes_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "lr-find", "train", "predict"):
        assert command in out
    assert "handwritten digits" in out


def test_version(capsys):
    assert main(["--version"]) == 0
    import quickfit

    assert f"quickfit {quickfit.__version__}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--epochs", "0"], "--epochs: must be at least 1"),
        (["demo", "--epochs", "three"], "--epochs: expected a whole number"),
        (["demo", "--lr", "-1"], "--lr: must be greater than 0"),
        (["train"], "the following arguments are required: PATH"),
        (["predict", "model.qf"], "the following arguments are required: INPUT"),
        (["fly"], "invalid choice: 'fly'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_demo_without_scikit_learn_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert main(["demo", "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "scikit-learn" in err and 'pip install "quickfit[demo]"' in err
    assert not list(tmp_path.iterdir())


# ---- demo and lr-find ---------------------------------------------------------------------------------
def test_demo_command_prints_and_saves_plots(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--epochs", "1", "--out", str(out), "--no-progress", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "lr_find: valley" in text
    assert "epoch" in text and "train_loss" in text and "valid_loss" in text and "accuracy" in text
    assert str(out.resolve()) in text
    for name in ("loss.png", "schedule.png", "lr_find.png"):
        assert _is_png(out / name), name


@pytest.mark.slow
def test_run_demo_reaches_97_percent(tmp_path):
    from quickfit.demo import run_demo

    result = run_demo(epochs=8, seed=0, out=tmp_path, progress=False)
    assert result["accuracy"] >= 0.97
    assert result["valid_loss"] < 0.15
    assert 1e-5 < result["lr"] < 1.0 and result["lr"] == result["lr_find"]["valley"]
    assert all(_is_png(p) for p in result["plots"].values())


def test_one_thread_restores_the_setting():
    import torch

    from quickfit.demo import one_thread

    torch.set_num_threads(2)
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)


def test_lr_find_command_on_demo_data(tmp_path, capsys):
    assert main(["lr-find", "--num-it", "40", "--out", str(tmp_path), "--no-progress"]) == 0
    text = capsys.readouterr().out
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("valley", "steep", "minimum"):
            values[parts[0]] = float(parts[1])
    assert set(values) == {"valley", "steep", "minimum"}
    assert all(1e-7 <= v <= 10 for v in values.values())
    assert _is_png(tmp_path / "lr_find.png")


# ---- train and predict on a CSV ---------------------------------------------------------------------
def _table(n: int = 2000):
    """A learnable table: label is "pos" when a + b > 0 (plus a categorical column that does not matter)."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], n)
    return pd.DataFrame({"a": a, "b": b, "color": color, "label": np.where(a + b > 0, "pos", "neg")})


@pytest.fixture(scope="module")
def trained_table(tmp_path_factory):
    """The table as a CSV and `quickfit train` on it: (csv, DataFrame, model path, exit status)."""
    folder = tmp_path_factory.mktemp("table")
    df, path, model = _table(), folder / "table.csv", folder / "table.qf"
    df.to_csv(path, index=False)
    argv = ["train", str(path), "--target", "label", "--epochs", "4", "--lr", "3e-2", "--out", str(model)]
    return path, df, model, main([*argv, "--no-progress"])


def test_train_csv_exports_a_model(trained_table):
    _, _, model, status = trained_table
    assert status == 0
    assert model.is_file()


def test_predict_csv_rows(trained_table, tmp_path, capsys):
    _, df, model, _ = trained_table
    rows = tmp_path / "rows.csv"
    df.iloc[:50].drop(columns="label").to_csv(rows, index=False)
    assert main(["predict", str(model), str(rows)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"{rows}:")]
    assert len(lines) == 50
    assert "probability" in lines[0]
    predicted = [line.split(": ", 1)[1].split()[0] for line in lines]
    assert np.mean(np.array(predicted) == df["label"].iloc[:50].to_numpy()) >= 0.9


def test_train_csv_needs_a_target_column(trained_table, capsys):
    path = trained_table[0]
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--target COLUMN" in err and "'color'" in err
    assert main(["train", str(path), "--target", "colour"]) == 2
    assert "'colour' is not a column" in capsys.readouterr().err


def test_train_csv_rejects_image_options(trained_table, capsys):
    path = trained_table[0]
    assert main(["train", str(path), "--target", "label", "--arch", "resnet34"]) == 2
    assert "--arch and --size are for image folders" in capsys.readouterr().err


def test_train_on_a_missing_path(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nowhere")]) == 2
    assert "no such data file or folder" in capsys.readouterr().err


# ---- image folders go to quickfit.vision.cli ---------------------------------------------------------
def test_train_on_a_folder_calls_the_vision_command(monkeypatch, tmp_path):
    calls = []
    fake = types.ModuleType("quickfit.vision.cli")
    fake.train_command = lambda path, arch, epochs, size, out, **kw: calls.append((path, arch, epochs, size, out))
    monkeypatch.setitem(sys.modules, "quickfit.vision.cli", fake)
    assert main(["train", str(tmp_path), "--epochs", "2", "--size", "128", "--out", "pets.qf"]) == 0
    assert calls == [(tmp_path, "efficientnet_lite0", 2, 128, "pets.qf")]


def test_train_on_a_folder_without_the_vision_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "quickfit.vision.cli", None)
    assert main(["train", str(tmp_path)]) == 2
    assert "not available" in capsys.readouterr().err


# ---- predict: failure paths ---------------------------------------------------------------------------
def test_predict_on_a_missing_model(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "model.qf"), "x.png"]) == 2
    assert f"no model file {tmp_path / 'model.qf'}" in capsys.readouterr().err


def test_predict_on_a_file_that_is_not_a_model(tmp_path, capsys):
    bogus = tmp_path / "model.qf"
    bogus.write_text("age,salary\n1,2\n")
    assert main(["predict", str(bogus), str(bogus)]) == 2
    assert "is not a model exported by quickfit" in capsys.readouterr().err


def test_predict_on_a_missing_input_or_a_plain_learner(tmp_path, capsys):
    from torch import nn

    import quickfit as qf

    learn = qf.Learner(qf.DataLoaders([], None), nn.Linear(2, 2), nn.CrossEntropyLoss(), path=tmp_path)
    learn.export_info = {"app": "tabular"}
    model = learn.export("m.qf")
    assert main(["predict", str(model), str(tmp_path / "rows.csv")]) == 2
    assert f"no such input file(s): {tmp_path / 'rows.csv'}" in capsys.readouterr().err
    learn.export_info = {}
    plain = learn.export("plain.qf")
    assert main(["predict", str(plain), str(plain)]) == 2
    assert "exported from a plain Learner" in capsys.readouterr().err


def test_predict_with_an_image_model_calls_the_vision_command(monkeypatch, tmp_path):
    from torch import nn

    import quickfit as qf

    learn = qf.Learner(qf.DataLoaders([], None), nn.Linear(2, 2), nn.CrossEntropyLoss(), path=tmp_path)
    learn.export_info = {"app": "vision"}
    model = learn.export("pets.qf")
    image = tmp_path / "cat.png"
    image.write_bytes(PNG_MAGIC)
    calls = []
    fake = types.ModuleType("quickfit.vision.cli")
    fake.predict_command = lambda model, images: calls.append((model, images))
    monkeypatch.setitem(sys.modules, "quickfit.vision.cli", fake)
    assert main(["predict", str(model), str(image)]) == 0
    assert calls == [(model, [image])]
