"""What the engine asks of the objects it is given: a loader of batches and an application's data.

    from quickfit.contracts import check_loader, check_task_data
    check_loader(my_loader, "dls.train")           # TypeError: dls.train (MyLoader) lacks __len__: ...
    check_task_data(dls, need=("test_dl",))        # TypeError naming test_dl and what it is for

The engine (quickfit/*.py, quickfit/callbacks, quickfit/data) uses an application's objects only
through the members listed here; it never reads another attribute of them, nor their class names.
Each member is either required (the Learner refuses an object without it, naming it) or optional
(the engine does something plainer without it, said below). The protocols are `typing.Protocol`s,
so a type checker can check an implementation; `isinstance(obj, Loader)` checks the required part.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["Loader", "TaskData", "LOADER_MEMBERS", "TASK_DATA_MEMBERS", "check_loader", "check_task_data"]


@runtime_checkable
class Loader(Protocol):
    """An iterable of batches `(*xs, y)` (or `(*xs,)` for a test set): `dls.train`, `dls.valid`, a `dl=`.

    Required: `__iter__` (one epoch's batches) and `__len__` (the number of batches of an epoch).
    A list of batches and a `torch.utils.data.DataLoader` are loaders as they are.

    Optional, for quickfit's own loaders (`quickfit.data.LoaderBase`):
    - `to(device)`: make the batches on `device` (a loader that builds batches on the GPU saves a copy).
      The Learner moves every batch to its device anyway (`non_blocking`; free for one already there).
    - `shard(rank, world_size) -> Loader`: this rank's part under torchrun; training shards must all
      have the same number of batches, validation shards no repeats. Without it a torch DataLoader
      is rebuilt around a `DistributedSampler`, and any other loader is refused for distributed training.
    - `bs`: the batch size, logged by TensorBoardLogger with the hyperparameters (or `batch_size`).
    """

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


class TaskData(Protocol):
    """The `dls` given to a Learner: the loaders, and what an application adds for inference and export.

    Required: `train` (a Loader). Optional, with what the engine does without them:
    - `valid`: a Loader or None (no validation pass); `n_inp`: how many leading batch items are
      inputs (1); `to(device)`: called by the Learner with its device (nothing).
    - `loss_func`: the default loss when the Learner is given none (no loss: training refuses).
    - `test_dl(items) -> Loader`: batches of raw items; `learn.predict(item)` calls `test_dl([item])`
      (without it the item must already be a tensor, made a batch of one).
    - `decode_pred(pred)`: one prediction -> what `predict` returns (the prediction as it is).
    - `export_info() -> dict`: JSON describing the data processing, stored by export (nothing stored).
    - `onnx_input_names`: names of the model's inputs in an ONNX export ("input", "input_0", ...).
    - `example_item()`: an item `test_dl` takes (a blank image of the recorded size), for what needs one
      batch when the data has none (`export_onnx` of a learner from `load_learner`; else `xb=` is asked).
    """

    train: Loader
    valid: Loader | None
    n_inp: int

    def test_dl(self, items: Any) -> Loader: ...

    def decode_pred(self, pred: torch.Tensor) -> Any: ...

    def export_info(self) -> dict: ...


# member -> (required, what the engine uses it for); the checks below quote these
LOADER_MEMBERS: dict[str, tuple[bool, str]] = {
    "__iter__": (True, "yields the batches of one epoch"),
    "__len__": (True, "the number of batches of an epoch, for progress, schedules and lr_find"),
    "to": (False, "to(device): make the batches on the Learner's device"),
    "shard": (False, "shard(rank, world_size): this rank's part under torchrun"),
    "bs": (False, "the batch size, logged with the hyperparameters"),
}
TASK_DATA_MEMBERS: dict[str, tuple[bool, str]] = {
    "train": (True, "the training Loader"),
    "valid": (False, "the validation Loader, or None"),
    "n_inp": (False, "how many leading items of a batch are model inputs (default 1)"),
    "to": (False, "to(device): told the Learner's device"),
    "loss_func": (False, "the default loss when the Learner is given none"),
    "test_dl": (False, "test_dl(items): batches of raw items, used by learn.predict(item)"),
    "decode_pred": (False, "decode_pred(pred): one prediction as predict returns it"),
    "export_info": (False, "export_info(): JSON of the data processing, stored by learn.export"),
    "onnx_input_names": (False, "names of the model inputs in an ONNX export"),
    "example_item": (False, "example_item(): an item test_dl takes, when the data has no batches"),
}


def _has(obj: Any, member: str) -> bool:
    if member.startswith("__"):  # special methods are looked up on the type
        return getattr(type(obj), member, None) is not None
    return hasattr(obj, member)


def _check(obj: Any, name: str, members: dict, need: tuple[str, ...], what: str, hint: str = "") -> None:
    missing = [m for m, (required, _) in members.items() if (required or m in need) and not _has(obj, m)]
    missing += [m for m in need if m not in members and not _has(obj, m)]
    if missing:
        lacks = "; ".join(f"{m} ({members[m][1]})" if m in members else m for m in missing)
        raise TypeError(f"{name} ({type(obj).__name__}) is not {what}: it lacks {lacks}{hint}")


def check_loader(obj: Any, name: str = "dls.train", need: tuple[str, ...] = ()) -> None:
    """A TypeError naming what `obj` lacks of a `Loader` (`__iter__`, `__len__`, and the optional `need`)."""
    _check(obj, name, LOADER_MEMBERS, tuple(need), "a loader of batches")


def check_task_data(dls: Any, name: str = "dls", need: tuple[str, ...] = ()) -> None:
    """A TypeError naming what `dls` lacks of `TaskData` (`train`, and the optional `need`); its
    `train` and `valid` (unless None) must be loaders."""
    hint = " (wrap the loaders: quickfit.DataLoaders(train, valid))" if not _has(dls, "train") else ""
    _check(dls, name, TASK_DATA_MEMBERS, tuple(need), "the Learner's data", hint)
    check_loader(dls.train, f"{name}.train")
    valid = getattr(dls, "valid", None)
    if valid is not None:
        check_loader(valid, f"{name}.valid")
