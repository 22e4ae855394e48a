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
    opt = qf.Adam(param_groups([list(model.parameters())]), lr=0.1, wd=0.5)
    assert len(opt.param_groups) == 1  # one torch group per layer group: Adam's kernels run once per step
    assert opt.param_groups[0]["decay_mask"] == [True, False, False, False]  # linear weight; bias, bn weight/bias
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()  # no gradient: the weight only shrinks by lr * wd, the others stay
    after = list(model.parameters())
    torch.testing.assert_close(after[0].detach(), before[0] * (1 - 0.1 * 0.5))
    assert all(torch.equal(a, b) for a, b in zip(after[1:], before[1:]))


def test_one_group_with_a_mask_steps_exactly_like_torch_adamw_with_two_groups():
    torch.manual_seed(0)
    ours, ref = mlp(), mlp()
    ref.load_state_dict(ours.state_dict())
    opt = qf.Adam(param_groups([list(ours.parameters())]), lr=1e-2, wd=0.1)
    decay = [p for p in ref.parameters() if p.ndim > 1]
    no_decay = [p for p in ref.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    ref_opt = torch.optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.99), eps=1e-5, foreach=True)
    x = torch.randn(16, ours[0].in_features)
    for _ in range(3):
        for model, o in ((ours, opt), (ref, ref_opt)):
            model(x).pow(2).mean().backward()
            o.step()
            o.zero_grad()
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_l2_weight_decay_splits_a_layer_group_by_its_mask():
    model = nn.Linear(3, 4)
    opt = qf.Adam(param_groups([list(model.parameters())]), lr=1e-3, wd=0.1, decouple_wd=False)
    by_decay = {g["decay"]: g for g in opt.param_groups}
    assert by_decay[True]["weight_decay"] == 0.1 and by_decay[False]["weight_decay"] == 0.0
    assert by_decay[True]["params"][0] is model.weight and by_decay[False]["params"][0] is model.bias


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


def test_rmsprop_momentum_is_on_the_normalised_step_as_documented():
    """Issue 29 item 11: which momentum rule qf.RMSprop applies (torch's, not the course library's)."""
    g = [torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.5]), torch.tensor([-1.0, 1.0])]
    lr, mom, alpha, eps = 0.1, 0.9, 0.99, 1e-8
    p = torch.zeros(2, requires_grad=True)
    opt = qf.RMSprop([p], lr=lr, mom=mom, sqr_mom=alpha, eps=eps)
    v, buf, avg = torch.zeros(2), torch.zeros(2), torch.zeros(2)
    torch_rule, course_rule = torch.zeros(2), torch.zeros(2)
    for grad in g:
        p.grad = grad.clone()
        opt.step()
        v = alpha * v + (1 - alpha) * grad**2
        buf = mom * buf + grad / (v.sqrt() + eps)  # momentum on the normalised step
        torch_rule -= lr * buf
        avg = mom * avg + grad  # the course's: momentum on the gradient, then normalised
        course_rule -= lr * avg / (v.sqrt() + eps)
    torch.testing.assert_close(p.detach(), torch_rule)
    assert not torch.allclose(p.detach(), course_rule, atol=1e-3)
