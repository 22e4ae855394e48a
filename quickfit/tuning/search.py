"""`qf.tune`: search hyper-parameters with Optuna, in memory or in a database that survives the process.

    import quickfit as qf
    def objective(params):                          # a dict of hyper-parameters -> a validation metric
        learn = make_learner(wd=params["wd"])
        learn.fit_one_cycle(5, params["lr"], cbs=[qf.PruneTrial("accuracy")])
        return learn.recorder.values[-1][3]
    result = qf.tune(objective, {"lr": qf.LogUniform(1e-4, 1e-1), "wd": qf.LogUniform(1e-6, 1e-1)},
                     n_trials=30, sampler="forest", storage="sqlite:///study.db", seed=0)
    result.best_params, result.best_value, result.trials     # trials: a pandas DataFrame
    result.plot_history().savefig("history.png"); result.plot_importance().savefig("importance.png")

Run the same line again after a crash (or kill) and the search goes on: finished trials are read
from the database, never repeated, and only COMPLETE or PRUNED trials count toward `n_trials`. A trial
that was running when its process died stays RUNNING in the database; Optuna's heartbeat (every
`heartbeat` seconds while a trial runs) lets the next process see it as stale after two missed beats
and mark it FAIL. Several processes (or machines, with a database server) given the same `storage`
and `study` share one search: each asks for its own trials until `n_trials` are finished in all.
"""

from __future__ import annotations

import contextvars
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from quickfit.callbacks.core import Callback, Order
from quickfit.extras import require
from quickfit.tuning.space import check_space, decode, suggest

__all__ = ["PruneTrial", "TuneResult", "current_trial", "make_sampler", "tune", "SAMPLERS"]

SAMPLERS = ("forest", "tpe", "random")
_trial: contextvars.ContextVar = contextvars.ContextVar("quickfit_trial", default=None)


def _optuna():
    return require("optuna", package="optuna", extra="tune", what="qf.tune")


def current_trial():
    """The Optuna trial `qf.tune` is running in this thread, or None outside a search."""
    return _trial.get()


def make_sampler(name: str, seed: int | None = None, shared: bool = False):
    """The Optuna sampler called `name`: "forest", "tpe" or "random" (or an Optuna sampler, as it is).

    `shared`: the study lives in a database other processes may use; TPE then counts the trials they
    are running as already done badly (Optuna's "constant liar"), so the processes spread out."""
    optuna = _optuna()
    if isinstance(name, optuna.samplers.BaseSampler):
        return name
    from quickfit.tuning.samplers import ForestSampler, KeyedRandomSampler

    if name == "forest":
        require("sklearn", package="scikit-learn", extra="tune", what='sampler="forest"')
        return ForestSampler(seed=seed)
    if name == "random":
        return KeyedRandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=shared)
    raise ValueError(f"unknown sampler {name!r}: use one of {', '.join(map(repr, SAMPLERS))} or an Optuna sampler")


def _pruner(pruner):
    optuna = _optuna()
    if pruner == "median":  # stop a trial below the median of the others at the same epoch, after 5 trials
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if pruner is None or pruner == "none":
        return optuna.pruners.NopPruner()
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    raise ValueError(f"unknown pruner {pruner!r}: use 'median', 'none' or an Optuna pruner")


def _storage(storage, heartbeat: int):
    """An SQLAlchemy URL becomes an RDB storage with a heartbeat (stale trials are found) and a patient
    SQLite lock (two processes writing one file wait for each other instead of failing)."""
    if not isinstance(storage, str):
        return storage
    optuna = _optuna()
    from sqlalchemy.exc import SQLAlchemyError

    engine = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna since 2.9, and kept
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    storage, engine_kwargs=engine, heartbeat_interval=heartbeat, grace_period=2 * heartbeat
                )
        except SQLAlchemyError:  # two processes creating the tables of a new database at once: one wins
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


class PruneTrial(Callback):
    """Report `monitor` (a column of the epoch table) to the search's trial after each epoch, and stop
    the fit when the pruner says the trial is hopeless. Does nothing outside `qf.tune` unless given a
    `trial`."""

    order = Order.EARLY_STOPPING  # reads the Recorder's row for the epoch

    def __init__(self, monitor: str = "valid_loss", trial=None):
        self.monitor, self.trial = monitor, trial

    def after_epoch(self, learn) -> None:
        trial = self.trial or current_trial()
        if trial is None:
            return
        names = learn.recorder.names
        if self.monitor not in names:
            raise ValueError(f"PruneTrial: no column {self.monitor!r} in the epoch table ({', '.join(names[1:-1])})")
        value = learn.recorder.values[-1][names.index(self.monitor)]
        if value is None:
            return
        trial.report(float(value), step=learn.epoch)
        if trial.should_prune():
            raise _optuna().TrialPruned(f"{self.monitor} {value:.6g} at epoch {learn.epoch}")


