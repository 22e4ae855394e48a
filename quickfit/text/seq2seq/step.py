"""The training step of sequence to sequence: teacher forcing (the decoder reads the true previous token with a
probability that the TeacherForcing callback lowers over the fit) and the loss over target tokens."""

from __future__ import annotations

import torch
from torch import Tensor

from quickfit.callbacks.core import Callback
from quickfit.step import TrainStep
from quickfit.text.seq2seq.loader import Seq2SeqDataLoader

__all__ = ["Seq2SeqStep", "TeacherForcing"]


def _base(dl):
    """The Seq2SeqDataLoader under a progress bar (tqdm keeps what it wraps in `.iterable`)."""
    while not isinstance(dl, Seq2SeqDataLoader) and hasattr(dl, "iterable"):
        dl = dl.iterable
    return dl


class Seq2SeqStep(TrainStep):
    """Teacher-forced forward and loss; in validation, greedy translations for the BLEU metrics too."""

    def __init__(self, teacher_forcing: float = 1.0, max_len_mult: float = 1.5, max_len_add: int = 10) -> None:
        self.teacher_forcing = teacher_forcing
        self.max_len_mult, self.max_len_add = max_len_mult, max_len_add

    def _mixed_inputs(self, learn, src: Tensor, tgt_in: Tensor) -> Tensor:
        with torch.no_grad():
            guess = learn.model(src, tgt_in).argmax(-1)  # guess[:, t] predicts tgt_in[:, t + 1]
        own = torch.rand(tgt_in.shape, device=tgt_in.device) >= self.teacher_forcing
        own[:, 0] = False  # xxbos stays
        real = tgt_in != learn.dls.pad_idx
        mixed = tgt_in.clone()
        mixed[:, 1:] = torch.where(own[:, 1:] & real[:, 1:], guess[:, :-1], tgt_in[:, 1:])
        return mixed

    def __call__(self, learn) -> None:
        src, tgt_in = learn.xb
        with learn.autocast:
            if learn.training and self.teacher_forcing < 1.0:
                tgt_in = self._mixed_inputs(learn, src, tgt_in)
            learn.pred = learn.model(src, tgt_in)
            learn("after_pred")
            if learn.yb is None:
                return
            learn.loss = learn.loss_grad = learn.compute_loss(learn.pred, learn.yb)
        if not learn.training:
            self._generate(learn, src)
        learn("after_loss")
        if learn.training:
            learn.backward()
            learn.opt_step()

    def _generate(self, learn, src: Tensor) -> None:
        metrics = [m for m in learn.metrics if getattr(m, "needs_generation", False)]
        if not metrics:
            return
        dl = _base(learn.dl)
        if not isinstance(dl, Seq2SeqDataLoader) or dl.raw_targets is None:
            refs = [learn.dls.decode(t) for t in learn.yb]  # no raw references at hand: the tokenized ones
        else:
            refs = [dl.raw_targets[i] for i in dl.last_idx]
        max_len = int(src.size(1) * self.max_len_mult) + self.max_len_add
        with learn.autocast:
            tokens = learn.generate(src, beam_size=1, max_len=max_len)
        hyps = [learn.dls.decode(t) for t in tokens]
        for m in metrics:
            m.add(hyps, refs)

    def state_dict(self) -> dict:
        return {"teacher_forcing": self.teacher_forcing}

    def load_state_dict(self, state: dict) -> None:
        self.teacher_forcing = state.get("teacher_forcing", self.teacher_forcing)


class TeacherForcing(Callback):
    """Anneal the teacher-forcing ratio linearly from `start` (first batch) to `end` (last batch of training)."""

    order = 0

    def __init__(self, start: float = 1.0, end: float = 0.5) -> None:
        for name, v in (("start", start), ("end", end)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"TeacherForcing: {name} must be in [0, 1], got {v!r}")
        self.start, self.end = start, end

    def before_batch(self, learn) -> None:
        if learn.training and isinstance(learn.step, Seq2SeqStep):
            done = (learn.epoch + learn.iter / max(1, learn.n_iter)) / max(1, learn.n_epoch)
            learn.step.teacher_forcing = self.start + (self.end - self.start) * min(1.0, done)

    def after_fit(self, learn) -> None:
        if isinstance(learn.step, Seq2SeqStep):
            learn.step.teacher_forcing = 1.0
