"""What a request may carry, checked before anything reaches the model: size, kind and content.

    body = await read_body(request, limit=10 * 2**20)       # 413 past the limit, counted as it arrives
    img = checked_image(data, max_pixels=40_000_000)         # 415 not an image, 413 too many pixels

Every problem is a `BadInput(status, message)`: the server answers it as `{"error": message}` with that
status. Nothing here opens a path or a file name a client sent; uploads are bytes in memory.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

from PIL import Image, UnidentifiedImageError

__all__ = ["BadInput", "read_body", "checked_image", "parse_json", "field", "text_field", "number"]


class BadInput(ValueError):
    """A request the server refuses: `status` is the HTTP status (4xx), the message says what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is larger than `limit` bytes, whatever the
    Content-Length says: a chunked upload is counted as it arrives, never held past the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadInput(413, f"the request body has {int(declared):,} bytes; the limit is {limit:,}")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise BadInput(413, f"the request body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _looks_like(data: bytes) -> str:
    head = data[:32]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"{len(data):,} bytes of an unknown format"
    return f"text starting with {text[:20]!r}"


def checked_image(data: bytes, max_pixels: int) -> Image.Image:
    """The decoded image in `data`, after checking, from its header alone, that it is an image of at most
    `max_pixels` pixels (a 20,000 x 20,000 PNG is a few hundred kB, and 1.2 GB once decoded)."""
    if not data:
        raise BadInput(422, "the uploaded file is empty")
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as e:  # Pillow's own limit, far above ours: refused from the header too
        raise BadInput(413, f"the image is too large to decode: {e}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise BadInput(415, f"the upload is not an image (it is {_looks_like(data)})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise BadInput(413, f"the image is {w:,} x {h:,} pixels; the limit is {max_pixels:,} pixels in all")
    if w == 0 or h == 0:
        raise BadInput(422, f"the image is {w} x {h} pixels: it has no pixels")
    try:
        img.load()
    except Exception as e:  # truncated or corrupt data: Pillow raises OSError, ValueError, struct.error ...
        raise BadInput(422, f"the {img.format or ''} image does not decode: {e}".replace("  ", " ")) from None
    return img


def parse_json(data: bytes) -> dict:
    """A JSON object from the body (400 if it is not one)."""
    if not data.strip():
        raise BadInput(400, "the request has no body: send JSON, or a file upload (multipart/form-data)")
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(400, f"the body is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise BadInput(400, f"the body must be a JSON object, got {type(value).__name__}")
    return value


def field(body: dict, name: str, example: str) -> Any:
    if name not in body:
        raise BadInput(422, f"the JSON has no {name!r} field; send e.g. {example}")
    return body[name]


def text_field(body: dict, name: str = "text", max_chars: int = 100_000) -> str:
    """A non-empty string field."""
    text = field(body, name, f'{{"{name}": "..."}}')
    if not isinstance(text, str):
        raise BadInput(422, f"{name!r} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise BadInput(422, f"{name!r} is empty: give some text")
    if len(text) > max_chars:
        raise BadInput(413, f"{name!r} has {len(text):,} characters; the limit is {max_chars:,}")
    return text


def number(value: Any, what: str, allow_missing: bool = False) -> float:
    """A finite number from a JSON number or a numeric string (an HTML form sends strings); None or ""
    is a missing value (NaN) when `allow_missing`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if allow_missing:
            return math.nan
        raise BadInput(422, f"{what} is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadInput(422, f"{what} must be a number, got {json.dumps(value)[:40]}")
    try:
        x = float(value)
    except ValueError:
        raise BadInput(422, f"{what} must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(x):
        raise BadInput(422, f"{what} must be a finite number, got {value!r}")
    return x
