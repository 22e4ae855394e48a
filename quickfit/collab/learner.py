"""`collab_learner`: a Learner for ratings, with predictions by original id and embedding analysis.

Usage:
    import pandas as pd
    from quickfit.collab import CollabDataLoaders, collab_learner

    dls = CollabDataLoaders.from_df(ratings, user_name="userId", item_name="movieId", seed=42)
    learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5), wd=0.2)
    learn.fit_one_cycle(5, 5e-3)
    learn.predict((15, 1097))                 # predicted rating of user 15 for movie 1097
    learn.predict_pairs([(15, 1097), (15, 924)])
    learn.most_liked(10)                      # items with the largest learned bias
    learn.pca(3)                              # item factors compressed to 3 principal components

The model sees index pairs; this class translates original ids with `dls.classes` in both directions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch
from torch import nn

from quickfit.callbacks.core import Callback
from quickfit.collab.data import CollabDataLoaders, encode_ids
from quickfit.collab.models import DotBiasConfig, EmbeddingDotBias, EmbeddingNNConfig, emb_sz_rule
from quickfit.configs import ModelConfig, Task, export_record
from quickfit.learner import Learner
from quickfit.optim import Adam

__all__ = ["CollabLearner", "collab_learner", "CollabTask"]

Pairs = pd.DataFrame | Sequence[tuple[Any, Any]]


class CollabLearner(Learner):
    """A `Learner` whose data is a `CollabDataLoaders`: adds id-based prediction and analysis."""

    dls: CollabDataLoaders

    def _indices(self, ids: Sequence[Any] | None, is_item: bool) -> torch.Tensor:
        """Indices of original ids (all known ids when `ids` is None); unknown ids raise."""
        kind = "item" if is_item else "user"
        classes = self.dls.classes[kind]
        if ids is None:
            return torch.arange(1, len(classes))
        column = self.dls.item_name if is_item else self.dls.user_name
        return torch.from_numpy(encode_ids(list(ids), classes, column, unknown="error"))

    def _ids(self, ids: Sequence[Any] | None, is_item: bool) -> list:
        return list(self.dls.classes["item" if is_item else "user"][1:]) if ids is None else list(ids)

    def bias(self, ids: Sequence[Any] | None = None, is_item: bool = True) -> torch.Tensor:
        """Learned biases of the given item (or user) ids, all known ones when `ids` is None."""
        model = self._unwrapped()
        if not isinstance(model, EmbeddingDotBias):
            raise TypeError(
                f"bias() needs the dot-product model (collab_learner(use_nn=False)); "
                f"{type(model).__name__} has no per-user or per-item bias"
            )
        bias = model.i_bias if is_item else model.u_bias
        return bias.detach()[self._indices(ids, is_item).to(bias.device)].cpu()

    def weight(self, ids: Sequence[Any] | None = None, is_item: bool = True) -> torch.Tensor:
        """Embedding vectors `(n, n_factors)` of the given item (or user) ids."""
        emb = self._unwrapped().i_weight if is_item else self._unwrapped().u_weight
        idx = self._indices(ids, is_item).to(emb.weight.device)
        return emb.weight.detach()[idx].cpu()

    def pca(self, n: int = 3, ids: Sequence[Any] | None = None, is_item: bool = True) -> pd.DataFrame:
        """Item (or user) factors projected on their first `n` principal components.

        Rows are indexed by original id; `result.attrs["explained_variance_ratio"]` holds the share of
        the factors' variance each component explains. Signs of components are arbitrary.
        """
        w = self.weight(ids, is_item).double()
        if not 1 <= n <= min(w.shape):
            raise ValueError(f"n must be between 1 and {min(w.shape)} (ids x factors), got {n}")
        centered = w - w.mean(0)
        _, s, vh = torch.linalg.svd(centered, full_matrices=False)
        coords = centered @ vh[:n].T
        out = pd.DataFrame(coords.numpy(), index=self._ids(ids, is_item), columns=[f"pc{k + 1}" for k in range(n)])
        out.attrs["explained_variance_ratio"] = (s[:n] ** 2 / (s**2).sum()).tolist()
        return out

    def _by_bias(self, n: int, ids: Sequence[Any] | None, ascending: bool) -> pd.DataFrame:
        df = pd.DataFrame({self.dls.item_name: self._ids(ids, True), "bias": self.bias(ids).numpy()})
        return df.sort_values("bias", ascending=ascending, kind="stable").head(n).reset_index(drop=True)

    def most_liked(self, n: int = 10, ids: Sequence[Any] | None = None) -> pd.DataFrame:
        """The `n` items with the largest bias: liked beyond what their users' tastes explain."""
        return self._by_bias(n, ids, ascending=False)

    def least_liked(self, n: int = 10, ids: Sequence[Any] | None = None) -> pd.DataFrame:
        """The `n` items with the smallest bias."""
        return self._by_bias(n, ids, ascending=True)

    def predict_pairs(self, pairs: Pairs, unknown: str = "error") -> torch.Tensor:
        """Predicted ratings for `(user, item)` pairs by original id (a list of pairs or a DataFrame
        with the user and item columns). `unknown="index"` predicts unknown ids with index 0."""
        preds, _ = self.get_preds(dl=self.dls.test_dl(pairs, unknown=unknown), progress=False)
        return preds.reshape(-1)

    def predict(self, item: tuple[Any, Any], unknown: str = "error") -> float:
        """Predicted rating for one `(user, item)` pair of original ids."""
        return float(self.predict_pairs([item], unknown=unknown)[0])


