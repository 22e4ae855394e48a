"""The `quickfit` command: demo, lr-find, train and predict.

    quickfit demo                                    # digits CNN: lr_find, fit_one_cycle, plots (no download)
    quickfit lr-find                                 # the learning-rate finder on the demo data
    quickfit train data.csv --target salary          # tabular model from a CSV, exported to model.qf
    quickfit train images/ --arch efficientnet_lite0 # image classifier from a folder (train/, valid/)
    quickfit predict model.qf new_rows.csv           # predictions of any exported model

`main(argv)` returns the exit status (0 ok, 1 the command failed, 2 bad arguments or a missing
optional dependency), so tests call it directly. torch and the applications are imported inside the
commands: `quickfit --help` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["CommandError", "build_parser", "main", "predict_files", "train_csv"]

DEFAULT_ARCH = "efficientnet_lite0"


class CommandError(Exception):
    """A command cannot run as asked; `main` prints the message and exits with `code`."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "not installed"
    try:
        own = version("quickfit")
    except PackageNotFoundError:  # running from a source tree that is not installed
        from quickfit import __version__ as own
    return f"quickfit {own} (torch {torch_version})"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


# ---- demo and lr-find ------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from quickfit.demo import run_demo

    run_demo(epochs=args.epochs, seed=args.seed, out=args.out, progress=args.progress, lr=args.lr)
    return 0


def _cmd_lr_find(args: argparse.Namespace) -> int:
    from quickfit.demo import one_thread, save_figure

    if args.path is None:
        from quickfit.demo import digits_learner

        with one_thread():  # the demo's tiny CNN: see one_thread
            learn = digits_learner(seed=args.seed, progress=args.progress)
            suggested = learn.lr_find(num_it=args.num_it, show_plot=False)
        source = "the demo data (scikit-learn digits)"
    else:
        path = _existing(args.path, "data")
        if path.suffix.lower() != ".csv":
            raise CommandError(f"lr-find takes a CSV file (or nothing, for the demo data); got {path}")
        learn = _tabular_learner(path, args.target, args.seed, args.progress)
        suggested = learn.lr_find(num_it=args.num_it, show_plot=False)
        source = str(path)
    print(f"lr_find on {source}:")
    for name, lr in suggested._asdict().items():
        print(f"  {name:<8} {lr:.2e}")
    plot = save_figure(learn.recorder.plot_lr_find(), Path(args.out) / "lr_find.png")
    print(f"plot saved to {plot.resolve()}")
    return 0


