"""The `quickfit` command: demo, lr-find, train, predict and serve.

    quickfit demo                                    # digits CNN: lr_find, fit_one_cycle, plots (no download)
    quickfit lr-find                                 # the learning-rate finder on the demo data
    quickfit train data.csv --target salary          # tabular model from a CSV, exported to model.qf
    quickfit train images/ --arch efficientnet_lite0 # image classifier from a folder (train/, valid/)
    quickfit predict model.qf new_rows.csv           # predictions of any exported model
    quickfit serve model.qf                          # a web page and a JSON API at http://127.0.0.1:8000

The command names no application: `train` and `lr-find` ask each registered application (see
quickfit/apps.py and the `AppCLI` hooks of quickfit/cli_hooks.py) whether it claims PATH, and
`predict` hands the inputs to the application named in the export. `main(argv)` returns the exit
status (0 ok, 1 the command failed on the data, 2 bad arguments, missing files or a missing optional
dependency), so tests call it directly; every error is one line on stderr (set QUICKFIT_DEBUG=1 for
the traceback). The applications are loaded only for the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from quickfit.cli_hooks import CommandError, TrainRequest, positive_int

__all__ = ["CommandError", "build_parser", "main", "predict_files"]

APP_COMMANDS = ("train", "lr-find", "tune")  # the commands whose options come from the applications
_HOOKS = {"train": "train", "lr-find": "lr_find", "tune": "tune"}  # command -> its AppCLI hook


def _one_line(e: BaseException) -> str:
    """An exception's message on one line (KeyError's quotes dropped; multi-line messages joined)."""
    text = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 else str(e)
    text = " ".join(str(text).split()) or type(e).__name__
    return text


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line a command's user reads (`quickfit: warning: ...`), not Python's
    `file:line: Category` with the source line of the `quickfit` script."""
    print(f"quickfit: warning: {' '.join(str(message).split())}", file=sys.stderr if file is None else file)


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


_positive_int = positive_int


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


# ---- demo ------------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from quickfit.demo import run_demo

    run_demo(epochs=args.epochs, seed=args.seed, out=args.out, progress=args.progress, lr=args.lr)
    return 0


# ---- the applications ------------------------------------------------------------------------------
def _load_apps() -> tuple[list, dict[str, str]]:
    """The applications with command-line hooks, and `{name: why}` for those that could not be loaded."""
    from quickfit.apps import app_names, get_app

    apps, failed = [], {}
    for name in app_names():
        try:
            app = get_app(name)
        except Exception as e:  # an application whose optional dependencies are missing, say
            failed[name] = _one_line(e)
            continue
        if app is not None and app.cli is not None:
            apps.append(app)
    return apps, failed


