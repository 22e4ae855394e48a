"""Collaborative filtering: ratings data, dot-product and neural models, `collab_learner`."""

from quickfit.collab.data import CollabDataLoaders, RatingsLoader
from quickfit.collab.models import EmbeddingDotBias, EmbeddingNN

__all__ = ["CollabDataLoaders", "RatingsLoader", "EmbeddingDotBias", "EmbeddingNN"]
