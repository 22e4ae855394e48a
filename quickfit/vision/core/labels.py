"""Where labels come from (class folders, table columns) and how they become targets: class indices,
multi-hot vectors or float values, with the checks that matter.

    from quickfit.vision.core.labels import labels_to_targets

    targets, vocab, kind = labels_to_targets(["cat", "dog"], ["dog"], label_delim=None, where="labels")
    # tensor([0, 1, 1]), ['cat', 'dog'], 'category'

Training targets come first, then validation targets. A class seen only in the validation set is
an error when the split was chosen by the user (a `valid` folder, `valid_idx`), and a warning when
it came from a random split (only another seed helps there).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from quickfit.vision.core.image import get_image_files

__all__ = [
    "labels_to_targets",
    "read_table_labels",
    "class_folder_labels",
    "subfolders",
    "set_label_prior",
    "set_head_bias",
]


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _is_float(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (numbers.Integral, bool))


def _first(items: Sequence, n: int = 5) -> str:
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _check_valid_classes(train: set, valid: set, where: str, strict: bool) -> None:
    only_valid = sorted(valid - train, key=str)
    if not only_valid:
        return
    msg = (
        f"class(es) {only_valid} in {where} appear in the validation set but not in the training set "
        f"(training classes: {_first(sorted(train, key=str), 10)})"
    )
    if strict:
        raise ValueError(msg + "; a model cannot learn a class it never sees")
    from quickfit.vision.core.loader import user_stacklevel

    warnings.warn(msg + "; try another seed or a larger validation split", stacklevel=user_stacklevel())


def labels_to_targets(
    train: Sequence[Any],
    valid: Sequence[Any],
    label_delim: str | None = None,
    where: str = "labels",
    strict: bool = True,
) -> tuple[torch.Tensor, list[str] | None, str]:
    """(targets of train + valid, vocab or None, kind) where kind is "category" (int64 indices),
    "multi_category" (float multi-hot [n, c], labels split on `label_delim`) or "float" (all labels
    are floats: regression targets [n, 1])."""
    labels = list(train) + list(valid)
    if label_delim is not None:
        split = [[] if _is_missing(v) else [s.strip() for s in str(v).split(label_delim) if s.strip()] for v in labels]
        vocab = sorted({s for row in split for s in row})
        if not vocab:
            raise ValueError(f"no labels found in {where} after splitting on {label_delim!r}")
        _check_valid_classes(
            {s for row in split[: len(train)] for s in row},
            {s for row in split[len(train) :] for s in row},
            where,
            strict,
        )
        index = {s: i for i, s in enumerate(vocab)}
        targets = torch.zeros(len(labels), len(vocab))
        for r, row in enumerate(split):
            targets[r, [index[s] for s in row]] = 1.0
        return targets, vocab, "multi_category"
    missing = [i for i, v in enumerate(labels) if _is_missing(v)]
    if missing:
        raise ValueError(f"{len(missing)} missing label(s) in {where}, at item(s) {_first(missing)}")
    if labels and all(_is_float(v) for v in labels):
        return torch.tensor([float(v) for v in labels], dtype=torch.float32).view(-1, 1), None, "float"
    # Sort classes by their own value (so 2 < 10), then name them as strings (JSON-safe, printable).
    values = sorted(set(labels), key=lambda v: (isinstance(v, str), v if not isinstance(v, str) else 0, str(v)))
    vocab = [str(v) for v in values]
    if len(set(vocab)) != len(vocab):
        raise ValueError(f"labels in {where} differ only in type (e.g. 1 and '1'): {values}")
    if len(vocab) == 1:  # would train to a loss of 0 and an accuracy of 1, learning nothing
        raise ValueError(f"only one class ({vocab[0]!r}) in {where}: a classifier needs two or more classes")
    _check_valid_classes({str(v) for v in train}, {str(v) for v in valid}, where, strict)
    index = {v: i for i, v in enumerate(vocab)}
    return torch.tensor([index[str(v)] for v in labels], dtype=torch.int64), vocab, "category"


def _column(df: Any, col: int | str, arg: str, source: str) -> str:
    columns = list(df.columns)
    if isinstance(col, int):
        if not -len(columns) <= col < len(columns):
            raise IndexError(f"{arg}={col} but {source} has {len(columns)} columns: {columns}")
        return columns[col]
    if col not in columns:
        raise KeyError(f"{arg}={col!r} is not a column of {source}; its columns: {columns}")
    return col


def read_table_labels(
    df: Any, fn_col: int | str, label_col: int | str, valid_col: int | str | None, suffix: str
) -> tuple[list[str], list[Any], list[bool] | None, str, str]:
    """From a DataFrame: (file names with `suffix`, labels, validation flags or None, a description
    of the file column and of the label column for messages)."""
    source = df.attrs.get("source", "the DataFrame") if hasattr(df, "attrs") else "the DataFrame"
    fn = _column(df, fn_col, "fn_col", source)
    lab = _column(df, label_col, "label_col", source)
    fnames = [f"{v}{suffix}" for v in df[fn].tolist()]
    column = df[lab]
    labels = [float(v) for v in column.tolist()] if column.dtype.kind == "f" else column.tolist()
    is_valid = None
    if valid_col is not None:
        is_valid = [bool(v) for v in df[_column(df, valid_col, "valid_col", source)].tolist()]
    return fnames, labels, is_valid, f"{source} column {fn!r}", f"{source} column {lab!r}"


def subfolders(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_folder_labels(path: Path, split: str) -> tuple[list[Path], list[str]]:
    """Files and labels of `path/split/<class>/...` (images may sit in sub-folders of a class)."""
    root = path / split
    if not root.is_dir():
        raise FileNotFoundError(f"no folder {root}; folders in {path}: {subfolders(path)}")
    loose = get_image_files(root, recurse=False)
    if loose:
        raise ValueError(
            f"{len(loose)} image(s) directly in {root}, e.g. {loose[0].name}: put each image in a folder "
            f"named after its class ({root}/<class>/<image>)"
        )
    classes = subfolders(root)
    if not classes:
        raise ValueError(f"no class folders in {root}: expected {root}/<class>/<image>")
    files: list[Path] = []
    labels: list[str] = []
    for cls_name in classes:
        found = get_image_files(root / cls_name)
        if not found:
            raise ValueError(f"class folder {root / cls_name} has no images; remove it or add images")
        if all(f.stat().st_size == 0 for f in found):  # stops at the first non-empty file: one stat per class
            raise ValueError(f"class folder {root / cls_name}: all {len(found)} images are empty files (0 bytes)")
        files += found
        labels += [cls_name] * len(found)
    return files, labels


def set_label_prior(head: torch.nn.Sequential, targets: torch.Tensor, eps: float = 0.01) -> None:
    """Start a multi-label head at the labels' training frequencies: sigmoid(output) = prior per label.

    Why: a fresh head outputs logits around 0, i.e. probability 0.5 for every label, while most labels
    of most images are absent (coco_tiny: 22% positive). At threshold 0.5 that is 50% accuracy against
    78% for predicting "absent" everywhere, and the few steps of a small dataset's first epochs are
    spent unlearning it (a head trained 5 epochs ended at 0.55-0.64). The head's last Linear has no
    bias (a BatchNorm precedes it), so the prior goes into that BatchNorm's shift: the minimum-norm
    `beta` with `W @ beta = logit(prior)`, which leaves the rest of the initialization as it was.
    """
    if targets is None or targets.ndim != 2:
        return
    prior = targets.float().mean(0).clamp(eps, 1 - eps)
    set_head_bias(head, torch.log(prior / (1 - prior)))


def set_head_bias(head: torch.nn.Sequential, logit: torch.Tensor) -> None:
    """Start a fresh head at the outputs `logit` (its last Linear's bias, or the shift of the BatchNorm
    before it, as `set_label_prior` explains)."""
    linears = [m for m in head if isinstance(m, torch.nn.Linear)]
    norms = [m for m in head if isinstance(m, torch.nn.BatchNorm1d)]
    if not linears or not norms:
        return
    lin, norm = linears[-1], norms[-1]
    logit = torch.as_tensor(logit).to(lin.weight)
    with torch.no_grad():
        if lin.bias is not None:
            lin.bias.copy_(logit)
        elif norm.num_features == lin.in_features:
            norm.bias.add_(torch.linalg.lstsq(lin.weight, (logit - lin.weight @ norm.bias)[:, None]).solution[:, 0])
