"""qf.tune: bad search spaces, the forest sampler against random search, studies that survive a kill
and are shared by two processes, learner_objective with pruning, the plots."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import quickfit as qf
from tests.tune_worker import search

optuna = pytest.importorskip("optuna")
pytest.importorskip("sklearn")
WORKER = Path(__file__).with_name("tune_worker.py")


def test_bad_search_spaces_are_named():
    with pytest.raises(ValueError, match="Choice: the list of values is empty"):
        qf.Choice([])
    with pytest.raises(ValueError, match=r"Uniform: low \(2\) is above high \(1\)"):
        qf.Uniform(2, 1)
    with pytest.raises(ValueError, match=r"Int: low \(5\) is above high \(3\)"):
        qf.Int(5, 3)
    with pytest.raises(ValueError, match="LogUniform: low must be > 0"):
        qf.LogUniform(0, 1)
    with pytest.raises(TypeError, match=r"space\[.layers.\] .*\(wrap a list of values in qf.Choice\)"):
        qf.tune(lambda p: 0.0, {"layers": [100, 200]}, n_trials=1, verbose=False)
    with pytest.raises(ValueError, match="unknown sampler 'bayes'"):
        qf.tune(lambda p: 0.0, {"x": qf.Uniform(0, 1)}, sampler="bayes", verbose=False)
    with pytest.raises(ValueError, match="n_trials must be"):
        qf.tune(lambda p: 0.0, {"x": qf.Uniform(0, 1)}, n_trials=0, verbose=False)
    with pytest.raises(ValueError, match="direction must be"):
        qf.tune(lambda p: 0.0, {"x": qf.Uniform(0, 1)}, direction="max", verbose=False)


def _trials_to_reach(sampler: str, seed: int, cap: int = 30, target: float = 1.0) -> int:
    """Trials until the best of (x - 1)^2 + (y + 2)^2 on [-5, 5]^2 is below `target` (`cap` if never)."""
    seen = []

    def f(p):
        seen.append((p["x"] - 1) ** 2 + (p["y"] + 2) ** 2)
        if seen[-1] < target:
            raise _Reached
        return seen[-1]

    try:
        qf.tune(f, {"x": qf.Uniform(-5, 5), "y": qf.Uniform(-5, 5)}, n_trials=cap, sampler=sampler, seed=seed,
                direction="minimize", verbose=False)  # fmt: skip
    except _Reached:
        return len(seen)
    return cap


class _Reached(Exception):
    pass


def test_forest_finds_a_quadratic_minimum_in_fewer_trials_than_random_search():
    seeds = range(6)
    forest = [_trials_to_reach("forest", s) for s in seeds]
    random = [_trials_to_reach("random", s) for s in seeds]
    assert sum(forest) < sum(random), (forest, random)
    assert np.median(forest) < np.median(random), (forest, random)


def test_choices_of_lists_come_back_as_lists_and_samplers_are_repeatable(tmp_path):
    space = {"layers": qf.Choice([[8], [16, 8]]), "lr": qf.LogUniform(1e-3, 1e-1), "n": qf.Int(1, 4)}
    got = []

    def objective(p):
        got.append(p)
        assert isinstance(p["layers"], list) and isinstance(p["n"], int)
        return p["lr"] * p["n"] * len(p["layers"])

    first = qf.tune(objective, space, n_trials=12, seed=3, verbose=False)
    again = qf.tune(lambda p: objective(p), space, n_trials=12, seed=3, verbose=False)
    assert got[:12] == got[12:]  # the same seed, the same proposals (the forest's too)
    assert first.best_value == again.best_value and isinstance(first.best_params["layers"], list)
    assert list(first.trials.columns[:4]) == ["number", "value", "state", "duration"]
    assert {"layers", "lr", "n"} <= set(first.trials.columns) and len(first.trials) == 12
    tpe = qf.tune(objective, space, n_trials=3, sampler="tpe", seed=0, verbose=False)
    assert len(tpe.trials) == 3
    assert first.plot_history().axes and first.plot_importance().axes


def _study(storage: str):
    return optuna.load_study(study_name="quickfit", storage=storage)


def test_a_search_killed_mid_trial_resumes_without_losing_or_repeating_a_trial(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    proc = subprocess.Popen([sys.executable, str(WORKER), storage, "6", "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "hanging"  # trials 0, 1, 2 finished; 3 is running
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {t.number: (t.params, t.value) for t in _study(storage).trials if t.state.name == "COMPLETE"}
    assert sorted(before) == [0, 1, 2]
    assert _study(storage).trials[3].state.name == "RUNNING"  # what Optuna leaves of a killed trial
    time.sleep(2.2)  # past the heartbeat's grace period (2 x 1 s): the trial is stale
    search(storage, 6)  # the same search, run again (here, in this process)
    trials = _study(storage).trials
    complete = {t.number: (t.params, t.value) for t in trials if t.state.name == "COMPLETE"}
    assert len(complete) == 6 and all(complete[n] == before[n] for n in before)  # none lost
    assert trials[3].state.name == "FAIL"  # marked failed, then asked anew as trial 4
    params = [tuple(sorted(p.items())) for p, _ in complete.values()]
    assert len(set(params)) == 6  # none repeated


def test_two_processes_share_one_study_with_distinct_trials(tmp_path):
    storage, go = f"sqlite:///{tmp_path / 'study.db'}", tmp_path / "go"
    cmd = [sys.executable, str(WORKER), storage, "10", "-1", str(go)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    go.touch()
    search(storage, 10)  # this process is the other one
    assert proc.wait(timeout=120) == 0
    trials = [t for t in _study(storage).trials if t.state.name == "COMPLETE"]
    assert 10 <= len(trials) <= 11  # each stops once 10 are finished in all
    assert len({t.number for t in trials}) == len(trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials)  # the same seed, distinct trials
    assert len({t.user_attrs["pid"] for t in trials}) == 2


def _factory(hidden: int = 4, wd: float = 0.0):
    from tests.conftest import make_dls

    model = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 2))
    return qf.Learner(make_dls(n=128), model, nn.CrossEntropyLoss(), metrics=[qf.accuracy], wd=wd, progress=False)


def test_learner_objective_searches_factory_and_fit_arguments_and_prunes():
    objective = qf.learner_objective(_factory, metric="accuracy", epochs=2)
    space = {"hidden": qf.Int(2, 16), "lr": qf.LogUniform(1e-3, 1e-1), "epochs": qf.Int(1, 2)}
    result = qf.tune(objective, space, n_trials=3, sampler="random", seed=0, verbose=False)
    assert set(result.best_params) == {"hidden", "lr", "epochs"} and 0 <= result.best_value <= 1
    with pytest.raises(TypeError, match="the factory takes no argument 'depth'"):
        qf.tune(objective, {"depth": qf.Int(1, 3)}, n_trials=1, verbose=False)
    # a pruner that stops every trial at its first report: PRUNED trials count toward n_trials
    always = optuna.pruners.ThresholdPruner(upper=-1.0)
    objective = qf.learner_objective(_factory, metric="valid_loss", epochs=3)
    with pytest.raises(RuntimeError, match="no trial of the study 'quickfit' completed"):
        qf.tune(objective, {"lr": qf.LogUniform(1e-3, 1e-1)}, n_trials=2, pruner=always, verbose=False)
    torch.manual_seed(0)
    learn = _factory()
    learn.fit(1, 1e-2, cbs=[qf.PruneTrial("accuracy")])  # outside a search: does nothing


def test_quickfit_tune_command_on_a_csv(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    from quickfit.cli import main

    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, generator=g)
    df = pd.DataFrame({"a": a.tolist(), "c": ["u", "v", "w", "x"] * 50, "y": (a > 0).long().tolist()})
    df["y"] = df["y"].map({0: "no", 1: "yes"})
    df.to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "out"
    argv = ["tune", str(tmp_path / "d.csv"), "--target", "y", "--trials", "3", "--epochs", "1"]
    assert main([*argv, "--out", str(out), "--sampler", "random"]) == 0
    text = capsys.readouterr().out
    assert "best accuracy" in text and "trial  state" in text
    assert {"trials.csv", "history.png", "importance.png"} <= {f.name for f in out.iterdir()}
    assert main([*argv, "--sampler", "bayes"]) == 2  # argparse names the choices
