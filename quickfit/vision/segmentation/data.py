"""SegmentationDataLoaders: images and their masks of class indices, cropped and augmented together.

    from quickfit.vision import SegmentationDataLoaders, Resize, aug_transforms

    codes = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
             "Pedestrian", "Bicyclist", "Void"]
    dls = SegmentationDataLoaders.from_folders("camvid_segnet", images="train", masks="trainannot",
                                               valid_images="val", valid_masks="valannot", codes=codes,
                                               void_code=11, item_tfms=Resize((240, 320)),
                                               batch_tfms=aug_transforms(), bs=8)
    x, y = next(iter(dls.train))   # float [8, 3, 240, 320], int64 [8, 240, 320] class indices

    # camvid_tiny's layout: images/x.png with labels/x_P.png
    dls = SegmentationDataLoaders.from_label_func(path, get_image_files(path / "images"),
                                                  lambda p: path / "labels" / f"{p.stem}_P.png",
                                                  codes="codes.txt", seed=0)

Masks are single-channel PNGs of class indices (L / I modes), palette PNGs (their indices), or RGB
colour masks with `palette={(r, g, b): index}`. `codes` names the classes (a list, or a text file
with one name per line); pixels of `void_code` (an index, or a name of the codes: "Void") are
ignored by the loss and the metrics. A missing
mask, a mask of another size than its image, or a colour mask without a palette is an error when
the loaders are built; a mask value outside the codes, when its batch is loaded. The mask gets the
image's crop (nearest-neighbour) and the same batch augmentation (see `quickfit.vision.core.targets`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from quickfit.vision.core.augment import Normalize, batch_tfm_from_dict, imagenet_stats
from quickfit.vision.core.data import ImageDataLoaders, random_split
from quickfit.vision.core.image import IMAGE_EXTENSIONS, SourceImage, get_image_files, open_image
from quickfit.vision.core.loader import ImageItems
from quickfit.vision.core.targets import Target
from quickfit.vision.core.transforms import ItemTransform, item_tfm_for, item_tfm_from_dict
from quickfit.vision.segmentation.loss import SegmentationLoss
from quickfit.vision.segmentation.masks import void_index
from quickfit.vision.segmentation.target import Mask

__all__ = ["SegmentationDataLoaders", "SegmentationLoss", "segmentation_dls_from_export", "read_codes"]


def read_codes(codes: Sequence[str] | str | Path, path: Path) -> list[str]:
    """Class names: a list, or a text file (under `path` or as given) with one name per line."""
    if isinstance(codes, (str, Path)):
        f = Path(codes) if Path(codes).is_file() else path / codes
        if not f.is_file():
            raise FileNotFoundError(f"codes file {codes} not found (also looked in {path})")
        names = [line.strip() for line in f.read_text().splitlines() if line.strip()]
    else:
        names = [str(c) for c in codes]
    if len(names) < 2:
        raise ValueError(f"codes must name at least 2 classes, got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"codes must be unique, got duplicates in {names}")
    return names


def _check_pairs(images: Sequence[Path], masks: Sequence[Path], target: Target) -> None:
    """Each image has its mask, of its size, of a mode that holds classes: read from the headers only."""
    missing = [(i, m) for i, m in zip(images, masks) if not Path(m).is_file()]
    if missing:
        shown = "; ".join(f"{i} -> {m}" for i, m in missing[:3])
        raise FileNotFoundError(f"{len(missing)} of {len(images)} images have no mask file: {shown}")
    for img_path, mask_path in zip(images, masks):
        with SourceImage(img_path) as im, open_image(mask_path) as mk:
            w, h = im.size
            if mk.size != (w, h):
                raise ValueError(
                    f"mask {mask_path} is {mk.size[0]}x{mk.size[1]} but its image {img_path} is {w}x{h}; "
                    "masks must have their image's size"
                )
            if mk.mode in ("RGB", "RGBA") and not target.palette:
                raise ValueError(
                    f"mask {mask_path} is an {mk.mode} colour image; pass palette={{(r, g, b): class_index, ...}} "
                    "to map its colours to classes, or use single-channel masks of class indices"
                )


class SegmentationDataLoaders(ImageDataLoaders):
    """Training and validation loaders of (image, mask) pairs; `codes` names the classes.

    Build it with `from_folders` or `from_label_func`. `c` is the number of codes (the U-Net's
    outputs), `loss_func` the void-ignoring pixel cross-entropy."""

    def __init__(
        self,
        train_items: ImageItems,
        valid_items: ImageItems,
        codes: Sequence[str],
        item_tfms: ItemTransform,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 8,
        num_workers: int | None = None,
        void_code: int | str | None = None,
        palette: dict[tuple[int, int, int], int] | None = None,
        path: str | Path = ".",
        test_items: Sequence[Path | Image.Image] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.codes = list(codes)
        self.void_code = void_index(void_code, self.codes)
        target = Mask(n_codes=len(self.codes), void_code=self.void_code, palette=palette, codes=tuple(self.codes))
        super().__init__(
            train_items,
            valid_items,
            self.codes,
            item_tfms,
            batch_tfms=batch_tfms,
            bs=bs,
            num_workers=num_workers,
            target=target,
            path=path,
            test_items=test_items,
            device=device,
        )

    @property
    def c(self) -> int:
        return len(self.codes)

    def __repr__(self) -> str:
        return (
            f"SegmentationDataLoaders({len(self.train_items.paths)} train / {len(self.valid_items.paths)} valid "
            f"images, {self.c} codes, void={self.void_code}, size={self.size}, bs={self.bs})"
        )

    def new(
        self,
        size: int | tuple[int, int] | None = None,
        bs: int | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
    ) -> SegmentationDataLoaders:
        """The same images and masks with other settings, e.g. `dls.new(size=(360, 480))`."""
        if item_tfms is None:
            item_tfms = self.item_tfm.resized(size) if size is not None else self.item_tfm
        dls = SegmentationDataLoaders(
            self.train_items,
            self.valid_items,
            self.codes,
            item_tfm_for(item_tfms, size),
            batch_tfms=[*self.batch_tfms, self.normalize] if batch_tfms is None else batch_tfms,
            bs=bs or self.bs,
            num_workers=self.num_workers,
            void_code=self.void_code,
            palette=self.target.palette,
            path=self.path,
            test_items=self.test_items,
            device=self.device,
        )
        if batch_tfms is None or not any(isinstance(t, Normalize) for t in batch_tfms):
            dls.set_normalize(self.normalize.mean, self.normalize.std)
        return dls

    def decode_pred(self, pred: torch.Tensor, thresh: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel probabilities [C, H, W] -> (mask [H, W] of class indices, probabilities)."""
        mask, _, probs = self.target.decode(pred, thresh)
        return mask, probs

    def export_info(self) -> dict:
        info = super().export_info()
        info.update({"codes": self.codes, "target": self.target.to_dict()})
        return info

    # ---- constructors --------------------------------------------------------------------------------
    @classmethod
    def from_pairs(
        cls,
        path: str | Path,
        images: Sequence[Path],
        masks: Sequence[Path],
        is_valid: Sequence[bool],
        codes: Sequence[str] | str | Path,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 8,
        num_workers: int | None = None,
        void_code: int | str | None = None,
        palette: dict[tuple[int, int, int], int] | None = None,
        size: int | tuple[int, int] | None = None,
    ) -> SegmentationDataLoaders:
        """Images and their mask files, each flagged training or validation; the other constructors end here."""
        path = Path(path).absolute()
        names = read_codes(codes, path)
        void_code = void_index(void_code, names)
        target = Target("mask", n_codes=len(names), void_code=void_code, palette=palette)
        _check_pairs(images, masks, target)
        tr = [i for i, v in enumerate(is_valid) if not v]
        va = [i for i, v in enumerate(is_valid) if v]
        if not tr:
            raise ValueError(f"every one of the {len(images)} images is in the validation set")
        pick = lambda idx: ImageItems([Path(images[i]) for i in idx], [Path(masks[i]) for i in idx])
        return cls(
            pick(tr),
            pick(va),
            names,
            item_tfm_for(item_tfms, size),
            batch_tfms=batch_tfms,
            bs=bs,
            num_workers=num_workers,
            void_code=void_code,
            palette=palette,
            path=path,
        )

    @classmethod
    def from_label_func(
        cls,
        path: str | Path,
        fnames: Sequence[str | Path],
        label_func: Callable[[Path], str | Path],
        codes: Sequence[str] | str | Path,
        valid_func: Callable[[Path], bool] | None = None,
        valid_pct: float = 0.2,
        seed: int | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 8,
        void_code: int | str | None = None,
        num_workers: int | None = None,
        palette: dict[tuple[int, int, int], int] | None = None,
        size: int | tuple[int, int] | None = None,
    ) -> SegmentationDataLoaders:
        """Images `fnames` (under `path` unless absolute or found as given); `label_func(image_path)` names
        each one's mask. `valid_func(image_path)` picks the validation images, else a random `valid_pct`."""
        base = Path(path).absolute()
        images = [Path(f) if Path(f).is_absolute() or Path(f).exists() else base / f for f in fnames]
        images = [p.absolute() for p in images]
        if not images:
            raise ValueError(f"from_label_func: no images given (fnames is empty) for {base}")
        masks = [Path(label_func(p)) for p in images]
        if valid_func is not None:
            is_valid = [bool(valid_func(p)) for p in images]
        else:
            idx = set(random_split(len(images), valid_pct, seed))
            is_valid = [i in idx for i in range(len(images))]
        return cls.from_pairs(
            base, images, masks, is_valid, codes, item_tfms, batch_tfms, bs, num_workers, void_code, palette, size
        )

    @classmethod
    def from_folders(
        cls,
        path: str | Path,
        images: str = "train",
        masks: str = "trainannot",
        valid_images: str | None = "val",
        valid_masks: str | None = "valannot",
        codes: Sequence[str] | str | Path = (),
        void_code: int | str | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 8,
        valid_pct: float = 0.2,
        seed: int | None = None,
        num_workers: int | None = None,
        palette: dict[tuple[int, int, int], int] | None = None,
        size: int | tuple[int, int] | None = None,
    ) -> SegmentationDataLoaders:
        """SegNet's layout: `path/images/x.png` with `path/masks/x.png` (the same name, any image
        extension), likewise `valid_images` / `valid_masks`; with `valid_images=None` a random
        `valid_pct` of the training images is the validation set."""
        path = Path(path).absolute()
        sets = [(images, masks, False)] + ([(valid_images, valid_masks, True)] if valid_images is not None else [])
        all_images, all_masks, is_valid = [], [], []
        for img_dir, mask_dir, valid in sets:
            if mask_dir is None:
                raise ValueError(f"from_folders: valid_images={img_dir!r} needs valid_masks= too")
            for d in (img_dir, mask_dir):
                if not (path / d).is_dir():
                    found = sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
                    raise FileNotFoundError(f"folder {path / d} does not exist; folders in {path}: {found}")
            files = get_image_files(path / img_dir)
            all_images += files
            all_masks += [_mask_for(f, path / mask_dir) for f in files]
            is_valid += [valid] * len(files)
        if valid_images is None:
            idx = set(random_split(len(all_images), valid_pct, seed))
            is_valid = [i in idx for i in range(len(all_images))]
        return cls.from_pairs(
            path,
            all_images,
            all_masks,
            is_valid,
            codes,
            item_tfms,
            batch_tfms,
            bs,
            num_workers,
            void_code,
            palette,
            size,
        )


