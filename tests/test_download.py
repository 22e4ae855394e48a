import hashlib

import pytest

from quickfit.data.download import DownloadError, download


def _source(tmp_path, data=b"quickfit" * 1000):
    src = tmp_path / "src" / "weights.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    return src, hashlib.sha256(data).hexdigest()


def test_downloads_once_into_the_cache_and_checks_the_checksum(tmp_path):
    src, sha = _source(tmp_path)
    cache = tmp_path / "cache"
    path = download(src.as_uri(), sha256=sha, cache_dir=cache, progress=False)
    assert path == cache / "weights.bin" and path.read_bytes() == src.read_bytes()
    src.unlink()  # the second call must not need the source
    assert download(src.as_uri(), sha256=sha[:10], cache_dir=cache, progress=False) == path


def test_checksum_mismatch_is_an_error_and_removes_the_file(tmp_path):
    src, _ = _source(tmp_path)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(src.as_uri(), sha256="0" * 64, cache_dir=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache" / "weights.bin").exists()


def test_a_corrupt_cached_file_is_fetched_again(tmp_path):
    src, sha = _source(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "weights.bin").write_bytes(b"garbage")
    assert download(src.as_uri(), sha256=sha, cache_dir=cache, progress=False).read_bytes() == src.read_bytes()


def test_offline_fails_at_once_with_a_clear_message(tmp_path):
    with pytest.raises(DownloadError, match="could not download .* put it at"):
        download("http://127.0.0.1:9/weights.pth", cache_dir=tmp_path, timeout=2, progress=False)


def test_a_partial_download_is_replaced_when_the_server_cannot_resume(tmp_path):
    src, sha = _source(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "weights.bin.part").write_bytes(b"quick")  # file:// ignores Range: starts over
    assert download(src.as_uri(), sha256=sha, cache_dir=cache, progress=False).read_bytes() == src.read_bytes()
