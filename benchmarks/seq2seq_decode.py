"""Translation speed of the transformer: `step` with its key/value cache against rerunning the prefix.

    python benchmarks/seq2seq_decode.py                    # greedy and beam 5, bs 64, up to 40 tokens
    python benchmarks/seq2seq_decode.py --threads 1 --rounds 5

The same `Seq2SeqTransformer` (the default sizes: d 256, 3 + 3 layers, ff 1,024; random weights, so
no sentence stops early: every run decodes `--max-len` tokens) decodes the same random source batch
with quickfit's search two ways: `model.step` (each layer's cross-attention keys / values of the source
computed once, the self-attention ones cached; only the new token runs through the decoder) and the
step a hand-written decoder most often has (the whole prefix through `model.decode` at every token,
O(T^2)). Both must give the same tokens; the table gives the best time of each over `--rounds`
alternating runs and the ratio (rerun / cached: how many times faster the cache decodes).
"""

from __future__ import annotations

import argparse
import time

import torch

from quickfit.text.seq2seq.model import Seq2SeqTransformer
from quickfit.text.seq2seq.search import beam_search, greedy_search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--src-len", type=int, default=20)
    parser.add_argument("--max-len", type=int, default=40)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Seq2SeqTransformer(8000, 8000).eval()
    src = torch.randint(4, 8000, (args.bs, args.src_len))
    bos, eos = 2, 3
    memory = model.encode(src)

    def rerun(mem):
        def step(tokens, state):
            prefix = torch.cat([state[0], tokens.unsqueeze(1)], 1)
            return torch.log_softmax(model.decode(prefix, mem)[:, -1].float(), -1), (prefix,)

        return step

    def searches(beam: int):
        mem = memory if beam == 1 else model.expand(memory, beam)
        kw = dict(bos=bos, eos=eos, max_len=args.max_len)
        if beam == 1:
            cached = lambda: greedy_search(lambda t, s: model.step(t, s, mem), model.init_state(memory), **kw)  # noqa: E731
            hand = lambda: greedy_search(rerun(mem), (src.new_zeros(args.bs, 0),), **kw)  # noqa: E731
        else:
            cached = lambda: beam_search(  # noqa: E731
                lambda t, s: model.step(t, s, mem), model.init_state(memory), beam_size=beam, **kw
            )
            hand = lambda: beam_search(rerun(mem), (src.new_zeros(args.bs, 0),), beam_size=beam, **kw)  # noqa: E731
        return cached, hand

    print(f"Seq2SeqTransformer d 256, 3+3 layers; {args.bs} sources of {args.src_len} tokens, up to {args.max_len} "
          f"tokens out; torch threads {torch.get_num_threads()}")  # fmt: skip
    print(f"{'search':10s} {'cached s':>9s} {'rerun s':>9s} {'rerun / cached':>15s}  same tokens")
    with torch.no_grad():
        for beam in (1, args.beam):
            cached, hand = searches(beam)
            times: dict[str, list[float]] = {"cached": [], "rerun": []}
            outs = {}
            for _ in range(args.rounds):
                for name, fn in (("cached", cached), ("rerun", hand)):
                    t = time.perf_counter()
                    outs[name] = fn()[0]
                    times[name].append(time.perf_counter() - t)
            c, r = min(times["cached"]), min(times["rerun"])
            same = torch.equal(outs["cached"], outs["rerun"])
            label = "greedy" if beam == 1 else f"beam {beam}"
            print(f"{label:10s} {c:9.2f} {r:9.2f} {r / c:15.2f}  {same}")


if __name__ == "__main__":
    main()
