"""Which handler serves which task: the registry `quickfit serve` asks (its own handlers, and any a user registers).

    from quickfit.serve import register_handler
    register_handler("my_task", MyHandler)       # MyHandler(learn, limits): a quickfit.serve.Handler

The built-in handlers (vision, rows, text) import the base classes of quickfit/serve/handlers.py; this
module imports them in turn, so the base module imports none of them (no import circle).
"""

from __future__ import annotations

from collections.abc import Callable

from quickfit.serve.handlers import Handler, Limits

__all__ = ["register_handler", "handler_for", "handled_tasks"]


_HANDLERS: dict[str, Callable[..., Handler]] = {}


def register_handler(task_type: str, handler: Callable[..., Handler]) -> None:
    """Serve the exports whose task is `task_type` with `handler(learn, limits)`."""
    _HANDLERS[task_type] = handler


def handled_tasks() -> list[str]:
    _register_builtin()
    return sorted(_HANDLERS)


def handler_for(learn, limits: Limits | None = None) -> Handler:
    """The handler of `learn`'s task (its export's `task.type`)."""
    _register_builtin()
    task = (getattr(learn, "export_info", None) or {}).get("task") or {}
    name = task.get("type")
    if name not in _HANDLERS:
        app = (getattr(learn, "export_info", None) or {}).get("app")
        raise ValueError(
            f"quickfit serve has no page for task {name!r} (application {app!r}); it serves: "
            f"{', '.join(sorted(_HANDLERS))} (quickfit.serve.register_handler adds one)"
        )
    return _HANDLERS[name](learn, limits or Limits())


def _register_builtin() -> None:
    if _HANDLERS.get("images") is not None:
        return
    from quickfit.serve import rows, text, vision

    for module in (vision, rows, text):
        for name, cls in module.HANDLERS.items():
            _HANDLERS.setdefault(name, cls)
