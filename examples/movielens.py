"""MovieLens 100k with a dot-product + biases model: test RMSE on the u1 split, and what the biases say.

    python examples/movielens.py                     # data from ../shared/data/movielens_100k
    python examples/movielens.py --data /path/to/ml-100k --epochs 5 --wd 0.2

Trains on `u1.base` (80,000 ratings) and reports the RMSE on the held-out `u1.test` (20,000 ratings;
movies that never appear in u1.base get the unknown index). Goal: test RMSE <= 0.92 (fastai's
`collab_learner` with its defaults reaches 0.940 on this split). Then it prints the movies the model
likes most and least once every user's taste is accounted for: the learned item biases, with
titles from `u.item` (Latin-1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import quickfit as qf
from quickfit.collab import CollabDataLoaders, collab_learner

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
NAMES = ["user", "movie", "rating", "timestamp"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA / "movielens_100k")
    parser.add_argument("--n-factors", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--wd", type=float, default=0.2, help="weight decay of the factors")
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (a small model runs best on few)")
    args = parser.parse_args()
    if not (args.data / "u1.base").exists():
        sys.exit(f"MovieLens 100k not found in {args.data} (pass --data or set QUICKFIT_SHARED_DATA)")
    if args.threads:
        torch.set_num_threads(args.threads)
    qf.set_seed(args.seed)

    base = pd.read_csv(args.data / "u1.base", sep="\t", names=NAMES)
    test = pd.read_csv(args.data / "u1.test", sep="\t", names=NAMES)
    titles = pd.read_csv(args.data / "u.item", sep="|", header=None, usecols=[0, 1], encoding="latin-1")
    titles = dict(zip(titles[0], titles[1]))

    # u1.test is the validation set: the vocabularies come from u1.base only, so the per-epoch
    # valid_loss is the test MSE and nothing about the test ratings leaks into the model.
    ratings = pd.concat([base, test], ignore_index=True)
    dls = CollabDataLoaders.from_df(
        ratings, item_name="movie", valid_idx=np.arange(len(base), len(ratings)), bs=args.bs
    )
    unseen = (~test.movie.isin(base.movie)).sum()
    print(f"{dls.n_users - 1} users, {dls.n_items - 1} movies in u1.base; {unseen} test ratings of unseen movies")

    learn = collab_learner(dls, n_factors=args.n_factors, y_range=(0, 5.5), wd=args.wd, metrics=[qf.rmse])
    start = time.perf_counter()
    learn.fit_one_cycle(args.epochs, args.lr)
    test_rmse = learn.validate()[1]
    print(f"\ntest RMSE on u1.test: {test_rmse:.4f}  (goal <= 0.92; fastai defaults: 0.940)")
    print(f"trained in {time.perf_counter() - start:.0f}s on {learn.device}")

    # As in the course: look only at movies with enough ratings for their bias to mean something.
    counts = base.movie.value_counts()
    popular = counts[counts >= 50].index.tolist()
    for label, table in [
        ("liked most", learn.most_liked(10, popular)),
        ("liked least", learn.least_liked(10, popular)),
    ]:
        print(f"\nmovies {label} (learned bias, movies with >= 50 ratings):")
        for movie, bias in zip(table.movie, table.bias):
            print(f"  {bias:+.3f}  {titles[movie]}")

    pcs = learn.pca(3, popular)
    print(f"\nitem factors: first 3 principal components explain {sum(pcs.attrs['explained_variance_ratio']):.0%}")
    for pc in pcs.columns[:1]:
        order = pcs[pc].sort_values()
        print(f"{pc} low : " + "; ".join(titles[m] for m in order.index[:5]))
        print(f"{pc} high: " + "; ".join(titles[m] for m in order.index[-5:]))
    user = int(test.user[0])
    print(f"\nuser {user}'s predicted rating for {titles[1]}: {learn.predict((user, 1)):.2f}")


if __name__ == "__main__":
    main()
