"""The collab application as the engine sees it: the model configurations and task `load_learner`
rebuilds its learners from, and what `quickfit predict` does with its models: each input is a CSV of
(user, item) rows, one rating per row (see quickfit/apps.py and quickfit/cli_hooks.py).
"""

from __future__ import annotations

from pathlib import Path

from quickfit.apps import App, register_app
from quickfit.cli_hooks import AppCLI, predict_csv_rows
from quickfit.collab.learner import CollabTask
from quickfit.collab.models import DotBiasConfig, EmbeddingNNConfig

__all__ = ["APP", "CLI"]

CLI = AppCLI(
    predict=predict_csv_rows,
    predict_inputs="CSV files of (user, item) rows (one rating per row)",
    accepts=lambda item: Path(item).suffix.lower() == ".csv",
)

APP = register_app(App("collab", models=(DotBiasConfig, EmbeddingNNConfig), tasks=(CollabTask,), cli=CLI))
