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

from dataclasses import dataclass, fields, is_dataclass
from typing import Any, ClassVar

from torch import nn

__all__ = ["Config", "ModelConfig", "Task", "export_record"]


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
        return cls(**{k: v for k, v in d.items() if k != "type"})


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


def export_record(app: str, task: Task, model: ModelConfig) -> dict:
    """The `learn.export_info` of a factory's learner: `{"app", "task", "model"}` (the data is added on export)."""
    return {"app": app, "task": task.to_dict(), "model": model.to_dict()}
