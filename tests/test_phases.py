"""Schedules as values and training phases: closed forms, the built-in fits as phases (to the last float),
lesson 13's SGD-then-Adam example, fractional epochs, data and optimizers per phase, resume mid-phase."""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import quickfit as qf
from quickfit import schedules
from tests.conftest import make_dls, mlp, three_groups

FIXTURES = Path(__file__).parent / "fixtures"
POSITIONS = [0.0, 0.1, 0.25, 0.37, 0.5, 0.9, 0.999, 1.0]


# ---- schedules --------------------------------------------------------------------------------
@pytest.mark.parametrize("pos", POSITIONS)
def test_schedules_follow_their_closed_forms(pos):
    assert qf.SchedLin(2.0, 10.0)(pos) == pytest.approx(2 + 8 * pos)
    assert qf.SchedCos(2.0, 10.0)(pos) == pytest.approx(2 + (1 + math.cos(math.pi * (1 - pos))) * 8 / 2)
    assert qf.SchedNo(2.0, 10.0)(pos) == 2.0
    assert qf.SchedExp(1e-4, 1e-1)(pos) == pytest.approx(1e-4 * 1000**pos)
    assert qf.SchedPoly(2.0, 10.0, 3.0)(pos) == pytest.approx(2 + 8 * pos**3)


def test_schedule_endpoints():
    for sched in (qf.SchedLin(3, 7), qf.SchedCos(3, 7), qf.SchedExp(3, 7), qf.SchedPoly(3, 7, 0.5)):
        assert sched(0.0) == pytest.approx(3) and sched(1.0) == pytest.approx(7), sched


def test_combine_scheds_runs_each_part_over_its_fraction():
    sched = qf.combine_scheds([0.3, 0.7], [qf.SchedLin(0.0, 1.0), qf.SchedCos(1.0, 0.0)])
    assert sched(0.0) == 0.0
    assert sched(0.15) == pytest.approx(0.5)
    assert sched(0.3) == pytest.approx(1.0)
    assert sched(0.65) == pytest.approx(0.5)
    assert sched(1.0) == pytest.approx(0.0)
    three = qf.combine_scheds([0.25, 0.5, 0.25], [qf.SchedNo(1, 1), qf.SchedLin(1, 3), qf.SchedNo(5, 5)])
    assert [three(p) for p in (0.1, 0.5, 0.9)] == pytest.approx([1, 2, 5])


def test_combined_cos_is_the_one_cycle_shape_to_the_last_float():
    lr = qf.combined_cos(0.3, 1 / 25, 1.0, 1e-5)
    mom = qf.combined_cos(0.3, 0.95, 0.85, 0.95)
    for pos in np.linspace(0, 1, 1001).tolist():
        assert lr(pos) == schedules.one_cycle_lr(pos, 25, 1e5, 0.3)
        assert mom(pos) == schedules.one_cycle_mom(pos, (0.95, 0.85, 0.95), 0.3)


def test_a_rate_times_a_shape_gives_each_group_its_peak():
    for peak in (slice(1e-5, 1e-3), [1e-5, 1e-4, 1e-3], np.array([1e-5, 1e-4, 1e-3])):
        scaled = peak * qf.SchedCos(1, 0)
        assert isinstance(scaled, schedules.ScaledSched) and scaled.shape(0.5) == pytest.approx(0.5)
    assert (2 * qf.SchedLin(0, 1))(0.25) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: qf.combine_scheds([0.5, 0.6], [qf.SchedNo(1, 1), qf.SchedNo(1, 1)]), "add up to 1"),
        (lambda: qf.combine_scheds([0.5, 0.5], [qf.SchedNo(1, 1), 3.0]), "scheds[1] must be callable"),
        (lambda: qf.combine_scheds([1.0], []), "as many fractions as schedules"),
        (lambda: qf.SchedExp(0, 1), "start > 0"),
        (lambda: qf.SchedCos("1", 0), "start must be a finite number"),
        (lambda: qf.combined_cos(1.5, 1, 2, 3), "pct must be in [0, 1]"),
    ],
)
def test_bad_schedules_are_named(make, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[").replace("]", r"\]")):
        make()


