"""Batch augmentation of a collated uint8 batch on the device: the float conversion, the affine warp, lighting
and normalization fused into one pass where they can be (one grid_sample), and the same draws for spatial
targets (apply_batch_tfms_pair)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from quickfit.vision.core.augment import AffineWarp, Lighting, Normalize, sampling_grid
from quickfit.vision.core.targets import Target

__all__ = ["apply_batch_tfms", "apply_batch_tfms_pair"]


def _fusable(tfms: Sequence[Callable]) -> tuple[AffineWarp | None, Lighting | None] | None:
    """(affine, lighting) when `tfms` is [AffineWarp?, Lighting?] in that order, else None."""
    kinds = [type(t) for t in tfms]
    if kinds not in ([], [AffineWarp], [Lighting], [AffineWarp, Lighting]):
        return None
    affine = next((t for t in tfms if isinstance(t, AffineWarp)), None)
    if affine is not None and affine.pad_mode == "zeros":  # zeros padding does not commute with the affine map below
        return None
    return affine, next((t for t in tfms if isinstance(t, Lighting)), None)


def _buffer(
    workspace: dict | None,
    name: str,
    shape: tuple[int, ...],
    device: torch.device,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """A float32 scratch tensor, kept in `workspace` between batches when given.

    Why: on CPU a fresh batch-sized tensor (38 MB at 64 x 224px) is above glibc's mmap threshold, so
    every batch pays page faults for it; measured here they cost more than the arithmetic."""
    if workspace is None:
        return torch.empty(shape, device=device, memory_format=memory_format)
    buf = workspace.get(name)
    if buf is None or buf.shape != shape or buf.device != device or not buf.is_contiguous(memory_format=memory_format):
        buf = workspace[name] = torch.empty(shape, device=device, memory_format=memory_format)
    return buf


def apply_batch_tfms(
    x: torch.Tensor,
    tfms: Sequence[Callable],
    normalize: Normalize | None = None,
    augment: bool = True,
    workspace: dict | None = None,
) -> torch.Tensor:
    """uint8 batch [B, C, H, W] -> float batch: /255, the transforms (those marked `train_only` only
    when `augment`), then `normalize`.

    For the standard [AffineWarp, Lighting] + Normalize the work is one uint8 -> float copy, one
    grid_sample, one affine map and one clamp: /255, lighting and normalization are all per-image,
    per-channel affine maps, and bilinear resampling with reflection / border padding commutes with
    them (its weights sum to 1), so they fold into one map (on the resampled batch); the lighting
    clamp to [0, 1] becomes a clamp to the normalized image of [0, 1]. Random draws happen in the
    same order as the plain path, so both give the same batch for the same seed. `workspace` (a dict
    the caller keeps) holds scratch buffers between batches; the returned tensor is always new.
    """
    active = [t for t in tfms if augment or not getattr(t, "train_only", False)]
    fused = _fusable(active) if x.dtype == torch.uint8 else None
    if fused is None:
        x = _to_float(x)
        for t in active:
            x = t(x)
        return normalize(x) if normalize is not None else x
    affine, lighting = fused
    n, _, h, w = x.shape
    mats = affine.matrices(n, h, w, x.device) if affine is not None else None
    light = lighting.coefficients(n, x.device) if lighting is not None else None
    return _fused(x, mats, affine.pad_mode if affine is not None else "reflection", light, normalize, workspace)[0]


def _to_float(x: torch.Tensor) -> torch.Tensor:
    """A uint8 batch -> float in [0, 1], contiguous [B, C, H, W] whatever the batch's memory order."""
    return x.to(torch.float32, memory_format=torch.contiguous_format).div_(255) if x.dtype == torch.uint8 else x


