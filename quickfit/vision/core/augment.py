"""Batch augmentation on the device: one resample for all geometry, one pass for lighting.

The loader hands over uint8 batches; on the device they become float in [0, 1] and go through the
batch transforms. `aug_transforms` returns two of them:

- `AffineWarp`: flip (or the 8 dihedral flips/rotations), rotation, zoom and perspective warp are
  multiplied into ONE 3x3 matrix per image, and the whole batch is resampled by ONE
  `F.grid_sample` call. Resampling once instead of once per effect is faster and blurs less.
- `Lighting`: brightness and contrast as one per-image linear map `x * c + o`, clamped to [0, 1].

Both only run on the training batches (and in test-time augmentation); `Normalize` runs on every
batch. Matrices map *output* pixel coordinates to *input* ones, in grid_sample's normalized space
([-1, 1], align_corners=False), with rotations done in pixel space so non-square images do not shear.

    from quickfit.vision.core.augment import aug_transforms, Normalize, imagenet_stats

    batch_tfms = [*aug_transforms(max_rotate=10.0, max_zoom=1.1), Normalize.from_stats(imagenet_stats)]
    x = torch.rand(8, 3, 224, 224)
    for tfm in batch_tfms:
        x = tfm(x)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from quickfit.vision.core.geometry import sampling_grid
from quickfit.vision.core.targets import Target

__all__ = [
    "BatchTransform",
    "AffineWarp",
    "Lighting",
    "Normalize",
    "aug_transforms",
    "side_on",
    "top_down",
    "imagenet_stats",
    "apply_matrices",
    "sampling_grid",
    "compose_matrices",
    "batch_tfm_from_dict",
]

imagenet_stats: tuple[tuple[float, float, float], tuple[float, float, float]] = (
    (0.485, 0.456, 0.406),
    (0.229, 0.224, 0.225),
)

PadMode = Literal["reflection", "zeros", "border"]


class BatchTransform:
    """A callable on a float batch [B, C, H, W]. `train_only` ones are augmentations: they run on
    training batches and in test-time augmentation, never on plain validation / test batches."""

    train_only: bool = True
    spatial: bool = False  # moves pixels: a spatial transform must implement `pair`

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pair(self, x: torch.Tensor, y: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch and its targets (see `quickfit.vision.core.targets`); by default only the image changes."""
        if self.spatial:
            raise NotImplementedError(f"{type(self).__name__} moves pixels but does not say how its targets move")
        return self(x), y

    def to_dict(self) -> dict:
        raise NotImplementedError


def apply_matrices(
    x: torch.Tensor, mats: torch.Tensor, pad_mode: PadMode = "reflection", grid_out: torch.Tensor | None = None
) -> torch.Tensor:
    """Resample the batch `x` [B, C, H, W] through the per-image 3x3 matrices `mats` [B, 3, 3] in a
    single `F.grid_sample` call. A matrix maps output coordinates to input ones (normalized
    [-1, 1] space); a last row other than (0, 0, 1) makes it a perspective warp."""
    mats = mats.to(device=x.device, dtype=torch.float32)
    grid = sampling_grid(mats, x.shape[2], x.shape[3], grid_out)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=pad_mode, align_corners=False)


def _rand(n: int, lo: float, hi: float, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, device=device)


def _coin(n: int, p: float, device: torch.device) -> torch.Tensor:
    return torch.rand(n, device=device) < p


