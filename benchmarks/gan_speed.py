"""What does GANLearner cost? quickfit's GAN step against a hand-written alternating loop.

    python benchmarks/gan_speed.py                  # about 2 minutes on 2 busy CPU cores
    python benchmarks/gan_speed.py --rounds 5 --batches 60 --threads 1

The same DCGAN generator and spectral-norm critic (28x28 digits' sizes, `basic_generator` /
`gan_critic`), the same pre-built batches of (noise, real images), the same non-saturating loss, Adam
(AdamW, beta1 = 0, no weight decay, foreach kernels) for both networks, one critic batch then one
generator batch: trained by `GANLearner.fit` and by the loop a PyTorch user writes. Runs alternate
(quickfit, hand, hand, quickfit, ...) after a warm-up, each from the same initial weights; the table
gives the fastest run of each and the median ratio of the two runs of a round (neighbours in time share
the machine's load), in wall-clock and CPU time. Goal: quickfit / hand <= 1.05.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

import quickfit as qf
from quickfit.gan import GANLearner
from quickfit.gan.models import basic_generator, gan_critic

LR, Z_DIM = 2e-4, 64


def hand_fit(gen, crit, batches) -> None:
    """The hand-written loop: critic and generator batches alternate."""

    def adam(params):
        return torch.optim.AdamW(params, lr=LR, betas=(0.0, 0.99), eps=1e-5, weight_decay=0.0, foreach=True)

    g_opt, c_opt = adam(gen.parameters()), adam(crit.parameters())
    gen.train(), crit.train()
    for i, (z, real) in enumerate(batches):
        if i % 2 == 0:  # critic: real against (detached) fake
            with torch.no_grad():
                fake = gen(z)
            preds = crit(torch.cat([real, fake]))
            loss = F.softplus(-preds[: len(real)]).mean() + F.softplus(preds[len(real) :]).mean()
            loss.backward()
            c_opt.step()
            c_opt.zero_grad(set_to_none=True)
        else:  # generator: through the frozen critic
            for p in crit.parameters():
                p.requires_grad_(False)
            loss = F.softplus(-crit(gen(z))).mean()
            loss.backward()
            for p in crit.parameters():
                p.requires_grad_(True)
            g_opt.step()
            g_opt.zero_grad(set_to_none=True)
        loss.item() if i == len(batches) - 1 else None  # the last loss read, as the learner's recorder does


def quickfit_fit(gen, crit, batches) -> None:
    learn = GANLearner(qf.DataLoaders(batches, None), gen, crit, loss="nonsaturating", progress=False, device="cpu")
    learn.recorder.log_table = False
    learn.fit(1, LR)


def timed(fn, models, batches) -> tuple[float, float]:
    gen, crit = (copy.deepcopy(m) for m in models)
    torch.manual_seed(0)  # the critic's dropout draws the same masks
    wall, cpu = time.perf_counter(), time.process_time()
    fn(gen, crit, batches)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--batches", type=int, default=40, help="training batches per run (half critic, half generator)"
    )
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = (basic_generator(28, n_channels=1, z_dim=Z_DIM, nf=64), gan_critic(n_channels=1, nf=32, n_blocks=2))
    batches = [(torch.randn(args.bs, Z_DIM), torch.rand(args.bs, 1, 28, 28) * 2 - 1) for _ in range(args.batches)]
    timed(quickfit_fit, models, batches[:4]), timed(hand_fit, models, batches[:4])  # warm-up
    runs = {"quickfit": [], "hand": []}
    for r in range(args.rounds):
        order = [("quickfit", quickfit_fit), ("hand", hand_fit)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            runs[name].append(timed(fn, models, batches))
    print(f"{args.batches} batches of {args.bs}, {args.rounds} rounds, {args.threads} thread(s)")
    print(f"{'':10} {'best wall (s)':>14} {'best cpu (s)':>13}")
    for name, rs in runs.items():
        print(f"{name:10} {min(w for w, _ in rs):14.3f} {min(c for _, c in rs):13.3f}")
    wall = statistics.median(q[0] / h[0] for q, h in zip(runs["quickfit"], runs["hand"]))
    cpu = statistics.median(q[1] / h[1] for q, h in zip(runs["quickfit"], runs["hand"]))
    best = min(w for w, _ in runs["quickfit"]) / min(w for w, _ in runs["hand"])
    print(f"quickfit / hand: best wall {best:.3f}, median wall {wall:.3f}, median cpu {cpu:.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
