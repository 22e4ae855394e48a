"""Greedy and beam search over any decoder step, batched: every sentence of the batch advances together.

    import torch
    from quickfit.text.seq2seq.search import beam_search, greedy_search
    table = torch.log(torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.4, 0.1], [1.0, 1e-9, 1e-9]]))  # eos = 0
    step = lambda tokens, state: (table[tokens], state)   # a bigram model: next-token log-probs
    greedy_search(step, (torch.zeros(1, 1),), bos=2, eos=0, max_len=5)     # tokens (1, T), scores (1,)
    beam_search(step, (torch.zeros(1, 1),), bos=2, eos=0, max_len=5, beam_size=3)

`step(tokens (N,), state) -> (log_probs (N, V), state)`; `state` is a tuple of tensors whose first
dimension is N (they are reordered with the beams). Sequences are returned without `bos`, cut after
their `eos` (positions after it hold `pad`); a sentence stops at `eos` or after `max_len` tokens.

Beam search keeps `beam_size` hypotheses a sentence, ranked by their total log-probability while
searching; a finished hypothesis keeps its score and stays in the beam (it can only be followed by
padding at no cost). The final choice divides each score by `length ** alpha` (`alpha=0`: raw
sums, which favour short outputs; 1: the mean log-probability per token), counting the `eos`.
With `beam_size=1` this is exactly greedy search.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["greedy_search", "beam_search"]

Step = Callable[[Tensor, tuple[Tensor, ...]], tuple[Tensor, tuple[Tensor, ...]]]


def _check(max_len: int, beam_size: int = 1) -> None:
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be a positive int, got {beam_size!r}")


@torch.no_grad()
def greedy_search(
    step: Step, state: tuple[Tensor, ...], bos: int, eos: int, max_len: int, pad: int = 1
) -> tuple[Tensor, Tensor]:
    """The most likely next token at each step: `(tokens (N, T), total log-probabilities (N,))`."""
    _check(max_len)
    n = state[0].size(0)
    device = state[0].device
    tokens = torch.full((n,), bos, dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    scores = torch.zeros(n, device=device)
    out = []
    for _ in range(max_len):
        logp, state = step(tokens, state)
        best, tokens = logp.max(-1)
        scores = scores + best.masked_fill(done, 0.0)
        tokens = tokens.masked_fill(done, pad)
        out.append(tokens)
        done = done | (tokens == eos)
        if bool(done.all()):  # one sync per step, and it saves the steps after the longest sentence
            break
    return torch.stack(out, 1), scores


@torch.no_grad()
def beam_search(
    step: Step,
    state: tuple[Tensor, ...],
    bos: int,
    eos: int,
    max_len: int,
    beam_size: int = 5,
    alpha: float = 1.0,
    pad: int = 1,
) -> tuple[Tensor, Tensor]:
    """`(tokens (N, T), normalized scores (N,))` of the best of `beam_size` hypotheses per sentence.

    `state` holds each sentence once (N rows); it is repeated `beam_size` times here.
    """
    _check(max_len, beam_size)
    n, k = state[0].size(0), beam_size
    device = state[0].device
    state = tuple(s.repeat_interleave(k, 0) for s in state)
    tokens = torch.full((n * k,), bos, dtype=torch.long, device=device)
    # Only the first copy of each sentence is live at the start: the k copies would otherwise
    # propose the same k continuations k times.
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    done = torch.zeros(n, k, dtype=torch.bool, device=device)
    lengths = torch.zeros(n, k, device=device)
    history = torch.zeros(n, k, 0, dtype=torch.long, device=device)
    base = (torch.arange(n, device=device) * k).unsqueeze(1)
    for _ in range(max_len):
        logp, state = step(tokens, state)
        v = logp.size(-1)
        logp = logp.view(n, k, v)
        # A finished hypothesis: only `pad` may follow, at no cost, so it keeps its score.
        finished = torch.full_like(logp[0, 0], float("-inf"))
        finished[pad] = 0.0
        logp = torch.where(done.unsqueeze(-1), finished, logp)
        cand = (scores.unsqueeze(-1) + logp).view(n, k * v)
        scores, flat = cand.topk(k, dim=-1)
        origin, tokens2d = flat // v, flat % v
        done = done.gather(1, origin)
        lengths = lengths.gather(1, origin) + (~done).float()
        history = torch.cat([history.gather(1, origin.unsqueeze(-1).expand_as(history)), tokens2d.unsqueeze(-1)], -1)
        done = done | (tokens2d == eos)
        rows = (base + origin).view(-1)
        state = tuple(s.index_select(0, rows) for s in state)
        tokens = tokens2d.view(-1)
        if bool(done.all()):
            break
    norm = scores / lengths.clamp(min=1.0).pow(alpha)
    best = norm.argmax(-1)
    idx = torch.arange(n, device=device)
    return history[idx, best], norm[idx, best]
