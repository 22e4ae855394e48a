"""Every public fit* / lr_find / fine_tune argument is checked: the error names the argument and the value.

Issue 8, defect 3: `fit_one_cycle(1, -1e-3)` ran gradient ascent, `"1e-3"` was accepted as a string,
`"abc"` failed with "could not convert string to float" and `fit_one_cycle("2", ...)` with
"must be real number, not str" -- none of them naming the argument.
"""

import numpy as np
import pytest
import torch

import quickfit as qf

# (method, args, kwargs, exception, argument named in the message, value as the message shows it)
BAD = [
    # the four cases, typed as the user typed them
    ("fit_one_cycle", (1, -1e-3), {}, ValueError, "lr_max", "-0.001"),
    ("fit_one_cycle", (1, "1e-3"), {}, TypeError, "lr_max", "'1e-3'"),
    ("fit_one_cycle", (1, "abc"), {}, TypeError, "lr_max", "'abc'"),
    ("fit_one_cycle", ("2", 1e-3), {}, TypeError, "n_epoch", "'2'"),
    # fit
    ("fit", (0, 1e-3), {}, ValueError, "n_epoch", "0"),
    ("fit", (-2, 1e-3), {}, ValueError, "n_epoch", "-2"),
    ("fit", (1.5, 1e-3), {}, ValueError, "n_epoch", "1.5"),
    ("fit", (True, 1e-3), {}, TypeError, "n_epoch", "True"),
    ("fit", (1, -1), {}, ValueError, "lr", "-1"),
    ("fit", (1, float("nan")), {}, ValueError, "lr", "nan"),
    ("fit", (1, float("inf")), {}, ValueError, "lr", "inf"),
    ("fit", (1, True), {}, TypeError, "lr", "True"),
    ("fit", (1, [1e-3, "x"]), {}, TypeError, "lr[1]", "'x'"),
    ("fit", (1, [1e-3, -1e-3]), {}, ValueError, "lr[1]", "-0.001"),
    ("fit", (1, slice(-1e-4, 1e-3)), {}, ValueError, "lr (start of the slice)", "-0.0001"),
    ("fit", (1, slice("1e-3")), {}, TypeError, "lr (stop of the slice)", "'1e-3'"),
    ("fit", (1, slice(1e-3, None)), {}, ValueError, "lr=slice", "slice(0.001, None, None)"),
    ("fit", (1, 1e-3), {"wd": -0.1}, ValueError, "wd", "-0.1"),
    ("fit", (1, 1e-3), {"wd": "0.1"}, TypeError, "wd", "'0.1'"),
    ("fit", (1, 1e-3), {"cbs": None}, TypeError, "cbs", "None"),
    ("fit", (1, 1e-3), {"cbs": qf.GradientClip(1.0)}, TypeError, "cbs", "GradientClip"),
    ("fit", (1, 1e-3), {"checkpoint": 3}, TypeError, "checkpoint", "3"),
    ("fit", (1, 1e-3), {"resume": True}, ValueError, "resume", "checkpoint="),
    # fit_one_cycle's own arguments
    ("fit_one_cycle", (1, 1e-3), {"div": 0}, ValueError, "div", "0"),
    ("fit_one_cycle", (1, 1e-3), {"div": "25"}, TypeError, "div", "'25'"),
    ("fit_one_cycle", (1, 1e-3), {"div_final": -1}, ValueError, "div_final", "-1"),
    ("fit_one_cycle", (1, 1e-3), {"pct_start": 1.5}, ValueError, "pct_start", "1.5"),
    ("fit_one_cycle", (1, 1e-3), {"pct_start": -0.1}, ValueError, "pct_start", "-0.1"),
    ("fit_one_cycle", (1, 1e-3), {"moms": (0.95, 0.85)}, ValueError, "moms", "(0.95, 0.85)"),
    ("fit_one_cycle", (1, 1e-3), {"moms": "abc"}, ValueError, "moms", "'abc'"),
    ("fit_one_cycle", (1, 1e-3), {"moms": (0.95, 0.85, 2)}, ValueError, "moms[2]", "2"),
    ("fit_one_cycle", (1, 1e-3), {"wd": -1}, ValueError, "wd", "-1"),
    # fit_flat_cos
    ("fit_flat_cos", ("3", 1e-3), {}, TypeError, "n_epoch", "'3'"),
    ("fit_flat_cos", (1, -1e-3), {}, ValueError, "lr", "-0.001"),
    ("fit_flat_cos", (1, 1e-3), {"pct_start": 2}, ValueError, "pct_start", "2"),
    # fit_sgdr
    ("fit_sgdr", (0,), {}, ValueError, "n_cycles", "0"),
    ("fit_sgdr", ("3",), {}, TypeError, "n_cycles", "'3'"),
    ("fit_sgdr", (2.5,), {}, TypeError, "n_cycles", "2.5"),
    ("fit_sgdr", (2,), {"cycle_len": 0}, ValueError, "cycle_len", "0"),
    ("fit_sgdr", (2,), {"cycle_len": "1"}, TypeError, "cycle_len", "'1'"),
    ("fit_sgdr", (2,), {"cycle_mult": "2"}, TypeError, "cycle_mult", "'2'"),
    ("fit_sgdr", (2,), {"cycle_mult": -1}, ValueError, "cycle_mult", "-1"),
    ("fit_sgdr", (2,), {"lr_max": -1e-3}, ValueError, "lr_max", "-0.001"),
    ("fit_sgdr", (2,), {"lr_max": "abc"}, TypeError, "lr_max", "'abc'"),
    ("fit_sgdr", (2,), {"wd": -1}, ValueError, "wd", "-1"),
    ("fit_sgdr", (2,), {"cbs": None}, TypeError, "cbs", "None"),
    ("fit_flat_cos", (1,), {"cbs": "SaveBest"}, TypeError, "cbs", "'SaveBest'"),
    ("fit_one_cycle", (1,), {"checkpoint": True}, TypeError, "checkpoint", "True"),
    # fine_tune
    ("fine_tune", (0,), {}, ValueError, "epochs", "0"),
    ("fine_tune", ("1",), {}, TypeError, "epochs", "'1'"),
    ("fine_tune", (1,), {"base_lr": -2e-3}, ValueError, "base_lr", "-0.002"),
    ("fine_tune", (1,), {"base_lr": "2e-3"}, TypeError, "base_lr", "'2e-3'"),
    ("fine_tune", (1,), {"freeze_epochs": -1}, ValueError, "freeze_epochs", "-1"),
    ("fine_tune", (1,), {"freeze_epochs": "1"}, TypeError, "freeze_epochs", "'1'"),
    ("fine_tune", (1,), {"lr_mult": 0}, ValueError, "lr_mult", "0"),
    ("fine_tune", (1,), {"pct_start": 2}, ValueError, "pct_start", "2"),
    ("fine_tune", (1,), {"div": 0}, ValueError, "div", "0"),
    ("fine_tune", (1,), {"wd": -1}, ValueError, "wd", "-1"),
    ("fine_tune", (1,), {"cbs": None}, TypeError, "cbs", "None"),
    # lr_find
    ("lr_find", (), {"start_lr": -1}, ValueError, "start_lr", "-1"),
    ("lr_find", (), {"start_lr": "1e-7"}, TypeError, "start_lr", "'1e-7'"),
    ("lr_find", (), {"end_lr": "10"}, TypeError, "end_lr", "'10'"),
    ("lr_find", (), {"end_lr": float("inf")}, ValueError, "end_lr", "inf"),
    ("lr_find", (), {"start_lr": 1.0, "end_lr": 0.1}, ValueError, "end_lr", "0.1"),
    ("lr_find", (), {"num_it": 0}, ValueError, "num_it", "0"),
    ("lr_find", (), {"num_it": 1}, ValueError, "num_it", "1"),
    ("lr_find", (), {"num_it": 2.5}, TypeError, "num_it", "2.5"),
    ("lr_find", (), {"num_it": "100"}, TypeError, "num_it", "'100'"),
]


