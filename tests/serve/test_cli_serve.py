"""`quickfit serve`: its argument errors (status 2, one line), and memory that stays flat while it serves."""

from __future__ import annotations

import gc

import pytest

from quickfit.cli import main
from tests.serve.helpers import FIXTURES, images, learner, png_bytes, upload


def test_serve_refuses_a_missing_model_or_a_file_that_is_not_an_export(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nothere.qf")]) == 2
    assert "no model file" in capsys.readouterr().err
    (tmp_path / "notes.qf").write_text("hello")
    assert main(["serve", str(tmp_path / "notes.qf")]) == 2
    assert "is not a model exported by quickfit" in capsys.readouterr().err
    assert main(["serve", str(FIXTURES / "tabular.qf"), "--max-wait-ms", "-1"]) == 2
    assert "--max-wait-ms must be 0 or more" in capsys.readouterr().err
    assert main(["serve", str(FIXTURES / "tabular.qf"), "--max-batch", "0"]) == 2


def test_serve_refuses_a_plain_learners_export(tmp_path, capsys):
    from torch import nn

    import quickfit as qf

    learn = qf.Learner(qf.DataLoaders([], None), nn.Linear(2, 1), nn.MSELoss(), progress=False)
    f = learn.export(tmp_path / "plain.qf")
    assert main(["serve", str(f)]) == 2
    assert "plain Learner" in capsys.readouterr().err


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.slow
def test_memory_does_not_grow_with_the_requests_served():
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from quickfit.serve import create_app

    app = create_app(learner("unet_segmentation"), max_batch=4, max_wait_ms=1)
    data = upload(png_bytes(images()[1]))
    with TestClient(app) as client:
        for _ in range(100):  # warm-up: allocator pools, caches
            assert client.post("/predict", **data).status_code == 200
        gc.collect()
        before = _rss_mb()
        for _ in range(400):
            assert client.post("/predict", **data).status_code == 200
        gc.collect()
        after = _rss_mb()
        assert client.get("/health").json()["items"] == 500
    assert after - before < 15, f"resident memory grew {after - before:.1f} MB over 400 requests"
