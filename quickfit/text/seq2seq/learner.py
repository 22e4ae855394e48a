"""Translation on the Learner: teacher forcing, BLEU during validation, greedy and beam-search `translate`.

    from quickfit.text import Seq2SeqDataLoaders, seq2seq_learner
    d = "multi30k/"   # Multi30k task 1: train/val/test .de and .en, one sentence a line
    dls = Seq2SeqDataLoaders.from_files(d + "train.de", d + "train.en", d + "val.de", d + "val.en", bs=64)
    learn = seq2seq_learner(dls, arch="gru_attention")    # or "transformer"
    learn.lr_find()
    learn.fit_one_cycle(8, 3e-3)                           # epoch train_loss valid_loss token_accuracy bleu time
    learn.translate(["Ein Hund läuft im Schnee."], beam_size=5)   # ['A dog runs in the snow.']
    learn.bleu(test_de, test_en, beam_size=5)              # sacreBLEU, lowercased by default
    seq2seq_learner(dls, vectors={"tgt": "glove.6B.50d"})  # English GloVe rows in the target embedding
    learn.show_results(n=5)                                # source, reference, prediction
    learn.export("de_en.qf")                               # qf.load_learner("de_en.qf"): vocabularies in JSON

Batches are `(src, tgt_in, tgt_out)`; `Seq2SeqStep` feeds `tgt_in` to the decoder (teacher forcing)
and scores its predictions of `tgt_out`. With a teacher-forcing ratio below 1 (annealed by
`TeacherForcing`), each input token after the first is, with probability `1 - ratio`, replaced by
the model's own prediction of it from a first pass without gradients ("parallel scheduled
sampling", Duckworth et al. 2019): the decoder stays one batched call, at the cost of one extra
forward pass, instead of a Python loop feeding back one token at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from quickfit.callbacks.core import Callback
from quickfit.configs import ModelConfig, Task, export_record
from quickfit.learner import Learner
from quickfit.optim import Adam
from quickfit.text.seq2seq.data import Seq2SeqDataLoaders, seq2seq_dls_from_export
from quickfit.text.seq2seq.loader import Seq2SeqDataLoader
from quickfit.text.seq2seq.metrics import CorpusBLEU, Seq2SeqLoss, token_accuracy
from quickfit.text.seq2seq.model import (
    Seq2SeqRNN,
    Seq2SeqTransformer,
    seq2seq_rnn_config,
    seq2seq_transformer_config,
)
from quickfit.text.seq2seq.search import beam_search, greedy_search
from quickfit.text.seq2seq.step import Seq2SeqStep, TeacherForcing, _base
from quickfit.text.vectors import VocabVectors, embedding_vectors

__all__ = [
    "Seq2SeqStep",
    "TeacherForcing",
    "Seq2SeqLearner",
    "seq2seq_learner",
    "Seq2SeqConfig",
    "TranslationTask",
    "ARCHS",
]

ARCHS = {
    "gru_attention": (Seq2SeqRNN, seq2seq_rnn_config),
    "transformer": (Seq2SeqTransformer, seq2seq_transformer_config),
}


@dataclass
class Seq2SeqConfig(ModelConfig):
    """An encoder-decoder of `ARCHS` ("gru_attention", "transformer") between vocabularies of these sizes;
    `sizes`: every key of its default config (`seq2seq_rnn_config()` / `seq2seq_transformer_config()`)."""

    type: ClassVar[str] = "seq2seq"
    arch: str
    src_vocab_sz: int
    tgt_vocab_sz: int
    pad_idx: int
    sizes: dict

    def build(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown seq2seq model: arch={self.arch!r} (known: {tuple(ARCHS)})")
        return ARCHS[self.arch][0](self.src_vocab_sz, self.tgt_vocab_sz, pad_idx=self.pad_idx, **self.sizes)


class Seq2SeqLearner(Learner):
    """A Learner of an encoder-decoder (`Seq2SeqRNN` / `Seq2SeqTransformer` or any model with their
    `encode` / `init_state` / `step` / `expand` methods) on `Seq2SeqDataLoaders`."""

    @torch.no_grad()
    def generate(self, src: Tensor, beam_size: int = 1, max_len: int = 60, alpha: float = 1.0) -> Tensor:
        """Target token ids (N, T) for a padded source batch (N, S), greedy or by beam search."""
        model, dls = self._unwrapped(), self.dls
        was = model.training
        model.eval()
        try:
            memory = model.encode(src)
            state = model.init_state(memory)
            if beam_size == 1:
                tokens, _ = greedy_search(
                    lambda t, s: model.step(t, s, memory), state, dls.bos_idx, dls.eos_idx, max_len, dls.pad_idx
                )
            else:
                wide = model.expand(memory, beam_size)
                tokens, _ = beam_search(
                    lambda t, s: model.step(t, s, wide), state, dls.bos_idx, dls.eos_idx, max_len, beam_size,
                    alpha, dls.pad_idx,
                )  # fmt: skip
        finally:
            model.train(was)
        return tokens

    def translate(
        self,
        sentences: Sequence[str],
        beam_size: int = 1,
        max_len: int | None = None,
        bs: int = 128,
        alpha: float = 1.0,
    ) -> list[str]:
        """Detokenized translations of raw source sentences, one per input, in order.

        `beam_size=1` is greedy; `k > 1` keeps `k` hypotheses, chosen at the end by log-probability per
        token (`alpha` the length-normalisation exponent). `max_len` defaults to 1.5x the source + 10.
        Sentences are translated `bs` at a time, sorted by length (less padding), returned in order.
        """
        if not isinstance(sentences, str):  # (a str is refused by encode_sources) a one-pass iterable: read once
            sentences = list(sentences)
        blank = set() if isinstance(sentences, str) else {i for i, t in enumerate(sentences) if _blank(t)}
        if blank:  # an empty sentence translates to an empty one, as a classifier takes an empty text
            rest = [t for i, t in enumerate(sentences) if i not in blank]
            done = iter(self.translate(rest, beam_size, max_len, bs, alpha) if rest else [])
            return ["" if i in blank else next(done) for i in range(len(sentences))]
        ids, offsets = self.dls.encode_sources(sentences)
        n = len(offsets) - 1
        dl = Seq2SeqDataLoader((ids, offsets), (np.zeros(2 * n, np.int32), np.arange(0, 2 * n + 1, 2)), bs=bs,
                               pad_idx=self.dls.pad_idx)  # fmt: skip
        out: list[str] = [""] * n
        with self.autocast:
            for idx in dl.batches():
                src = dl.collate(idx)[0].to(self.device)
                limit = max_len if max_len is not None else int(src.size(1) * 1.5) + 10
                tokens = self.generate(src, beam_size=beam_size, max_len=limit, alpha=alpha)
                for i, t in zip(idx.tolist(), tokens.cpu()):
                    out[i] = self.dls.decode(t)
        return out

    def predict(self, item: str, beam_size: int = 1, max_len: int | None = None) -> str:
        """The translation of one raw source sentence: `translate([item], beam_size, max_len)[0]`."""
        if not isinstance(item, str):
            raise TypeError(f"Seq2SeqLearner.predict takes a sentence (a str), got {type(item).__name__}")
        return self.translate([item], beam_size=beam_size, max_len=max_len)[0]

    def bleu(
        self,
        src_sentences: Sequence[str],
        ref_sentences: Sequence[str],
        beam_size: int = 1,
        lowercase: bool = True,
        max_len: int | None = None,
    ) -> float:
        """sacreBLEU corpus BLEU of the translations of `src_sentences` against `ref_sentences` (raw text)."""
        src_sentences, ref_sentences = list(src_sentences), list(ref_sentences)
        if len(src_sentences) != len(ref_sentences):
            raise ValueError(f"bleu: {len(src_sentences)} source sentences but {len(ref_sentences)} references")
        hyps = self.translate(src_sentences, beam_size=beam_size, max_len=max_len)
        return CorpusBLEU(lowercase=lowercase).score(hyps, ref_sentences)

    def show_results(self, n: int = 5, beam_size: int = 1, dl: Iterable | None = None) -> pd.DataFrame:
        """Print source, reference and prediction of the first `n` pairs of `dl` (validation), and return
        them as a DataFrame (columns source, reference, prediction), as the other texts and tables do."""
        dl = _base(dl if dl is not None else self.dls.valid)
        if not isinstance(dl, Seq2SeqDataLoader):
            raise ValueError("show_results needs a Seq2SeqDataLoader (the learner's data has no validation set?)")
        idx = np.arange(min(n, dl.n))
        src, _, tgt_out = dl.collate(idx)
        tokens = self.generate(src.to(self.device), beam_size=beam_size, max_len=int(src.size(1) * 1.5) + 10)
        rows = []
        for i, s, t, p in zip(idx.tolist(), src, tgt_out, tokens.cpu()):
            ref = dl.raw_targets[i] if dl.raw_targets is not None else self.dls.decode(t)
            rows.append((self.dls.decode_source(s), ref, self.dls.decode(p)))
            print(f"source:     {rows[-1][0]}\nreference:  {rows[-1][1]}\nprediction: {rows[-1][2]}\n")
        return pd.DataFrame(rows, columns=["source", "reference", "prediction"])


def seq2seq_learner(
    dls: Seq2SeqDataLoaders,
    arch: str = "gru_attention",
    config: dict | None = None,
    metrics: Iterable | None = None,
    teacher_forcing: float | tuple[float, float] = 1.0,
    label_smoothing: float = 0.1,
    lowercase_bleu: bool = True,
    loss_func: Callable | None = None,
    opt_func: Callable = Adam,
    lr: float | slice | Sequence[float] = 3e-3,
    wd: float | None = 0.01,
    cbs: Iterable[Callback] = (),
    path: str | Path = ".",
    model_dir: str | Path = "models",
    train_bn: bool = True,
    slice_div: float = 3.0,
    progress: bool | None = None,
    device: torch.device | str | None = None,
    vectors: str | Path | Mapping[str, str | Path] | None = None,
) -> Seq2SeqLearner:
    """A translation learner on `dls`: `arch` "gru_attention" (`Seq2SeqRNN`) or "transformer".

    - `config`: model sizes, updating `seq2seq_rnn_config()` / `seq2seq_transformer_config()`.
    - `metrics`: default token accuracy and corpus BLEU (greedy, `lowercase_bleu`) on the validation set.
    - `teacher_forcing`: a ratio (1.0: always the reference) or `(start, end)` annealed over training.
    - `label_smoothing`: of the cross-entropy, which ignores padding (`loss_func` replaces that loss).
    - `vectors`: word vectors for the embeddings (see `quickfit.text.vectors`): one source for both
      sides, or `{"src": ..., "tgt": ...}` for one side or each (GloVe is English: `{"tgt": "glove.6B.50d"}`
      for German -> English). The embedding size (`emb_sz`, the transformer's `d_model`) follows the
      vectors' dimension, the coverage of each side is printed, and the tied output layer starts
      from the target rows. The transformer multiplies its embeddings by `sqrt(d_model)`: its rows
      are the vectors rescaled to its initial scale (standard deviation `d_model ** -0.5`).
    """
    if not isinstance(dls, Seq2SeqDataLoaders):
        raise TypeError(f"seq2seq_learner needs Seq2SeqDataLoaders, got {type(dls).__name__}")
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {tuple(ARCHS)}, got {arch!r}")
    default_config = ARCHS[arch][1]
    full = default_config()
    unknown = sorted(set(config or {}) - set(full))
    if unknown:
        raise ValueError(f"unknown config keys {unknown} for arch={arch!r}; the keys are {sorted(full)}")
    full.update(config or {})
    size_key = "emb_sz" if arch == "gru_attention" else "d_model"
    side_vectors = _side_vectors(dls, vectors, (config or {}).get(size_key), size_key)
    if side_vectors:
        full[size_key] = next(iter(side_vectors.values())).dim
        if arch == "transformer" and full[size_key] % full["n_heads"]:
            raise ValueError(
                f"the vectors set d_model to {full[size_key]}, which config['n_heads']={full['n_heads']} does not "
                f"divide: pass config=dict(n_heads=...) with a divisor of {full[size_key]}"
            )
    config = Seq2SeqConfig(arch, len(dls.src_vocab), len(dls.tgt_vocab), dls.pad_idx, full)
    model = config.build()
    _set_side_embeddings(model, side_vectors, scale=full["d_model"] ** -0.5 if arch == "transformer" else None)
    cbs = list(cbs)
    if isinstance(teacher_forcing, tuple):
        if len(teacher_forcing) != 2:
            raise ValueError(f"teacher_forcing=(start, end) needs two ratios, got {teacher_forcing!r}")
        cbs.append(TeacherForcing(*teacher_forcing))
        ratio = float(teacher_forcing[0])
    else:
        ratio = float(teacher_forcing)
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {teacher_forcing!r}")
    if metrics is None:
        metrics = [token_accuracy, CorpusBLEU(lowercase=lowercase_bleu)]
    learn = Seq2SeqLearner(
        dls, model, Seq2SeqLoss(dls.pad_idx, label_smoothing) if loss_func is None else loss_func, opt_func=opt_func,
        lr=lr, wd=wd, metrics=metrics, cbs=cbs, path=path, model_dir=model_dir, train_bn=train_bn,
        slice_div=slice_div, progress=progress, device=device, step=Seq2SeqStep(ratio),
    )  # fmt: skip
    learn.export_info = export_record("text", TranslationTask(float(label_smoothing)), config)
    return learn


def _side_vectors(dls: Seq2SeqDataLoaders, vectors, size: int | None, size_key: str) -> dict[str, VocabVectors]:
    """`{"src" / "tgt": the vectors mapped onto that side's vocabulary}`, coverage printed, one dimension."""
    if vectors is None:
        return {}
    sources = dict(vectors) if isinstance(vectors, Mapping) else {"src": vectors, "tgt": vectors}
    unknown = sorted(set(sources) - {"src", "tgt"})
    if unknown or not sources:
        raise ValueError(f"vectors: a source, or a dict with keys 'src' and / or 'tgt'; got keys {sorted(sources)}")
    out = {}
    for side, source in sources.items():
        if source is None:
            continue
        vocab = dls.src_vocab if side == "src" else dls.tgt_vocab
        ids = getattr(_base(dls.train), f"{side}_ids", None)
        counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=len(vocab)) if ids is not None else None
        label = "source side: " if side == "src" else "target side: "
        out[side] = embedding_vectors(source, vocab.itos, counts=counts, size=size, size_key=size_key, label=label)
    dims = {side: vv.dim for side, vv in out.items()}
    if len(set(dims.values())) > 1:
        raise ValueError(
            f"vectors: the two sides' vectors differ in dimension ({dims}); one embedding size serves both"
        )
    return out


def _set_side_embeddings(model, side_vectors: dict[str, VocabVectors], scale: float | None) -> None:
    """Copy each side's rows into its embedding (the tied output layer follows the target's)."""
    with torch.no_grad():
        for side, vv in side_vectors.items():
            emb = model.src_emb if side == "src" else model.tgt_emb
            if side == "src" and emb is model.tgt_emb and "tgt" in side_vectors:
                continue  # shared embeddings: the target rows serve both
            weight = vv.weight
            if scale is not None:  # the vectors at the model's own initial scale
                weight = weight * (scale / weight[vv.found].std().clamp_min(1e-8))
            emb.weight.copy_(weight)


@dataclass
class TranslationTask(Task):
    """Sentences in, sentences out: a `Seq2SeqLearner` with `Seq2SeqLoss(label_smoothing)`."""

    type: ClassVar[str] = "translation"
    label_smoothing: float = 0.0

    def data(self, info: dict | None) -> Seq2SeqDataLoaders:
        if not info:
            raise ValueError("not a seq2seq export: the metadata lacks the data processing")
        return seq2seq_dls_from_export(info)

    def learner(self, dls, model, config: Seq2SeqConfig) -> Seq2SeqLearner:
        sizes = (len(dls.src_vocab), len(dls.tgt_vocab))
        if sizes != (config.src_vocab_sz, config.tgt_vocab_sz):
            raise ValueError(
                f"the export's vocabularies have {sizes} tokens, its model {config.src_vocab_sz, config.tgt_vocab_sz}"
            )
        return Seq2SeqLearner(dls, model, Seq2SeqLoss(dls.pad_idx, self.label_smoothing), metrics=[token_accuracy],
                              device="cpu", step=Seq2SeqStep())  # fmt: skip


def _blank(text) -> bool:
    return isinstance(text, str) and not text.strip()
