"""Hyper-parameter search on Adult: the forest, TPE and random samplers, best validation accuracy
against the trial number, and the UCI test accuracy (adult.test) of each search's best configuration.

    python benchmarks/tune_adult.py                                  # the full run: 30 trials x 3 samplers x 3 seeds
    python benchmarks/tune_adult.py --trials 12 --seeds 0 --max-epochs 4    # a reduced run (docs/tuning.md)

The search sees only adult.data: 80% trains, a seeded 20% validates (the objective). adult.test is
touched once per search, by the best configuration, retrained on the same 80% (same seed), so the
test accuracy is a fair held-out figure. Searched: learning rate, weight decay, embedding dropout,
dropout after the layers, layer sizes and epochs of one cycle. Every trial sets the same seed before
building its model. Each search is one study in --storage (SQLite): a killed run resumes where it
stopped. The plot (--plot) shows the mean over seeds of the best validation accuracy so far.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

import quickfit as qf
from quickfit.tabular import TabularDataLoaders, tabular_learner
from quickfit.tuning.plots import best_so_far

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from adult import CAT_NAMES, CONT_NAMES, read_adult  # noqa: E402

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "adult"


def space(max_epochs: int) -> dict:
    return {
        "lr": qf.LogUniform(1e-3, 5e-2),
        "wd": qf.LogUniform(1e-6, 0.3),
        "embed_p": qf.Uniform(0.0, 0.5),
        "ps": qf.Uniform(0.0, 0.5),
        "layers": qf.Choice([[200, 100], [400, 200], [1000, 500], [200, 200, 100]]),
        "epochs": qf.Int(2, max_epochs),
    }


def test_accuracy(dls, test, params: dict) -> float:
    qf.set_seed(0)
    learn = tabular_learner(dls, **{k: v for k, v in params.items() if k not in ("lr", "epochs")}, progress=False)
    learn.recorder.log_table = False
    learn.fit_one_cycle(params["epochs"], params["lr"])
    return learn.validate(dl=dls.test_dl(test))[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samplers", nargs="+", default=["forest", "tpe", "random"])
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--bs", type=int, default=256)
    parser.add_argument("--storage", default="sqlite:///tune_adult.db", help="'' for in memory")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "img" / "tune_adult.png"))
    parser.add_argument("--json", default="tune_adult.json", help="the results, written after each search")
    parser.add_argument("--replot", action="store_true", help="only draw --plot from the results in --json")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(Path(args.json).read_text()), args.samplers, args.plot)
        return
    torch.set_num_threads(1)  # a small MLP: one thread is fastest (docs/tabular.md)

    train = read_adult(DATA / "adult.data.gz")
    test = read_adult(DATA / "adult.test.gz", test=True)
    dls = TabularDataLoaders.from_df(train, "salary", CAT_NAMES, CONT_NAMES, valid_pct=0.2, seed=42, bs=args.bs)
    objective = qf.learner_objective(partial(tabular_learner, dls, progress=False), metric="accuracy", seed=0)

    results = {}
    for sampler in args.samplers:
        for seed in args.seeds:
            start = time.perf_counter()
            result = qf.tune(objective, space(args.max_epochs), n_trials=args.trials, sampler=sampler, seed=seed,
                             storage=args.storage or None, study=f"adult-{sampler}-{seed}-{args.trials}",
                             verbose=False, pruner="none")  # fmt: skip
            search_s = time.perf_counter() - start
            acc = test_accuracy(dls, test, result.best_params)
            done = result.trials[result.trials.state == "COMPLETE"].sort_values("number")
            results[f"{sampler}/{seed}"] = {
                "sampler": sampler,
                "seed": seed,
                "best_valid": result.best_value,
                "test": acc,
                "best_params": result.best_params,
                "values": done.value.tolist(),
                "search_s": search_s,
            }
            print(f"{sampler:<7} seed {seed}: best valid {result.best_value:.4f}, test {acc:.4f}, "
                  f"{search_s:.0f} s, {result.best_params}", flush=True)  # fmt: skip
            Path(args.json).write_text(json.dumps(results, indent=1))

    print("\nsampler  mean best valid  mean test  tests")
    for sampler in args.samplers:
        rows = [r for r in results.values() if r["sampler"] == sampler]
        tests = " ".join(f"{r['test']:.4f}" for r in rows)
        print(f"{sampler:<7}  {np.mean([r['best_valid'] for r in rows]):.4f}           "
              f"{np.mean([r['test'] for r in rows]):.4f}     {tests}")  # fmt: skip

    plot(results, args.samplers, args.plot)


def plot(results: dict, samplers: list[str], fname: str) -> None:
    from quickfit.plots import plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for sampler in samplers:
        curves = [best_so_far(r["values"]) for r in results.values() if r["sampler"] == sampler]
        n = min(len(c) for c in curves)
        seeds = f"{len(curves)} seed{'s' if len(curves) > 1 else ''}"
        mean = np.mean([c[:n] for c in curves], axis=0)
        ax.step(np.arange(1, n + 1), mean, where="post", label=f"{sampler} ({seeds})")
    ax.set_xlabel("trial")
    ax.set_ylabel("best validation accuracy so far" + (" (mean over seeds)" if len(results) > len(samplers) else ""))
    ax.set_title("Adult: hyper-parameter search")
    ax.legend()
    fig.tight_layout()
    fig.savefig(fname, dpi=100)
    print(f"plot saved to {fname}")


if __name__ == "__main__":
    main()
