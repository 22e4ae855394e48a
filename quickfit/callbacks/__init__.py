"""Callbacks hooking into the Learner's events."""

from quickfit.callbacks.checkpoint import EarlyStopping, SaveBest, SnapshotCallback
from quickfit.callbacks.core import (
    Callback,
    CancelBackwardException,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
)
from quickfit.callbacks.divergence import DivergenceCheck, DivergenceWarning
from quickfit.callbacks.loggers import CSVLogger, TensorBoardLogger
from quickfit.callbacks.lr_finder import LRFinder, SuggestedLRs
from quickfit.callbacks.mixed_precision import MixedPrecision
from quickfit.callbacks.mixup import CutMix, MixUp
from quickfit.callbacks.plateau import ReduceLROnPlateau
from quickfit.callbacks.progress import ProgressCallback
from quickfit.callbacks.recorder import NonFiniteLossError, Recorder
from quickfit.callbacks.resume import ResumeCheckpoint
from quickfit.callbacks.schedule import ParamScheduler
from quickfit.callbacks.swa import SWA
from quickfit.callbacks.training import GradientAccumulation, GradientClip

__all__ = [
    "SWA",
    "ReduceLROnPlateau",
    "MixUp",
    "CutMix",
    "CSVLogger",
    "Callback",
    "CancelBackwardException",
    "CancelBatchException",
    "CancelEpochException",
    "CancelFitException",
    "CancelStepException",
    "CancelTrainException",
    "CancelValidException",
    "DivergenceCheck",
    "DivergenceWarning",
    "EarlyStopping",
    "GradientAccumulation",
    "GradientClip",
    "LRFinder",
    "MixedPrecision",
    "NonFiniteLossError",
    "ParamScheduler",
    "ProgressCallback",
    "Recorder",
    "ResumeCheckpoint",
    "SaveBest",
    "SnapshotCallback",
    "SuggestedLRs",
    "TensorBoardLogger",
]
