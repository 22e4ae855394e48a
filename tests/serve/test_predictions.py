"""Every application's export answers through the server what `learn.predict` answers on the same input:
one request at a time through the JSON API (the same labels, numbers to 1e-6), and several at once through the handler's
batched path (the same labels; probabilities to float rounding: a batch of N sums in another order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from quickfit.serve import create_app, handler_for
from quickfit.serve.render import decode_url, to_uint8
from quickfit.serve.vision import ImageItem
from tests.serve.helpers import IMAGE_CASES, images, learner, png_bytes, upload

pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

TEXTS = ["The film was great.", "A long story and bad music, the plot was long and the actors bad.", "Bad."]
ROWS = [
    {"shape": "star", "x": 0.1, "z": 0.0},
    {"shape": "circle", "x": 2.0, "z": -1.0},
    {"shape": "square", "x": None, "z": 3.0},
]
PAIRS = [("u1", 100), ("u3", 105), ("u11", 109)]
SENTENCES = ["3 1 4", "1 5 9 2", "6 5", "2 7 1"]


def image_files(tmp_path: Path) -> list[Path]:
    files = []
    for i, img in enumerate(images()):
        files.append(tmp_path / f"in{i}.png")
        files[-1].write_bytes(png_bytes(img))
    return files


def close(a, b, case: str) -> None:
    """`a` (served) equals `b` (learn.predict): labels exactly, numbers to float rounding."""
    if isinstance(b, tuple):
        assert len(a) == len(b), case
        for x, y in zip(a, b):
            close(x, y, case)
    elif isinstance(b, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, case
        if b.dtype in (torch.bool, torch.long):
            assert torch.equal(a, b), case
        else:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=case)
    elif isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-5), case
    else:
        assert a == b, case


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_image_batches_give_what_predict_gives(case, tmp_path):
    learn = learner(case)
    handler = handler_for(learn)
    files = image_files(tmp_path)
    from quickfit.vision.core.image import load_image

    items = [ImageItem(f, load_image(f), load_image(f).size) for f in files]
    items.append(ImageItem(files[0], items[0].image, items[0].size))  # two of one size: one batch
    for item, got in zip(items, handler.predict_batch(items)):
        close(got, learn.predict(item.path), case)


@pytest.mark.parametrize(
    "case, items, predict",
    [
        ("tabular", ROWS, None),
        ("collab", PAIRS, None),
        ("collab_nn", PAIRS, None),
        ("text_classifier", TEXTS, None),
        ("seq2seq", SENTENCES, None),
        ("seq2seq_transformer", SENTENCES, None),
    ],
)
def test_batches_give_what_predict_gives(case, items, predict):
    learn = learner(case)
    handler = handler_for(learn)
    parsed = [handler.parse(_request(handler, i)) for i in items]
    for item, got in zip(parsed, handler.predict_batch(parsed)):
        close(got, learn.predict(item), case)


def _request(handler, item):
    from quickfit.serve.handlers import RequestInput

    if handler.input == "row":
        return RequestInput(json={"row": item})
    if handler.input == "pair":
        return RequestInput(json={"user": item[0], "item": item[1]})
    return RequestInput(json={"text": item})


def test_a_gan_batch_draws_the_images_predict_draws_from_the_seeds_noise():
    learn = learner("gan")
    handler = handler_for(learn)
    got = handler.predict_batch([0, 5, 7])
    for seed, img in zip([0, 5, 7], got):
        z = torch.randn(1, learn.z_dim, generator=torch.Generator().manual_seed(seed))[0]
        torch.testing.assert_close(img, learn.predict(z), atol=1e-5, rtol=1e-5)


def test_a_language_model_continues_as_predict_does_with_the_same_seed():
    learn = learner("language_model")
    with TestClient(create_app(learn)) as client:
        r = client.post("/predict", json={"text": "The film", "n_words": 7, "temperature": 0.7, "seed": 3})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == learn.predict("The film", n_words=7, temperature=0.7, seed=3)


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_image_answers_through_the_api_are_predicts(case, tmp_path):
    learn = learner(case)
    f = image_files(tmp_path)[1]
    expected = learn.predict(f)
    with TestClient(create_app(learn, max_batch=1)) as client:
        r = client.post("/predict", **upload(f.read_bytes()))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["application"] == "vision"
    if case == "image_classifier":
        assert out["prediction"] == expected[0] and out["index"] == expected[1]
        assert list(out["probabilities"].values()) == pytest.approx(expected[2].tolist(), abs=1e-6)
    elif case == "multi_label":
        assert out["labels"] == expected[0]
        assert list(out["probabilities"].values()) == pytest.approx(expected[2].tolist(), abs=1e-6)
    elif case == "regression":
        assert out["value"] == pytest.approx(expected[0], abs=1e-6)
    elif case == "points":
        np.testing.assert_allclose(out["points"], expected[0].tolist(), atol=1e-4)
        assert decode_url(out["image"]).size == (30, 20)
    elif case == "unet_segmentation":
        mask = np.asarray(decode_url(out["mask"]))
        assert np.array_equal(mask, expected[0].numpy())
        assert decode_url(out["image"]).size == (30, 20)
    else:  # image_to_image
        assert np.array_equal(np.asarray(decode_url(out["image"]).convert("RGB")), to_uint8(expected))


@pytest.mark.parametrize(
    "case, body, answer",
    [
        ("tabular", {"row": ROWS[0]}, lambda learn: learn.predict(ROWS[0])),
        ("collab", {"user": "u3", "item": "105"}, lambda learn: learn.predict(("u3", 105))),
        ("text_classifier", {"text": TEXTS[0]}, lambda learn: learn.predict(TEXTS[0])),
        ("seq2seq", {"text": "1 5 9 2"}, lambda learn: learn.predict("1 5 9 2")),
        ("gan", {"seed": 4}, None),
    ],
)
def test_json_answers_are_predicts(case, body, answer):
    learn = learner(case)
    with TestClient(create_app(learn, max_batch=1)) as client:
        r = client.post("/predict", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    if case == "gan":
        z = torch.randn(1, learn.z_dim, generator=torch.Generator().manual_seed(4))[0]
        assert out["seed"] == 4
        assert np.array_equal(np.asarray(decode_url(out["image"])), to_uint8(learn.predict(z)))
        return
    expected = answer(learn)
    if isinstance(expected, tuple):
        assert out["prediction"] == expected[0]
        assert list(out["probabilities"].values()) == pytest.approx(expected[2].tolist(), abs=1e-6)
    elif isinstance(expected, float):
        assert out["prediction"] == pytest.approx(expected, abs=1e-6)
    else:
        assert out["prediction"] == expected


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    learn = learner("image_classifier")
    files = image_files(tmp_path) * 4
    expected = [learn.predict(f) for f in files]
    app = create_app(learn, max_batch=4, max_wait_ms=50)
    with TestClient(app) as client, ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda f: client.post("/predict", **upload(f.read_bytes())).json(), files))
        health = client.get("/health").json()
        assert not list(app.state.handler._tmp.iterdir())  # every upload's copy deleted once answered
    assert not app.state.handler._tmp.exists()  # and the folder when the app stops
    for out, exp in zip(answers, expected):
        assert out["prediction"] == exp[0]
        np.testing.assert_allclose(list(out["probabilities"].values()), exp[2].tolist(), atol=1e-5)
    assert health["items"] == len(files) and health["batches"] < len(files)  # some requests shared a batch


def test_info_and_health_describe_the_model():
    with TestClient(create_app(learner("tabular"), max_batch=8, max_wait_ms=3)) as client:
        info = client.get("/info").json()
        health = client.get("/health").json()
        page = client.get("/")
    assert info["application"] == "tabular" and info["kind"] == "tabular_classification"
    assert info["classes"] == ["no", "yes"] and info["target"] == ["label"]
    columns = {c["name"]: c for c in info["input"]["columns"]}
    assert columns["shape"]["type"] == "category" and columns["shape"]["choices"] == ["circle", "square", "star"]
    assert columns["x"]["type"] == "number" and columns["x"]["missing_ok"] is True
    assert info["batching"] == {"max_batch": 8, "max_wait_ms": 3}
    assert health == {"status": "ok", "application": "tabular", "kind": "tabular_classification", "queue": 0,
                      "batches": 0, "items": 0}  # fmt: skip
    assert page.status_code == 200 and "text/html" in page.headers["content-type"] and 'fetch("info")' in page.text


@pytest.mark.parametrize(
    "case, kind, input_type, extra",
    [
        ("image_classifier", "image_classification", "image", {"classes": ["blue", "red"]}),
        ("multi_label", "image_multi_label", "image", {"classes": ["big", "blue", "red"]}),
        ("regression", "image_regression", "image", {}),
        ("points", "keypoints", "image", {"n_points": 2}),
        ("unet_segmentation", "segmentation", "image", {"classes": ["a", "b", "c"]}),
        ("image_to_image", "image_to_image", "image", {}),
        ("gan", "gan", "seed", {}),
        ("collab", "collab", "pair", {}),
        ("text_classifier", "text_classification", "text", {"classes": ["neg", "pos"]}),
        ("language_model", "language_model", "text", {}),
        ("seq2seq", "translation", "text", {}),
    ],
)
def test_info_of_every_application(case, kind, input_type, extra):
    with TestClient(create_app(learner(case))) as client:
        info = client.get("/info").json()
    assert info["kind"] == kind and info["input"]["type"] == input_type
    for k, v in extra.items():
        assert info[k] == v