def _mask_for(image: Path, folder: Path) -> Path:
    """The mask of `image` in `folder`: the same file name, else the same stem with an image extension."""
    same = folder / image.name
    if same.is_file():
        return same
    for ext in (".png", *sorted(IMAGE_EXTENSIONS)):
        if (folder / f"{image.stem}{ext}").is_file():
            return folder / f"{image.stem}{ext}"
    return same  # reported as missing by _check_pairs


def segmentation_dls_from_export(info: dict, device: torch.device | str | None = None) -> SegmentationDataLoaders:
    """A SegmentationDataLoaders with no items but the exported processing (for `load_learner`)."""
    empty = ImageItems([], None)
    batch_tfms = [batch_tfm_from_dict(d) for d in info.get("batch_tfms", [])]
    norm = info.get("normalize") or {"mean": imagenet_stats[0], "std": imagenet_stats[1]}
    batch_tfms.append(Normalize(norm["mean"], norm["std"]))
    target = Target.from_dict(info.get("target", {"kind": "mask"}))
    return SegmentationDataLoaders(
        empty,
        empty,
        info["codes"],
        item_tfm_from_dict(info["item_tfm"]),
        batch_tfms=batch_tfms,
        bs=int(info.get("bs", 8)),
        void_code=target.void_code,
        palette=target.palette,
        device=device,
    )
