"""Tabular data: preprocessing (Categorify, FillMissing, Normalize), TabularModel, tabular_learner.

from quickfit.tabular import TabularDataLoaders, tabular_learner
dls = TabularDataLoaders.from_df(df, "salary", cat_names=["workclass"], cont_names=["age"], seed=42)
learn = tabular_learner(dls)
learn.fit_one_cycle(3, 1e-2)
"""

from quickfit.tabular.batches import TabularBatches
from quickfit.tabular.data import TabularDataLoaders, cont_cat_split
from quickfit.tabular.learner import LogMSELoss, TabularLearner, TabularTask, tabular_learner
from quickfit.tabular.model import (
    SigmoidRange,
    TabularModel,
    TabularModelConfig,
    TargetScale,
    emb_sz_rule,
    get_emb_szs,
)
from quickfit.tabular.procs import Categorify, FillMissing, Normalize, TabularProc, TabularProcessor

__all__ = [
    "Categorify",
    "FillMissing",
    "LogMSELoss",
    "Normalize",
    "SigmoidRange",
    "TabularBatches",
    "TabularDataLoaders",
    "TabularLearner",
    "TabularModel",
    "TabularModelConfig",
    "TabularProc",
    "TabularProcessor",
    "TargetScale",
    "cont_cat_split",
    "emb_sz_rule",
    "get_emb_szs",
    "TabularTask",
    "tabular_learner",
]
from quickfit.tabular.app import APP as APP  # registers the application (load_learner, the CLI)
