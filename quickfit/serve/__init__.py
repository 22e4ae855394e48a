"""Serving an export: a web page and a JSON API with dynamic batching (`pip install "quickfit[serve]"`).

    quickfit serve bees.qf                             # http://127.0.0.1:8000: upload a photo, see the class

    from quickfit.serve import create_app              # or mount it in an ASGI application of your own
    app = create_app(qf.load_learner("bees.qf"), max_batch=16, max_wait_ms=10)

See docs/serving.md: the API, the limits, a reverse proxy, several workers, a GPU.
"""

from __future__ import annotations

from quickfit.extras import require

require("starlette", package="starlette", extra="serve", what="quickfit serve")

from quickfit.serve.app import create_app  # noqa: E402
from quickfit.serve.batcher import DynamicBatcher  # noqa: E402
from quickfit.serve.handlers import Handler, Limits  # noqa: E402
from quickfit.serve.registry import handler_for, register_handler  # noqa: E402
from quickfit.serve.server import load_for_serving, serve  # noqa: E402

__all__ = ["create_app", "serve", "load_for_serving", "Limits", "Handler", "register_handler", "handler_for",
           "DynamicBatcher"]  # fmt: skip
