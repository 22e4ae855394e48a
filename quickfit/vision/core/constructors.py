"""The `from_*` constructors of `ImageDataLoaders`: labelled images from class folders, a DataFrame or
CSV, a function of the file name or a regular expression. Each reads its labels and calls `from_lists`,
which checks the files and the labels and builds the loaders (quickfit/vision/core/data.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from quickfit.data.core import random_split
from quickfit.vision.core.image import get_image_files
from quickfit.vision.core.labels import class_folder_labels, labels_to_targets, read_table_labels, subfolders
from quickfit.vision.core.loader import ImageItems
from quickfit.vision.core.transforms import ItemTransform, item_tfm_for
from quickfit.vision.small.data import SmallImageDataLoaders

__all__ = ["FromLabels"]


def _first(items: Sequence, n: int = 5) -> str:
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _loading(item_tfms, batch_tfms, bs, num_workers, cache, size) -> dict:
    """The loading arguments every constructor passes on to `from_lists`."""
    return dict(item_tfms=item_tfms, batch_tfms=batch_tfms, bs=bs, num_workers=num_workers, cache=cache, size=size)


class FromLabels:
    """`ImageDataLoaders`' constructors (a mixin: `cls` is the data class they build)."""

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
    ) -> Any:
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
        item_tfms = item_tfm_for(item_tfms, size)
        return cls(
            ImageItems([paths[i] for i in tr], targets[:n_tr]),
            ImageItems([paths[i] for i in valid], targets[n_tr:]),
            vocab,
            item_tfms,
            batch_tfms=batch_tfms,
            bs=bs,
            num_workers=num_workers,
            cache=cache,
            target=kind,
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
    ) -> Any:
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
            **_loading(item_tfms, batch_tfms, bs, num_workers, cache, size),
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
    ) -> Any:
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
            **_loading(item_tfms, batch_tfms, bs, num_workers, cache, size),
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
    ) -> Any:
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
            **_loading(item_tfms, batch_tfms, bs, num_workers, cache, size),
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
    ) -> Any:
        """Labels from `label_func(Path)` of each file (`fnames` as `get_image_files` returns them, or
        names under `path`); a random `valid_pct` split."""
        paths = [_locate(Path(path).absolute(), f) for f in fnames]
        labels = [label_func(p) for p in paths]
        return cls.from_lists(
            path,
            paths,
            labels,
            random_split(len(paths), valid_pct, seed),
            **_loading(item_tfms, batch_tfms, bs, num_workers, cache, size),
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
    ) -> Any:
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
            **_loading(item_tfms, batch_tfms, bs, num_workers, cache, size),
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
