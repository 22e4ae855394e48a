"""Image-quality metrics for image-to-image models: PSNR, on RGB or on the luma Y.

    from quickfit.vision import PSNR, image2image_learner
    learn = image2image_learner(dls, "sr_resnet", metrics=[PSNR(border=2), PSNR(border=2, luma=True)])

PSNR is computed per image and averaged over the images (the super-resolution literature's
convention), on predictions clamped to [0, 1] against targets in [0, 1]. `luma=True` measures the Y
channel of ITU-R BT.601 YCbCr (MATLAB's `rgb2ycbcr`, which SR papers use); `border` pixels are left
out on each side (papers shave the scale factor's worth).
"""

from __future__ import annotations

import torch

from quickfit.metrics import Metric

__all__ = ["PSNR", "psnr", "rgb_to_luma"]

# Y of ITU-R BT.601 YCbCr for RGB in [0, 1], on the [16, 235] / 255 scale
_LUMA = (65.481 / 255, 128.553 / 255, 24.966 / 255)


def rgb_to_luma(x: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] RGB in [0, 1] -> [..., H, W] luma Y in [16, 235] / 255."""
    if x.shape[-3] != 3:
        raise ValueError(f"rgb_to_luma: expected 3 channels in dimension -3, got shape {tuple(x.shape)}")
    r, g, b = x.unbind(-3)
    return 16 / 255 + _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b


def psnr(pred: torch.Tensor, targ: torch.Tensor, border: int = 0, luma: bool = False) -> torch.Tensor:
    """PSNR in dB of each image of a batch `[N, C, H, W]` (or one `[C, H, W]`: a 0-d result), `pred`
    clamped to [0, 1], `border` pixels left out on each side, `luma`: of the Y channel only. Identical
    images give inf."""
    if pred.shape != targ.shape:
        raise ValueError(f"psnr: prediction {tuple(pred.shape)} and target {tuple(targ.shape)} differ in shape")
    if border < 0 or 2 * border >= min(pred.shape[-2:]):
        raise ValueError(f"psnr: border {border} leaves nothing of {tuple(pred.shape[-2:])} images")
    one = pred.ndim == 3
    p, t = (pred[None], targ[None]) if one else (pred, targ)
    p, t = p.float().clamp(0, 1), t.float()
    if border:
        p, t = p[..., border:-border, border:-border], t[..., border:-border, border:-border]
    if luma:
        p, t = rgb_to_luma(p), rgb_to_luma(t)
    mse = (p - t).pow(2).flatten(1).mean(1)
    out = -10 * torch.log10(mse)  # the peak is 1: 10 log10(1 / mse)
    return out[0] if one else out


class PSNR(Metric):
    """The mean PSNR (dB) over the validation images; see `psnr`. Named `psnr` (`psnr_y` with `luma`)."""

    def __init__(self, border: int = 0, luma: bool = False) -> None:
        self.border, self.luma = int(border), bool(luma)
        self.name = "psnr_y" if luma else "psnr"

    def batch_totals(self, pred, targ):
        values = psnr(pred, targ, self.border, self.luma).double()
        return torch.stack([values.sum(), torch.tensor(float(len(values)), dtype=torch.float64, device=values.device)])

    def compute(self, totals):
        return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")
