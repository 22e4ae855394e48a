import copy
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import quickfit as qf
from tests.conftest import make_dls, mlp, three_groups


def test_learner_learns_xor_with_plain_dataloaders(learner):
    learn = learner(metrics=[qf.accuracy])
    learn.fit_one_cycle(8, 1e-2)
    valid_loss, acc = learn.validate()
    assert acc > 0.9
    assert valid_loss == pytest.approx(learn.recorder.values[-1][2])
    assert learn.recorder.names == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]


def test_epoch_table_is_printed(learner, capsys):
    learner(metrics=[qf.accuracy]).fit(1, 1e-3)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert out[1].split()[0] == "0" and len(out[1].split()) == 5


class EventLog(qf.Callback):
    def __init__(self):
        self.events = []

    def __getattr__(self, name):
        if name.startswith(("before_", "after_")):
            return lambda learn: self.events.append(name)
        raise AttributeError(name)


def test_event_order_of_one_training_batch():
    x, y = torch.randn(4, 2), torch.randint(0, 2, (4,))
    dls = qf.DataLoaders([(x, y)], [(x, y)])
    log = EventLog()
    qf.Learner(dls, mlp(), nn.CrossEntropyLoss(), cbs=[log], progress=False).fit(1)
    assert log.events == [
        "before_fit", "before_epoch",
        "before_train", "before_batch", "after_pred", "after_loss", "before_backward", "after_backward",
        "before_step", "after_step", "after_batch", "after_train",
        "before_validate", "before_batch", "after_pred", "after_loss", "after_batch", "after_validate",
        "after_epoch", "after_fit",
    ]  # fmt: skip


def test_callbacks_run_in_order_and_receive_the_learner():
    seen = []

    class A(qf.Callback):
        order = 2

        def before_fit(self, learn):
            seen.append(("A", learn))

    class B(qf.Callback):
        order = 1

        def before_fit(self, learn):
            seen.append(("B", learn))

    learn = qf.Learner(make_dls(64), mlp(), nn.CrossEntropyLoss(), cbs=[A(), B()], progress=False)
    learn.fit(1)
    assert [n for n, _ in seen] == ["B", "A"] and all(lrn is learn for _, lrn in seen)


def test_cancel_fit_stops_after_first_batch_and_runs_after_fit():
    calls = []

    class StopEarly(qf.Callback):
        def after_batch(self, learn):
            calls.append(learn.iter)
            raise qf.CancelFitException()

        def after_cancel_fit(self, learn):
            calls.append("cancelled")

        def after_fit(self, learn):
            calls.append("after_fit")

    learn = qf.Learner(make_dls(), mlp(), nn.CrossEntropyLoss(), cbs=[StopEarly()], progress=False)
    learn.fit(3)
    assert calls == [0, "cancelled", "after_fit"]


def test_cancel_step_skips_the_update():
    class NoStep(qf.Callback):
        def before_step(self, learn):
            raise qf.CancelStepException()

    learn = qf.Learner(make_dls(), mlp(), nn.CrossEntropyLoss(), cbs=[NoStep()], progress=False)
    before = copy.deepcopy(learn.model.state_dict())
    learn.fit(1, 1e-2)
    for k, v in learn.model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_fit_cbs_are_for_that_call_only(learner):
    learn = learner()
    cb = qf.GradientClip(1.0)
    learn.fit(1, cbs=[cb])
    assert cb not in learn.cbs


def test_freeze_keeps_batchnorm_trainable_and_frozen_params_get_no_grad_or_state(learner):
    learn = learner(bn=True, splitter=three_groups)
    learn.freeze()
    first, second, last = three_groups(learn.model)
    bn = learn.model[1]
    assert all(p.requires_grad for p in bn.parameters())
    assert not learn.model[0].weight.requires_grad and not learn.model[3].weight.requires_grad
    assert all(p.requires_grad for p in last)
    w_before = learn.model[0].weight.detach().clone()
    learn.fit(1, 1e-2)
    torch.testing.assert_close(learn.model[0].weight.detach(), w_before)
    assert learn.model[0].weight.grad is None
    assert learn.model[0].weight not in learn.opt.state and bn.weight in learn.opt.state
    learn.freeze_to(-2)
    assert learn.model[3].weight.requires_grad and not learn.model[0].weight.requires_grad
    learn.unfreeze()
    assert all(p.requires_grad for p in learn.model.parameters())


def test_freeze_without_train_bn_freezes_norm_layers(learner):
    learn = learner(bn=True, splitter=three_groups, train_bn=False)
    learn.freeze()
    assert not learn.model[1].weight.requires_grad


