import numpy as np
import pytest
import torch
from torch import nn

import quickfit as qf
from quickfit.optim import lr_per_group, param_groups
from tests.conftest import mlp, three_groups


@pytest.mark.parametrize(
    "lr, expected",
    [
        (1e-3, [1e-3, 1e-3, 1e-3]),
        (slice(1e-3), [1e-3 / 3, 1e-3 / 3, 1e-3]),
        (slice(1e-5, 1e-3), [1e-5, 1e-4, 1e-3]),
        ([1e-4, 2e-4, 3e-4], [1e-4, 2e-4, 3e-4]),
        (np.array([1e-4, 2e-4, 3e-4]), [1e-4, 2e-4, 3e-4]),
    ],
)
def test_learning_rates_per_group(learner, lr, expected):
    learn = learner(splitter=three_groups)
    learn.fit(1, lr)
    np.testing.assert_allclose(learn.hypers("lr"), expected, rtol=1e-9)
    # every torch group of a layer group carries that group's rate
    for g in learn.opt.param_groups:
        assert g["lr"] == pytest.approx(expected[g["layer_group"]])


def test_slice_divisor_is_a_learner_setting(learner):
    learn = learner(splitter=three_groups, slice_div=10)
    learn.fit(1, slice(1e-2))
    np.testing.assert_allclose(learn.hypers("lr"), [1e-3, 1e-3, 1e-2])


def test_wrong_number_of_rates_is_a_clear_error():
    with pytest.raises(ValueError, match="2 learning rates for 3 layer groups"):
        lr_per_group([1e-3, 1e-2], 3)


def test_adam_is_torch_adamw_with_course_defaults():
    model = mlp()
    opt = qf.Adam(param_groups([list(model.parameters())]), lr=1e-3)
    assert isinstance(opt, torch.optim.AdamW)
    g = opt.param_groups[0]
    assert g["betas"] == (0.9, 0.99) and g["eps"] == 1e-5
    assert isinstance(qf.Adam(param_groups([list(model.parameters())]), decouple_wd=False), torch.optim.Adam)


def test_no_weight_decay_on_biases_and_norm_weights():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    opt = qf.Adam(param_groups([list(model.parameters())]), lr=1e-3, wd=0.1)
    by_decay = {g["decay"]: g for g in opt.param_groups}
    assert [p.shape for p in by_decay[True]["params"]] == [torch.Size([4, 3])]
    assert by_decay[True]["weight_decay"] == 0.1 and by_decay[False]["weight_decay"] == 0.0
    assert len(by_decay[False]["params"]) == 3  # linear bias, bn weight, bn bias


@pytest.mark.parametrize("opt_func", [qf.SGD, qf.RMSprop])
def test_decoupled_weight_decay_shrinks_weights_by_lr_times_wd(opt_func):
    w = nn.Parameter(torch.ones(2, 2))
    opt = opt_func(param_groups([[w]]), lr=0.1, wd=0.5)
    w.grad = torch.zeros(2, 2)  # no gradient: the only change is the decay
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((2, 2), 1 - 0.1 * 0.5))


def test_l2_option_puts_decay_in_the_gradient():
    w = nn.Parameter(torch.ones(1, 1))
    opt = qf.SGD(param_groups([[w]]), lr=0.1, mom=0.0, wd=0.5, decouple_wd=False)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["weight_decay"] == 0.5
    w.grad = torch.zeros(1, 1)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((1, 1), 1 - 0.1 * 0.5))


@pytest.mark.parametrize("opt_func, key", [(qf.SGD, "momentum"), (qf.Adam, "betas"), (qf.RMSprop, "momentum")])
def test_one_cycle_cycles_momentum(learner, opt_func, key):
    kwargs = {"mom": 0.9} if opt_func is qf.RMSprop else {}
    learn = learner(opt_func=lambda groups, lr, **kw: opt_func(groups, lr=lr, **kwargs, **kw))
    learn.fit_one_cycle(1, 1e-3)
    moms = np.array(learn.recorder.moms)
    assert moms.min() == pytest.approx(0.85, abs=0.01) and moms[0] == pytest.approx(0.95)
    assert key in learn.opt.param_groups[0]
