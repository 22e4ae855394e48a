"""ImageDataLoaders: from a folder, a CSV, a DataFrame or file names to training-ready batches.

    from quickfit.vision.core.data import ImageDataLoaders
    from quickfit.vision.core.augment import aug_transforms

    dls = ImageDataLoaders.from_folder("data/hymenoptera", valid="val", size=224, batch_tfms=aug_transforms())
    dls.vocab                      # ['ants', 'bees']
    x, y = next(iter(dls.train))   # float [64, 3, 224, 224] augmented + normalized, int64 [64]
    dls.show_batch()

    # the course's dog-breeds layout: train/<id>.jpg and labels.csv with columns id, breed
    dls = ImageDataLoaders.from_csv("data/dogbreeds", "train", "labels.csv", suffix=".jpg", seed=42)

Labels become `dls.vocab` (sorted) and int64 class indices. With `label_delim` a label column holds
several labels per image (multi-hot float targets); a float label column gives regression targets.
Batches are `(x, y)`; training batches use random crops and the `train_only` batch transforms,
validation batches center crops and normalization only. Normalization defaults to ImageNet
statistics; `set_normalize` switches to a model's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch import nn

from quickfit.data.core import DataLoaders, random_split
from quickfit.vision.core.augment import Normalize, batch_tfm_from_dict, imagenet_stats
from quickfit.vision.core.cache import DecodeCache, default_cache_bytes
from quickfit.vision.core.image import get_image_files
from quickfit.vision.core.labels import class_folder_labels, labels_to_targets, read_table_labels, subfolders
from quickfit.vision.core.loader import ImageDataset, ImageItems, ImageLoader
from quickfit.vision.core.transforms import ItemTransform, Resize, item_tfm_from_dict
from quickfit.vision.small.data import SmallImageDataLoaders

__all__ = ["ImageDataLoaders", "image_dls_from_export", "random_split"]

TargetKind = Literal["category", "multi_category", "float"]


def _first(items: Sequence, n: int = 5) -> str:
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


class ImageDataLoaders(DataLoaders):
    """Training and validation `ImageLoader`s over labelled images, plus what predicting needs.

    Build it with a `from_*` class method; the constructor takes prepared items and targets.
    """

    onnx_input_names = ("image",)  # what image_onnx_input feeds an ONNX export

    def __init__(
        self,
        train_items: ImageItems,
        valid_items: ImageItems,
        vocab: list[str] | None,
        item_tfms: ItemTransform,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        target_kind: TargetKind = "category",
        path: str | Path = ".",
        test_items: Sequence[Path | Image.Image] | None = None,
        device: torch.device | str | None = None,
        cache: bool | int = False,
    ) -> None:
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise ValueError(f"ImageDataLoaders: bs must be a positive whole number (images per batch), got {bs!r}")
        item_tfms = _item_tfm(item_tfms, None)
        tfms = [batch_tfms] if callable(batch_tfms) else list(batch_tfms or [])
        norms = [t for t in tfms if isinstance(t, Normalize)]
        # Normalization always runs last and is kept apart, so a model can swap in its statistics.
        self.normalize: Normalize = norms[-1] if norms else Normalize.from_stats(imagenet_stats)
        self.batch_tfms = [t for t in tfms if not isinstance(t, Normalize)]
        self.vocab, self.target_kind, self.item_tfm = vocab, target_kind, item_tfms
        self.bs, self.num_workers, self.path = bs, num_workers, Path(path)
        self.test_items = list(test_items) if test_items is not None else None
        self.device = None if device is None else torch.device(device)
        if not isinstance(cache, (bool, int)) or (not isinstance(cache, bool) and cache < 1):
            raise ValueError(f"ImageDataLoaders: cache must be True, False or a number of bytes, got {cache!r}")
        self.cache = cache
        train_ds = ImageDataset(train_items, item_tfms, train=True, cache=self._decode_cache(train_items))
        train = ImageLoader(
            train_ds,
            bs=bs,
            shuffle=True,
            drop_last=len(train_ds) % bs == 1,  # a batch of one image breaks BatchNorm
            num_workers=num_workers,
            batch_tfms=self.batch_tfms,
            normalize=self.normalize,
            augment=True,
            persistent=True,
            device=device,
        )
        valid = self._loader(valid_items, train=False, augment=False, persistent=True, device=device, cached=True)
        super().__init__(train, valid, n_inp=1, device=device)

    def _loader(
        self,
        items: ImageItems,
        train: bool,
        augment: bool,
        persistent: bool = False,
        skip_bad: bool = True,
        bs: int | None = None,
        device: torch.device | str | None = None,
        cached: bool = False,
    ) -> ImageLoader:
        dc = self._decode_cache(items) if cached else None
        return ImageLoader(
            ImageDataset(items, self.item_tfm, train=train, skip_bad=skip_bad, cache=dc),
            bs=bs or self.bs,
            num_workers=self.num_workers,
            batch_tfms=self.batch_tfms,
            normalize=self.normalize,
            augment=augment,
            persistent=persistent,
            device=device if device is not None else self.device,
        )

    def _decode_cache(self, items: ImageItems) -> DecodeCache | None:
        if self.cache is False or self.cache is None or not items.paths:
            return None
        max_bytes = default_cache_bytes() if self.cache is True else int(self.cache)
        return DecodeCache(items.paths, self.item_tfm.cover_size, max_bytes)

    # ---- what the data is -------------------------------------------------------------------------
    @property
    def c(self) -> int:
        """Number of model outputs: classes, or target columns for regression."""
        if self.vocab is not None:
            return len(self.vocab)
        targets = self.train_items.targets
        return 1 if targets is None or targets.ndim == 1 else int(targets.shape[1])

    @property
    def loss_func(self) -> nn.Module:
        """The loss that fits the targets (the Learner uses it when given none): cross-entropy for
        classes, binary cross-entropy on logits for multi-label, mean squared error for floats."""
        if self.target_kind == "multi_category":
            return nn.BCEWithLogitsLoss()
        return nn.MSELoss() if self.target_kind == "float" else nn.CrossEntropyLoss()

    @property
    def train_items(self) -> ImageItems:
        """(paths, targets) of the training set, in dataset order."""
        return self.train.items

    @property
    def valid_items(self) -> ImageItems:
        return self.valid.items

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the images in a batch."""
        return self.item_tfm.size

    def example_item(self) -> Image.Image:
        """A blank image of the batches' size (what `export_onnx` traces when the data has no images)."""
        h, w = self.size
        return Image.new("RGB", (w, h))

    def __repr__(self) -> str:
        return (
            f"ImageDataLoaders({len(self.train_items.paths)} train / {len(self.valid_items.paths)} valid images, "
            f"{self.c} {'classes' if self.vocab is not None else 'targets'}, size={self.size}, bs={self.bs})"
        )

    # ---- loaders for other uses ----------------------------------------------------------------------
    def test_dl(self, items: Sequence[str | Path | Image.Image] | None = None, bs: int | None = None) -> ImageLoader:
        """Batches `(x,)` of unlabelled images (paths or PIL images; the `test` folder by default),
        with validation processing. A file that does not load raises `ImageLoadError` naming it."""
        if items is None:
            if self.test_items is None:
                raise ValueError("test_dl() needs items: this ImageDataLoaders was built without a test folder")
            items = self.test_items
        paths = [i if isinstance(i, Image.Image) else Path(i) for i in items]
        missing = [p for p in paths if isinstance(p, Path) and not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} test image(s) do not exist: {_first(missing)}")
        return self._loader(ImageItems(paths, None), train=False, augment=False, skip_bad=False, bs=bs)

    def plain_dl(self, items: ImageItems | None = None, bs: int | None = None) -> ImageLoader:
        """Batches `(x, y)` over `items` (the training set by default) in a fixed order, with
        center crops and no augmentation: for precomputing activations."""
        return self._loader(self.train_items if items is None else items, train=False, augment=False, bs=bs)

    def augmented(self, dl: ImageLoader | None = None) -> ImageLoader:
        """`dl` (the validation loader by default) in the same order, with the training crops and
        batch augmentation: one pass is one set of test-time-augmented predictions."""
        dl = self.valid if dl is None else dl
        return dl.replace(train=True, augment=True, shuffle=False)

    def set_normalize(self, mean: Sequence[float], std: Sequence[float]) -> ImageDataLoaders:
        """Normalize with a model's statistics, e.g. (0.5,)*3 / (0.5,)*3 for EfficientNet-Lite."""
        self.normalize = Normalize(mean, std)
        for dl in (self.train, self.valid):
            dl.normalize = self.normalize
        return self

    def new(
        self,
        size: int | tuple[int, int] | None = None,
        bs: int | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
    ) -> ImageDataLoaders:
        """The same images, split and vocab with other settings, e.g. `dls.new(size=299)` for
        progressive resizing (the item transform keeps its kind and gets the new size)."""
        if item_tfms is None:
            item_tfms = self.item_tfm.resized(size) if size is not None else self.item_tfm
        item_tfms = _item_tfm(item_tfms, size)
        dls = type(self)(
            self.train_items,
            self.valid_items,
            self.vocab,
            item_tfms,
            batch_tfms=[*self.batch_tfms, self.normalize] if batch_tfms is None else batch_tfms,
            bs=bs or self.bs,
            num_workers=self.num_workers,
            target_kind=self.target_kind,
            path=self.path,
            test_items=self.test_items,
            device=self.device,
            cache=self.cache,
        )
        if batch_tfms is None or not any(isinstance(t, Normalize) for t in batch_tfms):
            dls.set_normalize(self.normalize.mean, self.normalize.std)
        return dls

    # ---- predictions ---------------------------------------------------------------------------------
    def decode_pred(self, pred: torch.Tensor, thresh: float = 0.5) -> tuple[Any, Any, torch.Tensor]:
        """One prediction (after the activation) -> (label, index, probabilities).

        Multi-label: (list of labels, bool mask, probabilities) with `thresh`; regression:
        (value or list of values, None, raw output)."""
        pred = pred.detach().cpu()
        if self.target_kind == "float":
            return (pred.item() if pred.numel() == 1 else pred.tolist()), None, pred
        if self.target_kind == "multi_category":
            mask = pred > thresh
            return [self.vocab[i] for i in mask.nonzero().flatten().tolist()], mask, pred
        idx = int(pred.argmax())
        return self.vocab[idx], idx, pred

    def export_info(self) -> dict:
        """JSON-serializable description of the processing; `image_dls_from_export` rebuilds it."""
        tfms = []
        for t in self.batch_tfms:
            if hasattr(t, "to_dict"):
                tfms.append(t.to_dict())
            elif not getattr(t, "train_only", False):
                raise ValueError(
                    f"cannot export batch transform {t!r}: it runs on every batch but has no to_dict(), "
                    "so a loaded model would see differently processed images"
                )
        return {
            "vocab": self.vocab,
            "target_kind": self.target_kind,
            "item_tfm": self.item_tfm.to_dict(),
            "batch_tfms": tfms,
            "normalize": {"mean": list(self.normalize.mean), "std": list(self.normalize.std)},
            "bs": self.bs,
        }

    def one_batch(self, split: Literal["train", "valid"] = "train") -> tuple[torch.Tensor, ...]:
        """One batch `(x, y)` as the model sees it: float images [bs, 3, H, W] (augmented for "train",
        normalized) and targets, on the loaders' device."""
        if split not in ("train", "valid"):
            raise ValueError(f"one_batch: split must be 'train' or 'valid', got {split!r}")
        dl = self.train if split == "train" else self.valid
        if len(dl.dataset) == 0:
            raise ValueError(f"one_batch: the {split} set has no images")
        return next(iter(dl))

    def show_batch(self, max_n: int = 9, split: Literal["train", "valid"] = "train", ncols: int | None = None):
        """A grid of up to `max_n` images of one batch with their labels; returns the Figure."""
        import matplotlib.pyplot as plt

        x, y = self.one_batch(split)
        n = min(max_n, x.shape[0])
        imgs = self.normalize.decode(x[:n].float()).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        ncols = ncols or max(1, int(n**0.5 + 0.999))
        nrows = -(-n // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.5 * ncols, 2.5 * nrows), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < n:
                ax.imshow(imgs[i])
                ax.set_title(self._label_text(y[i]), fontsize=9)
        fig.tight_layout()
        return fig

    def pred_text(self, pred: torch.Tensor, thresh: float = 0.5) -> str:
        """A prediction (after the activation) as a short caption: "bees 0.98", "chair;tv", "3.14"."""
        label, idx, probs = self.decode_pred(pred, thresh)
        if self.target_kind == "category":
            return f"{label} {float(probs[idx]):.2f}"
        if self.target_kind == "multi_category":
            return ";".join(label) or "(none)"
        return ", ".join(f"{v:.3g}" for v in probs.flatten().tolist())

    def _label_text(self, y: torch.Tensor) -> str:
        if self.target_kind == "category":
            return self.vocab[int(y)]
        if self.target_kind == "multi_category":
            return ";".join(self.vocab[i] for i in y.nonzero().flatten().tolist())
        return ", ".join(f"{v:.3g}" for v in y.flatten().tolist())

    # ---- constructors --------------------------------------------------------------------------------
    @classmethod
    def from_lists(
        cls,
        path: str | Path,
        fnames: Sequence[str | Path],
        labels: Sequence[Any],
        valid_idx: Sequence[int],
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        cache: bool | int = False,
        size: int | tuple[int, int] | None = None,
        label_delim: str | None = None,
        test_items: Sequence[str | Path] | None = None,
        where: str = "labels",
        random_valid: bool = False,
    ) -> ImageDataLoaders:
        """Images `fnames` with `labels`; rows `valid_idx` are the validation set. A relative name is
        taken under `path`, or, when it is not there but exists from the current folder (the paths
        `get_image_files(path)` returns start with `path`), as it is. `where` names the label source
        in error messages."""
        path = Path(path).absolute()  # items stay valid if the process later changes folder
        if len(fnames) != len(labels):
            raise ValueError(f"from_lists: {len(fnames)} file names but {len(labels)} labels")
        valid = sorted({int(i) for i in valid_idx})
        if valid and not 0 <= valid[0] <= valid[-1] < len(fnames):
            raise IndexError(f"valid_idx must be in [0, {len(fnames)}), got values from {valid[0]} to {valid[-1]}")
        paths = [_locate(path, f) for f in fnames]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(paths)} images do not exist (looked under {path} and the current folder "
                f"{Path.cwd()}): {_first(missing)}"
            )
        is_valid = torch.zeros(len(paths), dtype=torch.bool)
        is_valid[valid] = True
        tr = [i for i in range(len(paths)) if not is_valid[i]]
        if not tr:
            raise ValueError(f"from_lists: every one of the {len(paths)} images is in the validation set")
        targets, vocab, kind = labels_to_targets(
            [labels[i] for i in tr], [labels[i] for i in valid], label_delim, where, strict=not random_valid
        )
        n_tr = len(tr)
        item_tfms = _item_tfm(item_tfms, size)
        return cls(
            ImageItems([paths[i] for i in tr], targets[:n_tr]),
            ImageItems([paths[i] for i in valid], targets[n_tr:]),
            vocab,
            item_tfms,
            batch_tfms=batch_tfms,
            bs=bs,
            num_workers=num_workers,
            cache=cache,
            target_kind=kind,
            path=path,
            test_items=[path / t for t in test_items] if test_items is not None else None,
        )

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        train: str = "train",
        valid: str = "valid",
        valid_pct: float | None = None,
        seed: int | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        cache: bool | int = False,
        size: int | tuple[int, int] | None = None,
        test: str | None = None,
        small: bool = False,
    ) -> ImageDataLoaders | SmallImageDataLoaders:
        """Images in `path/train/<class>/` (and `path/valid/<class>/`); the label is the class folder.

        With `valid_pct` the training images are split at random instead (reproducibly with `seed`)
        and no validation folder is needed. `test` names an unlabelled folder for `test_dl()`.
        `size` (default 224) sets `Resize(size)` when `item_tfms` is not given.
        `small=True` (images of at most 64 px, CIFAR-10): a `SmallImageDataLoaders` instead, every file
        decoded once into memory and augmented per batch (quickfit/vision/small/data.py); `size`
        (default: the images' own) and `bs` apply, the item and batch transforms do not."""
        if small:
            if item_tfms is not None or batch_tfms is not None or test is not None:
                raise ValueError("from_folder(small=True) makes its own augmentation: drop item_tfms, batch_tfms, test")
            side = size if isinstance(size, int) or size is None else int(max(size))
            return SmallImageDataLoaders.from_folder(path, train, valid, valid_pct, seed, bs=bs, size=side)
        path = Path(path).absolute()
        if not path.is_dir():
            raise FileNotFoundError(f"image folder {path} does not exist")
        files, labels = class_folder_labels(path, train)
        if valid_pct is not None:
            valid_idx = random_split(len(files), valid_pct, seed)
            random_valid = True
        else:
            if not (path / valid).is_dir():
                raise FileNotFoundError(
                    f"no validation folder {path / valid}; folders in {path}: {subfolders(path)}. "
                    "Pass valid='<its name>' (e.g. valid='val'), or valid_pct=0.2 to split the training images"
                )
            vfiles, vlabels = class_folder_labels(path, valid)
            valid_idx = range(len(files), len(files) + len(vfiles))
            files, labels, random_valid = files + vfiles, labels + vlabels, False
        return cls.from_lists(
            path,
            files,
            labels,
            valid_idx,
            item_tfms=item_tfms,
            batch_tfms=batch_tfms,
            bs=bs,
            num_workers=num_workers,
            cache=cache,
            size=size,
            test_items=get_image_files(path / test) if test is not None else None,
            where=f"class folders of {path}",
            random_valid=random_valid,
        )

    @classmethod
    def from_df(
        cls,
        df: Any,
        path: str | Path = ".",
        fn_col: int | str = 0,
        label_col: int | str = 1,
        folder: str | None = None,
        suffix: str = "",
        valid_pct: float = 0.2,
        seed: int | None = None,
        valid_idx: Sequence[int] | None = None,
        valid_col: int | str | None = None,
        label_delim: str | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        cache: bool | int = False,
        size: int | tuple[int, int] | None = None,
        test: str | None = None,
    ) -> ImageDataLoaders:
        """Rows of a pandas DataFrame: file name column `fn_col` (under `path/folder`, plus `suffix`)
        and label column `label_col` (by position or name). The validation rows are `valid_idx`, or
        those where the boolean column `valid_col` is true, or a random `valid_pct` of them.
        A float label column gives regression targets; `label_delim` splits multi-label strings."""
        path = Path(path).absolute()
        base = path / folder if folder else path
        fnames, labels, is_valid, file_where, where = read_table_labels(df, fn_col, label_col, valid_col, suffix)
        paths = [_locate(base, f) for f in fnames]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(paths)} files named in {file_where} (folder {base}, suffix {suffix!r}) "
                f"do not exist: {_first(missing)}"
            )
        random_valid = False
        if is_valid is not None:
            valid_idx = [i for i, v in enumerate(is_valid) if v]
        elif valid_idx is None:
            valid_idx, random_valid = random_split(len(paths), valid_pct, seed), True
        return cls.from_lists(
            path,
            paths,
            labels,
            valid_idx,
            item_tfms=item_tfms,
            batch_tfms=batch_tfms,
            bs=bs,
            num_workers=num_workers,
            cache=cache,
            size=size,
            label_delim=label_delim,
            test_items=get_image_files(path / test) if test is not None else None,
            where=where,
            random_valid=random_valid,
        )

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        folder: str | None,
        csv_file: str | Path,
        fn_col: int | str = 0,
        label_col: int | str = 1,
        suffix: str = "",
        valid_pct: float = 0.2,
        seed: int | None = None,
        valid_idx: Sequence[int] | None = None,
        valid_col: int | str | None = None,
        label_delim: str | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        cache: bool | int = False,
        size: int | tuple[int, int] | None = None,
        test: str | None = None,
    ) -> ImageDataLoaders:
        """The course's layout: `csv_file` (under `path`, or a path of its own) with a file name
        column and a label column; images in `path/folder/<name><suffix>`. See `from_df`."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("ImageDataLoaders.from_csv needs pandas: pip install 'quickfit[vision]'") from e

        path = Path(path)
        csv_path = Path(csv_file)
        if not csv_path.is_absolute() and (path / csv_path).is_file():
            csv_path = path / csv_path
        if not csv_path.is_file():
            raise FileNotFoundError(f"CSV file {csv_file} not found (also looked in {path})")
        df = pd.read_csv(csv_path)
        df.attrs["source"] = csv_path.name
        return cls.from_df(
            df,
            path,
            fn_col,
            label_col,
            folder=folder,
            suffix=suffix,
            valid_pct=valid_pct,
            seed=seed,
            valid_idx=valid_idx,
            valid_col=valid_col,
            label_delim=label_delim,
            item_tfms=item_tfms,
            batch_tfms=batch_tfms,
            bs=bs,
            num_workers=num_workers,
            cache=cache,
            size=size,
            test=test,
        )

    @classmethod
    def from_name_func(
        cls,
        path: str | Path,
        fnames: Sequence[str | Path],
        label_func: Callable[[Path], Any],
        valid_pct: float = 0.2,
        seed: int | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        cache: bool | int = False,
        size: int | tuple[int, int] | None = None,
    ) -> ImageDataLoaders:
        """Labels from `label_func(Path)` of each file (`fnames` as `get_image_files` returns them, or
        names under `path`); a random `valid_pct` split."""
        paths = [_locate(Path(path).absolute(), f) for f in fnames]
        labels = [label_func(p) for p in paths]
        return cls.from_lists(
            path,
            paths,
            labels,
            random_split(len(paths), valid_pct, seed),
            item_tfms=item_tfms,
            batch_tfms=batch_tfms,
            bs=bs,
            num_workers=num_workers,
            cache=cache,
            size=size,
            where=f"label_func {getattr(label_func, '__name__', label_func)}",
            random_valid=True,
        )

    @classmethod
    def from_name_re(
        cls,
        path: str | Path,
        fnames: Sequence[str | Path],
        pat: str,
        valid_pct: float = 0.2,
        seed: int | None = None,
        item_tfms: ItemTransform | None = None,
        batch_tfms: Sequence[Callable] | None = None,
        bs: int = 64,
        num_workers: int | None = None,
        cache: bool | int = False,
        size: int | tuple[int, int] | None = None,
    ) -> ImageDataLoaders:
        """Labels from the first group of the regular expression `pat`, searched in each file's path
        (e.g. r"/([^/]+)_\\d+.jpg$" for Oxford-IIIT Pets names)."""
        regex = re.compile(pat)
        if regex.groups < 1:
            raise ValueError(f"from_name_re: pattern {pat!r} has no group; put the label in (parentheses)")
        paths = [_locate(Path(path).absolute(), f) for f in fnames]
        matches = [regex.search(p.as_posix()) for p in paths]
        unmatched = [p for p, m in zip(paths, matches) if m is None]
        if unmatched:
            raise ValueError(f"pattern {pat!r} matches no label in {len(unmatched)} file name(s): {_first(unmatched)}")
        return cls.from_lists(
            path,
            paths,
            [m.group(1) for m in matches],
            random_split(len(paths), valid_pct, seed),
            item_tfms=item_tfms,
            batch_tfms=batch_tfms,
            bs=bs,
            num_workers=num_workers,
            cache=cache,
            size=size,
            where=f"pattern {pat!r}",
            random_valid=True,
        )


def _locate(base: Path, f: str | Path) -> Path:
    """The absolute path of image `f`: as given when absolute; else under `base` (absolute) if it is
    there, or from the current folder if it is there instead (a name that already includes `base`,
    e.g. from `get_image_files(base)`); else under `base`, where the missing-file check reports it."""
    f = Path(f)
    if f.is_absolute():
        return f
    under = base / f
    if not under.exists() and f.exists():
        return f.absolute()
    return under


def _item_tfm(
    item_tfms: ItemTransform | Sequence[ItemTransform] | None, size: int | tuple[int, int] | None
) -> ItemTransform:
    """The one item transform: `item_tfms` (a transform or a one-element list), else Resize(size or 224)."""
    if item_tfms is None:
        return Resize(size if size is not None else 224)
    if isinstance(item_tfms, (list, tuple)) and len(item_tfms) == 1:  # fastai's habit: [Resize(224)]
        item_tfms = item_tfms[0]
    if not isinstance(item_tfms, ItemTransform):
        raise TypeError(
            f"item_tfms must be one item transform such as Resize(224) or RandomResizedCrop(224), got {item_tfms!r}"
        )
    if size is not None and tuple(item_tfms.size) != Resize(size).size:
        raise ValueError(f"size={size} disagrees with item_tfms of size {item_tfms.size}; pass one of them")
    return item_tfms


def image_dls_from_export(info: dict, device: torch.device | str | None = None) -> ImageDataLoaders:
    """An ImageDataLoaders with no items but the exported processing: it can `test_dl`,
    `decode_pred` and `augmented` (for TTA), as `load_learner` needs."""
    empty = ImageItems([], None)
    batch_tfms = [batch_tfm_from_dict(d) for d in info.get("batch_tfms", [])]
    norm = info.get("normalize") or {"mean": imagenet_stats[0], "std": imagenet_stats[1]}
    batch_tfms.append(Normalize(norm["mean"], norm["std"]))
    dls = ImageDataLoaders(
        empty,
        empty,
        info.get("vocab"),
        item_tfm_from_dict(info["item_tfm"]),
        batch_tfms=batch_tfms,
        bs=int(info.get("bs", 64)),
        target_kind=info.get("target_kind", "category"),
        device=device,
    )
    return dls
