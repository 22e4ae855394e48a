"""The target of segmentation: a mask of class indices per image, moved with it pixel for pixel.

    Target("mask", n_codes=12, void_code=11)                    # single-channel PNGs of class indices
    Target("mask", n_codes=3, palette={(0, 0, 0): 0, (128, 0, 0): 1, (0, 128, 0): 2})   # RGB masks

A mask is [H, W] class indices; the item transform crops, resizes (nearest-neighbour: never a blend into a
class that is not there) and pads it like its image, the batch augmentation resamples it on the image's
grid. Pixels that come from outside the image under "zeros" padding get the `void_code`, which the loss
and the metrics ignore.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from quickfit.deprecation import renamed_argument
from quickfit.vision.core.geometry import resize_mask, sampling_grid, warp_mask
from quickfit.vision.core.targets import Target
from quickfit.vision.segmentation.display import show_masks
from quickfit.vision.segmentation.loss import SegmentationLoss
from quickfit.vision.segmentation.masks import MaskError, _name, load_mask

__all__ = ["Mask"]


@dataclass(frozen=True)
class Mask(Target):
    """[H, W] class indices. n_codes: the number of classes (values must be in [0, n_codes) or
    `void_code`); void_code: the code the loss and metrics ignore (also what fills pixels from outside the
    image; `void=` is its deprecated old name); palette: masks stored as RGB colours, {(r, g, b): index}."""

    kind = "mask"
    spatial = True
    n_codes: int | None = None
    void_code: int | None = None
    palette: dict[tuple[int, int, int], int] | None = field(default=None, hash=False)
    void: InitVar[int | None] = None
    codes: tuple[str, ...] | None = field(default=None, compare=False, hash=False)  # names, for the user

    def __post_init__(self, void: int | None) -> None:
        if void is not None:  # frozen: the dataclass's own way to set a field after __init__
            object.__setattr__(
                self, "void_code", renamed_argument(self.void_code, void, "void_code", "void", "Target", 5)
            )

    @property
    def mask_dtype(self) -> torch.dtype:
        """uint8 when every code (and void) is known to fit in it: a quarter of the bytes to stack and copy."""
        if self.n_codes is None:
            return torch.int32
        return torch.uint8 if max(self.n_codes, (self.void_code or 0) + 1) <= 256 else torch.int32

    @property
    def fill(self) -> int:
        return 0 if self.void_code is None else self.void_code

    def item(self, y: Any, tfm: Any, plan: tuple, train: bool, src: Any = None) -> torch.Tensor:
        box, out, pad, (w, h) = plan
        arr = load_mask(y, self)
        if arr.shape != (h, w):
            raise MaskError(f"mask {_name(y)} is {arr.shape[1]}x{arr.shape[0]} but its image {_name(src)} is {w}x{h}")
        res = resize_mask(arr, box, out, pad, tfm.pad_mode, self.fill)
        return torch.from_numpy(np.array(res)).to(self.mask_dtype)  # a writable copy

    def collate(self, ys: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(ys))

    def warp(self, y: torch.Tensor, mats: torch.Tensor, grid: torch.Tensor | None, pad_mode: str) -> torch.Tensor:
        h, w = y.shape[-2:]
        if grid is None or tuple(grid.shape[1:3]) != (h, w):
            grid = sampling_grid(mats.to(device=y.device, dtype=torch.float32), h, w)
        return warp_mask(y, grid, pad_mode, self.fill)

    def finish(self, y: torch.Tensor) -> torch.Tensor:
        return y.long()

    def loss(self, dls: Any = None) -> nn.Module:
        return SegmentationLoss(self.void_code)

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        return out.softmax(1 if out.dim() == 4 else 0)

    def decode(self, pred: torch.Tensor, thresh: float = 0.5) -> tuple[Any, Any, torch.Tensor]:
        pred = pred.detach().cpu()
        return pred.argmax(0), None, pred

    def text(self, y: torch.Tensor) -> str:
        return ""  # the mask is drawn

    def predict(self, pred: torch.Tensor, item: Any, item_tfm: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """`(mask, probabilities)` at the original image's size: [H, W] class indices and [C, H, W]."""
        probs = item_tfm.dense_to_original(pred, item)
        return probs.argmax(0), probs

    def report(self, result: Any, item: Any, out_dir: Path) -> str:
        """Writes the mask as a PNG of class indices (`<image>_mask.png`) and names the most present codes."""
        mask, _ = result
        fname = Path(out_dir) / f"{Path(str(item)).stem}_mask.png"
        Image.fromarray(mask.numpy().astype(np.uint8 if int(mask.max()) < 256 else np.int32)).save(fname)
        counts = torch.bincount(mask.flatten(), minlength=self.n_codes or 0).float() / mask.numel()
        top = torch.argsort(counts, descending=True)[:3].tolist()
        name = (lambda i: self.codes[i]) if self.codes and len(self.codes) >= len(counts) else (lambda i: f"class {i}")
        shares = ", ".join(f"{name(i)} {float(counts[i]):.0%}" for i in top if counts[i] > 0)
        return f"mask {mask.shape[1]}x{mask.shape[0]} written to {fname} ({shares})"

    def show(self, dls: Any, x: torch.Tensor, y: torch.Tensor | None, preds: torch.Tensor | None = None,
             ncols: int | None = None, path: str | Path | None = None):  # fmt: skip
        """The images with their masks (and predicted masks) overlaid in colour, and a legend of the codes;
        saved as a PNG at `path` when given."""
        if preds is not None and preds.dim() == 4:
            preds = preds.argmax(1)
        fig = show_masks(dls, x, y, preds, ncols=ncols)
        if path is not None:
            fig.savefig(path)
        return fig

    def to_dict(self) -> dict:
        d: dict = {"kind": self.kind}
        if self.n_codes is not None:
            d["n_codes"] = self.n_codes
        if self.void_code is not None:
            d["void"] = self.void_code  # the file's key since version 1
        if self.palette:
            d["palette"] = [[*rgb, i] for rgb, i in self.palette.items()]
        return d

    @classmethod
    def _from_settings(cls, d: dict) -> Mask:
        palette = {tuple(int(v) for v in row[:3]): int(row[3]) for row in d.get("palette", [])} or None
        return cls(d.get("n_codes"), d.get("void"), palette)
