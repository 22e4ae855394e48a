"""Applications register here what the engine needs to know of them; the engine names none of them.

    from quickfit.apps import App, register_app
    register_app(App("points", learner_from_export=my_learner_from_export))

An export file records its application's name (`export_info["app"]`); `load_learner` looks that name
up among the registered applications and calls its `learner_from_export(info)` to rebuild the model
and data processing. quickfit's own applications (and any installed package) declare themselves as
entry points of the group `quickfit.apps` in their package metadata, so they are found without being
imported first; a name read from a file is only ever matched against that list, never imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

__all__ = ["App", "register_app", "get_app", "app_names", "all_apps"]

ENTRY_POINT_GROUP = "quickfit.apps"


@dataclass(frozen=True)
class App:
    """What one application gives the engine.

    `learner_from_export(info)` rebuilds a Learner (model + data processing, no weights) from an
    export's JSON; `cli` is the application's command-line hooks (see quickfit/cli.py), or None.
    """

    name: str
    learner_from_export: Callable[[dict], Any]
    cli: Any = None


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
