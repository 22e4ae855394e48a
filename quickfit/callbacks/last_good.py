"""LastGoodState: a copy, on the device, of the weights and optimizer state when the losses were last seen finite.

    learn.recorder.last_good = None        # turn it off (a model too large to hold twice on its device)

The Recorder reads the training losses from the device every `sync_every` (16) batches, not every
batch: a `.item()` per batch would stall a GPU. So a NaN loss is seen up to 15 optimizer steps after
it happened, and those steps have made the weights (and Adam's moments) NaN. After each read whose
losses are all finite, the Recorder has this class copy every parameter, buffer and optimizer-state
tensor into buffers of its own (`torch._foreach_copy_`: one pass over memory on the device, every 16
batches, no synchronisation); on a non-finite loss it copies them back before raising, so the learner
is left as it was after the last batch with a finite loss, usable and finite.

What it costs: one more copy of the weights and the optimizer state in the device's memory (for Adam,
three times the weights), and one copy of them every 16 batches (for a 25M-parameter model on a GPU,
about 0.2 ms per 16 batches). benchmarks/loop_overhead.py measures the loop with it.
"""

from __future__ import annotations

import torch

__all__ = ["LastGoodState"]


def _live_tensors(learn) -> tuple[list[torch.Tensor], list[dict]]:
    """Every parameter and buffer of the model and the optimizers (each once), and the optimizers' states."""
    seen: dict[int, torch.Tensor] = {}
    model = learn._unwrapped()
    for t in [*model.parameters(), *model.buffers()]:
        seen.setdefault(id(t), t)
    opts = learn.opts.optimizers if learn.opt is not None else []
    for opt in opts:
        for group in opt.param_groups:
            for p in group["params"]:
                seen.setdefault(id(p), p)
    return list(seen.values()), [opt.state for opt in opts]


class LastGoodState:
    """`save(learn)` after finite losses, `restore(learn)` after a non-finite one (see the module docstring)."""

    def __init__(self) -> None:
        self._live: list[torch.Tensor] = []
        self._copies: list[torch.Tensor] = []
        self._states: list[dict] = []  # per optimizer: {param: {key: copy or value}}
        self._n = 0  # how many of _live are parameters and buffers (the rest: optimizer state)
        self.where: tuple[int, int] | None = None  # (epoch, batch) of the copy

    @torch.no_grad()
    def save(self, learn, where: tuple[int, int] | None = None) -> None:
        live, opt_states = _live_tensors(learn)
        state_live, states = [], []
        for state in opt_states:
            saved = {}
            for p, s in state.items():
                saved[p] = {}
                for k, v in s.items():
                    if isinstance(v, torch.Tensor):
                        state_live.append(v)
                        saved[p][k] = None  # filled below, in one foreach copy
                    else:
                        saved[p][k] = v
            states.append(saved)
        self._n = len(live)
        live = live + state_live
        shapes = [(t.shape, t.dtype, t.device) for t in live]
        if len(self._copies) != len(live) or any(
            (c.shape, c.dtype, c.device) != s for c, s in zip(self._copies, shapes)
        ):
            self._copies = [torch.empty_like(t) for t in live]
        if live:
            torch._foreach_copy_(self._copies, live)
        it = iter(self._copies[len(live) - len(state_live) :])
        for saved in states:
            for s in saved.values():
                for k, v in s.items():
                    if v is None:
                        s[k] = next(it)
        self._live, self._states, self.where = live, states, where

    @torch.no_grad()
    def restore(self, learn) -> bool:
        """Put the saved tensors back; True when the weights are then finite (one device sync, on this
        error path only)."""
        if not self._live:
            return False
        params = self._live[: self._n]
        torch._foreach_copy_(params, self._copies[: self._n])
        opt_states = _live_tensors(learn)[1]
        for state, saved in zip(opt_states, self._states):
            for p in list(state):
                if p not in saved:  # created after the copy (the first step): start it afresh
                    del state[p]
            for p, s in saved.items():
                if p in state:
                    for k, v in s.items():
                        if isinstance(v, torch.Tensor) and isinstance(state[p].get(k), torch.Tensor):
                            state[p][k].copy_(v)
                        else:
                            state[p][k] = v.clone() if isinstance(v, torch.Tensor) else v
                else:
                    state[p] = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
        return all(bool(torch.isfinite(t).all()) for t in params if t.is_floating_point())
