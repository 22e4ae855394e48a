"""Loading pretrained weights: a published URL through the download cache, or a local file.

Files are read as data only (`torch.load(weights_only=True)` or safetensors), never as pickled code.

    from quickfit.vision.models.weights import load_pretrained
    load_pretrained(model, True, url="https://download.pytorch.org/models/resnet18-f37072fd.pth", arch="resnet18")
    load_pretrained(model, "weights/resnet18.pth", url=None, arch="resnet18")   # offline
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = ["WeightSource", "load_pretrained", "read_state_dict", "resolve_weights_file"]

WeightSource = bool | str | Path | None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    "Tensors of a `.safetensors` or a `.pth`/`.pt` state_dict file, loaded on the CPU without unpickling code."
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated download or a pickle that needs code to load
        raise ValueError(f"could not read weights from {str(path)!r} as a weights-only state_dict: {e}") from e
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{str(path)!r} does not hold a state_dict (a mapping of names to tensors)")
    return dict(sd)


def resolve_weights_file(source: WeightSource, url: str | None, arch: str) -> Path:
    """The local file for `source`: itself when a path, else `url` downloaded into the cache.

    torchvision-style file names end in `-<first hex digits of sha256>.pth`; the download is checked
    against that prefix.
    """
    if isinstance(source, (str, Path)):
        return Path(source)
    if url is None:
        raise ValueError(f"{arch}: no published weights URL; pass pretrained='path/to/weights.pth'")
    from quickfit.data.download import DownloadError, download

    fname = url.rsplit("/", 1)[-1]
    prefix = re.search(r"-([0-9a-f]{8,64})\.\w+$", fname)
    try:
        return Path(download(url, fname=fname, sha256=prefix.group(1) if prefix else None))
    except DownloadError as e:
        raise DownloadError(
            f"{arch}: no pretrained weights: {e} With a copy of {fname} on this machine, "
            f"pass it as {arch}(pretrained='path/to/{fname}') or "
            f"vision_learner(dls, '{arch}', pretrained='path/to/{fname}')."
        ) from None


def load_pretrained(model: nn.Module, source: WeightSource, url: str | None, arch: str) -> nn.Module:
    "Load `source` (True = download `url`, or a local path) into `model` with strict=True, naming the file on error."
    path = resolve_weights_file(source, url, arch)
    sd = read_state_dict(path)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        mine, theirs = set(model.state_dict()), set(sd)
        missing, unexpected = sorted(mine - theirs)[:5], sorted(theirs - mine)[:5]
        raise ValueError(
            f"weights in {str(path)!r} do not fit {arch}: missing keys {missing}, unexpected keys {unexpected}"
            + ("" if missing or unexpected else f"; shapes differ: {str(e).splitlines()[-1].strip()}")
        ) from e
    return model
