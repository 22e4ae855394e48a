"""Every wrong request gets a 4xx JSON error naming the problem, never a 500 or a traceback; nothing a
client names is opened."""

from __future__ import annotations

import struct
import zlib

import pytest

from quickfit.serve import Limits, create_app
from tests.serve.helpers import images, learner, png_bytes, upload

pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module")
def clients():
    made = {}
    with (
        TestClient(create_app(learner("image_classifier"), limits=Limits(max_upload_bytes=50_000))) as image,
        TestClient(create_app(learner("tabular"))) as tabular,
        TestClient(create_app(learner("text_classifier"), limits=Limits(max_text_chars=1000))) as text,
        TestClient(create_app(learner("collab"))) as collab,
        TestClient(create_app(learner("language_model"))) as lm,
        TestClient(create_app(learner("seq2seq"))) as seq2seq,
        TestClient(create_app(learner("gan"))) as gan,
    ):
        made.update(image=image, tabular=tabular, text=text, collab=collab, lm=lm, seq2seq=seq2seq, gan=gan)
        yield made


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` pixels in a few dozen bytes (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def refused(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert "Traceback" not in response.text
    for w in words:
        assert w in message, message
    return message


@pytest.mark.parametrize(
    "client, kwargs, status, words",
    [
        # images
        ("image", upload(b"hello, I am a text file\n", "notes.png"), 415, ["not an image", "'hello, I am a text"]),
        ("image", upload(png_header(20_000, 20_000)), 413, ["too large", "400000000 pixels"]),
        ("image", upload(png_bytes(images()[0])[:60]), 422, ["does not decode"]),
        ("image", upload(b""), 422, ["empty"]),
        ("image", upload(b"\x89PNG" + b"\0" * 60_000), 413, ["the limit is 50,000"]),
        ("image", {"json": {"image": "/etc/passwd"}}, 415, ["takes an image", "multipart field 'file'"]),
        ("image", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415, ["'text/plain'"]),
        # tabular
        ("tabular", {"json": {"row": {"shape": "star", "x": 0.1}}}, 422, ["['z'] missing", "needed"]),
        ("tabular", {"json": {"row": {"shape": "star", "x": "abc", "z": 0}}}, 422, ["column 'x' must be a number"]),
        ("tabular", {"json": {"row": {"shape": ["star"], "x": 1, "z": 0}}}, 422, ["column 'shape' must be a category"]),
        ("tabular", {"json": {"row": {"shape": "star", "x": True, "z": 0}}}, 422, ["column 'x' must be a number"]),
        ("tabular", {"json": {"row": {"shape": "star", "x": "inf", "z": 0}}}, 422, ["finite"]),
        ("tabular", {"json": {"shape": "star"}}, 422, ["no 'row' field"]),
        ("tabular", {"json": {"row": [1, 2]}}, 422, ["'row' must be a JSON object"]),
        ("tabular", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, ["not JSON"]),
        ("tabular", {"json": [1, 2]}, 400, ["must be a JSON object"]),
        ("tabular", upload(png_bytes(images()[0])), 415, ["takes a JSON body"]),
        # text
        ("text", {"json": {"text": ""}}, 422, ["'text' is empty"]),
        ("text", {"json": {"text": "   \n"}}, 422, ["'text' is empty"]),
        ("text", {"json": {"text": 3}}, 422, ["'text' must be a string"]),
        ("text", {"json": {"txt": "hi"}}, 422, ["no 'text' field"]),
        ("text", {"json": {"text": "a" * 1001}}, 413, ["limit is 1,000"]),
        ("lm", {"json": {"text": "The", "n_words": 0}}, 422, ["'n_words'"]),
        ("lm", {"json": {"text": "The", "temperature": -1}}, 422, ["'temperature'"]),
        ("seq2seq", {"json": {"text": ""}}, 422, ["'text' is empty"]),
        # collab, gan
        ("collab", {"json": {"user": "nobody", "item": 100}}, 422, ["unknown user 'nobody'", "12 users"]),
        ("collab", {"json": {"user": "u1"}}, 422, ["no 'item' field"]),
        ("gan", {"json": {"seed": "abc"}}, 422, ["'seed' must be a number"]),
        ("gan", {"json": {"seed": 1.5}}, 422, ["whole number"]),
    ],
)
def test_bad_input_is_a_4xx_json_error_that_names_the_problem(clients, client, kwargs, status, words):
    refused(clients[client].post("/predict", **kwargs), status, *words)


def test_an_image_over_the_pixel_limit_is_refused_from_its_header():
    with TestClient(create_app(learner("image_classifier"), limits=Limits(max_pixels=1_000_000))) as client:
        refused(client.post("/predict", **upload(png_header(2000, 1000))), 413, "2,000 x 1,000 pixels", "1,000,000")


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(clients):
    headers = {"content-length": "999999999", "content-type": "image/png"}
    r = clients["image"].post("/predict", content=b"x" * 10, headers=headers)
    refused(r, 413, "999,999,999 bytes")


def test_a_client_file_name_is_never_opened(clients, tmp_path):
    secret = tmp_path / "photo.png"
    secret.write_bytes(png_bytes(images()[0]))  # a real image at the path the client names
    refused(clients["image"].post("/predict", **upload(b"not an image", str(secret))), 415, "not an image")
    refused(clients["tabular"].post("/predict", json={"row": str(secret)}), 422)


def test_wrong_routes_and_methods_are_json_errors(clients):
    refused(clients["image"].get("/predict"), 405)
    refused(clients["image"].get("/nothing/here"), 404)


def test_an_unexpected_failure_is_a_500_json_error_without_traceback(monkeypatch):
    app = create_app(learner("text_classifier"))

    def broken(item, result):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.state.handler, "respond", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/predict", json={"text": "fine"})
        assert r.status_code == 500 and "secret" not in r.text and "Traceback" not in r.text
        assert "internal error (RuntimeError)" in r.json()["error"]
        assert client.post("/predict", json={"text": "still fine"}).status_code == 500  # the server goes on
        assert client.get("/health").json()["status"] == "ok"


def test_a_form_post_works_like_json(clients):
    r = clients["tabular"].post("/predict", data={"shape": "star", "x": "0.1", "z": "0"})
    assert r.status_code == 200, r.text
    assert r.json()["prediction"] == learner("tabular").predict({"shape": "star", "x": 0.1, "z": 0.0})[0]


def test_an_unseen_category_is_predicted_as_missing_and_reported(clients):
    r = clients["tabular"].post("/predict", json={"row": {"shape": "hexagon", "x": 0.1, "z": 0}})
    assert r.status_code == 200, r.text
    assert r.json()["unknown_categories"] == {"shape": "hexagon"}
    assert r.json()["prediction"] == learner("tabular").predict({"shape": "hexagon", "x": 0.1, "z": 0.0})[0]
