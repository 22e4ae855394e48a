"""A search run in a subprocess by tests/test_tuning.py: killed mid-trial, resumed, or run twice at once.

    python tests/tune_worker.py STORAGE N_TRIALS HANG_AT GO_FILE

The objective is a quadratic of the parameters; trial HANG_AT (-1: none) prints "hanging" and sleeps
until killed. With GO_FILE, the worker prints "ready" and waits for the file before searching, so it
starts together with the test's own search (`search`, imported).
"""

import os
import sys
import time
from pathlib import Path

import quickfit as qf
from quickfit.tuning import current_trial

SPACE = {"x": qf.Uniform(-3, 3), "y": qf.Uniform(-3, 3)}
hang_at = -1


def objective(params):
    trial = current_trial()
    trial.set_user_attr("pid", os.getpid())
    if trial.number == hang_at:
        print("hanging", flush=True)
        time.sleep(600)
    time.sleep(0.25)
    return -((params["x"] - 1) ** 2) - (params["y"] - 2) ** 2


def search(storage: str, n_trials: int):
    return qf.tune(objective, SPACE, n_trials=n_trials, storage=storage, seed=0, heartbeat=1, verbose=False)


if __name__ == "__main__":
    storage, n_trials, hang_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    go = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    if go is not None:
        import optuna  # noqa: F401  (imported before "ready": the test's process has them already)
        import sklearn.ensemble  # noqa: F401

        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.02)
    search(storage, n_trials)
