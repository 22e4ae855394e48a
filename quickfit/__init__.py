"""quickfit: the fast.ai course's practice as defaults, on plain PyTorch.

import quickfit as qf
learn = qf.Learner(dls, model, loss_func, metrics=[qf.accuracy])
learn.fit_one_cycle(5, learn.lr_find().valley)
"""

from quickfit.callbacks import (
    SWA,
    Callback,
    CancelBackwardException,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
    CSVLogger,
    CutMix,
    DivergenceCheck,
    DivergenceWarning,
    EarlyStopping,
    GradientAccumulation,
    GradientClip,
    MixedPrecision,
    MixUp,
    NonFiniteLossError,
    Recorder,
    ReduceLROnPlateau,
    SaveBest,
    SuggestedLRs,
    TensorBoardLogger,
)
from quickfit.data.core import DataLoaders, random_split, to_device
from quickfit.learner import Learner, default_device
from quickfit.loading import load_learner
from quickfit.losses import LabelSmoothingCrossEntropy
from quickfit.metrics import (
    AvgMetric,
    Metric,
    accuracy,
    accuracy_multi,
    error_rate,
    fbeta,
    mae,
    mse,
    rmse,
    top_k_accuracy,
)
from quickfit.optim import SGD, Adam, RMSprop
from quickfit.phases import Phase
from quickfit.schedules import (
    SchedCos,
    SchedExp,
    SchedLin,
    SchedNo,
    SchedPoly,
    combine_scheds,
    combined_cos,
)
from quickfit.seed import set_seed
from quickfit.step import BasicStep, TrainStep
from quickfit.tuning import Choice, Int, LogUniform, PruneTrial, TuneResult, Uniform, learner_objective, tune

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "AvgMetric",
    "BasicStep",
    "CSVLogger",
    "Callback",
    "CancelBackwardException",
    "CancelBatchException",
    "CancelEpochException",
    "CancelFitException",
    "CancelStepException",
    "CancelTrainException",
    "CancelValidException",
    "Choice",
    "CutMix",
    "DataLoaders",
    "DivergenceCheck",
    "DivergenceWarning",
    "EarlyStopping",
    "GradientAccumulation",
    "GradientClip",
    "Int",
    "LabelSmoothingCrossEntropy",
    "Learner",
    "LogUniform",
    "Metric",
    "MixUp",
    "MixedPrecision",
    "NonFiniteLossError",
    "Phase",
    "PruneTrial",
    "RMSprop",
    "Recorder",
    "ReduceLROnPlateau",
    "SGD",
    "SWA",
    "SaveBest",
    "SchedCos",
    "SchedExp",
    "SchedLin",
    "SchedNo",
    "SchedPoly",
    "SuggestedLRs",
    "TensorBoardLogger",
    "TrainStep",
    "TuneResult",
    "Uniform",
    "accuracy",
    "accuracy_multi",
    "combine_scheds",
    "combined_cos",
    "default_device",
    "error_rate",
    "fbeta",
    "learner_objective",
    "load_learner",
    "mae",
    "mse",
    "random_split",
    "rmse",
    "set_seed",
    "to_device",
    "top_k_accuracy",
    "tune",
]
