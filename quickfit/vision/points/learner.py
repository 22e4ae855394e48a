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
from typing import Any, ClassVar

import torch
from torch import nn

from quickfit.configs import Task
from quickfit.vision.classification.learner import VisionLearner
from quickfit.vision.classification.model import VisionModelConfig
from quickfit.vision.core.augment import Normalize, batch_tfm_from_dict, imagenet_stats
from quickfit.vision.core.constructors import _locate
from quickfit.vision.core.data import ImageDataLoaders, random_split
from quickfit.vision.core.loader import ImageItems
from quickfit.vision.core.targets import Target
from quickfit.vision.core.transforms import ItemTransform, item_tfm_for, item_tfm_from_dict
from quickfit.vision.models.registry import get_arch
from quickfit.vision.points.target import Points, PointsLoss

__all__ = ["PointDataLoaders", "PointsLoss", "PointsTask", "point_dls_from_export"]


class PointDataLoaders(ImageDataLoaders):
    """Images with `n_points` (x, y) points each; `c` is 2 * n_points, `y_range` (-1, 1), the loss MSE."""

    y_range = (-1.0, 1.0)

    def export_task(self, loss_func: Any) -> Task:
        """What an export of a learner of these images records as its task."""
        return PointsTask()

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
        target = Points(flip_pairs=tuple(tuple(p) for p in flip_pairs))
        for a, b in target.flip_pairs:
            if not (0 <= a < self.n_points and 0 <= b < self.n_points):
                raise ValueError(f"flip_pairs {list(flip_pairs)} name points outside 0-{self.n_points - 1}")
        super().__init__(
            train_items, valid_items, None, item_tfms, batch_tfms, bs, num_workers, target, path, None, device
        )

    @property
    def c(self) -> int:
        return 2 * self.n_points

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
            item_tfm_for(item_tfms, size),
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
        return self.target.decode(pred, thresh)

    def export_info(self) -> dict:
        info = super().export_info()
        info.update({"target": self.target.to_dict(), "n_points": self.n_points})
        return info

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
        """Images `fnames` with `points` [n, k, 2] (or [n, 2k]) in their pixels. A relative name is taken under
        `path`, or from the current folder when it is there instead (names that already start with `path`)."""
        base = Path(path).absolute()
        paths = [_locate(base, f) for f in fnames]
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
        return cls(
            pick(tr), pick(va), item_tfm_for(item_tfms, size), batch_tfms, bs, num_workers, flip_pairs, path=base
        )

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
    """Keypoints of images: a `VisionLearner` with `PointsLoss`."""

    type: ClassVar[str] = "points"

    def data(self, info: dict | None) -> PointDataLoaders:
        if not info:
            raise ValueError("not a points export: the metadata lacks the data processing")
        return point_dls_from_export(info)

    def learner(self, dls, model: nn.Module, config: VisionModelConfig) -> VisionLearner:
        spec = get_arch(config.arch)
        return VisionLearner(dls, model, spec, loss_func=PointsLoss(), metrics=[], device="cpu")
