"""Drawing masks: a colour per class (no two near-identical greens), masks overlaid on their images,
and a legend of the codes that covers no image."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["mask_colours", "code_legend", "show_masks"]


def mask_colours(n: int) -> np.ndarray:
    """n distinct RGB colours in [0, 1]: matplotlib's tab10, then each next colour the one of a 6x6x6 grid
    farthest from all chosen (so 32 CamVid classes get no two near-identical greens): [n, 3]."""
    import matplotlib

    chosen = np.array(matplotlib.colormaps["tab10"].colors)[:n]
    if n <= len(chosen):
        return chosen
    levels = np.linspace(0.05, 0.95, 6)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    weight = np.array([2.0, 4.0, 3.0]) ** 0.5  # the eye's weights ("redmean" at mid red): green differs least
    dist = (((grid[:, None] - chosen[None]) * weight) ** 2).sum(-1).min(1)
    picks = []
    for _ in range(n - len(chosen)):
        i = int(dist.argmax())
        picks.append(grid[i])
        dist = np.minimum(dist, (((grid - grid[i]) * weight) ** 2).sum(-1))
    return np.concatenate([chosen, np.array(picks)])


def code_legend(fig, handles: list, fontsize: int = 7) -> None:
    """The codes' legend under the figure's axes, with the room it needs (rows of 6): it covers no image."""
    ncol = min(6, max(1, len(handles)))
    rows = -(-len(handles) // ncol)
    height = fig.get_size_inches()[1]
    bottom = min(0.5, (0.1 + rows * fontsize * 1.9 / 72) / height)  # each legend row ~1.9 font sizes high
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=fontsize, frameon=False)
    fig.tight_layout(rect=(0, bottom, 1, 1))


def show_masks(
    dls: Any, x: torch.Tensor, masks: torch.Tensor | None, preds: torch.Tensor | None = None, ncols: int | None = None
):
    """Images with their masks (and predicted masks, if given) overlaid in colour; a legend of the codes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n = x.shape[0]
    imgs = dls.normalize.decode(x.float()).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    colours = mask_colours(len(dls.codes))
    rows = [(title, m) for title, m in (("target", masks), ("prediction", preds)) if m is not None]
    ncols = ncols or min(n, 3)
    nrows = -(-n // ncols) * len(rows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        for r, (title, m) in enumerate(rows):
            ax = axes[(i // ncols) * len(rows) + r, i % ncols]
            ax.imshow(_overlay(imgs[i], m[i].cpu().numpy(), colours, dls.void_code))
            ax.set_title(title, fontsize=8)
    present = sorted({int(v) for _, m in rows for v in m.unique().tolist()})
    handles = [
        Patch(color=colours[c], label=dls.codes[c]) for c in present if c < len(dls.codes) and c != dls.void_code
    ]
    code_legend(fig, handles)
    return fig


def _overlay(img: np.ndarray, mask: np.ndarray, colours: np.ndarray, void: int | None, alpha: float = 0.5):
    if mask.shape != img.shape[:2]:
        mask = np.asarray(Image.fromarray(mask.astype(np.int32)).resize(img.shape[1::-1], Image.Resampling.NEAREST))
    keep = (mask < len(colours)) & ((mask != void) if void is not None else True)
    out = img.copy()
    out[keep] = (1 - alpha) * img[keep] + alpha * colours[mask[keep]]
    return out
