"""ResumeCheckpoint: every `fit*` call takes `checkpoint="name"` and `resume=True`.

    learn.fit_one_cycle(10, 1e-3, checkpoint="run1", resume=True)   # run again after a crash: continues

At the end of every epoch the model, optimizer, gradient scaler, callback states, the training
history and every random-number generator are written, atomically, to `models/run1.pth`. Run the
same call again with `resume=True` and it restarts after the last saved epoch; the schedule is a
function of (epoch, batch), so it picks up where it was, and on CPU the weights come out the same
as an uninterrupted run.

The checkpoint before the last one is kept as `models/run1.prev.pth`. A checkpoint that fails its
check on load (quickfit/io.py: the CRC-32 of every record; a flipped bit, a truncated file) is not
resumed from: the previous one is, with a warning naming both; when neither is readable, the error
names them and says what to do. Nothing is resumed silently from a damaged file.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import torch

from quickfit.callbacks.core import Callback, Order
from quickfit.io import CorruptFileError, atomic_save, safe_load
from quickfit.optim import checkpoint_opt_state

__all__ = ["ResumeCheckpoint", "get_rng_states", "set_rng_states"]


def get_rng_states() -> dict:
    """Every RNG state as tensors and plain data (numpy's ndarray becomes a tensor: weights-only loads)."""
    np_state = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _stateful(learn, skip) -> dict:
    cbs = [cb for cb in learn.cbs if hasattr(cb, "state_dict") and cb is not skip and cb is not learn.recorder]
    return {f"{type(cb).__name__}_{i}": cb for i, cb in enumerate(cbs)}


def previous(f: Path) -> Path:
    """Where the checkpoint before `f` is kept: `run.prev.pth` beside `run.pth`."""
    return f.with_name(f"{f.stem}.prev{f.suffix}")


def _readable(f: Path) -> tuple[dict, Path]:
    """The state of checkpoint `f`, or of the one before it when `f` is damaged (said in a warning)."""
    prev = previous(f)
    try:
        return _state(f), f
    except (CorruptFileError, FileNotFoundError) as e:
        if not prev.exists():
            raise CorruptFileError(f"cannot resume: {e}. No previous checkpoint {prev.name} to fall back to: delete "
                                   f"{f} to start over (or resume=False)") from None  # fmt: skip
        try:
            state = _state(prev)
        except (CorruptFileError, FileNotFoundError) as e2:
            raise CorruptFileError(f"cannot resume: {e}; the previous checkpoint is unreadable too: {e2}. Delete "
                                   f"both to start over (or resume=False)") from None  # fmt: skip
        warnings.warn(f"{e}. Resuming from the previous checkpoint {prev} (epoch {state['epoch']}) instead.",
                      stacklevel=4)  # fmt: skip
        return state, prev


def _state(f: Path) -> dict:
    state = safe_load(f, map_location="cpu")
    if not isinstance(state, dict) or not {"kind", "n_epoch", "epoch", "model"} <= set(state):
        raise CorruptFileError(f"{f} is not a resume checkpoint (written by fit(..., checkpoint=))")
    return state


class ResumeCheckpoint(Callback):
    order = Order.RESUME

    def __init__(self, name: str, resume: bool = False, kind: str = "fit"):
        self.name, self.resume, self.kind = name, resume, kind
        self.state: dict | None = None

    def start_epoch(self, learn) -> int:
        """The epoch this fit starts at: 0, or the one after the checkpoint's (the learner asks before
        the fit's events, so that its phases enter the phase that epoch belongs to: data, optimizer)."""
        self.state = None
        f = learn._file(self.name)
        if not (self.resume and (f.exists() or previous(f).exists())):
            return 0
        state, self.source = _readable(f)
        if state.get("kind") != self.kind or state.get("n_epoch") != learn.n_epoch:
            raise ValueError(
                f"checkpoint {f} was written by {state.get('kind')}() of {state.get('n_epoch')} epochs; this call is "
                f"{self.kind}() of {learn.n_epoch} epochs. Resume with the same call, or use another checkpoint name."
            )
        self.state = state
        return state["epoch"] + 1

    def before_fit(self, learn) -> None:
        if self.state is None:  # added by hand, not by a fit's checkpoint=: read it now
            learn.start_epoch = self.start_epoch(learn)
        state, self.state = self.state, None
        if state is None:
            return
        f = self.source
        learn._unwrapped().load_state_dict(state["model"])
        learn.opts.load_state_dict(checkpoint_opt_state(state))
        learn.step.load_state_dict(state.get("step", {}))
        if learn.scaler is not None and "scaler" in state:
            learn.scaler.load_state_dict(state["scaler"])
        learn.recorder.load_state_dict(state["recorder"])
        for key, cb in _stateful(learn, self).items():
            if key in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][key])
        set_rng_states(state["rng"])
        learn.start_epoch = state["epoch"] + 1
        if learn.is_main_process:
            print(f"Resuming from {f}: epoch {learn.start_epoch} of {learn.n_epoch}")

    def after_epoch(self, learn) -> None:
        if not learn.is_main_process:
            return
        state = {
            "kind": self.kind,
            "n_epoch": learn.n_epoch,
            "epoch": learn.epoch,
            "model": learn._unwrapped().state_dict(),
            "opt": learn.opts.state_dict(),
            "step": learn.step.state_dict(),
            "recorder": learn.recorder.state_dict(),
            "callbacks": {k: cb.state_dict() for k, cb in _stateful(learn, self).items()},
            "rng": get_rng_states(),
        }
        if learn.scaler is not None:
            state["scaler"] = learn.scaler.state_dict()
        f = learn._file(self.name)
        atomic_save(state, f, keep_previous=previous(f))
