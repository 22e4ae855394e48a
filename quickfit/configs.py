"""What an export records to rebuild a learner: a model configuration and a task, both JSON-able dataclasses.

    @dataclass
    class PointModel(ModelConfig):
        type: ClassVar[str] = "point_mlp"     # the name the file records; the App registers the class
        n_in: int

        def build(self) -> nn.Module:
            return nn.Sequential(nn.Linear(self.n_in, 32), nn.ReLU(), nn.Linear(32, 2))

    @dataclass
    class PointTask(Task):
        type: ClassVar[str] = "points"

        def learner(self, dls, model, config):
            return Learner(dls, model, nn.MSELoss(), progress=False, device="cpu")

    config = PointModel(n_in=4)
    learn = PointTask().learner(dls, config.build(), config)
    learn.export_info = export_record("points", PointTask(), config)   # what learn.export writes

A factory builds its model from a `ModelConfig` and records it with the `Task` (which learner class,
loss and data processing the model goes with) in `learn.export_info`; `Learner.export` adds the data
processing (`dls.export_info()`). `quickfit.load_learner` finds the application by name, the
configuration and the task among the classes the application registered (quickfit/apps.py), and calls
`task.learner(task.data(info["data"]), config.build(), config)`. Nothing named in a file is imported.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, ClassVar

from torch import nn

__all__ = ["Config", "ModelConfig", "Task", "export_record", "check_image_size", "check_outputs", "MAX_IMAGE_SIDE"]

# The largest image side a file may ask for (a U-Net's dummy pass, an item transform's size): 4096 x 4096 x 3
# floats are 200 MB, a file's 30000 x 30000 would be 10 GB. Raise it here for larger images of your own.
MAX_IMAGE_SIDE = 4096


def check_image_size(name: str, size: Any) -> None:
    """`size` (one side or a list of sides) as whole numbers from 1 to MAX_IMAGE_SIDE, or a ValueError naming `name`."""
    sides = size if isinstance(size, (list, tuple)) else [size]
    ok = 0 < len(sides) <= 3 and all(isinstance(s, int) and not isinstance(s, bool) for s in sides)
    if not ok or not all(1 <= s <= MAX_IMAGE_SIDE for s in sides):
        raise ValueError(
            f"{name} must be one or two image sides from 1 to {MAX_IMAGE_SIDE} pixels "
            f"(quickfit.configs.MAX_IMAGE_SIDE), got {size!r}"
        )


def _type_problem(value: Any, hint: Any) -> str | None:
    """Why `value` (from JSON) is not of the annotated type `hint`, or None. Whole numbers must be >= 0
    (sizes, counts, indices); lists and dicts without an element type are left to `build`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is None or isinstance(hint, typing.TypeVar):
        return None if hint is not None or value is None else "must be null"
    if origin in (typing.Union, types.UnionType):
        problems = [_type_problem(value, a) for a in args]
        return None if any(p is None for p in problems) else next(p for p in problems if p)
    if origin is typing.Literal:
        return None if value in args else f"must be one of {list(args)}"
    if hint is type(None):
        return None if value is None else "must be null"
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number" + (" (not a string)" if isinstance(value, str) else "")
        return None if value >= 0 else "must be >= 0"
    if hint is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"
    if hint is str:
        return None if isinstance(value, str) else "must be a string"
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return "must be a list"
        elem = args[0] if args and (origin is list or (len(args) == 2 and args[1] is Ellipsis)) else None
        if elem is not None:
            for i, v in enumerate(value):
                if (problem := _type_problem(v, elem)) is not None:
                    return f"[{i}] {problem}"
        return None
    if origin is dict or hint is dict:
        return None if isinstance(value, dict) else "must be a JSON object"
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


@dataclass
class Config:
    """A dataclass of JSON values with a class-level `type`, the name under which its App registers it."""

    type: ClassVar[str] = ""
    signed: ClassVar[tuple[str, ...]] = ()  # whole-number fields that may be negative (the others: sizes, counts)

    def to_dict(self) -> dict:
        """`{"type": ..., field: value, ...}`; tuples become lists (JSON has no tuples)."""
        return {"type": self.type, **{f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}}

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """The config `to_dict` described; an unknown key is refused (a file of a newer version, or a typo)."""
        if not is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names - {"type"})
        if unknown:
            raise ValueError(f"{cls.type or cls.__name__}: unknown keys {unknown}; the keys are {sorted(names)}")
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # an annotation that cannot be resolved here: the values are left to build()
            hints = {}
        for k, v in d.items():
            problem = _type_problem(v, hints[k]) if k in hints else None
            if problem is not None and not (problem.endswith(">= 0") and k in cls.signed):
                raise ValueError(f"{cls.type or cls.__name__}: field {k!r} {problem}, got {v!r}")
        try:
            config = cls(**{k: v for k, v in d.items() if k != "type"})
        except TypeError as e:  # a required field missing
            raise ValueError(f"{cls.type or cls.__name__}: {e}") from None
        config.check()
        return config

    def check(self) -> None:
        """Refuse values a file must not hold beyond their types (`from_dict` calls it): e.g. image sizes
        above MAX_IMAGE_SIDE, which would only fail once memory is exhausted."""


@dataclass
class ModelConfig(Config):
    """Everything needed to build a model with fresh weights: `build()` is the only way it is made."""

    def build(self) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__}.build")


@dataclass
class Task(Config):
    """What a model is for, as a learner sees it: the learner class, its loss, its data processing.

    `data(info)` rebuilds the data processing from `dls.export_info()` (no rows: enough for `test_dl`
    and `decode_pred`); `learner(dls, model, config)` wraps the built model, on the CPU."""

    def data(self, info: dict | None) -> Any:
        from quickfit.data.core import DataLoaders

        return DataLoaders([], None)

    def learner(self, dls: Any, model: nn.Module, config: ModelConfig) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.learner")


def check_outputs(classes, n_out: int, field: str) -> None:
    """A loaded model's `field` (its number of outputs) must match the data's `classes` (None: not a classifier):
    a vocabulary shorter than the outputs would fail with an IndexError at predict."""
    if classes is not None and len(classes) != n_out:
        raise ValueError(f"the data's vocabulary has {len(classes)} classes but the model's {field} is {n_out}")


def export_record(app: str, task: Task, model: ModelConfig) -> dict:
    """The `learn.export_info` of a factory's learner: `{"app", "task", "model"}` (the data is added on export)."""
    return {"app": app, "task": task.to_dict(), "model": model.to_dict()}
