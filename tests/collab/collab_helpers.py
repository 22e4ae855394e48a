"""Synthetic rating frames with known structure, and the shared data location."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def shared_data() -> Path:
    """`../shared/data` beside the project (or $QUICKFIT_SHARED_DATA); tests using it skip when absent."""
    env = os.environ.get("QUICKFIT_SHARED_DATA")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parents[3] / "shared" / "data"
    return beside if beside.is_dir() else Path("/work/shared/data")


def low_rank_ratings(
    n_users: int = 40, n_items: int = 30, rank: int = 2, frac: float = 0.8, noise: float = 0.0, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Ratings 3 + u.v + b_user + b_item (in about [1, 5]) on a random `frac` of the user x item grid.

    Users are strings ("user07"), items integers (1000 + i). Returns the frame and the planted
    item and user biases.
    """
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 0.6, (n_users, rank))
    v = rng.normal(0, 0.6, (n_items, rank))
    bu, bi = rng.normal(0, 0.3, n_users), rng.normal(0, 0.5, n_items)
    full = 3 + u @ v.T + bu[:, None] + bi[None, :] + rng.normal(0, noise, (n_users, n_items))
    users, items = np.nonzero(rng.random((n_users, n_items)) < frac)
    df = pd.DataFrame(
        {
            "user": [f"user{k:02d}" for k in users],
            "item": 1000 + items,
            "rating": np.clip(full[users, items], 0.5, 5.0),
        }
    )
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True), bi, bu


def one_thread():
    """Tiny models run fastest on one thread, and the test machine is shared."""
    torch.set_num_threads(1)
