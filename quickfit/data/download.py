"""Download a file once into a cache folder, resume a broken transfer, verify its checksum.

    from quickfit.data.download import download
    path = download("https://example.org/weights.pth", sha256="3f0a...")  # cached after the first call

The cache is `$QUICKFIT_HOME` or `~/.cache/quickfit`. A partial download is kept as `<name>.part` and
continued with an HTTP Range request. Offline, the call fails at once with a message saying where
to put the file by hand. Tests use `file://` URLs; nothing downloads during the test suite.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

__all__ = ["download", "DownloadError", "default_cache_dir", "file_sha256"]

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A file could not be fetched or did not match its checksum."""


def default_cache_dir() -> Path:
    """The folder downloads are cached in (`$QUICKFIT_HOME` or `~/.cache/quickfit`)."""
    return Path(os.environ.get("QUICKFIT_HOME", Path.home() / ".cache" / "quickfit"))


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check(path: Path, sha256: str | None, url: str) -> None:
    if sha256 is None:
        return
    got = file_sha256(path)
    if not got.startswith(sha256.lower()):  # a prefix is accepted, as in torchvision's file names
        path.unlink()
        raise DownloadError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}; file removed")


def download(
    url: str,
    fname: str | None = None,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Return the local path of `url`, downloading it into the cache if it is not there yet."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dest = folder / (fname or url.rstrip("/").rsplit("/", 1)[-1])
    if dest.exists():
        if sha256 is None or file_sha256(dest).startswith(sha256.lower()):
            return dest
        dest.unlink()  # a corrupt cached file is fetched again
    folder.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(
            f"could not download {url} ({reason}). If this machine is offline, fetch the file elsewhere "
            f"and put it at {dest}, or pass a local file path instead."
        ) from None
    with response:
        resumed = start > 0 and getattr(response, "status", 200) == 206
        total = response.headers.get("Content-Length")
        total = int(total) + (start if resumed else 0) if total else None
        with (
            open(part, "ab" if resumed else "wb") as f,
            tqdm(
                total=total,
                initial=start if resumed else 0,
                unit="B",
                unit_scale=True,
                desc=dest.name,
                disable=not progress,
            ) as bar,
        ):
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                f.write(chunk)
                bar.update(len(chunk))
    os.replace(part, dest)
    _check(dest, sha256, url)
    return dest