class AffineWarp(BatchTransform):
    """Random flip / dihedral, rotation, zoom and perspective warp, composed into one resample.

    do_flip: horizontal flip with probability 0.5. flip_vert: instead, one of the 8 dihedral
    flips / 90-degree rotations uniformly (for top-down images). max_rotate (degrees), max_zoom
    (>= 1, zoom in up to that factor at a random center) and max_warp (perspective strength) each
    apply with probability p_affine. pad_mode fills what comes from outside the image.
    `pair(x, y, target)` moves masks, points, boxes and image targets with the images.
    """

    spatial = True

    def __init__(
        self,
        do_flip: bool = True,
        flip_vert: bool = False,
        max_rotate: float = 10.0,
        max_zoom: float = 1.1,
        max_warp: float = 0.2,
        p_affine: float = 0.75,
        pad_mode: PadMode = "reflection",
    ) -> None:
        if max_zoom < 1:
            raise ValueError(f"max_zoom must be >= 1 (1 = no zoom), got {max_zoom}")
        if not 0 <= max_warp < 1:
            raise ValueError(f"max_warp must be in [0, 1), got {max_warp}")
        if not 0 <= p_affine <= 1:
            raise ValueError(f"p_affine must be a probability, got {p_affine}")
        if pad_mode not in ("reflection", "zeros", "border"):
            raise ValueError(f"pad_mode must be 'reflection', 'zeros' or 'border', got {pad_mode!r}")
        self.do_flip, self.flip_vert = do_flip, flip_vert
        self.max_rotate, self.max_zoom, self.max_warp = float(max_rotate), float(max_zoom), float(max_warp)
        self.p_affine, self.pad_mode = float(p_affine), pad_mode

    def matrices(self, n: int, h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """n random sampling matrices [n, 3, 3] for images of h x w."""
        device = torch.device(device)
        p = self.p_affine
        angle = torch.zeros(n, device=device)
        flip = torch.zeros(n, dtype=torch.bool, device=device)
        if self.flip_vert:  # dihedral group: k quarter turns, then maybe a mirror
            angle += torch.randint(0, 4, (n,), device=device) * (math.pi / 2)
            flip = _coin(n, 0.5, device)
        elif self.do_flip:
            flip = _coin(n, 0.5, device)
        if self.max_rotate:
            angle += _rand(n, -self.max_rotate, self.max_rotate, device) * _coin(n, p, device) * (math.pi / 180)
        zoom = torch.ones(n, device=device)
        if self.max_zoom > 1:
            zoom = torch.where(_coin(n, p, device), _rand(n, 1.0, self.max_zoom, device), zoom)
        warp = torch.zeros(n, 2, device=device)
        if self.max_warp:
            warp = _rand(2 * n, -self.max_warp, self.max_warp, device).view(n, 2) * _coin(n, p, device)[:, None]
        return compose_matrices(angle, flip, zoom, _rand(2 * n, -1, 1, device).view(n, 2), warp, h, w)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return apply_matrices(x, self.matrices(x.shape[0], x.shape[2], x.shape[3], x.device), self.pad_mode)

    def pair(self, x: torch.Tensor, y: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and targets through the same matrices; a same-sized mask or image reuses the grid."""
        mats = self.matrices(x.shape[0], x.shape[2], x.shape[3], x.device)
        grid = sampling_grid(mats, x.shape[2], x.shape[3])
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode=self.pad_mode, align_corners=False)
        return x, target.warp(y, mats, grid, self.pad_mode)

    def to_dict(self) -> dict:
        return {
            "name": "AffineWarp",
            "do_flip": self.do_flip,
            "flip_vert": self.flip_vert,
            "max_rotate": self.max_rotate,
            "max_zoom": self.max_zoom,
            "max_warp": self.max_warp,
            "p_affine": self.p_affine,
            "pad_mode": self.pad_mode,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "name")
        return f"AffineWarp({args})"


def compose_matrices(
    angle: torch.Tensor,
    flip: torch.Tensor,
    zoom: torch.Tensor,
    center: torch.Tensor,
    warp: torch.Tensor,
    h: int,
    w: int,
) -> torch.Tensor:
    """Sampling matrices [n, 3, 3] = Flip @ Rotate @ Zoom @ Warp, all per image.

    angle: radians (counter-clockwise on screen for a positive angle, like torch.rot90);
    flip: mirror left-right; zoom: >= 1 magnification around `center` (in [-1, 1]^2, scaled so the
    window stays inside the image); warp: [n, 2] perspective coefficients (x, y).
    """
    n, device = angle.shape[0], angle.device
    eye = torch.eye(3, device=device).repeat(n, 1, 1)
    # Rotation in pixel space, conjugated into normalized coordinates: [[c, -s*h/w], [s*w/h, c]].
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = eye.clone()
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = cos, -sin * (h / w), sin * (w / h), cos
    # Snap exact quarter turns: cos(pi/2) is 6e-17, not 0, and would blur a dihedral rotation.
    rot[:, :2, :2] = torch.where(rot[:, :2, :2].abs() < 1e-6, torch.zeros_like(rot[:, :2, :2]), rot[:, :2, :2])
    mirror = eye.clone()
    mirror[:, 0, 0] = torch.where(flip, -1.0, 1.0)
    scale = eye.clone()
    scale[:, 0, 0] = scale[:, 1, 1] = 1 / zoom
    scale[:, :2, 2] = center * (1 - 1 / zoom)[:, None]
    persp = eye.clone()
    persp[:, 2, :2] = warp
    return mirror @ rot @ scale @ persp


class Lighting(BatchTransform):
    """Random brightness and contrast in one pass: x * c + o, clamped to [0, 1].

    Contrast c is log-uniform in [1 - max_lighting, 1 / (1 - max_lighting)] around mid-gray, and
    brightness shifts by up to +-max_lighting / 2; each applies with probability p (per image).
    """

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75) -> None:
        if not 0 <= max_lighting < 1:
            raise ValueError(f"max_lighting must be in [0, 1), got {max_lighting}")
        if not 0 <= p <= 1:
            raise ValueError(f"p_lighting must be a probability, got {p}")
        self.max_lighting, self.p = float(max_lighting), float(p)

    def coefficients(self, n: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image (scale, offset), each [n, 1, 1, 1]."""
        device, m = torch.device(device), self.max_lighting
        log_c = _rand(n, math.log(1 - m), -math.log(1 - m), device) * _coin(n, self.p, device)
        bright = _rand(n, -m / 2, m / 2, device) * _coin(n, self.p, device)
        c = torch.exp(log_c)
        return c.view(n, 1, 1, 1), (0.5 * (1 - c) + bright).view(n, 1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c, o = self.coefficients(x.shape[0], x.device)
        return torch.addcmul(o.to(x.dtype), x, c.to(x.dtype)).clamp_(0.0, 1.0)

    def pair(self, x: torch.Tensor, y: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor]:
        """The same change on the target when its kind takes it (`target.relight`: an image target with
        `lighting=True`; a colourization task would not)."""
        c, o = self.coefficients(x.shape[0], x.device)
        x = torch.addcmul(o.to(x.dtype), x, c.to(x.dtype)).clamp_(0.0, 1.0)
        return x, target.relight(y, (c, o))

    def to_dict(self) -> dict:
        return {"name": "Lighting", "max_lighting": self.max_lighting, "p": self.p}

    def __repr__(self) -> str:
        return f"Lighting(max_lighting={self.max_lighting}, p={self.p})"


class Normalize(BatchTransform):
    """(x - mean) / std per channel, on every batch (training, validation and test)."""

    train_only = False

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ValueError(f"Normalize: mean has {len(mean)} channels but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"Normalize: std must be positive, got {list(std)}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self._cache: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_stats(cls, stats: tuple[Sequence[float], Sequence[float]]) -> Normalize:
        """From a (mean, std) pair such as `imagenet_stats`."""
        return cls(stats[0], stats[1])

    def stats(
        self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) as [1, C, 1, 1] tensors on `device`, built once per device and dtype: no
        host-to-device copy per batch."""
        key = (str(device), dtype)
        if key not in self._cache:
            mean = torch.tensor(self.mean, device=device, dtype=dtype).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=device, dtype=dtype).view(1, -1, 1, 1)
            self._cache[key] = (mean, std)
        return self._cache[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.stats(x.device, x.dtype)
        return (x - mean) / std

    def pair(self, x: torch.Tensor, y: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor]:
        """The target is normalized when its kind takes it (`target.normalized`: an image target unless
        `normalize=False`)."""
        return self(x), target.normalized(y, self)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] pixels (for showing a batch)."""
        mean, std = self.stats(x.device, x.dtype)
        return x * std + mean

    def to_dict(self) -> dict:
        return {"name": "Normalize", "mean": list(self.mean), "std": list(self.std)}

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def aug_transforms(
    do_flip: bool = True,
    flip_vert: bool = False,
    max_rotate: float = 10.0,
    max_zoom: float = 1.1,
    max_lighting: float = 0.2,
    max_warp: float = 0.2,
    p_affine: float = 0.75,
    p_lighting: float = 0.75,
    pad_mode: PadMode = "reflection",
) -> list[BatchTransform]:
    """The standard batch augmentation: [AffineWarp, Lighting] (either left out when it would do nothing).

    flip_vert=True uses the 8 dihedral flips / quarter turns (photos taken from above)."""
    tfms: list[BatchTransform] = []
    if do_flip or flip_vert or max_rotate or max_zoom > 1 or max_warp:
        tfms.append(AffineWarp(do_flip, flip_vert, max_rotate, max_zoom, max_warp, p_affine, pad_mode))
    if max_lighting:
        tfms.append(Lighting(max_lighting, p_lighting))
    return tfms


# Presets named after the seeds' transforms_side_on / transforms_top_down.
side_on: list[BatchTransform] = aug_transforms()
top_down: list[BatchTransform] = aug_transforms(flip_vert=True)


def batch_tfm_from_dict(d: dict) -> BatchTransform:
    """Rebuild a batch transform from its `to_dict()` (used when loading an exported learner)."""
    name, args = d.get("name"), {k: v for k, v in d.items() if k != "name"}
    if name == "AffineWarp":
        return AffineWarp(**args)
    if name == "Lighting":
        return Lighting(**args)
    if name == "Normalize":
        return Normalize(args["mean"], args["std"])
    raise ValueError(f"unknown batch transform {name!r} in exported settings (known: AffineWarp, Lighting, Normalize)")