@dataclass
class TuneResult:
    """What `qf.tune` found: the best trial's `best_params` (as the objective received them) and
    `best_value`, every trial as a DataFrame, and the Optuna `study` itself."""

    best_params: dict[str, Any]
    best_value: float
    trials: Any  # pandas.DataFrame: number, value, state, duration, one column per parameter
    study: Any

    def plot_history(self, ax=None):
        """Each finished trial's value and the best so far, against the trial number (a Figure)."""
        from quickfit.tuning.plots import plot_history

        return plot_history(self.study, ax=ax)

    def plot_importance(self, ax=None):
        """Each parameter's importance (Optuna's fANOVA on the finished trials; a Figure)."""
        from quickfit.tuning.plots import plot_importance

        return plot_importance(self.study, ax=ax)


def _finished(study) -> list:
    states = _optuna().trial.TrialState
    return study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED))


class _Table:
    """Prints one row per trial as it finishes: number, value, best so far, time, the parameters."""

    def __init__(self, space: Mapping[str, Any], verbose: bool):
        self.space, self.verbose, self.header = space, verbose, False

    def __call__(self, study, trial) -> None:
        if not self.verbose:
            return
        names = list(self.space)
        if not self.header:
            print("trial  state     value       best        time  " + "  ".join(f"{n:>10}" for n in names), flush=True)
            self.header = True
        value = "-" if trial.value is None else f"{trial.value:.6g}"
        complete = [t for t in study.get_trials(deepcopy=False) if t.value is not None and t.state.name == "COMPLETE"]
        best = f"{study.best_value:.6g}" if complete else "-"
        secs = trial.duration.total_seconds() if trial.duration is not None else float("nan")
        params = decode(self.space, trial.params)
        cells = "  ".join(f"{_cell(params.get(n)):>10}" for n in names)
        print(f"{trial.number:>5}  {trial.state.name:<8}  {value:<10}  {best:<10}  {secs:5.1f}s  {cells}", flush=True)


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v).replace(" ", "")


def tune(
    objective: Callable[[dict], float],
    space: Mapping[str, Any],
    n_trials: int = 20,
    sampler: str = "forest",
    storage: str | None = None,
    seed: int | None = None,
    direction: str = "maximize",
    study: str = "quickfit",
    pruner: str | None = "median",
    timeout: float | None = None,
    heartbeat: int = 10,
    verbose: bool = True,
) -> TuneResult:
    """Search `space` for the parameters that maximize (or minimize) `objective(params) -> float`.

    `sampler`: "forest" (random-forest surrogate, expected improvement), "tpe" or "random", or an
    Optuna sampler. `storage`: None (in memory) or a database URL such as "sqlite:///study.db": the
    study named `study` is created or continued there (see the module docstring). `seed` makes the
    proposals repeatable. `pruner` ("median", "none" or an Optuna pruner) judges what `qf.PruneTrial`
    reports; `timeout` stops starting trials after that many seconds. Prints a table of the trials
    unless `verbose=False`. An exception in the objective stops the search (and marks that trial FAIL).
    """
    optuna = _optuna()
    space = check_space(space)
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be a whole number >= 1, got {n_trials!r}")
    chosen = make_sampler(sampler, seed, shared=storage is not None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    found = optuna.create_study(
        storage=_storage(storage, heartbeat),
        sampler=chosen,
        pruner=_pruner(pruner),
        study_name=study,
        direction=direction,
        load_if_exists=True,
    )
    if found.direction.name.lower() != direction:
        made = found.direction.name.lower()
        raise ValueError(f"the study {study!r} in {storage} was made to {made}, not to {direction}")
    if isinstance(sampler, str) and sampler == "tpe" and seed is not None:  # go on, don't replay the first draws
        found.sampler = make_sampler("tpe", seed + len(found.trials), shared=storage is not None)

    def run(trial) -> float:
        params = {name: suggest(trial, name, dim) for name, dim in space.items()}
        token = _trial.set(trial)
        try:
            value = objective(params)
        finally:
            _trial.reset(token)
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"the objective returned NaN for {params}")
        return value

    table = _Table(space, verbose)
    states = optuna.trial.TrialState
    stop = optuna.study.MaxTrialsCallback(n_trials, states=(states.COMPLETE, states.PRUNED))
    started = time.monotonic()
    if len(_finished(found)) < n_trials:
        found.optimize(run, n_trials=None, timeout=timeout, callbacks=[stop, table], gc_after_trial=False)
    complete = [t for t in found.trials if t.state == states.COMPLETE]
    if not complete:
        raise RuntimeError(f"no trial of the study {study!r} completed (see the trials table)")
    if verbose:
        best = f"{found.best_value:.6g} at trial {found.best_trial.number}: {decode(space, found.best_params)}"
        took = time.monotonic() - started
        print(f"{len(_finished(found))} trials finished ({took:.0f} s in this run); best {best}", flush=True)
    frame = found.trials_dataframe(attrs=("number", "value", "state", "duration", "params"))
    frame.columns = [c.removeprefix("params_") for c in frame.columns]
    return TuneResult(decode(space, found.best_params), float(found.best_value), frame, found)
