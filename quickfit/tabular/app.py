"""The tabular application as the engine sees it: the model configuration and task `load_learner`
rebuilds its learners from, and its `quickfit` command-line hooks (see quickfit/apps.py and quickfit/cli_hooks.py).

    quickfit train housing.csv --target median_house_value
    quickfit predict model.qf new_rows.csv
"""

from __future__ import annotations

from pathlib import Path

from quickfit.apps import App, register_app
from quickfit.cli_hooks import AppCLI, Option, TrainRequest, predict_csv_rows
from quickfit.tabular.learner import TabularTask
from quickfit.tabular.model import TabularModelConfig

__all__ = ["APP", "CLI"]


def _train(req: TrainRequest) -> dict:
    from quickfit.tabular.cli import train_request

    return train_request(req)


def _tune(req: TrainRequest):
    from quickfit.tabular.cli import tune_request

    return tune_request(req)


def _lr_find(req: TrainRequest):
    from quickfit.tabular.cli import lr_find_request

    return lr_find_request(req)


CLI = AppCLI(
    data_kind="CSV files",
    trains_on="a .csv file",
    claims=lambda path: Path(path).is_file() and Path(path).suffix.lower() == ".csv",
    train=_train,
    lr_find=_lr_find,
    tune=_tune,
    options=(
        Option("--target", "the column to predict (required)", metavar="COLUMN"),
        Option(
            "--log-y",
            "learn a positive, skewed regression target (prices, counts) as its logarithm",
            flag_only=True,
        ),
        Option(
            "--y-block",
            "classification or regression (default: a float target, or an integer one with more than 20 "
            "values, is a regression)",
            choices=("category", "regression"),
        ),
    ),
    epochs=5,
    epochs_help="epochs of fit_one_cycle",
    predict=predict_csv_rows,
    predict_inputs="CSV files of rows (one prediction per row)",
    accepts=lambda item: Path(item).suffix.lower() == ".csv",
)

APP = register_app(App("tabular", models=(TabularModelConfig,), tasks=(TabularTask,), cli=CLI))
