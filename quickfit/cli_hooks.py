"""What an application gives the `quickfit` command: the `cli` of its `quickfit.apps.App`.

    from quickfit.apps import App, register_app
    from quickfit.cli_hooks import AppCLI, Option

    def train_points(req):                      # req: a TrainRequest (path, epochs, lr, out, seed, options)
        learn = points_learner(PointsDataLoaders.from_folder(req.path, size=req.options["size"]))
        learn.fit_one_cycle(req.epochs, req.lr or learn.lr_find(show_plot=False).valley)
        return {"model": learn.export(req.out)}

    def predict_points(model, inputs):           # the exported model's path, the INPUT arguments
        learn = qf.load_learner(model)
        return print_predictions([(i, learn.predict(i)) for i in inputs])

    register_app(App("points", models=(PointModel,), tasks=(PointTask,), cli=AppCLI(
        trains_on="a folder of images with a points.json",
        data_kind="folders of points",
        claims=lambda path: (path / "points.json").is_file(),
        train=train_points,
        options=(Option("--size", type=int, default=224, help="image size in pixels"),),
        predict=predict_points,
        predict_inputs="image files",
        accepts=lambda item: item.lower().endswith((".jpg", ".png")))))

`quickfit train PATH` asks every application whether it `claims` PATH (`--app NAME` picks one) and
calls its `train`; `quickfit predict MODEL INPUT...` reads the application's name from the export and
calls its `predict`, after checking the inputs exist (when `inputs_are_files`) and are ones it
`accepts`. An application's `options` appear under its name in `quickfit train --help`; they are
refused for a PATH another application trains on. The command names no application itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AppCLI",
    "CommandError",
    "Option",
    "TrainRequest",
    "TuneSpec",
    "format_prediction",
    "import_command_module",
    "positive_int",
    "predict_csv_rows",
    "print_predictions",
]


class CommandError(Exception):
    """A command cannot run as asked; `quickfit.cli.main` prints the message (one line) and exits with `code`."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def positive_int(text: str) -> int:
    """An argparse `type`: a whole number of at least 1, or a message saying what was wrong."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class Option:
    """One option of an application's `quickfit train` (and `lr-find`): an argparse argument.

    `default` is the application's default, shown in the help and filled into `TrainRequest.options`
    when the option is not given (argparse itself stores None, so the command knows what was given).
    """

    flag: str
    help: str
    type: Callable[[str], Any] | None = None
    default: Any = None
    metavar: str | None = None
    choices: Sequence[Any] | None = None
    flag_only: bool = False  # a switch (`--log-y`): True when given

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def add_to(self, group: argparse._ArgumentGroup) -> None:
        help = self.help if self.default is None else f"{self.help} (default {self.default})"
        kwargs: dict[str, Any] = {"default": None, "help": help, "dest": self.dest}
        if self.flag_only:
            kwargs.update(action="store_const", const=True)
        elif self.type is not None:
            kwargs["type"] = self.type
        if self.metavar is not None:
            kwargs["metavar"] = self.metavar
        if self.choices is not None:
            kwargs["choices"] = list(self.choices)
        group.add_argument(self.flag, **kwargs)


@dataclass(frozen=True)
class TrainRequest:
    """What `quickfit train` (or `lr-find`) asks of an application.

    `epochs` is the number the user gave, or the application's `AppCLI.epochs`; `lr` None means "find
    one" (lr_find); `options` maps each of the application's `Option.dest` to its value or default.
    """

    path: Path
    epochs: int
    lr: float | None = None
    out: str | Path = "model.qf"
    seed: int = 42
    progress: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TuneSpec:
    """What an application's `tune` hook gives `quickfit tune`: `objective(params) -> float` (trains a
    learner on the request's data with `params`), the default `space` (`qf.Uniform`, `qf.LogUniform`,
    `qf.Int`, `qf.Choice` by name), the `metric` it returns and whether to "maximize" or "minimize" it."""

    objective: Callable[[dict], float]
    space: dict[str, Any]
    metric: str
    direction: str = "maximize"


@dataclass(frozen=True)
class AppCLI:
    """An application's command-line hooks (all optional but `trains_on` / `predict_inputs`).

    - `trains_on`: what PATH of `quickfit train` it trains on, in words ("an image folder (...)");
      `data_kind`: the same in short, plural ("image folders"), for messages.
    - `claims(path)`: True for a PATH it trains on (an existing file or folder).
    - `train(request) -> dict`: trains, prints its progress and result, exports to `request.out`;
      returns at least `{"model": path}` (plus final metrics).
    - `lr_find(request) -> Learner`: the learner `quickfit lr-find PATH` sweeps (None: not offered).
    - `tune(request) -> TuneSpec`: what `quickfit tune PATH` searches (None: not offered).
    - `options`: its own options of `train` / `lr-find`; `epochs` / `epochs_help`: its default number
      of epochs and what one `--epochs` counts.
    - `predict(model, inputs) -> [(input, prediction)]`: loads the export `model` and prints one line
      per prediction (see `print_predictions`); `predict_inputs`: what INPUT is, in words;
      `inputs_are_files`: inputs must exist; `accepts(input)`: False for an input of the wrong kind.
    """

    trains_on: str = ""
    data_kind: str = ""
    claims: Callable[[Path], bool] | None = None
    train: Callable[[TrainRequest], dict] | None = None
    lr_find: Callable[[TrainRequest], Any] | None = None
    tune: Callable[[TrainRequest], TuneSpec] | None = None
    options: tuple[Option, ...] = ()
    epochs: int = 5
    epochs_help: str = "epochs of fit_one_cycle"
    predict: Callable[[Path, list[str]], list[tuple[str, Any]]] | None = None
    predict_inputs: str = ""
    inputs_are_files: bool = True
    accepts: Callable[[str], bool] | None = None


def format_prediction(pred: Any) -> str:
    """`(label, index, probabilities)` -> "label (probability 0.930)"; a float -> 6 significant digits."""
    if isinstance(pred, tuple) and len(pred) == 3 and hasattr(pred[2], "shape"):
        label, idx, probs = pred
        if probs.ndim == 1 and isinstance(idx, int):
            return f"{label} (probability {float(probs[idx]):.3f})"
        return str(label)
    if isinstance(pred, float):
        return f"{pred:.6g}"
    if isinstance(pred, dict):
        return ", ".join(f"{k}={format_prediction(v)}" for k, v in pred.items())
    return str(pred)


def print_predictions(named: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Print `name: prediction` per line (flushed as it goes) and return the list."""
    for name, pred in named:
        print(f"{name}: {format_prediction(pred)}", flush=True)
    return list(named)


