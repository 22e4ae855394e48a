"""The ASGI application: one page that adapts to the model, and a JSON API.

    from quickfit.serve import create_app
    app = create_app(qf.load_learner("bees.qf"), max_batch=16, max_wait_ms=10)
    # uvicorn.run(app), or mount it: Starlette(routes=[Mount("/bees", app)])

    GET  /          the page: an upload, a form, a text box ... for this model's input
    GET  /info      {"application", "kind", "input": {...}, "classes": [...], "batching": {...}}
    GET  /health    {"status": "ok", "queue": waiting requests, "batches" / "items": served so far}
    POST /predict   a file upload (multipart field "file", or the image bytes as the body) or a JSON object;
                    answers {"prediction": ..., ...}, or {"error": message} with a 4xx status

Requests are checked (quickfit/serve/inputs.py), read into items in the request's thread, and predicted in
batches by one worker thread (quickfit/serve/batcher.py). A wrong input is a 4xx JSON error that names
the problem; an unexpected failure is a 500 JSON error whose traceback goes to the server's log only.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from quickfit.serve.batcher import Busy, DynamicBatcher
from quickfit.serve.handlers import Limits, RequestInput
from quickfit.serve.inputs import BadInput, parse_json, read_body
from quickfit.serve.page import page_html
from quickfit.serve.registry import handler_for

__all__ = ["create_app"]

log = logging.getLogger("quickfit.serve")


def create_app(
    learn,
    max_batch: int = 16,
    max_wait_ms: float = 10.0,
    threads: int | None = None,
    limits: Limits | None = None,
    title: str | None = None,
    max_queue: int = 1024,
    max_queue_s: float = 30.0,
) -> Starlette:
    """An ASGI app serving `learn` (an exported learner: `quickfit.load_learner(fname)`).

    Up to `max_batch` requests that arrive within `max_wait_ms` of the first are predicted as one batch
    (`max_batch=1`: each alone). `threads` sets torch's threads for the model (None: as they are).
    `limits`: upload bytes, image pixels, text length (`quickfit.serve.Limits`). At most `max_queue`
    requests wait, none longer than `max_queue_s` seconds; others get 503.
    """
    limits = limits or Limits()
    handler = handler_for(learn, limits)
    info = learn.export_info
    base = {"application": info.get("app"), "kind": handler.kind}
    batcher = DynamicBatcher(handler.predict_batch, max_batch, max_wait_ms, threads, max_queue, max_queue_s)

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(page_html(title or f"quickfit: {handler.kind.replace('_', ' ')}"))

    async def describe(request: Request) -> JSONResponse:
        return JSONResponse({**base, "task": info.get("task"), **handler.info(),
                             "batching": {"max_batch": batcher.max_batch, "max_wait_ms": max_wait_ms}})  # fmt: skip

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", **base, "queue": batcher.waiting, "batches": batcher.batches,
                             "items": batcher.items})  # fmt: skip

    async def predict(request: Request) -> JSONResponse:
        item: Any = None
        try:
            req = await _read_request(request, limits)
            item = await run_in_threadpool(handler.parse, req)
            result = await batcher.submit(item)
            answer = await run_in_threadpool(handler.respond, item, result)
            return JSONResponse({**base, **answer})
        except BadInput as e:
            return _error(e.status, str(e))
        except Busy as e:
            return _error(503, str(e))
        except (ValueError, KeyError, TypeError, OSError) as e:  # the model's data refused the item
            text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            return _error(422, f"the model cannot use this input: {text}")
        finally:
            if item is not None:
                handler.close(item)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("quickfit serve: %s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__}); the traceback is in the server's log")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        try:
            yield
        finally:
            batcher.close()
            handler.shutdown()

    app = Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/info", describe, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/predict", predict, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.handler, app.state.batcher = handler, batcher
    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def _read_request(request: Request, limits: Limits) -> RequestInput:
    """The JSON object, form fields or uploaded bytes of a request (its body read within the limit)."""
    body = await read_body(request, limits.max_upload_bytes)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or (not ctype and body.lstrip()[:1] == b"{"):
        return RequestInput(json=parse_json(body))
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _form(request, body, limits)
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return RequestInput(upload=body)
    sent = ctype or "(none)"
    raise BadInput(415, f"unsupported content type {sent!r}: send JSON, a multipart file upload or image bytes")


async def _form(request: Request, body: bytes, limits: Limits) -> RequestInput:
    sent = False

    async def replay() -> dict:  # the body again, already read within the limit
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=200,
                                                           max_part_size=limits.max_upload_bytes)  # fmt: skip
    except Exception as e:  # python-multipart's and Starlette's parse errors
        raise BadInput(400, f"the form data does not parse: {getattr(e, 'detail', e)}") from None
    try:
        uploads = [v for v in form.values() if isinstance(v, UploadFile)]
        if uploads:
            return RequestInput(upload=await uploads[0].read())  # its file name is never used
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return RequestInput(json={"row": fields, **fields})
    finally:
        await form.close()
