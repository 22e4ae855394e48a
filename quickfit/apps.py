"""Applications register here what the engine needs to know of them; the engine names none of them.

    from quickfit.apps import App, register_app
    register_app(App("points", models=(PointModel,), tasks=(PointTask,)))

An export file records its application's name (`export_info["app"]`) and the `type` names of its
model configuration and task (quickfit/configs.py); `load_learner` looks the application up among the
registered ones, and the two names among the classes that application registered, and rebuilds the
learner from them. quickfit's own applications (and any installed package) declare themselves as
entry points of the group `quickfit.apps` in their package metadata, so they are found without being
imported first; a name read from a file is only ever matched against these lists, never imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from quickfit.configs import Config, ModelConfig, Task

__all__ = ["App", "register_app", "get_app", "app_names", "all_apps"]

ENTRY_POINT_GROUP = "quickfit.apps"


@dataclass(frozen=True)
class App:
    """What one application gives the engine.

    `models`: its `ModelConfig` classes, `tasks`: its `Task` classes (quickfit/configs.py), the only
    ones `load_learner` builds from this application's files; `cli` is the application's command-line
    hooks (see quickfit/cli.py), or None.
    """

    name: str
    models: Sequence[type[ModelConfig]] = ()
    tasks: Sequence[type[Task]] = ()
    cli: Any = None

    def model_config(self, d: Any) -> ModelConfig:
        """The configuration `d` (a dict with a registered `type`) describes."""
        return _lookup(self, self.models, d, "model")

    def task(self, d: Any) -> Task:
        """The task `d` (a dict with a registered `type`) describes."""
        return _lookup(self, self.tasks, d, "task")


def _lookup(app: App, classes: Sequence[type[Config]], d: Any, what: str) -> Any:
    by_name = {c.type: c for c in classes}
    name = d.get("type") if isinstance(d, dict) else None
    if not isinstance(name, str) or name not in by_name:
        raise ValueError(f"application {app.name!r} has no {what} of type {name!r} (its {what}s: {sorted(by_name)})")
    return by_name[name].from_dict(d)


_registered: dict[str, App] = {}


def register_app(app: App) -> App:
    """Make `app` known to `load_learner` and the CLI (an application's package does this on import)."""
    if not isinstance(app, App):
        raise TypeError(f"register_app takes an App, got {type(app).__name__}")
    _registered[app.name] = app
    return app


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def app_names() -> list[str]:
    """Every application known: registered in this process or installed as an entry point."""
    return sorted(set(_registered) | set(_entry_points()))


def get_app(name: str) -> App | None:
    """The application called `name`, loading its installed entry point if needed; None if unknown."""
    if name in _registered:
        return _registered[name]
    ep = _entry_points().get(name)
    if ep is None:
        return None
    app = ep.load()
    if not isinstance(app, App):
        raise TypeError(f"the entry point {ep.value!r} of application {name!r} is not a quickfit.apps.App")
    return register_app(app)


def all_apps() -> list[App]:
    """Every known application, loaded (the CLI asks each one whether it handles a path)."""
    return [app for app in (get_app(n) for n in app_names()) if app is not None]