def _weights(learn) -> list[torch.Tensor]:
    return [p.detach().clone() for p in learn.model.parameters()]


@pytest.mark.parametrize(
    "method,args,kwargs,exc,arg,value", BAD, ids=[f"{m}{a}{k}".replace(" ", "") for m, a, k, *_ in BAD]
)
def test_bad_argument_is_refused_naming_it_and_its_value(learner, method, args, kwargs, exc, arg, value):
    learn = learner()
    before = _weights(learn)
    with pytest.raises(exc) as info:
        getattr(learn, method)(*args, **kwargs)
    msg = str(info.value)
    assert arg in msg and value in msg, msg
    # refused before anything ran: no gradient ascent, no epoch recorded
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(learn)))
    assert learn.recorder.values == [] and learn.recorder.losses == []


@pytest.mark.parametrize(
    "lr",
    [1e-2, 0, 0.0, np.float32(1e-2), torch.tensor(1e-2), slice(1e-2), slice(1e-3, 1e-2), [1e-3, 1e-2, 1e-2]],
    ids=["float", "zero", "zero-float", "np.float32", "tensor", "slice-hi", "slice-lo-hi", "list"],
)
def test_every_documented_form_of_a_rate_is_accepted(learner, lr):
    from tests.conftest import three_groups

    learn = learner(splitter=three_groups)
    learn.fit(1, lr)
    assert len(learn.recorder.values) == 1


def test_whole_numbers_of_other_types_are_accepted(learner):
    learn = learner()
    learn.fit_one_cycle(np.int64(1), 1e-2, pct_start=0.3, div=10, moms=None)
    learn.fit(2.0, 1e-3)  # a float that is a whole number of epochs
    learn.fit_sgdr(2, cycle_len=0.5, lr_max=1e-3)  # half-epoch cycles: one epoch in all
    learn.lr_find(num_it=np.int64(5), show_plot=False)
    assert len(learn.recorder.values) == 4