def predict_csv_rows(model: Path, inputs: Sequence[str]) -> list[tuple[str, Any]]:
    """`predict` for models of rows (tabular, collaborative filtering): each input is a CSV, each of its
    rows one prediction named `file:row`, through `learn.dls.test_dl(DataFrame)` and `decode_pred`."""
    import pandas as pd

    from quickfit.loading import load_learner

    learn = load_learner(model)
    results = []
    for item in inputs:
        try:
            rows = pd.read_csv(item)
        except (ValueError, UnicodeDecodeError) as e:  # pandas' ParserError is a ValueError
            raise CommandError(f"{item} could not be read as a CSV file: {' '.join(str(e).split())}", code=1) from None
        if len(rows) == 0:
            raise CommandError(f"{item} has no rows to predict", code=1)
        preds, _ = learn.get_preds(dl=learn.dls.test_dl(rows), progress=False)
        results += print_predictions([(f"{item}:{i}", learn.dls.decode_pred(p)) for i, p in enumerate(preds)])
    return results


def import_command_module(name: str, what: str, extra: str):
    """Import `name` (an application's command module) or say, in a `CommandError`, what is missing."""
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is None or name == e.name or name.startswith(f"{e.name}."):
            raise CommandError(f"{what} is not available in this version of quickfit (no {name})") from None
        raise CommandError(f'{what} needs {e.name}, which is not installed: pip install "quickfit[{extra}]"') from None
