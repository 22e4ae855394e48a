"""German to English on Multi30k: an attention GRU (or a transformer) trained on a time budget, BLEU on the test set.

    python examples/translate.py                               # gru_attention, 60 minutes, ../shared/data/multi30k
    python examples/translate.py --arch transformer
    python examples/translate.py --minutes 5 --subset 3000     # a few minutes, to check the plumbing

Training follows one learning-rate cycle over the time budget (`--minutes`): each batch's rate and
momentum come from the fraction of the time spent, so the schedule anneals at the end of the budget
however fast the (shared) machine runs; `--schedule epochs` instead times 20 batches and trains the
number of one-cycle epochs that fit, `--epochs N` exactly N. Then it
prints greedy and beam-search (k=5) test BLEU (sacreBLEU on detokenized output against the raw
references; lowercased, and cased beside it), ten test translations and the time per epoch, and
writes the export (`--out`) and the numbers as JSON (`--results`).

The test set (test2016 flickr, 1,000 pairs) is read only after training: nothing is chosen on it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

import quickfit as qf
from quickfit import schedules
from quickfit.callbacks.core import CancelFitException, Order
from quickfit.optim import set_hyper
from quickfit.text import Seq2SeqDataLoaders, seq2seq_learner

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
LR = {"gru_attention": 3e-3, "transformer": 1e-3}


class TimeBudget(qf.Callback):
    """Stop training once `seconds` have passed, and record the wall time of every epoch.

    With `one_cycle=(lr_max, pct_start)` it also sets the learning rate and momentum of every batch
    from the one-cycle schedule at the fraction of the *time* spent (run it under `learn.fit`, whose
    constant schedule it overrides): on a machine shared with other jobs the speed changes during the
    run, and a schedule counted in batches would either stop before annealing or end early.
    """

    order = Order.PHASES + 1  # after the ParamScheduler has set its constant rate

    def __init__(self, seconds: float, one_cycle: tuple[float, float] | None = None) -> None:
        self.seconds, self.one_cycle, self.epoch_times = seconds, one_cycle, []

    def before_fit(self, learn) -> None:
        self.start = time.perf_counter()

    def before_epoch(self, learn) -> None:
        self.epoch_start = time.perf_counter()

    def before_batch(self, learn) -> None:
        if learn.training and self.one_cycle is not None:
            lr_max, pct_start = self.one_cycle
            pos = min(1.0, (time.perf_counter() - self.start) / self.seconds)
            set_hyper(learn.opt, "lr", lr_max * schedules.one_cycle_lr(pos, pct_start=pct_start))
            set_hyper(learn.opt, "mom", schedules.one_cycle_mom(pos, pct_start=pct_start))

    def after_batch(self, learn) -> None:
        if learn.training and time.perf_counter() - self.start > self.seconds:
            raise CancelFitException

    def after_epoch(self, learn) -> None:
        self.epoch_times.append(time.perf_counter() - self.epoch_start)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def seconds_per_batch(learn, n: int = 20) -> float:
    """Wall time of one training batch (forward, backward, step), measured on a copy of the weights."""
    state = {k: v.clone() for k, v in learn.model.state_dict().items()}
    it = iter(learn.dls.train)
    batches = [next(it) for _ in range(n + 2)]
    learn.create_opt()
    learn.model.train()
    with learn.autocast:
        for i, (src, tgt_in, tgt_out) in enumerate(batches):
            if i == 2:
                t = time.perf_counter()
            loss = learn.loss_func(learn.model(src, tgt_in), tgt_out)
            loss.backward()
            learn.opt.step()
            learn.opt.zero_grad()
    dt = (time.perf_counter() - t) / n
    learn.model.load_state_dict(state)
    learn.opt = None  # a fresh optimizer for the real run
    return dt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DATA / "multi30k")
    p.add_argument("--arch", default="gru_attention", choices=["gru_attention", "transformer"])
    p.add_argument("--minutes", type=float, default=60.0, help="training budget (wall clock)")
    p.add_argument("--epochs", type=int, default=None, help="train this many one-cycle epochs (no time schedule)")
    p.add_argument(
        "--schedule",
        default="time",
        choices=["time", "epochs"],
        help="time: one cycle over the time budget; epochs: as many epochs as the timing says fit",
    )
    p.add_argument("--config", type=json.loads, default=None, help="model sizes as JSON, e.g. '{\"dec_hid\": 512}'")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (about 2x faster on CPUs with AVX512-BF16)")
    p.add_argument("--teacher-forcing", type=float, nargs=2, default=None, metavar=("START", "END"))
    p.add_argument("--subset", type=int, default=None, help="use only the first N training pairs")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("de_en.qf"))
    p.add_argument("--results", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    qf.set_seed(42)

    d = args.data
    src_train, tgt_train = d / "train.de", d / "train.en"
    if args.subset:  # a smaller copy in a temporary folder (the shared data stay read-only)
        import tempfile

        tmp = Path(tempfile.mkdtemp())
        (tmp / "train.de").write_text("\n".join(lines(src_train)[: args.subset]) + "\n", encoding="utf-8")
        (tmp / "train.en").write_text("\n".join(lines(tgt_train)[: args.subset]) + "\n", encoding="utf-8")
        src_train, tgt_train = tmp / "train.de", tmp / "train.en"
    t0 = time.perf_counter()
    dls = Seq2SeqDataLoaders.from_files(src_train, tgt_train, d / "val.de", d / "val.en", bs=args.bs, seed=42)
    print(f"data: {dls.train.n} train / {dls.valid.n} valid pairs, vocab de {len(dls.src_vocab)} / en "
          f"{len(dls.tgt_vocab)}, {len(dls.train)} batches an epoch ({time.perf_counter() - t0:.1f} s)")  # fmt: skip

    tf = tuple(args.teacher_forcing) if args.teacher_forcing else 1.0
    learn = seq2seq_learner(dls, arch=args.arch, config=args.config, teacher_forcing=tf)
    if args.bf16:
        learn.to_bf16()
        learn.autocast = torch.autocast(device_type=learn.device.type, dtype=torch.bfloat16)
    n_params = sum(p.numel() for p in learn.model.parameters())
    print(f"model: {args.arch}, {n_params / 1e6:.1f}M parameters, threads={args.threads}, bf16={args.bf16}")
    budget = args.minutes * 60
    timed = args.epochs is None and args.schedule == "time"
    if timed:
        epochs = 1000  # until the budget stops it
    elif args.epochs is None:
        spb = seconds_per_batch(learn)
        # An epoch also validates: teacher-forced loss plus a greedy decode of the valid set (~10% more).
        est = spb * len(dls.train) * 1.1
        epochs = max(1, math.floor(0.9 * budget / est))
        print(
            f"timing: {spb:.3f} s a batch -> about {est / 60:.1f} min an epoch -> "
            f"{epochs} epochs in {args.minutes:g} min"
        )
    else:
        epochs = args.epochs
    lr = args.lr or LR[args.arch]
    clock = TimeBudget(budget, one_cycle=(lr, 0.25) if timed else None)
    t0 = time.perf_counter()
    if timed:
        learn.fit(epochs, lr, cbs=[clock])
    else:
        learn.fit_one_cycle(epochs, lr, cbs=[clock])
    train_time = time.perf_counter() - t0
    print(f"trained {len(clock.epoch_times)} of {epochs} epochs in {train_time / 60:.1f} min; "
          f"per epoch: {', '.join(f'{t / 60:.1f}' for t in clock.epoch_times)} min")  # fmt: skip

    test_de, test_en = lines(d / "test.de"), lines(d / "test.en")
    t0 = time.perf_counter()
    greedy = learn.translate(test_de, beam_size=1)
    t_greedy = time.perf_counter() - t0
    t0 = time.perf_counter()
    beam = learn.translate(test_de, beam_size=args.beam)
    t_beam = time.perf_counter() - t0
    from quickfit.text import CorpusBLEU

    lower, cased = CorpusBLEU(lowercase=True), CorpusBLEU(lowercase=False)
    res = {
        "arch": args.arch,
        "epochs": len(clock.epoch_times),
        "epochs_planned": epochs,
        "lr": lr,
        "train_minutes": train_time / 60,
        "minutes_per_epoch": [t / 60 for t in clock.epoch_times],
        "valid": dict(zip(learn.recorder.metric_names, learn.recorder.values[-1][3:-1]))
        if learn.recorder.values
        else {},
        "test_bleu_greedy": lower.score(greedy, test_en),
        "test_bleu_beam": lower.score(beam, test_en),
        "test_bleu_beam_cased": cased.score(beam, test_en),
        "beam_size": args.beam,
        "translate_seconds": {"greedy": t_greedy, "beam": t_beam},
        "params": n_params,
        "threads": args.threads,
        "bf16": args.bf16,
        "load_average": os.getloadavg(),
    }
    print(f"test BLEU (lowercased): greedy {res['test_bleu_greedy']:.2f}, beam {args.beam} {res['test_bleu_beam']:.2f} "
          f"(cased {res['test_bleu_beam_cased']:.2f})")  # fmt: skip
    for src, ref, hyp in list(zip(test_de, test_en, beam))[:10]:
        print(f"  de:  {src}\n  ref: {ref}\n  hyp: {hyp}\n")
    learn.export(args.out)
    print(f"exported to {args.out}")
    if args.results:
        args.results.write_text(json.dumps(res, indent=2))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