def test_lr_find_restores_exact_weights_and_optimizer(learner):
    learn = learner(bn=True)
    learn.fit(1, 1e-3)
    model_before = copy.deepcopy(learn.model.state_dict())
    opt_before = copy.deepcopy(learn.opt.state_dict())
    n_losses = len(learn.recorder.losses)
    sugg = learn.lr_find(num_it=40, show_plot=False)
    assert isinstance(sugg, qf.SuggestedLRs)
    assert all(1e-7 <= v <= 10 for v in sugg)
    for k, v in learn.model.state_dict().items():
        torch.testing.assert_close(v, model_before[k], rtol=0, atol=0)
    opt_after = learn.opt.state_dict()
    for pid, st in opt_before["state"].items():
        for k, v in st.items():
            torch.testing.assert_close(opt_after["state"][pid][k], v, rtol=0, atol=0)
    assert len(learn.recorder.losses) == n_losses  # the sweep is not in the training history
    lrs = learn.recorder.lr_find_lrs
    assert lrs[0] == pytest.approx(1e-7) and np.all(np.diff(np.log(lrs)) > 0)


def test_lr_find_stops_when_loss_diverges(learner):
    learn = learner()
    learn.lr_find(start_lr=1e-2, end_lr=1e6, num_it=100, show_plot=False)
    assert len(learn.recorder.lr_find_lrs) < 97
    fig = learn.recorder.plot_lr_find()
    assert fig.axes[0].get_xscale() == "log"


def test_get_preds_validate_and_predict(learner):
    learn = learner(metrics=[qf.accuracy])
    learn.fit(2, 1e-2)
    preds, targs = learn.get_preds()
    assert preds.shape == (len(targs), 2)
    torch.testing.assert_close(preds.sum(1), torch.ones(len(targs)))  # softmax from the loss
    acc = (preds.argmax(1) == targs).float().mean().item()
    assert learn.validate()[1] == pytest.approx(acc)
    preds, targs, losses = learn.get_preds(with_loss=True)
    assert losses.shape == targs.shape
    assert losses.mean().item() == pytest.approx(learn.validate()[0], rel=1e-5)
    x = learn.dls.valid.dataset.tensors[0][0]
    torch.testing.assert_close(learn.predict(x), preds[0])


def test_get_preds_on_a_test_set_without_targets(learner):
    learn = learner()
    x = torch.randn(10, 2)
    preds, targs = learn.get_preds(dl=[(x[:6],), (x[6:],)])
    assert preds.shape == (10, 2) and targs is None


def test_nan_loss_stops_training_naming_the_batch():
    x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    x[40] = float("nan")  # batch 5 with bs=8
    dls = qf.DataLoaders(DataLoader(TensorDataset(x, y), batch_size=8), None)
    learn = qf.Learner(dls, mlp(), nn.CrossEntropyLoss(), progress=False)
    with pytest.raises(qf.NonFiniteLossError, match="epoch 0, batch 5"):
        learn.fit(1)


def test_loss_target_shape_mismatch_names_both_shapes():
    x, y = torch.randn(16, 2), torch.randn(16)
    dls = qf.DataLoaders(DataLoader(TensorDataset(x, y), batch_size=8), None)
    learn = qf.Learner(dls, nn.Linear(2, 1), nn.MSELoss(), progress=False)
    with pytest.raises(ValueError, match=r"predictions of shape \(8, 1\) and targets of shape \(8,\)"):
        learn.fit(1)


def test_gradient_accumulation_equals_the_larger_batch():
    x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))

    def train(bs, cbs):
        dls = qf.DataLoaders(DataLoader(TensorDataset(x, y), batch_size=bs), None)
        learn = qf.Learner(dls, mlp(seed=3), nn.CrossEntropyLoss(), opt_func=qf.SGD, progress=False)
        learn.fit(2, 0.1, cbs=cbs)
        return learn.model.state_dict()

    big, accumulated = train(32, []), train(8, [qf.GradientAccumulation(4)])
    for k, v in big.items():
        torch.testing.assert_close(accumulated[k], v, rtol=1e-5, atol=1e-6)
    small = train(8, [])
    assert not torch.allclose(small["0.weight"], big["0.weight"], atol=1e-4)


def test_gradient_clip_bounds_the_update():
    x, y = torch.randn(8, 2) * 1e4, torch.randint(0, 2, (8,))
    dls = qf.DataLoaders([(x, y)], None)
    learn = qf.Learner(dls, mlp(), nn.CrossEntropyLoss(), opt_func=lambda g, lr, **k: qf.SGD(g, lr, mom=0.0),
                       wd=0.0, progress=False)  # fmt: skip
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1, 1.0, cbs=[qf.GradientClip(0.5)])
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(learn.model.parameters(), before)))
    assert step.item() == pytest.approx(0.5, rel=1e-4)  # lr 1 x clipped norm 0.5


