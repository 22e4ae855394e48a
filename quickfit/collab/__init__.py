"""Collaborative filtering: ratings data, dot-product and neural models, `collab_learner`.

    from quickfit.collab import CollabDataLoaders, collab_learner
    dls = CollabDataLoaders.from_df(ratings, user_name="user", item_name="item", rating_name="rating")
    learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
    learn.fit_one_cycle(5, 5e-3)

See docs/collab.md.
"""

from quickfit.collab.data import CollabDataLoaders, MissingColumnError, RatingsLoader, UnknownIdError
from quickfit.collab.learner import CollabLearner, CollabTask, collab_learner
from quickfit.collab.models import DotBiasConfig, EmbeddingDotBias, EmbeddingNN, EmbeddingNNConfig, emb_sz_rule

__all__ = [
    "CollabDataLoaders",
    "RatingsLoader",
    "UnknownIdError",
    "MissingColumnError",
    "EmbeddingDotBias",
    "EmbeddingNN",
    "DotBiasConfig",
    "EmbeddingNNConfig",
    "emb_sz_rule",
    "CollabLearner",
    "collab_learner",
    "CollabTask",
]
from quickfit.collab.app import APP as APP  # registers the application (load_learner, the CLI)