# ---- the built-in fits are phases, and give what they gave before ------------------------------
def _fit_shapes():
    spec = importlib.util.spec_from_file_location("make_fit_shapes", FIXTURES / "make_fit_shapes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_builtin_fits_give_the_same_rates_momentums_and_weights_as_before_phases():
    """fit_shapes_v1.safetensors: per-batch lr / mom / wd of every group and the final weights of fit,
    fit_one_cycle, fit_sgdr, fit_flat_cos and fine_tune, written by the code before phases existed."""
    from safetensors.torch import load_file

    before = load_file(str(FIXTURES / "fit_shapes_v1.safetensors"))
    now = _fit_shapes().all_cases()
    assert sorted(now) == sorted(before)
    for key, value in before.items():
        assert torch.equal(now[key], value), key


# ---- phases -----------------------------------------------------------------------------------
class Record(qf.Callback):
    """Per training batch: each group's lr, the momentum, the optimizer's type, the epoch."""

    order = 100

    def __init__(self):
        self.lrs, self.moms, self.opts, self.epochs = [], [], [], []

    def before_batch(self, learn):
        if learn.training:
            self.lrs.append(learn.hypers("lr"))
            self.moms.append(learn.hypers("mom")[-1])
            self.opts.append(next(t.__name__ for t in (torch.optim.SGD, torch.optim.Adam) if isinstance(learn.opt, t)))
            self.epochs.append(learn.epoch)


def _learner(tmp_path, n=512, bs=32, **kwargs):
    return qf.Learner(
        make_dls(n, bs), mlp(), nn.CrossEntropyLoss(), splitter=three_groups, metrics=[qf.accuracy],
        path=tmp_path, progress=False, **kwargs,
    )  # fmt: skip


def test_lesson_13_sgd_phase_then_adam_phase_with_their_own_shapes(tmp_path):
    learn = _learner(tmp_path)
    rec = Record()
    phases = [
        qf.Phase(1, lr=qf.SchedLin(1e-2, 1e-1), mom=0.9, opt_func=qf.SGD),
        qf.Phase(2, lr=slice(3e-3, 3e-2) * qf.SchedCos(1, 0.01), mom=qf.SchedCos(0.95, 0.85), opt_func=qf.Adam),
    ]
    learn.fit_phases(phases, cbs=[rec])
    n = len(learn.dls.train)  # 13 batches an epoch
    assert rec.opts == ["SGD"] * n + ["Adam"] * 2 * n
    for i in range(n):  # SGD: every group the same rate, a line
        assert rec.lrs[i] == pytest.approx([1e-2 + (1e-1 - 1e-2) * i / n] * 3)
        assert rec.moms[i] == 0.9
    peaks = np.geomspace(3e-3, 3e-2, 3)
    for j in range(2 * n):  # Adam: each group its own peak, one cosine shape
        shape = qf.SchedCos(1, 0.01)(j / (2 * n))
        assert rec.lrs[n + j] == pytest.approx((peaks * shape).tolist())
        assert rec.moms[n + j] == pytest.approx(qf.SchedCos(0.95, 0.85)(j / (2 * n)))
    assert len(learn.recorder.values) == 3
    assert learn.recorder.values[-1][3] > 0.85  # it learned XOR


def test_fractional_epochs_train_that_share_of_the_batches(tmp_path):
    learn = _learner(tmp_path, n=200, bs=20)  # 160 training rows: 8 batches an epoch
    rec = Record()
    learn.fit_phases([qf.Phase(0.5, lr=1e-3), qf.Phase(1.5, lr=qf.SchedLin(1e-3, 0))], cbs=[rec])
    assert [rec.epochs.count(e) for e in range(3)] == [4, 8, 4]
    assert len(learn.recorder.values) == 3  # each (part of an) epoch validates
    assert [lr[-1] for lr in rec.lrs[4:]] == pytest.approx([1e-3 * (1 - i / 12) for i in range(12)])


def test_each_phase_can_bring_its_own_data_and_the_learner_keeps_the_last(tmp_path):
    learn = _learner(tmp_path)
    small, big = make_dls(512, 16), make_dls(512, 64)
    rec = Record()
    learn.fit_phases([qf.Phase(1, lr=1e-3, dls=small), qf.Phase(1, lr=1e-3, dls=big)], cbs=[rec])
    assert [rec.epochs.count(e) for e in range(2)] == [len(small.train), len(big.train)]
    assert learn.dls is big


def _snapshot_state(opt):
    return {i: {k: v.clone() for k, v in s.items()} for i, s in enumerate(opt.state.values())}


class OptAtEpochStart(qf.Callback):
    order = qf.callbacks.core.Order.PHASES + 1  # right after the phase is entered

    def __init__(self):
        self.seen = []

    def before_epoch(self, learn):
        self.seen.append((learn.opt, _snapshot_state(learn.opt)))

    def after_epoch(self, learn):
        self.seen.append((learn.opt, _snapshot_state(learn.opt)))


def test_optimizer_state_carries_over_when_the_type_matches_and_starts_fresh_otherwise(tmp_path):
    learn = _learner(tmp_path)
    spy = OptAtEpochStart()
    adam_eps = functools.partial(qf.Adam, eps=1e-4)  # another opt_func, the same optimizer type
    phases = [qf.Phase(1, lr=1e-3, opt_func=qf.Adam), qf.Phase(1, lr=1e-3, opt_func=adam_eps)]
    phases.append(qf.Phase(1, lr=1e-2, opt_func=qf.SGD))
    learn.fit_phases(phases, cbs=[spy])
    (_, _), (opt0, end0), (opt1, start1), (_, end1), (opt2, start2), _ = spy.seen
    assert opt1 is not opt0 and opt1.param_groups[0]["eps"] == 1e-4  # the new optimizer's settings
    assert end0.keys() == start1.keys() and all(
        torch.equal(end0[i][k], start1[i][k]) for i in end0 for k in end0[i]
    )  # Adam's moments carried over
    assert isinstance(opt2, torch.optim.SGD) and start2 == {}  # a new type: fresh state


@pytest.mark.parametrize(
    "phases, error, message",
    [
        ([], ValueError, "at least one phase"),
        (qf.Phase(1), TypeError, "a list of phases"),
        ([qf.Phase(1), "fast"], TypeError, "phase 1 must be a qf.Phase"),
        ([qf.Phase(0)], ValueError, "phase 0: epochs must be > 0"),
        ([qf.Phase(1), qf.Phase(-2)], ValueError, "phase 1: epochs must be > 0"),
        ([qf.Phase("3")], TypeError, "phase 0: epochs must be a positive number"),
        ([qf.Phase(1, lr="cosine")], TypeError, "phase 0: lr"),
        ([qf.Phase(1, lr=-1e-3)], ValueError, "phase 0: lr"),
        ([qf.Phase(1, lr=slice(1e-3, 1e-2)), qf.Phase(1, lr=slice(-1.0, 1e-2))], ValueError, "phase 1: lr"),
        ([qf.Phase(1, mom=[0.9])], TypeError, "phase 0: mom must be a number or a schedule"),
        ([qf.Phase(1, mom=1.5)], ValueError, "phase 0: mom must be in"),
        ([qf.Phase(1, wd="0.1")], TypeError, "phase 0: wd"),
        ([qf.Phase(1, opt_func="adam")], TypeError, "phase 0: opt_func"),
        ([qf.Phase(1, dls=[1, 2])], TypeError, "phase 0: dls must be DataLoaders"),
    ],
)
def test_bad_phase_lists_name_the_phase_and_the_argument(tmp_path, phases, error, message):
    learn = _learner(tmp_path)
    with pytest.raises(error, match=message):
        learn.fit_phases(phases)


def test_data_with_other_classes_is_refused_before_training(tmp_path):
    learn = _learner(tmp_path)
    learn.dls.vocab = ["a", "b"]
    other = make_dls()
    other.vocab = ["a", "c"]
    before = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.raises(ValueError, match=r"phase 1: dls has other classes than the model's: \['a', 'c'\]"):
        learn.fit_phases([qf.Phase(1, lr=1e-3), qf.Phase(1, lr=1e-3, dls=other)])
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))  # nothing trained