def _fused(
    x: torch.Tensor,
    mats: torch.Tensor | None,
    pad_mode: str,
    light: tuple[torch.Tensor, torch.Tensor] | None,
    normalize: Normalize | None,
    workspace: dict | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fused path of `apply_batch_tfms` with its random draws made: (batch, sampling grid or None)."""
    n, c, h, w = x.shape
    scale = torch.full((n, c, 1, 1), 1 / 255, device=x.device)
    shift = torch.zeros((n, c, 1, 1), device=x.device)
    if light is not None:
        light_scale, light_shift = light
        scale, shift = scale * light_scale, shift + light_shift
    lo, hi = [0.0] * c, [1.0] * c
    if normalize is not None:
        mean, std = normalize.stats(x.device)
        scale, shift = scale / std, (shift - mean) / std
        lo = [(0 - m) / s for m, s in zip(normalize.mean, normalize.std)]
        hi = [(1 - m) / s for m, s in zip(normalize.mean, normalize.std)]
    # In-place float ops on one buffer: mixed uint8 * float kernels are several times slower on CPU.
    grid = None
    if mats is None:
        out = torch.empty(x.shape, device=x.device).copy_(x).mul_(scale).add_(shift)
    else:
        # The float copy keeps the batch's memory order (channels-last from the collate: no reordering),
        # grid_sample reads a channels-last batch faster on CPU and writes a contiguous one, and the
        # per-image, per-channel map runs on that output: on a channels-last batch its [B, C, 1, 1]
        # factors vary along the innermost dimension (3 long), which does not vectorize. 1.6-1.8 ms an
        # image at 224 px against 2.0-2.2 (the map before the resample, channels-last) and 1.8-2.0
        # (before, contiguous) on this CPU; the same values to float rounding.
        order = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        src = _buffer(workspace, "src", tuple(x.shape), x.device, order).copy_(x)
        grid_buf = _buffer(workspace, "grid", (n, h, w, 2), x.device)
        grid = sampling_grid(mats.to(device=x.device, dtype=torch.float32), h, w, grid_buf)
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode=pad_mode, align_corners=False)
        out = out.mul_(scale).add_(shift)
    if light is not None:
        for ch in range(c):  # scalar bounds per channel: much faster than broadcast tensor bounds
            out[:, ch].clamp_(lo[ch], hi[ch])
    return out, grid


def apply_batch_tfms_pair(
    x: torch.Tensor,
    y: torch.Tensor,
    target: Target,
    tfms: Sequence[Callable],
    normalize: Normalize | None = None,
    augment: bool = True,
    workspace: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`apply_batch_tfms` for a batch with spatial targets (masks, points, boxes, images; see
    `quickfit.vision.core.targets`): the same random draws move the targets with their images, and a mask
    or image target is resampled once, on the images' grid. Masks come out int64, image targets float.

    A transform that moves pixels must say how its targets move (`BatchTransform.pair`); one that
    has no `pair` and is not marked `spatial = False` is refused rather than left to misalign them."""
    active = [t for t in tfms if augment or not getattr(t, "train_only", False)]
    for t in active:
        if not hasattr(t, "pair") and getattr(t, "spatial", None) is not False:
            raise TypeError(
                f"batch transform {t!r} cannot be used with {target.kind} targets: quickfit cannot tell whether "
                "it moves pixels. Subclass quickfit.vision.BatchTransform (spatial ones implement pair(x, y, target)), "
                "or set its attribute spatial = False"
            )
    y = target.prepare(y)
    fused = _fusable(active) if x.dtype == torch.uint8 else None
    if fused is None:
        x = _to_float(x)
        for t in active:
            x, y = t.pair(x, y, target) if hasattr(t, "pair") else (t(x), y)
        if normalize is not None:
            x, y = normalize.pair(x, y, target)
        return x, target.finish(y)
    affine, lighting = fused
    n, _, h, w = x.shape
    mats = affine.matrices(n, h, w, x.device) if affine is not None else None
    light = lighting.coefficients(n, x.device) if lighting is not None else None
    pad_mode = affine.pad_mode if affine is not None else "reflection"
    x, grid = _fused(x, mats, pad_mode, light, normalize, workspace)
    if mats is not None:
        y = target.warp(y, mats, grid, pad_mode)
    if light is not None:
        y = target.relight(y, light)
    if normalize is not None:
        y = target.normalized(y, normalize)
    return x, target.finish(y)
