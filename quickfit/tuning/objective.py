"""`learner_objective`: a learner factory and the arguments to search, made into an objective for `qf.tune`.

    from functools import partial
    import quickfit as qf
    from quickfit.tabular import tabular_learner
    objective = qf.learner_objective(partial(tabular_learner, dls, metrics=[qf.accuracy]), metric="accuracy")
    qf.tune(objective, {"lr": qf.LogUniform(1e-3, 1e-1), "epochs": qf.Int(3, 8),
                        "wd": qf.LogUniform(1e-5, 1e-1), "embed_p": qf.Uniform(0, 0.5)}, n_trials=30)

Searched names `lr` and `epochs` go to the fit (`fit_one_cycle(epochs, lr)` by default); every other
name is an argument of the factory (`wd`, `layers`, `ps`, `embed_p` ...). A name the factory does not
take is refused at the first trial, naming it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from quickfit.seed import set_seed
from quickfit.tuning.search import PruneTrial

__all__ = ["learner_objective"]

FIT_ARGS = ("lr", "epochs")
_FITS = ("fit_one_cycle", "fit_flat_cos", "fit")


def learner_objective(
    make_learner: Callable,
    metric: str = "accuracy",
    epochs: int = 5,
    lr: float = 1e-3,
    fit: str = "fit_one_cycle",
    prune: bool = True,
    seed: int | None = 0,
) -> Callable[[dict], float]:
    """An objective that builds `make_learner(**params)`, trains it with `fit` (`epochs` and `lr`
    unless searched) and returns the last epoch's `metric` (a column of the epoch table, e.g.
    "accuracy" or "valid_loss"). `prune` adds `qf.PruneTrial(metric)`; `seed` is set before each
    learner is built, so trials differ by their parameters, not by their initial weights."""
    if fit not in _FITS:
        raise ValueError(f"fit must be one of {', '.join(_FITS)}, got {fit!r}")
    signature = inspect.signature(make_learner)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())

    def objective(params: dict) -> float:
        own = {k: v for k, v in params.items() if k not in FIT_ARGS}
        unknown = [k for k in own if k not in signature.parameters and not takes_any]
        if unknown:
            raise TypeError(
                f"learner_objective: the factory takes no argument {unknown[0]!r} (searched names go to the "
                f"factory, except {' and '.join(FIT_ARGS)}, which go to the fit)"
            )
        if seed is not None:
            set_seed(seed)
        learn = make_learner(**own)
        cbs = [PruneTrial(metric)] if prune else []
        getattr(learn, fit)(params.get("epochs", epochs), params.get("lr", lr), cbs=cbs)
        names = learn.recorder.names
        if metric not in names:
            raise ValueError(f"learner_objective: no column {metric!r} in the epoch table ({', '.join(names[1:-1])})")
        return float(learn.recorder.values[-1][names.index(metric)])

    return objective