class Crash(qf.Callback):
    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def before_batch(self, learn):
        if learn.training and (learn.epoch, learn.iter) == (self.epoch, self.batch):
            raise KeyboardInterrupt("killed")


def _two_optimizer_phases(small, big):
    return [
        qf.Phase(1, lr=qf.SchedLin(1e-3, 3e-2), mom=0.9, opt_func=qf.SGD, dls=small),
        qf.Phase(2.5, lr=3e-3 * qf.SchedCos(1, 0), opt_func=qf.Adam, dls=big),
    ]


def test_a_run_interrupted_mid_phase_resumes_to_the_same_weights(tmp_path):
    def run(path, cbs=(), resume=False):
        torch.manual_seed(3)
        learn = _learner(path)
        learn.fit_phases(_two_optimizer_phases(make_dls(512, 16), make_dls(512, 64)), cbs, "run", resume)
        return learn

    straight = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", cbs=[Crash(epoch=2, batch=3)])  # in the Adam phase, after its first epoch
    resumed = run(tmp_path / "b", resume=True)
    assert isinstance(resumed.opt, torch.optim.Adam)
    for (k, v), w in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(v, w), k
    assert [r[:-1] for r in resumed.recorder.values] == [r[:-1] for r in straight.recorder.values]


def test_plot_schedule_draws_every_phase(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    learn = _learner(tmp_path)
    learn.fit_phases([qf.Phase(1, lr=qf.SchedLin(1e-4, 1e-2)), qf.Phase(1, lr=1e-2 * qf.SchedCos(1, 0))])
    fig = learn.recorder.plot_schedule()
    lr_line = fig.axes[0].lines[0].get_ydata()
    assert len(lr_line) == 2 * len(learn.dls.train) and max(lr_line) == pytest.approx(1e-2, rel=0.1)


@pytest.mark.slow
def test_the_readme_phases_snippet_runs_as_pasted(tmp_path):
    import os
    import re
    import subprocess
    import sys

    pytest.importorskip("sklearn")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("**Training phases**") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "phases.py").write_text(code)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}  # a tiny CNN: one thread is fastest
    out = subprocess.run(
        [sys.executable, "phases.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines() if line[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1", "2", "3", "4"]
    assert float(rows[-1][3]) > 0.9  # accuracy on the digits
    assert (tmp_path / "phases.png").stat().st_size > 10_000


def test_the_progress_bar_counts_the_batches_of_a_fractional_epoch(tmp_path):
    learn = _learner(tmp_path, n=200, bs=20)  # 8 batches an epoch
    learn.progress_cb.enabled = True
    totals = []

    class Spy(qf.Callback):
        order = qf.callbacks.core.Order.PROGRESS + 1

        def before_train(self, learn):
            totals.append(learn.progress_cb.bar.total)

    learn.fit_phases([qf.Phase(1.25, lr=1e-3)], cbs=[Spy()])
    assert totals == [8, 2]


@pytest.mark.filterwarnings("ignore:bf16 mixed precision on a CPU")
def test_phases_drive_a_gan_steps_own_optimizer_under_mixed_precision(tmp_path):
    from tests.test_step import gan_learner

    learn = gan_learner(tmp_path).to_bf16()
    rec = []

    class CriticLr(qf.Callback):
        order = 100

        def before_batch(self, learn):
            if learn.training:
                rec.append((learn.opt.param_groups[0]["lr"], learn.step.crit_opt.param_groups[0]["lr"]))

    short = qf.DataLoaders(
        torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(640, 2), torch.randn(640, 2)), 64),
        learn.dls.valid,
    )
    learn.fit_phases([qf.Phase(1, lr=1e-2 * qf.SchedCos(1, 0.1), dls=short), qf.Phase(0.5, lr=1e-3)], cbs=[CriticLr()])
    assert len(rec) == 15
    for i, (gen, crit) in enumerate(rec[:10]):  # the critic follows the shape at its own peak (its "lr_max")
        shape = qf.SchedCos(1, 0.1)(i / 10)
        assert gen == pytest.approx(1e-2 * shape) and crit == pytest.approx(learn.step.critic_lr * shape)
    assert all(gen == pytest.approx(1e-3) for gen, _ in rec[10:])
    assert all(math.isfinite(row[1]) for row in learn.recorder.values)
