"""The collab application as the engine sees it: how `load_learner` rebuilds it and what `quickfit
predict` does with its models: each input is a CSV of (user, item) rows, one rating per row (see
quickfit/apps.py and quickfit/cli_hooks.py).
"""

from __future__ import annotations

from pathlib import Path

from quickfit.apps import App, register_app
from quickfit.cli_hooks import AppCLI, predict_csv_rows
from quickfit.collab.learner import learner_from_export

__all__ = ["APP", "CLI"]

CLI = AppCLI(
    predict=predict_csv_rows,
    predict_inputs="CSV files of (user, item) rows (one rating per row)",
    accepts=lambda item: Path(item).suffix.lower() == ".csv",
)

APP = register_app(App("collab", learner_from_export=learner_from_export, cli=CLI))