def _existing(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CommandError(f"no such {what} file or folder: {p}")
    return p


def _options_listing(flags: list[str]) -> str:
    if len(flags) == 1:
        return f"the option {flags[0]} is"
    return f"the options {', '.join(flags[:-1])} and {flags[-1]} are"


def _app_for(args: argparse.Namespace, command: str):
    """The application that trains on `args.path` (`--app` or the one that claims it) and its request."""
    path = _existing(args.path, "data")
    apps = [a for a in args.apps if getattr(a.cli, _HOOKS[command]) is not None]
    if args.app is not None:
        chosen = [a for a in apps if a.name == args.app]
    else:
        chosen = [a for a in apps if a.cli.claims is not None and a.cli.claims(path)]
    if not chosen:
        kinds = " or ".join(a.cli.trains_on for a in apps if a.cli.trains_on) or "nothing (no application installed)"
        missing = "".join(f"; {name} is not available ({why})" for name, why in args.failed_apps.items())
        raise CommandError(f"{command} takes {kinds}; got {path}{missing}")
    if len(chosen) > 1:
        names = ", ".join(a.name for a in chosen)
        raise CommandError(f"{path} can be trained by several applications ({names}): pick one with --app NAME")
    app = chosen[0]
    own = {o.dest for o in app.cli.options}
    for other in apps:
        given = [o.flag for o in other.cli.options if o.dest not in own and getattr(args, o.dest, None) is not None]
        if given:
            raise CommandError(
                f"{given[0]}: {_options_listing([o.flag for o in other.cli.options if o.dest not in own])} for "
                f"{other.cli.data_kind or other.cli.trains_on}; {path} trains a {app.name} model"
            )
    given = {o.dest: getattr(args, o.dest, None) for o in app.cli.options}
    options = {o.dest: o.default if given[o.dest] is None else given[o.dest] for o in app.cli.options}
    request = TrainRequest(
        path=path,
        epochs=getattr(args, "epochs", None) or app.cli.epochs,
        lr=getattr(args, "lr", None),
        out=args.out,
        seed=args.seed,
        progress=args.progress,
        options=options,
    )
    return app, request


# ---- lr-find ---------------------------------------------------------------------------------------------
def _cmd_lr_find(args: argparse.Namespace) -> int:
    from quickfit.demo import one_thread, save_figure

    if args.path is None:
        from quickfit.demo import digits_learner

        with one_thread():  # the demo's tiny CNN: see one_thread
            learn = digits_learner(seed=args.seed, progress=args.progress)
            suggested = learn.lr_find(num_it=args.num_it, show_plot=False)
        source = "the demo data (scikit-learn digits)"
    else:
        app, request = _app_for(args, "lr-find")
        learn = app.cli.lr_find(request)
        suggested = learn.lr_find(num_it=args.num_it, show_plot=False)
        source = str(request.path)
    print(f"lr_find on {source}:")
    for name, lr in suggested._asdict().items():
        print(f"  {name:<8} {lr:.2e}")
    out = args.out if args.out is not None else ("quickfit-demo" if args.path is None else ".")
    plot = save_figure(learn.recorder.plot_lr_find(), Path(out) / "lr_find.png")
    print(f"plot saved to {plot.resolve()}")
    return 0


# ---- train ---------------------------------------------------------------------------------------------
def _cmd_train(args: argparse.Namespace) -> int:
    app, request = _app_for(args, "train")
    app.cli.train(request)
    return 0


# ---- tune ----------------------------------------------------------------------------------------------
def _cmd_tune(args: argparse.Namespace) -> int:
    from quickfit.tuning import tune

    app, request = _app_for(args, "tune")
    spec = app.cli.tune(request)
    where = f"in {args.storage} (study {args.study!r})" if args.storage else "in memory"
    print(f"tune: {args.trials} trials of the {args.sampler} sampler {where}, {spec.direction} {spec.metric}")
    result = tune(spec.objective, spec.space, n_trials=args.trials, sampler=args.sampler, storage=args.storage,
                  seed=args.seed, direction=spec.direction, study=args.study)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.trials.to_csv(out / "trials.csv", index=False)
    result.plot_history().savefig(out / "history.png")
    if len(result.trials) >= 3:  # the importance needs a few finished trials
        result.plot_importance().savefig(out / "importance.png")
    print(f"best {spec.metric} {result.best_value:.6g} with {result.best_params}")
    print(f"trials table and plots saved to {out.resolve()}")
    return 0


# ---- predict ---------------------------------------------------------------------------------------------
def _export_info(model: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(model), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("quickfit", "{}"))
    except Exception as e:  # safetensors raises its own error types for a file of another format
        raise CommandError(f"{model} is not a model exported by quickfit (learn.export): {_one_line(e)}") from None


def predict_files(model: str | Path, inputs: Sequence[str]) -> list[tuple[str, object]]:
    """Predictions of an exported model, printed one per line and returned as `(input, prediction)`.

    The export names its application; that application's `predict` hook reads the inputs (image
    files, CSV files of rows, texts: see each application's `AppCLI`).
    """
    from quickfit.apps import app_names, get_app

    model = Path(model)
    if not model.is_file():
        raise CommandError(f"no model file {model} (export one with learn.export or quickfit train)")
    name = _export_info(model).get("app")
    if name is None:
        raise CommandError(f"{model} was exported from a plain Learner (no application): load it in Python instead")
    app = get_app(name) if isinstance(name, str) else None
    if app is None:
        raise CommandError(f"{model} names an unknown application {name!r} (known: {', '.join(app_names())})")
    hooks = app.cli
    if hooks is None or hooks.predict is None:
        raise CommandError(f"{model} is a {name} model, and the {name} application has no command-line predict")
    inputs = [str(i) for i in inputs]
    if hooks.inputs_are_files:
        missing = [i for i in inputs if not Path(i).exists()]
        if missing:
            raise CommandError(f"no such input file(s): {', '.join(missing)}")
    if hooks.accepts is not None:
        wrong = [i for i in inputs if not hooks.accepts(i)]
        if wrong:
            raise CommandError(
                f"{wrong[0]}: {model} is a {name} model, which predicts from {hooks.predict_inputs}; "
                f"{'this is' if len(wrong) == 1 else f'{len(wrong)} inputs are'} not one"
            )
    return hooks.predict(model, inputs) or []


def _cmd_predict(args: argparse.Namespace) -> int:
    predict_files(args.model, args.inputs)
    return 0


# ---- serve ---------------------------------------------------------------------------------------------
def _cmd_serve(args: argparse.Namespace) -> int:
    from quickfit.extras import require

    for module, package in (("starlette",) * 2, ("uvicorn",) * 2, ("python_multipart", "python-multipart")):
        require(module, package=package, extra="serve", what="quickfit serve")
    from quickfit.serve.handlers import Limits
    from quickfit.serve.server import serve

    if args.max_wait_ms < 0:
        raise CommandError(f"--max-wait-ms must be 0 or more, got {args.max_wait_ms:g}")
    model = Path(args.model)
    if not model.is_file():
        raise CommandError(f"no model file {model} (export one with learn.export or quickfit train)")
    if _export_info(model).get("app") is None:
        raise CommandError(f"{model} was exported from a plain Learner (no application): serve it from Python")
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=int(args.max_megapixels * 1e6))
    serve(model, args.host, args.port, args.max_batch, args.max_wait_ms, args.threads, limits, args.device)
    return 0