def _check_y_range(dls: CollabDataLoaders, y_range: Sequence[float] | None) -> None:
    y = dls.train.y
    if y_range is None or y is None or len(y) == 0:
        return
    lo, hi = float(y.min()), float(y.max())
    if lo < y_range[0] or hi > y_range[1]:
        raise ValueError(
            f"the ratings in column {dls.rating_name!r} span [{lo:g}, {hi:g}], outside "
            f"y_range={tuple(y_range)}: the model could not predict them; "
            f"pass y_range=({lo:g}, {hi * 1.1:g}) or y_range=None"
        )


def collab_learner(
    dls: CollabDataLoaders,
    n_factors: int = 50,
    use_nn: bool = False,
    y_range: tuple[float, float] | None = (0.0, 5.5),
    layers: Sequence[int] = (100, 50),
    emb_szs: dict[str, int] | None = None,
    ps: float | Sequence[float] = 0.0,
    embed_p: float = 0.0,
    loss_func: Callable | None = None,
    opt_func: Callable = Adam,
    lr: float = 5e-3,
    wd: float | None = None,
    metrics: Iterable = (),
    cbs: Iterable[Callback] = (),
    path: str | Path = ".",
    model_dir: str | Path = "models",
    train_bn: bool = True,
    slice_div: float = 3.0,
    progress: bool | None = None,
    device: torch.device | str | None = None,
) -> CollabLearner:
    """A `CollabLearner` with `EmbeddingDotBias` (default) or `EmbeddingNN` (`use_nn=True`).

    Dot product: `n_factors` per user and item. Neural: `emb_szs={"user": d, "item": d}` overrides the
    size rule `min(600, round(1.6 * n**0.56))`, then `layers` with dropout `ps`. `y_range` squashes
    predictions into the rating range (a little above the top rating, so it can be reached).
    `loss_func` defaults to mean squared error. `wd` (decoupled weight decay) defaults to 0.2 for the
    dot-product model, which needs it to generalize (it overfits within a couple of epochs without
    it; its biases are not decayed), and to 0.01 for the neural one.
    """
    if not isinstance(dls, CollabDataLoaders):
        raise TypeError(f"dls must be a CollabDataLoaders, got {type(dls).__name__}")
    _check_y_range(dls, y_range)
    y_list = None if y_range is None else [float(v) for v in y_range]
    if use_nn:
        sizes = {"user": emb_sz_rule(dls.n_users), "item": emb_sz_rule(dls.n_items)}
        unknown_keys = set(emb_szs or {}) - set(sizes)
        if unknown_keys:
            raise ValueError(f'emb_szs keys must be "user" and/or "item", got {sorted(unknown_keys)}')
        sizes.update(emb_szs or {})
        emb = [[dls.n_users, int(sizes["user"])], [dls.n_items, int(sizes["item"])]]
        ps = float(ps) if isinstance(ps, (int, float)) else [float(p) for p in ps]
        config: ModelConfig = EmbeddingNNConfig(emb, [int(n) for n in layers], ps, float(embed_p), y_list)
    else:
        if emb_szs is not None:
            raise ValueError("emb_szs is for the neural model (use_nn=True); the dot model uses n_factors")
        config = DotBiasConfig(int(n_factors), dls.n_users, dls.n_items, y_list)
    model = config.build()
    learn = CollabLearner(
        dls,
        model,
        loss_func if loss_func is not None else nn.MSELoss(),
        opt_func=opt_func,
        lr=lr,
        wd=wd if wd is not None else (0.01 if use_nn else 0.2),
        metrics=metrics,
        cbs=cbs,
        path=path,
        model_dir=model_dir,
        train_bn=train_bn,
        slice_div=slice_div,
        progress=progress,
        device=device,
    )
    learn.export_info = export_record("collab", CollabTask(), config)
    return learn


@dataclass
class CollabTask(Task):
    """Ratings of (user, item) pairs by original id: a `CollabLearner` with mean squared error."""

    type: ClassVar[str] = "collab"

    def data(self, info: dict | None) -> CollabDataLoaders:
        if not info:
            raise ValueError("not a collab export: the metadata lacks the data processing")
        return CollabDataLoaders.from_export(info)

    def learner(self, dls, model: nn.Module, config: ModelConfig) -> CollabLearner:
        return CollabLearner(dls, model, nn.MSELoss(), device="cpu")
