import math

import numpy as np
import pytest

from quickfit import schedules
from tests.conftest import three_groups


def test_cos_anneal_endpoints_and_midpoint():
    assert schedules.cos_anneal(1.0, 0.0, 0.0) == pytest.approx(1.0)
    assert schedules.cos_anneal(1.0, 0.0, 0.5) == pytest.approx(0.5)
    assert schedules.cos_anneal(1.0, 0.0, 1.0) == pytest.approx(0.0)


@pytest.mark.parametrize("pos", np.linspace(0, 1, 23))
def test_one_cycle_matches_formula(pos):
    div, div_final, pct = 25.0, 1e5, 0.3
    if pos < pct:
        expected = 1 / div + (1 - 1 / div) * (1 - math.cos(math.pi * pos / pct)) / 2
    else:
        p = (pos - pct) / (1 - pct)
        expected = 1 / div_final + (1 - 1 / div_final) * (1 + math.cos(math.pi * p)) / 2
    assert schedules.one_cycle_lr(pos, div, div_final, pct) == pytest.approx(expected)


def test_one_cycle_momentum_is_inverse():
    moms = (0.95, 0.85, 0.95)
    assert schedules.one_cycle_mom(0.0, moms) == pytest.approx(0.95)
    assert schedules.one_cycle_mom(0.25, moms) == pytest.approx(0.85)
    assert schedules.one_cycle_mom(1.0, moms) == pytest.approx(0.95)


def test_flat_cos():
    assert schedules.flat_cos_lr(0.5) == 1.0
    assert schedules.flat_cos_lr(0.875) == pytest.approx(0.5)
    assert schedules.flat_cos_lr(1.0) == pytest.approx(0.0)


def test_sgdr_epochs_and_restarts():
    assert schedules.sgdr_epochs(3, 1, 2) == 7
    assert schedules.sgdr_epochs(3, 2, 1) == 6
    assert schedules.cycle_starts(3, 1, 2) == [0, 1, 3]
    # at each restart the multiplier is back to 1; just before it, near 0
    for start in (1, 3):
        assert schedules.sgdr_lr(start / 7, 3, 1, 2) == pytest.approx(1.0)
        assert schedules.sgdr_lr(start / 7 - 1e-6, 3, 1, 2) < 1e-3
    # halfway through the last (4-epoch) cycle
    assert schedules.sgdr_lr(5 / 7, 3, 1, 2) == pytest.approx(0.5)


def test_fit_sgdr_runs_seven_epochs_with_restarts(learner):
    learn = learner()
    learn.fit_sgdr(3, cycle_len=1, lr_max=1e-2, cycle_mult=2)
    assert len(learn.recorder.values) == 7
    lrs = np.array(learn.recorder.lrs)
    n = len(learn.dls.train)
    jumps = [i for i in range(1, len(lrs)) if lrs[i] > lrs[i - 1] * 5]
    assert jumps == [1 * n, 3 * n]  # restarts at the start of epochs 1 and 3
    assert lrs[0] == pytest.approx(1e-2)


def test_fit_one_cycle_schedule_scales_every_group(learner):
    learn = learner(splitter=three_groups)
    learn.fit_one_cycle(2, slice(1e-4, 1e-2), pct_start=0.25)
    lrs = np.array(learn.recorder.lrs)  # last group
    total = len(lrs)
    peak = int(np.argmax(lrs))
    assert abs(peak - 0.25 * total) <= 1
    assert lrs.max() == pytest.approx(1e-2, rel=0.02)
    assert lrs[0] == pytest.approx(1e-2 / 25, rel=1e-6)
    moms = np.array(learn.recorder.moms)
    assert moms[peak] == pytest.approx(0.85, abs=2e-3) and moms[0] == pytest.approx(0.95)
    # all groups keep their ratio (geometric spread 1e-4, 1e-3, 1e-2) throughout
    ratios = np.array(learn.hypers("lr")) / learn.hypers("lr")[-1]
    np.testing.assert_allclose(ratios, [1e-2, 1e-1, 1.0], rtol=1e-6)
