"""Translation loss and metrics: cross-entropy that ignores padding, token accuracy, corpus BLEU (sacreBLEU).

    import torch
    from quickfit.text.seq2seq.metrics import CorpusBLEU, Seq2SeqLoss, token_accuracy
    pred, targ = torch.randn(2, 5, 30), torch.randint(2, 30, (2, 5))
    Seq2SeqLoss(pad_idx=1, label_smoothing=0.1)(pred, targ)     # mean over the non-pad target tokens
    token_accuracy(pred, targ)                                   # fraction of non-pad tokens right
    bleu = CorpusBLEU(lowercase=True)
    bleu.score(["a cat sat"], ["A cat sat."])                    # == sacrebleu.corpus_bleu(...).score

`CorpusBLEU` as a Learner metric scores generated translations, not teacher-forced guesses: the
seq2seq step (quickfit/text/seq2seq/learner.py) decodes each validation batch greedily and hands the metric
the detokenized outputs and the raw references. It keeps sacreBLEU's sufficient statistics (matched
and total n-grams, lengths) as sums, so the corpus score is exact whatever the batching, and sums
across processes under DDP like any other metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from quickfit.metrics import Metric

__all__ = ["Seq2SeqLoss", "TokenAccuracy", "token_accuracy", "CorpusBLEU", "corpus_bleu"]


class Seq2SeqLoss(nn.Module):
    """Cross-entropy of (B, T, V) scores against (B, T) targets, padding ignored, optional label smoothing."""

    def __init__(self, pad_idx: int = 1, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.pad_idx, self.label_smoothing = pad_idx, label_smoothing

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        if pred.shape[:-1] != targ.shape:
            raise ValueError(f"scores of shape {tuple(pred.shape)} do not match targets of shape {tuple(targ.shape)}")
        return F.cross_entropy(
            pred.reshape(-1, pred.size(-1)).float(), targ.reshape(-1),
            ignore_index=self.pad_idx, label_smoothing=self.label_smoothing,
        )  # fmt: skip

    @staticmethod
    def activation(x: Tensor) -> Tensor:
        return x.softmax(-1)


class TokenAccuracy(Metric):
    """Fraction of the non-padding target tokens whose teacher-forced prediction is right."""

    name = "token_accuracy"

    def __init__(self, pad_idx: int = 1) -> None:
        self.pad_idx = pad_idx

    def batch_totals(self, pred: Tensor, targ: Tensor) -> Tensor:
        real = targ != self.pad_idx
        right = (pred.argmax(-1) == targ) & real
        return torch.stack([right.sum().double(), real.sum().double()])

    def compute(self, totals: Tensor) -> float:
        return float(totals[0] / totals[1])


token_accuracy = TokenAccuracy()


class CorpusBLEU(Metric):
    """sacreBLEU's corpus BLEU (13a tokenization) of translations against raw references.

    `lowercase=True` scores case-insensitively (the usual Multi30k number). As a metric of a seq2seq
    learner it needs generated text: the step calls `add(hyps, refs)` before the batch is accumulated.
    """

    name = "bleu"
    needs_generation = True

    def __init__(self, lowercase: bool = True) -> None:
        from sacrebleu.metrics import BLEU

        self.lowercase = lowercase
        self._bleu = BLEU(lowercase=lowercase)
        self._pending: tuple[list[str], list[str]] | None = None

    def statistics(self, hyps: Sequence[str], refs: Sequence[str]) -> Tensor:
        """The summed sufficient statistics of sacreBLEU: [hyp_len, ref_len, 4 x matches, 4 x totals]."""
        if len(hyps) != len(refs):
            raise ValueError(f"CorpusBLEU: {len(hyps)} translations but {len(refs)} references")
        stats = self._bleu._extract_corpus_statistics(list(hyps), [list(refs)])
        return torch.tensor(stats, dtype=torch.float64).sum(0) if stats else torch.zeros(10, dtype=torch.float64)

    def score(self, hyps: Sequence[str], refs: Sequence[str]) -> float:
        """The corpus BLEU (0-100) of `hyps` against one reference each."""
        return self.compute(self.statistics(hyps, refs))

    def add(self, hyps: Sequence[str], refs: Sequence[str]) -> None:
        """The translations and references of the batch about to be accumulated."""
        self._pending = (list(hyps), list(refs))

    def batch_totals(self, pred: Tensor, targ: Tensor) -> Tensor:
        if self._pending is None:
            raise RuntimeError(
                "CorpusBLEU needs generated translations: use it as a metric of seq2seq_learner (its step decodes "
                "every validation batch), or call bleu.score(hyps, refs) directly"
            )
        hyps, refs = self._pending
        self._pending = None
        return self.statistics(hyps, refs).to(pred.device)

    def compute(self, totals: Tensor) -> float:
        return float(self._bleu._compute_score_from_stats([int(round(v)) for v in totals.tolist()]).score)

    def __repr__(self) -> str:
        return f"CorpusBLEU(lowercase={self.lowercase})"


corpus_bleu = CorpusBLEU()
