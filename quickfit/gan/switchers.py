"""Which network trains on the next batch: `FixedGANSwitcher` (n critic steps per generator step),
`AdaptiveGANSwitcher` (by the losses)."""

from __future__ import annotations

from typing import Literal

import torch

Phase = Literal["critic", "generator"]


# ---- switchers ----------------------------------------------------------------------------------------
class GANSwitcher:
    """Decides after each training batch which network the next batch trains."""

    first: Phase = "critic"

    def next_phase(self, phase: Phase, loss: torch.Tensor) -> Phase:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class FixedGANSwitcher(GANSwitcher):
    """`n_crit` critic batches, then `n_gen` generator batches, and again. `n_gen=0` trains only the
    critic (critic pre-training), `n_crit=0` only the generator. No CPU-GPU sync."""

    def __init__(self, n_crit: int = 1, n_gen: int = 1) -> None:
        for name, v in (("n_crit", n_crit), ("n_gen", n_gen)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"FixedGANSwitcher: {name} must be a whole number >= 0, got {v!r}")
        if n_crit == n_gen == 0:
            raise ValueError("FixedGANSwitcher: n_crit and n_gen cannot both be 0 (nothing would train)")
        self.n_crit, self.n_gen, self.count = n_crit, n_gen, 0
        self.first = "critic" if n_crit else "generator"

    def next_phase(self, phase: Phase, loss: torch.Tensor) -> Phase:
        self.count += 1
        limit, other = (self.n_crit, "generator") if phase == "critic" else (self.n_gen, "critic")
        if self.count >= limit and (self.n_gen if other == "generator" else self.n_crit):
            self.count = 0
            return other
        return phase

    def state_dict(self) -> dict:
        return {"count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state.get("count", 0))


class AdaptiveGANSwitcher(GANSwitcher):
    """Train the critic until its loss falls below `critic_thresh`, then the generator until its loss
    falls below `gen_thresh` (None: switch after every batch). Reads the loss every batch (`.item()`: one
    CPU-GPU sync per batch, which the fixed switcher avoids)."""

    def __init__(self, critic_thresh: float | None = None, gen_thresh: float | None = None) -> None:
        self.critic_thresh, self.gen_thresh = critic_thresh, gen_thresh

    def next_phase(self, phase: Phase, loss: torch.Tensor) -> Phase:
        thresh = self.critic_thresh if phase == "critic" else self.gen_thresh
        if thresh is None or loss.detach().float().item() < thresh:
            return "generator" if phase == "critic" else "critic"
        return phase
