"""Small generated frames shared by the tabular tests, and the location of the shared data."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on a shared 2-core machine: more threads only wait on each other (OpenMP spinning
    made a 64-row BatchNorm take 100+ ms under load); restored afterwards."""
    was = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(was)


def shared_data() -> Path:
    env = os.environ.get("QUICKFIT_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[3] / "shared" / "data", Path("/work/shared/data")]
    return next((p for p in candidates if p.is_dir()), candidates[-1])


@pytest.fixture
def adult_csv() -> Path:
    path = shared_data() / "adult" / "adult.csv"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    return path


def make_rule_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A classification rule over one categorical and two continuous columns (plus noise columns).

    label = "yes" when (shape is circle and x > 0) or (shape is square and z < 0.5) or shape is star.
    """
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "shape": rng.choice(["circle", "square", "star", "blob"], n),
            "noise_cat": rng.choice(["a", "b", "c"], n),
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
        }
    )
    yes = ((df["shape"] == "circle") & (df["x"] > 0)) | ((df["shape"] == "square") & (df["z"] < 0.5))
    df["label"] = np.where(yes | (df["shape"] == "star"), "yes", "no")
    df.loc[rng.choice(n, n // 20, replace=False), "z"] = np.nan  # some missing continuous values
    return df


def make_regression_frame(n: int = 800, seed: int = 0) -> pd.DataFrame:
    """target = 3 + 2 x - z + (1.5 for group b) + small noise; a second target = x + z."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"group": rng.choice(["a", "b"], n), "x": rng.uniform(-1, 1, n), "z": rng.uniform(-1, 1, n)})
    df["target"] = 3 + 2 * df["x"] - df["z"] + 1.5 * (df["group"] == "b") + rng.normal(0, 0.05, n)
    df["other"] = df["x"] + df["z"]
    return df


@pytest.fixture
def rule_df() -> pd.DataFrame:
    return make_rule_frame()


@pytest.fixture(scope="module")
def rule_df_module() -> pd.DataFrame:
    """The same frame, for module-scoped fixtures (a learner trained once per module)."""
    return make_rule_frame()


@pytest.fixture
def reg_df() -> pd.DataFrame:
    return make_regression_frame()
