import numpy as np
import pytest
import torch

import quickfit as qf


def _accumulate(metric, preds, targs, sizes):
    m = qf.metrics.as_metric(metric)
    m.reset()
    start = 0
    for s in sizes:
        m.accumulate(preds[start : start + s], targs[start : start + s])
        start += s
    return m.value


def test_accuracy_is_exact_over_unequal_batches():
    torch.manual_seed(0)
    preds, targs = torch.randn(103, 4), torch.randint(0, 4, (103,))
    exact = (preds.argmax(1) == targs).float().mean().item()
    assert _accumulate(qf.accuracy, preds, targs, [64, 32, 7]) == pytest.approx(exact)
    assert _accumulate(qf.error_rate, preds, targs, [100, 3]) == pytest.approx(1 - exact)
    assert qf.accuracy(preds, targs) == pytest.approx(exact)


def test_rmse_is_sqrt_of_global_mean_not_mean_of_batch_rmse():
    preds = torch.tensor([0.0, 0.0, 0.0, 10.0])
    targs = torch.zeros(4)
    value = _accumulate(qf.rmse, preds, targs, [3, 1])
    assert value == pytest.approx(np.sqrt(100 / 4))  # mean of batch RMSEs would be 5
    assert _accumulate(qf.mae, preds, targs, [3, 1]) == pytest.approx(2.5)


def test_top_k_accuracy():
    preds = torch.tensor([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]])
    targs = torch.tensor([2, 2])
    assert qf.top_k_accuracy(2)(preds, targs) == pytest.approx(0.5)
    assert qf.top_k_accuracy(3)(preds, targs) == pytest.approx(1.0)


def test_fbeta_matches_the_formula_per_class():
    torch.manual_seed(1)
    preds, targs = torch.randn(200, 3), torch.randint(0, 3, (200,))
    p = preds.argmax(1)
    scores = []
    for c in range(3):
        tp = ((p == c) & (targs == c)).sum().item()
        fp = ((p == c) & (targs != c)).sum().item()
        fn = ((p != c) & (targs == c)).sum().item()
        prec, rec = tp / (tp + fp), tp / (tp + fn)
        scores.append(5 * prec * rec / (4 * prec + rec))  # beta = 2
    assert _accumulate(qf.fbeta(beta=2), preds, targs, [50, 150]) == pytest.approx(np.mean(scores))


def test_multilabel_fbeta_and_accuracy_multi():
    preds = torch.tensor([[5.0, -5.0], [5.0, 5.0]])
    targs = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert qf.accuracy_multi()(preds, targs) == pytest.approx(0.75)
    assert qf.fbeta(average="micro")(preds, targs) == pytest.approx(2 * 2 / (2 * 2 + 1))


def test_plain_function_metric_is_weighted_by_batch_size():
    def mean_pred(pred, targ):
        return pred.float().mean()

    value = _accumulate(mean_pred, torch.tensor([1.0, 1.0, 1.0, 5.0]), torch.zeros(4), [3, 1])
    assert value == pytest.approx(2.0)


def test_batch_size_mismatch_is_named():
    with pytest.raises(ValueError, match=r"predictions \(3, 2\) and targets \(4,\)"):
        qf.accuracy(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