def test_set_seed_makes_runs_reproducible():
    def run():
        qf.set_seed(123)
        learn = qf.Learner(make_dls(bs=16), nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.Linear(8, 2)),
                           nn.CrossEntropyLoss(), progress=False)  # fmt: skip
        learn.fit(1, 1e-2)
        return learn.model.state_dict()

    a, b = run(), run()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_bf16_on_cpu_trains_and_warns_when_emulated(learner):
    from quickfit.callbacks.mixed_precision import cpu_has_native_bf16

    learn = learner(metrics=[qf.accuracy]).to_bf16()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learn.fit_one_cycle(6, 1e-2)
    assert learn.validate()[1] > 0.85
    slow = [w for w in caught if "bf16" in str(w.message)]
    assert bool(slow) == (not cpu_has_native_bf16())
    learn.to_fp32()
    assert not any(isinstance(cb, qf.MixedPrecision) for cb in learn.cbs)


def test_fp16_on_cpu_is_a_clear_error(learner):
    learn = learner().to_fp16()
    with pytest.raises(RuntimeError, match="to_fp16\\(\\) needs a CUDA device"):
        learn.fit(1)


def test_autocast_is_active_in_the_forward_pass(learner):
    dtypes = []

    class Probe(qf.Callback):
        def after_pred(self, learn):
            dtypes.append(learn.pred.dtype)

    learn = learner(cbs=[Probe()]).to_bf16()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn.fit(1, 1e-3)
    assert set(dtypes) == {torch.bfloat16}


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        qf.Learner(make_dls(), "not a model", nn.CrossEntropyLoss())
    with pytest.raises(TypeError, match="callback instance"):
        qf.Learner(make_dls(), mlp(), nn.CrossEntropyLoss(), cbs=[qf.GradientClip])
    learn = qf.Learner(make_dls(), mlp(), nn.CrossEntropyLoss(), progress=False)
    with pytest.raises(ValueError, match="checkpoint='name'"):
        learn.fit(1, resume=True)


def test_cleanup_fit_runs_even_when_training_fails(learner):
    events = []

    class Boom(qf.Callback):
        def after_batch(self, learn):
            raise RuntimeError("boom")

        def after_fit(self, learn):
            events.append("after_fit")

        def cleanup_fit(self, learn):
            events.append("cleanup_fit")

    learn = learner().to_bf16()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="boom"):
            learn.fit(1, cbs=[Boom()])
    assert events == ["cleanup_fit"]  # after_fit is for success; cleanup_fit always runs
    assert learn.scaler is None and not isinstance(learn.autocast, torch.autocast)


# ---- issue 29, item 10: every cancel exception works from any callback order -------------------
@pytest.mark.parametrize("event", ["before_batch", "after_pred"])
@pytest.mark.parametrize("order", [-50, 0, 100])
def test_cancel_batch_on_the_first_batch_from_any_order(learner, event, order):
    class SkipFirst(qf.Callback):
        pass

    def skip(self, learn):
        if learn.training and learn.iter == 0:
            raise qf.CancelBatchException()

    SkipFirst.order = order
    setattr(SkipFirst, event, skip)
    learn = learner()
    learn.fit(2, 1e-2, cbs=[SkipFirst()])
    n = len(learn.dls.train)
    assert len(learn.recorder.losses) == 2 * (n - 1)  # the skipped batches have no loss
    assert len(learn.recorder.values) == 2 and all(math.isfinite(r[1]) for r in learn.recorder.values)


@pytest.mark.parametrize("order", [-50, 0, 100])
def test_cancel_epoch_in_before_epoch_from_any_order_logs_no_row_for_it(learner, order, tmp_path):
    class SkipSecond(qf.Callback):
        def before_epoch(self, learn):
            if learn.epoch == 1:
                raise qf.CancelEpochException()

    SkipSecond.order = order
    learn = learner()
    stop = qf.EarlyStopping("valid_loss", patience=1)
    learn.fit(3, 1e-2, cbs=[SkipSecond(), stop, qf.CSVLogger(tmp_path / "log.csv")])
    assert [r[0] for r in learn.recorder.values] == [0, 2]  # no row for the skipped epoch, none repeated
    assert stop.wait == 0  # a skipped epoch is not a non-improvement
    assert (tmp_path / "log.csv").read_text().count("\n") == 3  # header + 2 rows


def test_macro_f1_leaves_out_a_class_absent_from_targets_and_predictions():
    from sklearn.metrics import f1_score

    pred = torch.tensor([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [5.0, 0, 0, 0], [0, 0, 5.0, 0]])  # class 3: never
    targ = torch.tensor([0, 1, 1, 2])
    metric = qf.fbeta()
    metric.reset()
    metric.accumulate(pred, targ)
    assert metric.value == pytest.approx(f1_score(targ, pred.argmax(1), average="macro"))