# ---- train ---------------------------------------------------------------------------------------------
def _existing(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CommandError(f"no such {what} file or folder: {p}")
    return p


def _csv_columns(path: Path) -> list[str]:
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return next(csv.reader(f), [])


def _tabular_learner(path: Path, target: str | None, seed: int, progress: bool | None):
    columns = _csv_columns(path)
    if target is None:
        raise CommandError(f"a CSV needs --target COLUMN, the column to predict ({path} has columns {columns})")
    if target not in columns:
        raise CommandError(f"--target {target!r} is not a column of {path} (its columns: {columns})")
    from quickfit.extras import require
    from quickfit.seed import set_seed

    tabular = require("quickfit.tabular", package="pandas", extra="tabular", what="training on a CSV")
    set_seed(seed)
    dls = tabular.TabularDataLoaders.from_csv(path, y_names=target, seed=seed)
    learn = tabular.tabular_learner(dls)
    learn.progress_cb.enabled = progress
    return learn


def train_csv(
    path: str | Path,
    target: str,
    epochs: int = 5,
    out: str | Path = "model.qf",
    seed: int = 42,
    lr: float | None = None,
    progress: bool | None = None,
) -> dict:
    """Train a tabular model on a CSV (a random 20% of the rows for validation), export it to `out`.

    The learning rate is lr_find's `valley` unless `lr` is given. Returns the final `valid_loss`,
    the metric (`accuracy` for classification, `rmse` for regression), the `lr` and the `model` path.
    """
    learn = _tabular_learner(Path(path), target, seed, progress)
    if lr is None:
        lr = learn.lr_find(show_plot=False).valley
        print(f"lr_find: valley {lr:.2e}")
    print(f"fit_one_cycle({epochs}, lr_max={lr:.2e})")
    learn.fit_one_cycle(epochs, lr)
    model = learn.export(out)
    print(f"model saved to {model.resolve()}")
    names = learn.recorder.names[2:-1]  # valid_loss and the metrics
    result = dict(zip(names, learn.recorder.values[-1][2:-1]))
    return {**result, "lr": lr, "model": model}


def _cmd_train(args: argparse.Namespace) -> int:
    path = _existing(args.path, "data")
    if path.is_file() and path.suffix.lower() == ".csv":
        if args.arch is not None or args.size is not None:
            raise CommandError("--arch and --size are for image folders; a CSV trains a tabular model")
        train_csv(path, args.target, args.epochs, args.out, args.seed, args.lr, args.progress)
        return 0
    if not path.is_dir():
        raise CommandError(f"train takes an image folder or a .csv file; got {path}")
    if args.target is not None or args.lr is not None:
        raise CommandError("--target and --lr are for CSV files; an image folder is labelled by its subfolders")
    vision_cli = _vision_cli("train")
    vision_cli.train_command(path, args.arch or DEFAULT_ARCH, args.epochs, args.size or 224, args.out)
    return 0


def _vision_cli(command: str):
    """`quickfit.vision.cli` (the vision application's commands), or an error saying what is missing."""
    from quickfit.extras import MissingExtraError

    try:
        return importlib.import_module("quickfit.vision.cli")
    except ModuleNotFoundError as e:
        if e.name in ("quickfit.vision", "quickfit.vision.cli"):
            raise CommandError(
                f"{command} on images is not available in this version of quickfit (no quickfit.vision.cli)"
            ) from None
        raise MissingExtraError(
            f'quickfit {command} on images needs {e.name}, which is not installed: pip install "quickfit[vision]"'
        ) from None


# ---- predict ---------------------------------------------------------------------------------------------
def _export_info(model: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(model), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("quickfit", "{}"))
    except Exception as e:  # safetensors raises its own error types for a file of another format
        raise CommandError(f"{model} is not a model exported by quickfit (learn.export): {e}") from None


def _format(pred) -> str:
    """`(label, index, probabilities)` -> "label (probability 0.93)"; a number -> 4 significant digits."""
    if isinstance(pred, tuple) and len(pred) == 3 and hasattr(pred[2], "shape"):
        label, idx, probs = pred
        if probs.ndim == 1:
            return f"{label} (probability {float(probs[idx]):.3f})"
        return str(label)
    if isinstance(pred, float):
        return f"{pred:.4g}"
    if isinstance(pred, dict):
        return ", ".join(f"{k}={_format(v)}" for k, v in pred.items())
    return str(pred)


def predict_files(model: str | Path, inputs: Sequence[str]) -> list[tuple[str, object]]:
    """Predictions of an exported model, printed one per line and returned as `(input, prediction)`.

    A `.csv` input holds rows (tabular, collaborative filtering): one prediction per row, named
    `file:row`. Images go to the vision application. Anything else is passed to `learn.predict`
    (for text: the content of a text file, or the argument itself).
    """
    model = Path(model)
    if not model.is_file():
        raise CommandError(f"no model file {model} (export one with learn.export or quickfit train)")
    app = _export_info(model).get("app")
    needs_files = app != "text"
    missing = [i for i in inputs if needs_files and not Path(i).exists()]
    if missing:
        raise CommandError(f"no such input file(s): {', '.join(missing)}")
    if app == "vision":
        _vision_cli("predict").predict_command(model, [Path(i) for i in inputs])
        return []
    from quickfit.learner import load_learner

    if app is None:
        raise CommandError(f"{model} was exported from a plain Learner (no application): load it in Python instead")
    learn = load_learner(model)
    results = []
    for item in inputs:
        path = Path(item)
        if path.suffix.lower() == ".csv" and app in ("tabular", "collab"):
            import pandas as pd

            rows = pd.read_csv(path)
            preds, _ = learn.get_preds(dl=learn.dls.test_dl(rows), progress=False)
            named = [(f"{item}:{i}", learn.dls.decode_pred(p)) for i, p in enumerate(preds)]
        elif app == "text" and path.is_file():
            named = [(item, learn.predict(path.read_text(encoding="utf-8")))]
        else:
            named = [(item, learn.predict(item))]
        for name, pred in named:
            print(f"{name}: {_format(pred)}")
        results.extend(named)
    return results


def _cmd_predict(args: argparse.Namespace) -> int:
    predict_files(args.model, args.inputs)
    return 0


# ---- the parser ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quickfit",
        description="quickfit: the fast.ai course's practice as defaults, on plain PyTorch.",
        epilog="Run 'quickfit COMMAND --help' for the options of a command. Documentation: docs/cli.md",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def progress_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--no-progress",
            dest="progress",
            action="store_const",
            const=False,
            default=None,
            help="no progress bars (they are shown only on a terminal anyway)",
        )

    demo = commands.add_parser(
        "demo",
        help="train a small CNN on scikit-learn's handwritten digits (no download), save plots",
        description="Train a small CNN on scikit-learn's 1,797 handwritten 8x8 digits (a seeded 80/20 split): "
        "print lr_find's suggestion, run fit_one_cycle with the epoch table (~99% validation accuracy), "
        "save loss.png, schedule.png and lr_find.png. Needs scikit-learn: pip install 'quickfit[demo]'.",
    )
    demo.add_argument("--epochs", type=_positive_int, default=8, help="epochs of fit_one_cycle (default 8)")
    demo.add_argument("--seed", type=int, default=42, help="seed of the split, the weights and the shuffling")
    demo.add_argument("--out", default="quickfit-demo", help="folder for the PNG plots (default ./quickfit-demo)")
    demo.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default: lr_find's valley)")
    progress_option(demo)
    demo.set_defaults(run=_cmd_demo)

    lr_find = commands.add_parser(
        "lr-find",
        help="run the learning-rate finder (on the demo data, or a CSV) and save its plot",
        description="Sweep the learning rate exponentially over a few batches, print the suggested rates "
        "(valley, steep, minimum) and save the loss-vs-lr plot. Without PATH: the demo's digits CNN.",
    )
    lr_find.add_argument("path", nargs="?", default=None, metavar="PATH", help="a CSV file (default: demo data)")
    lr_find.add_argument("--target", default=None, metavar="COLUMN", help="the column to predict (CSV)")
    lr_find.add_argument("--num-it", type=_positive_int, default=100, help="batches in the sweep (default 100)")
    lr_find.add_argument("--seed", type=int, default=42, help="seed of the split and the weights")
    lr_find.add_argument("--out", default="quickfit-demo", help="folder for lr_find.png (default ./quickfit-demo)")
    progress_option(lr_find)
    lr_find.set_defaults(run=_cmd_lr_find)

    train = commands.add_parser(
        "train",
        help="train on an image folder or a CSV file and export the model",
        description="Train a model and export it (one safetensors file, no pickle) for 'quickfit predict'. "
        "An image folder (labels = subfolder names; train/ and valid/ subfolders or a random 20% split) "
        "trains a pretrained CNN (pip install 'quickfit[vision]'); a .csv file trains a tabular model "
        "predicting --target (pip install 'quickfit[tabular]'). The learning rate comes from lr_find.",
    )
    train.add_argument("path", metavar="PATH", help="an image folder or a .csv file")
    train.add_argument("--epochs", type=_positive_int, default=5, help="epochs of fit_one_cycle (default 5)")
    train.add_argument("--out", default="model.qf", help="the exported model file (default model.qf)")
    train.add_argument("--seed", type=int, default=42, help="seed of the split and the weights (CSV)")
    images = train.add_argument_group("image folders")
    images.add_argument("--arch", default=None, help=f"model architecture (default {DEFAULT_ARCH})")
    images.add_argument("--size", type=_positive_int, default=None, help="image size in pixels (default 224)")
    table = train.add_argument_group("CSV files")
    table.add_argument("--target", default=None, metavar="COLUMN", help="the column to predict (required)")
    table.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default: lr_find's valley)")
    progress_option(train)
    train.set_defaults(run=_cmd_train)

    predict = commands.add_parser(
        "predict",
        help="print the predictions of an exported model for images or rows of a CSV",
        description="Load a model written by 'quickfit train' or learn.export and print one prediction per "
        "input: per image for an image model, per row for a .csv input to a tabular or collaborative "
        "filtering model, per text (a text file or the argument itself) for a text model.",
    )
    predict.add_argument("model", metavar="MODEL", help="the exported model (.qf)")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, CSV files of rows, or texts")
    predict.set_defaults(run=_cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `quickfit` command with `argv` (default: the process's arguments); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help, --version and bad arguments; return its status
        return e.code if isinstance(e.code, int) else 2
    from quickfit.extras import MissingExtraError

    prog = f"quickfit {args.command}"
    try:
        return args.run(args)
    except (CommandError, MissingExtraError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return getattr(e, "code", 2)
    except (OSError, KeyError, ValueError) as e:  # bad data found while running: no traceback
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
