"""What the server does for each kind of export: read a request into an item, predict a batch of items,
answer in JSON. One `Handler` per task type of an export (`learn.export_info["task"]["type"]`).

    handler = handler_for(learn)                      # the task's handler, or a ValueError naming the task
    item = handler.parse(request_input)               # in the request's thread; BadInput if it is wrong
    results = handler.predict_batch([item, ...])      # in the batcher's thread: the model's only user
    handler.respond(item, result)                     # a JSON-able dict, in the request's thread again

`predict_batch` gives, item for item, what `learn.predict(item)` gives (batched through the data's
`test_dl` and `get_preds`, the path `predict` takes for one item). Another application plugs in with
`register_handler("its_task_type", HandlerClass)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quickfit.serve.inputs import BadInput

__all__ = ["Handler", "RequestInput", "Limits"]


@dataclass(frozen=True)
class Limits:
    """What the server accepts: body bytes, image pixels, text characters."""

    max_upload_bytes: int = 10 * 2**20
    max_pixels: int = 40_000_000
    max_text_chars: int = 20_000


@dataclass
class RequestInput:
    """A request, read: its JSON object (or form fields), or the bytes of its uploaded file."""

    json: dict | None = None
    upload: bytes | None = None


class Handler:
    """The serving side of one task. `input` tells the page what to show: "image", "row", "pair", "text"
    or "seed"."""

    input: str = "none"

    def __init__(self, learn, limits: Limits) -> None:
        self.learn, self.limits = learn, limits

    @property
    def kind(self) -> str:
        """What it predicts, in a word (`/info`'s "kind")."""
        return self.learn.export_info.get("task", {}).get("type", "unknown")

    def info(self) -> dict:
        """`/info`'s description of the expected input (and the classes, columns ... of this model)."""
        return {}

    def parse(self, req: RequestInput) -> Any:
        raise NotImplementedError

    def predict_batch(self, items: list) -> list:
        return [self.learn.predict(i) for i in items]

    def respond(self, item: Any, result: Any) -> dict:
        raise NotImplementedError

    def close(self, item: Any) -> None:
        """Release what `parse` made for the item (a temporary file) once its answer is written."""

    def shutdown(self) -> None:
        """Release what the handler holds (a temporary folder) when the server stops."""

    def json_of(self, req: RequestInput) -> dict:
        if req.json is None:
            raise BadInput(415, f"this {self.kind} model takes a JSON body, not a file upload ({self.example})")
        return req.json

    @property
    def example(self) -> str:
        return ""
