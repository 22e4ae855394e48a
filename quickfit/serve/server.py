"""`quickfit serve MODEL.qf`: load an export and run the app under uvicorn, one process, one model.

serve("bees.qf", host="127.0.0.1", port=8000, max_batch=16, max_wait_ms=10, threads=4)
"""

from __future__ import annotations

import os
from pathlib import Path

from quickfit.extras import require
from quickfit.serve.handlers import Limits
from quickfit.serve.registry import handler_for

__all__ = ["load_for_serving", "serve", "default_threads"]


def default_threads() -> int:
    """torch threads for the model: the CPUs this process may use, at most 4 (beyond that a batch of a few
    images gains little, and the server's other threads decode the uploads)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def load_for_serving(model: str | Path, device: str = "cpu"):
    """The learner of an export, loaded as `load_learner` does (safetensors + JSON, never unpickled), and
    checked to be of an application and task the server has a page for."""
    from quickfit.loading import load_learner

    model = Path(model)
    if not model.is_file():
        raise FileNotFoundError(f"no model file {model} (export one with learn.export or quickfit train)")
    learn = load_learner(model, device=device)
    if not learn.export_info.get("app"):
        raise ValueError(f"{model} was exported from a plain Learner (no application): nothing to rebuild the "
                         "input processing from; serve it from Python with quickfit.serve.create_app")  # fmt: skip
    handler_for(learn).shutdown()  # refuses a task without a handler, naming it
    return learn


def serve(
    model: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch: int = 16,
    max_wait_ms: float = 10.0,
    threads: int | None = None,
    limits: Limits | None = None,
    device: str = "cpu",
    log_level: str = "info",
) -> None:
    """Serve `model` at http://host:port until interrupted (one process: the model is loaded once)."""
    uvicorn = require("uvicorn", package="uvicorn", extra="serve", what="quickfit serve")
    from quickfit.serve.app import create_app

    learn = load_for_serving(model, device)
    threads = threads or default_threads()
    app = create_app(learn, max_batch, max_wait_ms, threads, limits, title=f"quickfit: {Path(model).name}")
    handler = app.state.handler
    batching = f"batches of up to {max_batch}, {max_wait_ms:g} ms wait" if max_batch > 1 else "no batching"
    print(f"serving {model} ({learn.export_info.get('app')}: {handler.kind.replace('_', ' ')}) at "
          f"http://{host}:{port}  [{batching}, {threads} torch threads, {device}]", flush=True)  # fmt: skip
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {host}, reachable from other machines; the server has no authentication "
              "(see docs/serving.md: put it behind a reverse proxy)", flush=True)  # fmt: skip
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)
