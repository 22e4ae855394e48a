"""The vision application as the engine sees it: how `load_learner` rebuilds it (see quickfit/apps.py)."""

from __future__ import annotations

from quickfit.apps import App, register_app
from quickfit.vision.learner import learner_from_export

__all__ = ["APP"]

APP = register_app(App("vision", learner_from_export=learner_from_export))
