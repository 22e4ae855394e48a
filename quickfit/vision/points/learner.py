"""Keypoints: images with sets of (x, y) points, moved with their augmentation; a learner that finds them.

    import pandas as pd
    from quickfit.vision import PointDataLoaders, aug_transforms, vision_learner, Resize

    df = pd.DataFrame({"file": ["a.jpg", "b.jpg"], "x": [120.0, 40.5], "y": [88.0, 61.0]})
    dls = PointDataLoaders.from_df(df, "faces", fn_col="file", point_cols=["x", "y"],
                                   item_tfms=Resize(224), batch_tfms=aug_transforms(max_rotate=20))
    learn = vision_learner(dls, "resnet34")      # head of 2 * n_points outputs, y_range=(-1, 1), MSE
    learn.fine_tune(5, 3e-3)
    points, raw = learn.predict("c.jpg")          # [n_points, 2] in c.jpg's own pixels
    learn.show_results()

Points are read in pixels of the original image ((0, 0) its top-left corner) and carried in [-1, 1]
of the transformed image (see `quickfit.vision.core.targets`): the item transform's crop and the batch
augmentation move them with the image; a point that leaves the image keeps its coordinates beyond
+-1 (`outside(points)` flags it). A mirror swaps the points of `flip_pairs` (e.g. left and right eye)
and nothing else. `predict` maps the model's output back to the original image's pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from quickfit.configs import Task
from quickfit.data.core import first_batch
from quickfit.vision.classification.learner import VisionLearner, VisionModelConfig
from quickfit.vision.core.augment import Normalize, batch_tfm_from_dict, imagenet_stats
from quickfit.vision.core.data import ImageDataLoaders, _item_tfm, random_split
from quickfit.vision.core.image import SourceImage
from quickfit.vision.core.loader import ImageItems
from quickfit.vision.core.targets import Target, outside, unit_to_pixels
from quickfit.vision.core.transforms import ItemTransform, item_tfm_from_dict
from quickfit.vision.models.registry import get_arch

__all__ = ["PointDataLoaders", "PointsLoss", "PointsLearner", "PointsTask", "point_dls_from_export"]


class PointsLoss(nn.Module):
    """Mean squared error between predicted [B, 2k] and target [B, k, 2] points (in [-1, 1]).

    `ignore_outside=True` leaves out points that the augmentation moved off the image."""

    def __init__(self, ignore_outside: bool = False) -> None:
        super().__init__()
        self.ignore_outside = ignore_outside

    def forward(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        if pred.numel() != targ.numel():
            raise ValueError(f"PointsLoss: {tuple(pred.shape)} predictions for {tuple(targ.shape)} points")
        pred = pred.reshape(targ.shape).float()
        if not self.ignore_outside:
            return F.mse_loss(pred, targ.float())
        keep = (~outside(targ)).unsqueeze(-1).float()
        return ((pred - targ) ** 2 * keep).sum() / (keep.sum() * 2).clamp(min=1)


class PointDataLoaders(ImageDataLoaders):
    """Images with `n_points` (x, y) points each; `c` is 2 * n_points, `y_range` (-1, 1), the loss MSE."""

    y_range = (-1.0, 1.0)

    @property
    def learner_cls(self) -> type:
        """What `vision_learner` builds for these images: a PointsLearner (its module imports vision_learner's)."""
        return PointsLearner

    def __init__(
        self,
        train_items: ImageItems,
        valid_items: ImageItems,
        item_tfms: ItemTransform,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        flip_pairs: Sequence[tuple[int, int]] = (),
        n_points: int | None = None,
        path: str | Path = ".",
        device: torch.device | str | None = None,
    ) -> None:
        targets = train_items.targets
        self.n_points = int(targets.shape[1]) if targets is not None and len(targets) else int(n_points or 0)
        self.target = Target("points", flip_pairs=tuple(tuple(p) for p in flip_pairs))
        for a, b in self.target.flip_pairs:
            if not (0 <= a < self.n_points and 0 <= b < self.n_points):
                raise ValueError(f"flip_pairs {list(flip_pairs)} name points outside 0-{self.n_points - 1}")
        super().__init__(
            train_items, valid_items, None, item_tfms, batch_tfms, bs, num_workers, "float", path, None, device
        )
        self.target_kind = "points"
        for dl in (self.train, self.valid):
            dl.dataset.target = self.target if dl.dataset.items.targets is not None else None

    @property
    def c(self) -> int:
        return 2 * self.n_points

    @property
    def loss_func(self) -> nn.Module:
        return PointsLoss()

    def __repr__(self) -> str:
        return (
            f"PointDataLoaders({len(self.train_items.paths)} train / {len(self.valid_items.paths)} valid images, "
            f"{self.n_points} points, size={self.size}, bs={self.bs})"
        )

    def new(
        self,
        size: int | tuple[int, int] | None = None,
        bs: int | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
    ) -> PointDataLoaders:
        """The same images and points with other settings, e.g. `dls.new(size=320)` (progressive resizing)."""
        if item_tfms is None:
            item_tfms = self.item_tfm.resized(size) if size is not None else self.item_tfm
        dls = PointDataLoaders(
            self.train_items,
            self.valid_items,
            _item_tfm(item_tfms, size),
            [*self.batch_tfms, self.normalize] if batch_tfms is None else batch_tfms,
            bs or self.bs,
            self.num_workers,
            self.target.flip_pairs,
            self.n_points,
            self.path,
            self.device,
        )
        if batch_tfms is None or not any(isinstance(t, Normalize) for t in batch_tfms):
            dls.set_normalize(self.normalize.mean, self.normalize.std)
        return dls

    def decode_pred(self, pred: torch.Tensor, thresh: float = 0.5) -> tuple[torch.Tensor, None, torch.Tensor]:
        """A prediction [2k] -> (points [k, 2] in [-1, 1] of the transformed image, None, the raw output)."""
        pred = pred.detach().cpu()
        return pred.view(-1, 2), None, pred

    def to_pixels(self, points: torch.Tensor, item) -> torch.Tensor:
        """Points [k, 2] in [-1, 1] of `item` as the validation item transform sees it -> its original pixels."""
        if isinstance(item, Image.Image):
            w, h = item.size
        else:
            with SourceImage(item) as f:  # the header only: the upright size
                w, h = f.size
        box, out, pad = self.item_tfm.plan(w, h, False)
        return unit_to_pixels(points, box, out, pad, self.size)

    def export_info(self) -> dict:
        info = super().export_info()
        info.update({"target_kind": "points", "target": self.target.to_dict(), "n_points": self.n_points})
        return info

    def show_batch(self, max_n: int = 9, split: Literal["train", "valid"] = "train", ncols: int | None = None):
        """Images of one batch with their points (crosses; points outside the image are not drawn)."""
        x, y = next(iter(self.train if split == "train" else self.valid))
        return show_points(self, x[:max_n], y[:max_n], ncols=ncols)

    @classmethod
    def from_lists(
        cls,
        path: str | Path,
        fnames: Sequence[str | Path],
        points: Sequence[Any] | torch.Tensor,
        valid_idx: Sequence[int] | None = None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        size: int | tuple[int, int] | None = None,
        flip_pairs: Sequence[tuple[int, int]] = (),
    ) -> PointDataLoaders:
        """Images `fnames` (under `path` unless absolute) with `points` [n, k, 2] (or [n, 2k]) in their pixels."""
        base = Path(path).absolute()
        paths = [Path(f) if Path(f).is_absolute() else base / f for f in fnames]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {len(paths)} images do not exist, e.g. {missing[0]}")
        pts = torch.as_tensor(points, dtype=torch.float32)
        if pts.ndim == 2 and pts.shape[1] % 2 == 0:
            pts = pts.view(len(pts), -1, 2)
        if pts.ndim != 3 or pts.shape[2] != 2 or len(pts) != len(paths):
            raise ValueError(f"points must be [n_images, n_points, 2] for {len(paths)} images, got {tuple(pts.shape)}")
        if torch.isnan(pts).any():
            bad = sorted({int(i) for i in torch.isnan(pts).any(-1).any(-1).nonzero().flatten()})[:5]
            raise ValueError(f"points of image(s) {[str(paths[i]) for i in bad]} are missing (NaN)")
        valid = set(valid_idx) if valid_idx is not None else set(random_split(len(paths), valid_pct, seed))
        tr = [i for i in range(len(paths)) if i not in valid]
        va = sorted(valid)
        pick = lambda idx: ImageItems([paths[i] for i in idx], pts[idx] if idx else pts[:0])
        return cls(pick(tr), pick(va), _item_tfm(item_tfms, size), batch_tfms, bs, num_workers, flip_pairs, path=base)

    @classmethod
    def from_df(
        cls,
        df: Any,
        path: str | Path = ".",
        fn_col: int | str = 0,
        point_cols: Sequence[int | str] | None = None,
        folder: str | None = None,
        suffix: str = "",
        valid_pct: float = 0.2,
        seed: int | None = None,
        valid_col: int | str | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        size: int | tuple[int, int] | None = None,
        flip_pairs: Sequence[tuple[int, int]] = (),
    ) -> PointDataLoaders:
        """Rows of a DataFrame: the file name column `fn_col` and `point_cols` = x0, y0, x1, y1, ... in pixels
        (by name or position; default every column after the file name except `valid_col`)."""
        names = list(df.columns)
        col = lambda c: names[c] if isinstance(c, int) else c
        for c in [fn_col, *(point_cols or []), *([valid_col] if valid_col is not None else [])]:
            if (isinstance(c, int) and not 0 <= c < len(names)) or (not isinstance(c, int) and c not in names):
                raise KeyError(f"column {c!r} not in the DataFrame; columns: {names}")
        fn = col(fn_col)
        if point_cols is None:
            point_cols = [c for c in names if c not in (fn, col(valid_col) if valid_col is not None else None)]
        cols = [col(c) for c in point_cols]
        if not cols or len(cols) % 2:
            raise ValueError(f"point_cols must be pairs of x, y columns, got {cols}")
        base = Path(path) / folder if folder else Path(path)
        values = torch.tensor(df[cols].to_numpy(dtype="float32"))
        fnames = [f"{v}{suffix}" for v in df[fn].tolist()]
        valid_idx = None
        if valid_col is not None:
            valid_idx = [i for i, v in enumerate(df[col(valid_col)].tolist()) if bool(v)]
        return cls.from_lists(
            base, fnames, values, valid_idx, valid_pct, seed, item_tfms, batch_tfms, bs, num_workers, size, flip_pairs
        )


def show_points(
    dls, x: torch.Tensor, points: torch.Tensor, preds: torch.Tensor | None = None, ncols: int | None = None
):
    """Images with their points (green +) and predicted points (red x)."""
    import matplotlib.pyplot as plt

    n = x.shape[0]
    imgs = dls.normalize.decode(x.float()).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    h, w = x.shape[-2:]
    ncols = ncols or min(n, 3)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 3 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(imgs[i])
        for pts, style in [
            (points[i], dict(c="lime", marker="+")),
            (None if preds is None else preds[i], dict(c="red", marker="x")),
        ]:
            if pts is None:
                continue
            p = pts.detach().cpu().view(-1, 2)
            p = p[~outside(p)]
            ax.scatter((p[:, 0] + 1) * w / 2 - 0.5, (p[:, 1] + 1) * h / 2 - 0.5, s=40, **style)
    fig.tight_layout()
    return fig


class PointsLearner(VisionLearner):
    """A VisionLearner for points: `predict` answers in the original image's pixels; `show_results` draws."""

    @classmethod
    def export_task(cls, loss_func) -> Task:
        return PointsTask()

    def predict(self, item) -> tuple[torch.Tensor, torch.Tensor]:
        """`(points, raw)` for one image: points [k, 2] in its original pixels, raw [k, 2] in [-1, 1]."""
        dls = self.image_dls
        preds, _ = self.get_preds(dl=dls.test_dl([item]), progress=False)
        unit = preds[0].view(-1, 2).cpu()
        return dls.to_pixels(unit, item), unit

    def show_results(self, max_n: int = 6, dl=None, ncols: int | None = None):
        """Validation images with their points (green +) and the predicted ones (red x)."""
        dl = self.image_dls.valid if dl is None else dl
        x, y = first_batch(dl, "show_results")[:2]
        x, y = x[:max_n], y[:max_n]
        self.model.eval()
        with torch.no_grad():
            pred = self.model(x.to(self.device)).cpu()
        return show_points(self.image_dls, x, y, pred.view(len(x), -1, 2), ncols=ncols)


def point_dls_from_export(info: dict) -> PointDataLoaders:
    """A PointDataLoaders with no items but the exported processing (for `load_learner`)."""
    batch_tfms = [batch_tfm_from_dict(t) for t in info.get("batch_tfms", [])]
    norm = info.get("normalize") or {"mean": imagenet_stats[0], "std": imagenet_stats[1]}
    batch_tfms.append(Normalize(norm["mean"], norm["std"]))
    target = Target.from_dict(info.get("target", {"kind": "points"}))
    empty = ImageItems([], None)
    return PointDataLoaders(empty, empty, item_tfm_from_dict(info["item_tfm"]), batch_tfms, int(info.get("bs", 64)),
                            flip_pairs=target.flip_pairs, n_points=int(info["n_points"]))  # fmt: skip


@dataclass
class PointsTask(Task):
    """Keypoints of images: a `PointsLearner` with `PointsLoss`."""

    type: ClassVar[str] = "points"

    def data(self, info: dict | None) -> PointDataLoaders:
        if not info:
            raise ValueError("not a points export: the metadata lacks the data processing")
        return point_dls_from_export(info)

    def learner(self, dls, model: nn.Module, config: VisionModelConfig) -> PointsLearner:
        spec = get_arch(config.arch)
        return PointsLearner(dls, model, spec, loss_func=PointsLoss(), metrics=[], device="cpu")
