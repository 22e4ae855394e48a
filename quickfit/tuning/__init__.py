"""Hyper-parameter search (`pip install "quickfit[tune]"`): `qf.tune`, its search spaces, samplers and
the pruning callback. See docs/tuning.md.

    import quickfit as qf
    result = qf.tune(objective, {"lr": qf.LogUniform(1e-4, 1e-1)}, n_trials=20, storage="sqlite:///s.db")

Optuna is imported only when a search starts, so `import quickfit` works without it.
"""

from quickfit.tuning.objective import learner_objective
from quickfit.tuning.search import SAMPLERS, PruneTrial, TuneResult, current_trial, make_sampler, tune
from quickfit.tuning.space import Choice, Int, LogUniform, Uniform

__all__ = [
    "SAMPLERS",
    "Choice",
    "Int",
    "LogUniform",
    "PruneTrial",
    "TuneResult",
    "Uniform",
    "current_trial",
    "learner_objective",
    "make_sampler",
    "tune",
]
