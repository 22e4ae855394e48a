"""The target of image-to-image tasks: another image, moved with the input pixel for pixel.

    Target("image")                   # e.g. the high-resolution original of a crappified photo
    Target("image", lighting=True)    # the input's lighting change applies to the target too

It gets the same relative crop as its input (at its own size) in the item transform, and is resampled
bilinearly on the input's grid by the batch augmentation. `lighting`: whether the input's lighting change
applies to it (a colourization task would not); `normalize`: whether it is normalized like the input.

For the user (`VisionLearner.predict`, `show_results`, `tta`): a prediction is a [3, H, W] image in [0, 1]
(image-to-image data's `test_dl` holds whole images, so it is `scale` times the input's size); results are
rows of input / prediction / target; test-time augmentation averages the 8 rotations and flips of each
input, each output turned back (generation/tta.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from quickfit.image_grid import save_image_grid
from quickfit.vision.core.geometry import sampling_grid
from quickfit.vision.core.targets import Target
from quickfit.vision.generation.tta import dihedral_tta

__all__ = ["ImageTarget"]


@dataclass(frozen=True)
class ImageTarget(Target):
    """Another image per image."""

    kind = "image"
    spatial = True
    lighting: bool = False
    normalize: bool = True

    def item(self, y: Any, tfm: Any, plan: tuple, train: bool, src: Any = None) -> torch.Tensor:
        return tfm.load_with_plan(y, train, plan)

    def collate(self, ys: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(ys))

    def prepare(self, y: torch.Tensor) -> torch.Tensor:
        return y.float().div_(255) if y.dtype == torch.uint8 else y

    def warp(self, y: torch.Tensor, mats: torch.Tensor, grid: torch.Tensor | None, pad_mode: str) -> torch.Tensor:
        h, w = y.shape[-2:]
        if grid is None or tuple(grid.shape[1:3]) != (h, w):
            grid = sampling_grid(mats.to(device=y.device, dtype=torch.float32), h, w)
        return F.grid_sample(y, grid.to(y.dtype), mode="bilinear", padding_mode=pad_mode, align_corners=False)

    def relight(self, y: torch.Tensor, coefficients: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if not self.lighting:
            return y
        c, o = coefficients
        return torch.addcmul(o.to(y.dtype), y, c.to(y.dtype)).clamp_(0.0, 1.0)

    def normalized(self, y: torch.Tensor, normalize: Any) -> torch.Tensor:
        return normalize(y) if self.normalize else y

    def loss(self, dls: Any = None) -> nn.Module:
        return nn.L1Loss()

    def text(self, y: torch.Tensor) -> str:
        return ""

    def predict(self, pred: torch.Tensor, item: Any, item_tfm: Any) -> torch.Tensor:
        """The generated image: [3, H, W] floats in [0, 1]."""
        return pred.detach().float().clamp(0, 1).cpu()

    def report(self, result: Any, item: Any, out_dir: Path) -> str:
        """Writes the generated image as `<image>_pred.png` and names it with its size."""
        from quickfit.image_grid import tensor_to_image

        fname = Path(out_dir) / f"{Path(str(item)).stem}_pred.png"
        tensor_to_image(result).save(fname)
        return f"image {result.shape[-1]}x{result.shape[-2]} written to {fname}"

    def tta(self, learn: Any, dl: Any = None, n: int | None = None, beta: float | None = 0.25):
        """Each prediction the mean over the first `n` (default: all 8) rotations / flips of its input, each
        output turned back (`beta` is unused: the plain view is one of the 8)."""
        return dihedral_tta(learn, dl, 8 if n is None else n)

    def show(self, dls: Any, x: torch.Tensor, y: torch.Tensor | None, preds: torch.Tensor | None = None,
             ncols: int | None = None, path: str | Path | None = None) -> torch.Tensor:  # fmt: skip
        """Rows of input (un-normalized, resized to the output's size) / prediction / target as one
        [3, H, W] grid in [0, 1] (`ncols` is unused: a row per image); saved as a PNG at `path` when given,
        its columns named."""
        norm = getattr(dls, "normalize", None)
        decode = norm.decode if norm is not None else (lambda t: t)
        columns = [("input", decode(x.float()))]
        columns += [(name, decode(v.float()) if self.normalize else v.float())
                    for name, v in (("prediction", preds), ("target", y)) if v is not None]  # fmt: skip
        size = columns[-1][1].shape[-2:]
        images = [F.interpolate(v.cpu(), size=size, mode="bilinear", align_corners=False) for _, v in columns]
        grid = torch.stack([v.clamp(0, 1) for v in images], 1).flatten(0, 1)
        return save_image_grid(grid, path, nrow=len(images), titles=tuple(name for name, _ in columns))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "lighting": self.lighting, "normalize": self.normalize}