# ---- the parser ------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the message and where to read the usage, no usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(apps: Sequence | None = None, failed_apps: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; `train` and `lr-find` get the options of `apps` (default: every loadable one)."""
    if apps is None:
        apps, failed_apps = _load_apps()
    apps, failed_apps = list(apps), dict(failed_apps or {})
    parser = _Parser(
        prog="quickfit",
        description="quickfit: the fast.ai course's practice as defaults, on plain PyTorch.",
        epilog="Run 'quickfit COMMAND --help' for the options of a command. Documentation: docs/cli.md",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.set_defaults(apps=apps, failed_apps=failed_apps)
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

    def app_options(p: argparse.ArgumentParser, hook: str) -> list:
        """Each application's own options in a group named after it; an option two applications
        declare (say --target) is added once. Returns the applications offering `hook`."""
        offering = [a for a in apps if getattr(a.cli, hook) is not None]
        seen: set[str] = set()
        for app in offering:
            fresh = [o for o in app.cli.options if o.flag not in seen]
            if fresh:
                group = p.add_argument_group(f"{app.name} ({app.cli.trains_on})")
                for o in fresh:
                    o.add_to(group)
                    seen.add(o.flag)
        names = [a.name for a in offering]
        p.add_argument(
            "--app",
            default=None,
            choices=names or None,
            metavar="NAME",
            help=f"the application to use ({', '.join(names) or 'none installed'}; default: the one that claims PATH)",
        )
        return offering

    def trains_on(offering: list) -> str:
        return ", ".join(f"{a.cli.trains_on} ({a.name})" for a in offering) or "no application is installed"

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
        help="run the learning-rate finder (on the demo data, or your data) and save its plot",
        description="Sweep the learning rate exponentially over a few batches, print the suggested rates "
        "(valley, steep, minimum) and save the loss-vs-lr plot. Without PATH: the demo's digits CNN.",
    )
    lr_find.add_argument("path", nargs="?", default=None, metavar="PATH", help="your data (default: the demo data)")
    lr_find.add_argument("--num-it", type=_positive_int, default=100, help="batches in the sweep (default 100)")
    lr_find.add_argument("--seed", type=int, default=42, help="seed of the split and the weights")
    lr_find.add_argument(
        "--out", default=None, help="folder for lr_find.png (default: ./quickfit-demo for the demo data, else .)"
    )
    progress_option(lr_find)
    offering = app_options(lr_find, "lr_find")
    lr_find.description += f" PATH: {trains_on(offering)}."
    lr_find.set_defaults(run=_cmd_lr_find)

    train = commands.add_parser(
        "train",
        help="train on your data (an image folder, a CSV file, ...) and export the model",
        description="Train a model and export it (one safetensors file, no pickle) for 'quickfit predict'. "
        "The learning rate comes from lr_find unless --lr is given.",
    )
    train.add_argument("path", metavar="PATH", help="the data: a folder or a file an application trains on")
    offering = app_options(train, "train")
    epochs = "; ".join(f"{a.name}: {a.cli.epochs_help} (default {a.cli.epochs})" for a in offering)
    train.add_argument("--epochs", type=_positive_int, default=None, metavar="N", help=f"epochs of training. {epochs}")
    train.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default: lr_find's)")
    train.add_argument("--out", default="model.qf", help="the exported model file (default model.qf)")
    train.add_argument("--seed", type=int, default=42, help="seed of the split and the weights (default 42)")
    progress_option(train)
    train.description += f" PATH: {trains_on(offering)}."
    if failed_apps:
        train.description += " Not available: " + "; ".join(f"{n} ({why})" for n, why in failed_apps.items())
    train.set_defaults(run=_cmd_train)

    tune = commands.add_parser(
        "tune",
        help="search hyper-parameters (learning rate, weight decay, dropout, ...) on your data",
        description="Train a model per trial with hyper-parameters chosen by a sampler, print a table of the "
        "trials and the best, save trials.csv, history.png and importance.png. With --storage the study is "
        "kept in a database: run the same command again to resume it, or in several processes to share it. "
        "Needs optuna and scikit-learn: pip install 'quickfit[tune]'.",
    )
    tune.add_argument("path", metavar="PATH", help="the data: a folder or a file an application trains on")
    offering = app_options(tune, "tune")
    epochs = "; ".join(f"{a.name}: {a.cli.epochs_help} (default {a.cli.epochs})" for a in offering)
    tune.add_argument("--epochs", type=_positive_int, default=None, metavar="N", help=f"epochs per trial. {epochs}")
    tune.add_argument("--trials", type=_positive_int, default=20, help="finished trials to reach (default 20)")
    tune.add_argument("--sampler", default="forest", choices=("forest", "tpe", "random"), help="default forest")
    tune.add_argument("--storage", default=None, help="a database URL such as sqlite:///study.db (default: memory)")
    tune.add_argument("--study", default="quickfit", help="the study's name in the storage (default quickfit)")
    tune.add_argument("--out", default="quickfit-tune", help="folder for trials.csv and the plots")
    tune.add_argument("--seed", type=int, default=42, help="seed of the split, the weights and the sampler")
    progress_option(tune)
    tune.description += f" PATH: {trains_on(offering)}."
    tune.set_defaults(run=_cmd_tune)

    predict = commands.add_parser(
        "predict",
        help="print the predictions of an exported model for images, rows of a CSV, texts, ...",
        description="Load a model written by 'quickfit train' or learn.export and print one prediction per "
        "input; the model's application reads the inputs: "
        + ("; ".join(f"{a.name}: {a.cli.predict_inputs}" for a in apps if a.cli.predict is not None) or "any")
        + ".",
    )
    predict.add_argument("model", metavar="MODEL", help="the exported model (.qf)")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, CSV files of rows, or texts")
    predict.set_defaults(run=_cmd_predict)

    serve = commands.add_parser(
        "serve",
        help="serve an exported model: a web page and a JSON API (needs quickfit[serve])",
        description="Load a model written by 'quickfit train' or learn.export and serve it at http://HOST:PORT: "
        "a page to try it (an upload, a form or a text box, as the model takes), and POST /predict, GET /info, "
        "GET /health. Requests arriving together are predicted as one batch. See docs/serving.md.",
    )
    serve.add_argument("model", metavar="MODEL", help="the exported model (.qf)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--max-batch", type=_positive_int, default=16, help="most requests in one batch (default 16)")
    serve.add_argument(
        "--max-wait-ms", type=float, default=10.0, help="longest wait for a batch to fill, in ms (default 10)"
    )
    serve.add_argument("--threads", type=_positive_int, default=None, help="torch threads (default: CPUs, at most 4)")
    serve.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    serve.add_argument("--max-upload-mb", type=_positive_float, default=10.0, help="largest request body (default 10)")
    serve.add_argument(
        "--max-megapixels", type=_positive_float, default=40.0, help="largest image, in megapixels (default 40)"
    )
    serve.set_defaults(run=_cmd_serve)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `quickfit` command with `argv` (default: the process's arguments); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    needs_apps = command in APP_COMMANDS or (command == "predict" and ("-h" in argv or "--help" in argv))

    try:
        parser = build_parser() if needs_apps else build_parser(apps=())
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help, --version and bad arguments; return its status
        return e.code if isinstance(e.code, int) else 2
    prog = f"quickfit {args.command}"
    with warnings.catch_warnings():  # restores Python's own formatter when main() returns (tests call it)
        warnings.showwarning = _show_warning
        return _run(args, prog)


def _run(args: argparse.Namespace, prog: str) -> int:
    from quickfit.extras import MissingExtraError

    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("QUICKFIT_DEBUG"):
            raise
        if isinstance(e, (CommandError, MissingExtraError)):
            code = getattr(e, "code", 2)
            message = _one_line(e)
        else:  # bad data found while running, or a failure inside training: no traceback
            code = 1
            message = _one_line(e)
            if not isinstance(e, (OSError, KeyError, ValueError, TypeError)):
                message = f"{type(e).__name__}: {message}"
        print(f"{prog}: error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
