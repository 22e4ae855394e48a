"""Issue 8, defect 11: a validation loss that explodes after unfreeze() gets a warning naming the cause
(a learning rate too high for the pretrained body) and the fix (lr_find() again). On by default."""

import warnings

import pytest
import torch
from torch import nn

import quickfit as qf
from quickfit.callbacks.divergence import DivergenceCheck, DivergenceWarning
from tests.conftest import make_dls


def _two_groups(m):
    return [list(m[:-1].parameters()), list(m[-1].parameters())]


def pretrained_like(tmp_path) -> qf.Learner:
    """A body trained on the task, a fresh head trained on the frozen body: what vision_learner + fit gives."""
    qf.set_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    learn = qf.Learner(make_dls(), model, nn.CrossEntropyLoss(), splitter=_two_groups, path=tmp_path, progress=False)
    learn.fit_one_cycle(5, 1e-2)  # "pretraining"
    nn.init.normal_(model[-1].weight, std=0.01)  # the new head
    nn.init.zeros_(model[-1].bias)
    learn.opt = None
    learn.freeze()
    learn.fit_one_cycle(3, 3e-2)
    return learn


def _fit(learn, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learn.fit_one_cycle(*args)
    return [w for w in caught if issubclass(w.category, DivergenceWarning)]


def test_unfreezing_at_a_head_rate_that_wrecks_the_body_warns_once(tmp_path):
    learn = pretrained_like(tmp_path)
    assert any(isinstance(cb, DivergenceCheck) for cb in learn.cbs)  # a default callback
    before = learn.recorder.values[-1][2]
    learn.save("head_trained")
    learn.unfreeze()
    caught = _fit(learn, 2, 30.0)
    after = [r[2] for r in learn.recorder.values[-2:]]
    assert after[0] > 5 * before and after[1] > 5 * before  # it did diverge, both epochs
    assert len(caught) == 1  # once per unfreeze, not every epoch
    msg = str(caught[0].message)
    assert f"{after[0]:.4g}" in msg and f"{before:.4g}" in msg and "before unfreeze()" in msg
    assert "too high for the pretrained body" in msg and "learn.lr_find()" in msg and "up to 30" in msg
    assert caught[0].filename == __file__  # points at the fit call, not inside quickfit
    # back to the trained head, frozen (a new reference), unfrozen again: a new warning
    learn.load("head_trained")
    learn.freeze()
    learn.fit(1, 0.0)
    assert learn.recorder.values[-1][2] == pytest.approx(before)
    learn.unfreeze()
    assert len(_fit(learn, 1, 30.0)) == 1


def test_a_sane_rate_after_unfreeze_is_quiet(tmp_path):
    learn = pretrained_like(tmp_path)
    learn.unfreeze()
    assert _fit(learn, 2, 1e-3) == []
    assert learn.recorder.values[-1][2] < 2 * learn.recorder.values[-3][2]


def test_no_warning_without_an_unfreeze_nor_in_lr_find(tmp_path):
    qf.set_seed(0)
    scratch = qf.Learner(
        make_dls(), nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2)), nn.CrossEntropyLoss()
    )
    scratch.fit_one_cycle(2, 1e-2)
    assert _fit(scratch, 1, 30.0) == []  # high rates without pretrained layers: the loss shows it, no unfreeze
    learn = pretrained_like(tmp_path)
    learn.unfreeze()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        learn.lr_find(num_it=40, show_plot=False)  # the sweep diverges on purpose


def test_factor_is_checked_and_the_warning_can_be_silenced(tmp_path):
    with pytest.raises(ValueError, match=r"factor must be > 1, got 0\.5"):
        DivergenceCheck(0.5)
    learn = pretrained_like(tmp_path)
    learn.unfreeze()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=qf.DivergenceWarning)
        learn.fit_one_cycle(1, 30.0)
    assert not caught and torch.isfinite(torch.tensor(learn.recorder.values[-1][2]))
