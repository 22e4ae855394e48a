"""Precomputed activations: run the frozen body over the images once, then train the head on the result.

With the body frozen, every epoch would compute the same body activations again (the bulk of the work);
caching them makes an epoch of head training 10x+ faster. The price, as the course explains: the cached
activations are of the plain (center-cropped, un-augmented) images, so augmentation does nothing while
precompute is on. `VisionLearner.precompute = True` uses this module:

    learn = vision_learner(dls, "resnet34", precompute=True)   # computes (or loads) the cache
    learn.fit(2, 1e-2)                                          # epochs over cached activations
    learn.precompute = False                                    # back to images, with augmentation

The cache lives in memory and in `learn.path / "tmp" / "precompute-<fingerprint>.safetensors"`; the
fingerprint covers the body's weights (and BatchNorm statistics), the pooling, the image files (path,
size, modification time), the targets, the item transform and the normalization. Change any of them
and the activations are computed again; delete the tmp folder to drop them all.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings

import torch
from torch import nn
from tqdm.auto import tqdm

from quickfit.data.batches import TensorBatches
from quickfit.data.core import DataLoaders, to_device
from quickfit.io import atomic_write

__all__ = ["TensorBatches", "PrecomputedDataLoaders", "features_fingerprint", "compute_features", "precomputed_dls"]


class PrecomputedDataLoaders(DataLoaders):
    """Cached activations as `train` / `valid`; predicting on new images is the image data's job."""

    def __init__(self, train: TensorBatches, valid: TensorBatches, image_dls, fingerprint: str) -> None:
        super().__init__(train, valid, n_inp=1)
        self.image_dls, self.fingerprint = image_dls, fingerprint

    @property
    def vocab(self):
        return self.image_dls.vocab

    @property
    def c(self) -> int:
        return self.image_dls.c

    def test_dl(self, items, bs: int | None = None):
        return self.image_dls.test_dl(items, bs=bs)

    def decode_pred(self, pred: torch.Tensor):
        return self.image_dls.decode_pred(pred)

    def export_info(self) -> dict:
        return self.image_dls.export_info()


def _update_with_tensor(h, t: torch.Tensor) -> None:
    h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def _update_with_items(h, items) -> None:
    for p in items.paths:
        if hasattr(p, "stat"):  # a file: its name, size and modification time stand for its content
            st = p.stat()
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        else:  # an in-memory PIL image
            h.update(p.tobytes())
    if items.targets is not None:
        _update_with_tensor(h, items.targets)


def features_fingerprint(model: nn.Module, image_dls) -> str:
    "sha256 of everything the cached activations depend on (see the module docstring)."
    h = hashlib.sha256()
    for name, t in model.body.state_dict().items():
        h.update(name.encode())
        _update_with_tensor(h, t)
    h.update(repr(model.head[: model.POOL_LAYERS]).encode())
    info = image_dls.export_info()
    h.update(json.dumps({"item_tfm": info.get("item_tfm"), "normalize": info.get("normalize")}).encode())
    for items in (image_dls.train_items, image_dls.valid_items):
        h.update(b"--split--")
        _update_with_items(h, items)
    return h.hexdigest()


def compute_features(
    model: nn.Module, dl, device: torch.device, desc: str = "precompute", progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    "Pooled body activations and targets of every batch of `dl`, on the CPU, in `dl`'s order."
    was_training = model.training
    model.eval()  # BatchNorm uses its running statistics, as a frozen body should
    xs, ys = [], []
    try:
        with torch.no_grad():
            for batch in tqdm(dl, total=len(dl), desc=desc, leave=False, disable=not progress):
                x, y = to_device(tuple(batch), device)[:2]
                xs.append(model.features(x).float().cpu())
                ys.append(y.cpu())
    finally:
        model.train(was_training)
    if not xs:
        raise ValueError(f"{desc}: no images to precompute")
    return torch.cat(xs), torch.cat(ys)


def precomputed_dls(learn) -> PrecomputedDataLoaders:
    """The cached activations of `learn.image_dls` under `learn.model`'s body: from memory, from disk,
    or computed now (with a progress bar)."""
    from safetensors.torch import load_file, save_file

    dls = learn.image_dls
    missing = [a for a in ("plain_dl", "train_items", "valid_items", "export_info") if not hasattr(dls, a)]
    if missing:
        raise TypeError(
            f"precompute needs image data that can list its items and give un-augmented loaders "
            f"(ImageDataLoaders); {type(dls).__name__} lacks {', '.join(missing)}"
        )
    fp = features_fingerprint(learn.model, dls)
    if fp in learn.feature_cache:
        return learn.feature_cache[fp]
    f = learn.path / "tmp" / f"precompute-{fp[:24]}.safetensors"
    tensors = None
    if f.exists():
        try:
            tensors = load_file(str(f))
        except Exception:  # unreadable: compute again and overwrite it
            tensors = None
    if tensors is None:
        enabled = learn.progress_cb.enabled
        show = (sys.stderr.isatty() if enabled is None else enabled) and learn.is_main_process
        tensors = {}
        for split, items in (("train", dls.train_items), ("valid", dls.valid_items)):
            dl = dls.plain_dl(items)
            dl.to(learn.device)
            x, y = compute_features(learn.model, dl, learn.device, f"precompute {split}", show)
            tensors[f"{split}_x"], tensors[f"{split}_y"] = x, y
        if learn.is_main_process:
            try:
                atomic_write(f, lambda tmp: save_file(tensors, tmp))
            except OSError as e:  # a read-only path: the in-memory cache still serves this session
                warnings.warn(f"could not write the precompute cache {f} ({e}); keeping it in memory only")
    bs, n_train = getattr(dls, "bs", 64), len(tensors["train_x"])
    pdls = PrecomputedDataLoaders(
        # A training batch of one breaks BatchNorm1d in the head: drop it, as the image loader does.
        TensorBatches(tensors["train_x"], tensors["train_y"], bs=bs, shuffle=True, drop_last=n_train % bs == 1),
        TensorBatches(tensors["valid_x"], tensors["valid_y"], bs=bs),
        dls,
        fp,
    )
    learn.feature_cache[fp] = pdls
    return pdls
