"""Metrics accumulated exactly over a whole validation set.

    import quickfit as qf
    learn = qf.Learner(dls, model, loss_func, metrics=[qf.accuracy, qf.fbeta(beta=1)])

A `Metric` sums per-batch totals (counts, sums of errors, true positives, ...) on the device and
computes its value once at the end, so the result is the metric of the whole set, not a mean of
batch means, and there is one CPU-GPU sync per validation instead of one per batch. Across DDP ranks
the totals are summed before computing. Every metric is also callable on a single batch:
`qf.accuracy(preds, targets)`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

__all__ = [
    "Metric",
    "AvgMetric",
    "accuracy",
    "error_rate",
    "top_k_accuracy",
    "accuracy_multi",
    "rmse",
    "mae",
    "mse",
    "fbeta",
    "as_metric",
]


class Metric:
    """Subclass: `batch_totals(pred, targ)` returns a 1-D tensor of sums; `compute(totals)` the value."""

    name: str = "metric"

    def reset(self) -> None:
        self.totals: torch.Tensor | None = None

    def accumulate(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        t = self.batch_totals(pred.detach(), targ.detach()).to(torch.float64)
        self.totals = t if getattr(self, "totals", None) is None else self.totals + t

    @property
    def value(self) -> float | None:
        return None if getattr(self, "totals", None) is None else self.compute(self.totals.cpu())

    def batch_totals(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compute(self, totals: torch.Tensor) -> float:
        raise NotImplementedError

    def __call__(self, pred: torch.Tensor, targ: torch.Tensor) -> float:
        return self.compute(self.batch_totals(pred.detach(), targ.detach()).to(torch.float64).cpu())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class AvgMetric(Metric):
    """The mean over items of `fn(pred, targ)`, a per-batch mean, weighted by batch size (exact)."""

    def __init__(self, fn: Callable, name: str | None = None):
        self.fn, self.name = fn, name or getattr(fn, "__name__", "metric")

    def batch_totals(self, pred, targ):
        n = targ.shape[0] if targ.ndim else 1
        return torch.stack(
            [
                torch.as_tensor(self.fn(pred, targ), dtype=torch.float64) * n,
                torch.tensor(float(n), dtype=torch.float64, device=pred.device),
            ]
        )

    def compute(self, totals):
        return float(totals[0] / totals[1])


def _check_classes(pred: torch.Tensor, targ: torch.Tensor) -> None:
    if pred.shape[0] != targ.shape[0]:
        raise ValueError(f"predictions {tuple(pred.shape)} and targets {tuple(targ.shape)} differ in batch size")


def _accuracy(pred, targ):
    _check_classes(pred, targ)
    return (pred.argmax(dim=-1) == targ).float().mean()


def _error_rate(pred, targ):
    return 1 - _accuracy(pred, targ)


def _mse(pred, targ):
    return ((pred.reshape(targ.shape).float() - targ.float()) ** 2).mean()


def _mae(pred, targ):
    return (pred.reshape(targ.shape).float() - targ.float()).abs().mean()


accuracy = AvgMetric(_accuracy, "accuracy")
error_rate = AvgMetric(_error_rate, "error_rate")
mae = AvgMetric(_mae, "mae")
mse = AvgMetric(_mse, "mse")


class _RMSE(AvgMetric):
    def compute(self, totals):
        return float(torch.sqrt(totals[0] / totals[1]))


rmse = _RMSE(_mse, "rmse")


def top_k_accuracy(k: int = 5) -> Metric:
    """Fraction of items whose target is among the `k` highest predictions."""

    def _top_k(pred, targ):
        _check_classes(pred, targ)
        return (pred.topk(k, dim=-1).indices == targ[:, None]).any(dim=-1).float().mean()

    return AvgMetric(_top_k, f"top_{k}_accuracy")


def accuracy_multi(thresh: float = 0.5, sigmoid: bool = True) -> Metric:
    """Multi-label accuracy: the fraction of (item, label) decisions right at `thresh`.

    Its column is `accuracy_multi` at the default 0.5, else `accuracy_multi(0.2)`: two thresholds, two columns."""

    def _acc_multi(pred, targ):
        p = pred.sigmoid() if sigmoid else pred
        return ((p > thresh) == targ.bool()).float().mean()

    return AvgMetric(_acc_multi, "accuracy_multi" if thresh == 0.5 else f"accuracy_multi({thresh:g})")


class FBeta(Metric):
    """F-beta from true/false positive and false negative counts summed over the whole set.

    Single-label predictions (`(n, c)` scores, integer targets) use the argmax; multi-label ones
    (`(n, c)` scores, multi-hot targets) use `sigmoid(pred) > thresh`. `average="macro"` averages
    the per-class scores of the classes present in the targets or the predictions (a class absent from
    both is left out, as scikit-learn does), `"micro"` pools the counts; `"binary"` scores class `pos_label`.
    """

    def __init__(self, beta: float = 1.0, average: str = "macro", thresh: float = 0.5, pos_label: int = 1):
        if average not in ("macro", "micro", "binary"):
            raise ValueError(f"average must be 'macro', 'micro' or 'binary', got {average!r}")
        self.beta, self.average, self.thresh, self.pos_label = beta, average, thresh, pos_label
        self.name = f"fbeta({beta:g})" if beta != 1 else "f1"

    def batch_totals(self, pred, targ):
        c = pred.shape[-1]
        if targ.ndim == pred.ndim:  # multi-hot
            p, t = (pred.sigmoid() > self.thresh), targ.bool()
        else:
            p = torch.nn.functional.one_hot(pred.argmax(-1), c).bool()
            t = torch.nn.functional.one_hot(targ.long(), c).bool()
        tp, fp, fn = (p & t).sum(0), (p & ~t).sum(0), (~p & t).sum(0)
        return torch.cat([tp, fp, fn]).double()

    def compute(self, totals):
        tp, fp, fn = totals.view(3, -1)
        if self.average == "micro":
            tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        elif self.average == "binary":
            tp, fp, fn = tp[self.pos_label], fp[self.pos_label], fn[self.pos_label]
        b2 = self.beta**2
        denom = (1 + b2) * tp + b2 * fn + fp
        score = torch.where(denom > 0, (1 + b2) * tp / denom.clamp(min=1e-12), torch.zeros_like(denom))
        if self.average == "macro":  # a class neither in the targets nor predicted is left out (as scikit-learn)
            present = denom > 0
            return float(score[present].mean()) if present.any() else 0.0
        return float(score.mean())


def fbeta(beta: float = 1.0, average: str = "macro", thresh: float = 0.5, pos_label: int = 1) -> Metric:
    return FBeta(beta, average, thresh, pos_label)


def as_metric(m) -> Metric:
    """A fresh copy of a `Metric`, or a plain function `fn(pred, targ) -> mean` wrapped in AvgMetric."""
    if isinstance(m, Metric):
        return copy.copy(m)
    if callable(m):
        return AvgMetric(m)
    raise TypeError(f"a metric must be a quickfit Metric or a function (pred, targ) -> value, got {m!r}")
