"""ULMFiT learners: ``language_model_learner`` and ``text_classifier_learner`` on an AWD-LSTM.

Usage (the three ULMFiT stages; see docs/text.md and examples/text_transfer.py)::

    from quickfit.text import TextDataLoaders, language_model_learner, text_classifier_learner

    lm_dls = TextDataLoaders.from_df(df, text_col="text", is_lm=True)
    lm = language_model_learner(lm_dls, pretrained="wt_lm.safetensors")  # or True: WikiText-103
    lm.fine_tune(3)                            # frozen: new embeddings + decoder one epoch, then all
    lm.predict("I liked this movie because", n_words=20, temperature=0.75)
    lm.save_encoder("ft_enc")

    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", vocab=lm_dls.vocab)
    clf = text_classifier_learner(dls)         # vectors="glove.6B.50d": GloVe rows, emb_sz 50
    clf.load_encoder("ft_enc")                 # and freezes (for gradual unfreezing: freeze_epochs=1)
    clf.fine_tune(7)                           # every layer, discriminative rates, 7 epochs
    clf.predict("a gripping , funny film")     # ('1', 1, tensor([0.03, 0.97]))
    clf.export("sentiment.qf")                 # qf.load_learner("sentiment.qf") rebuilds it, no pickle
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from quickfit.configs import Task, check_outputs, export_record
from quickfit.io import atomic_save, safe_load
from quickfit.learner import Learner
from quickfit.metrics import accuracy
from quickfit.optim import Adam
from quickfit.text.callbacks import RNNCallback, RNNRegularizer
from quickfit.text.metrics import CrossEntropyFlat, perplexity
from quickfit.text.models.awd_lstm import AWD_LSTM
from quickfit.text.models.core import (
    LanguageModelConfig,
    TextClassifierConfig,
    awd_lstm_clas_split,
    awd_lstm_lm_split,
    encoder_of,
)
from quickfit.text.pretrained import lm_sizes, load_pretrained_lm, match_vocab
from quickfit.text.rules import detokenize
from quickfit.text.vectors import VocabVectors, embedding_vectors

__all__ = [
    "TextLearner",
    "LMLearner",
    "language_model_learner",
    "text_classifier_learner",
    "LanguageModelTask",
    "TextClassifierTask",
]

_PAD, _UNK, _BOS, _EOS = "xxpad", "xxunk", "xxbos", "xxeos"

# fine_tune's defaults, measured on rt_polarity and SST-2 (docs/text.md): rates high enough that
# the embedding and the first LSTM still move (fastai's slice(lr / 2.6**4, lr) at lr 2e-3 left the
# embedding at 4e-5, which kept a small language model's encoder from adapting).
CLF_BASE_LR, CLF_LR_MULT, LM_BASE_LR = 1e-2, 2.6**2, 1e-2
CLF_FREEZE_EPOCHS = 0  # gradual unfreezing cost 1.3 points with a small language model's encoder (docs/text.md)
TEXT_MOMS = (0.8, 0.7, 0.8)


def _itos(vocab) -> list[str]:
    """The token list of a Vocab (its ``itos``) or of a plain list."""
    return list(getattr(vocab, "itos", vocab))


def _token_id(itos: list[str], token: str, default: int | None = None) -> int | None:
    try:
        return itos.index(token)
    except ValueError:
        return default


def _vocab_of(dls) -> list[str]:
    vocab = getattr(dls, "vocab", None)
    if vocab is None:
        raise ValueError("text learners need dls.vocab (build the data with TextDataLoaders)")
    return _itos(vocab)


def _pad_idx(dls, itos: list[str]) -> int:
    pad = getattr(dls, "pad_idx", None)
    return int(pad) if pad is not None else int(_token_id(itos, _PAD, 1))


def _check_arch(arch) -> None:
    if arch is not AWD_LSTM:
        raise ValueError(f"arch: only AWD_LSTM is supported by the text learners, got {arch!r}")


def _train_counts(dls, vocab_sz: int) -> np.ndarray | None:
    """How often each token occurs in the training texts (None when the loader keeps no flat ids)."""
    ids = getattr(getattr(dls, "train", None), "ids", None)
    if ids is None:
        return None
    return np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab_sz)[:vocab_sz]


def _load_vectors(vectors, dls, itos: list[str], config: dict | None) -> tuple[VocabVectors, dict]:
    """The vectors for ``dls.vocab`` and the config with ``emb_sz`` set to their dimension (printed)."""
    counts = _train_counts(dls, len(itos))
    vv = embedding_vectors(vectors, itos, counts=counts, size=(config or {}).get("emb_sz"))
    return vv, {**(config or {}), "emb_sz": vv.dim}


def _vectors_for_new_tokens(state: dict, vv: VocabVectors, old_vocab: list[str], itos: list[str]) -> None:
    """Rows of the tokens the pretrained weights do not know: from the vectors where they have them."""
    known = set(old_vocab)
    rows = [i for i, t in enumerate(itos) if t not in known and bool(vv.found[i])]
    if rows:
        emb = state["0.encoder.weight"]
        if emb.shape[1] != vv.dim:
            raise ValueError(f"the pretrained embeddings have {emb.shape[1]} dimensions, the vectors {vv.dim}")
        state["0.encoder.weight"] = emb.clone()
        state["0.encoder.weight"][rows] = vv.weight[rows].to(emb.dtype)


def _check_vector_dim(weights, vv: VocabVectors | None) -> None:
    emb_sz = lm_sizes(weights.state)["emb_sz"]
    if vv is not None and vv.dim != emb_sz:
        raise ValueError(
            f"vectors {vv.source} have {vv.dim} dimensions but the pretrained embedding ({weights.source}) has "
            f"{emb_sz}: the vectors can only fill rows of the same size; drop vectors= (the weights have their own)"
        )


def _set_embedding(model: nn.Module, vv: VocabVectors) -> None:
    with torch.no_grad():
        encoder_of(model).encoder.weight.copy_(vv.weight)  # the LM's decoder is tied: it follows


def _is_frozen(learn: Learner) -> bool:
    return any(not p.requires_grad for p in learn.model.parameters())


class TextLearner(Learner):
    """A Learner for AWD-LSTM models: saves / loads the encoder (with its vocabulary)."""

    def _encoder_file(self, name: str | Path) -> Path:
        return Path(name) if str(name).endswith(".pth") else self.path / self.model_dir / f"{name}.pth"

    def save_encoder(self, name: str | Path) -> Path:
        """Save the AWD-LSTM's weights and the vocabulary to ``path/model_dir/name.pth`` (weights-only)."""
        state = {k: v.detach().cpu() for k, v in encoder_of(self._unwrapped()).state_dict().items()}
        return atomic_save({"encoder": state, "vocab": _vocab_of(self.dls)}, self._encoder_file(name))

    def load_encoder(self, name: str | Path, freeze: bool = True) -> TextLearner:
        """Load an encoder saved by ``save_encoder`` (embeddings mapped if the vocabularies differ).

        Then freeze all but the last layer group (the head), the first stage of gradual unfreezing.
        """
        f = self._encoder_file(name)
        ckpt = safe_load(f)
        if not isinstance(ckpt, dict) or "encoder" not in ckpt:
            raise ValueError(f"{f} is not an encoder saved by save_encoder (no 'encoder' entry)")
        encoder = encoder_of(self._unwrapped())
        state = ckpt["encoder"]
        itos = _vocab_of(self.dls)
        old_vocab = ckpt.get("vocab")
        if old_vocab is not None and list(old_vocab) != itos:
            mapped = match_vocab({"0." + k: v for k, v in state.items()}, list(old_vocab), itos)
            state = {k[2:]: v for k, v in mapped.items() if k.startswith("0.")}
        try:
            encoder.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{f}: the encoder does not fit this model's sizes (config=...): {e}") from None
        if freeze:
            self.freeze()
        return self

    def fine_tune(
        self,
        epochs: int,
        base_lr: float = CLF_BASE_LR,
        freeze_epochs: int = CLF_FREEZE_EPOCHS,
        lr_mult: float = CLF_LR_MULT,
        pct_start: float = 0.25,
        div: float = 25.0,
        wd: float | None = None,
        cbs: Iterable = (),
        moms: tuple[float, float, float] | None = TEXT_MOMS,
    ) -> None:
        """The classifier recipe: every layer for ``epochs`` epochs at discriminative rates, after
        ULMFiT's gradual unfreezing when ``freeze_epochs`` >= 1.

        Every layer trains at ``slice(base_lr / lr_mult, base_lr)``: the embedding gets
        ``base_lr / lr_mult``, the head ``base_lr``, the LSTMs the rates between. With
        ``freeze_epochs`` >= 1, a frozen learner (after ``load_encoder``, or built on ``pretrained``
        weights) first trains ``freeze_epochs`` epochs with only the head, then with the last LSTM
        too, then with the last two, each stage at half the rate of the one before (from
        ``2 * base_lr``). The default is 0 (no frozen stages): with an encoder from a language model
        trained on a few hundred thousand tokens, the same seven epochs gave 77.3% on rt_polarity
        (an inner split of its training texts) against 76.0% with gradual unfreezing (docs/text.md);
        pass ``freeze_epochs=1`` with a well-trained encoder (WikiText-103). A learner that is not
        frozen (from scratch, or random LSTMs over word vectors) trains everything at once either way.
        """
        kw = dict(pct_start=pct_start, div=div, moms=moms, wd=wd, cbs=list(cbs))  # every stage gets them
        if _is_frozen(self) and freeze_epochs > 0:
            n_groups = len(self.layer_groups)
            for stage in range(min(3, n_groups - 1)):  # the head, + the last LSTM, + the last two
                self.freeze_to(-1 - stage)
                top = 2 * base_lr / 2**stage
                self.fit_one_cycle(freeze_epochs, top if stage == 0 else slice(top / lr_mult, top), **kw)
        self.unfreeze()
        self.fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr), **kw)


class LMLearner(TextLearner):
    """A language-model Learner: ``predict`` continues a text."""

    def fine_tune(
        self,
        epochs: int,
        base_lr: float = LM_BASE_LR,
        freeze_epochs: int = 1,
        lr_mult: float = 1.0,
        pct_start: float = 0.25,
        div: float = 25.0,
        wd: float | None = None,
        cbs: Iterable = (),
        moms: tuple[float, float, float] | None = TEXT_MOMS,
    ) -> None:
        """The ULMFiT language-model recipe: the new embeddings and decoder first, then every layer.

        A frozen learner (built on ``pretrained`` weights) trains ``freeze_epochs`` epochs with only
        its last group (embedding = decoder weight, decoder bias) at ``2 * base_lr``, then every
        layer ``epochs`` epochs at ``slice(base_lr / lr_mult, base_lr)`` (the same rate for all by
        default). A learner that is not frozen (from scratch, with or without vectors) trains
        everything at once.
        """
        kw = dict(pct_start=pct_start, div=div, moms=moms, wd=wd, cbs=list(cbs))  # every stage gets them
        if _is_frozen(self) and freeze_epochs > 0:
            self.fit_one_cycle(freeze_epochs, 2 * base_lr, **kw)
        self.unfreeze()
        self.fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr) if lr_mult != 1 else base_lr, **kw)

    def predict(
        self,
        text: str,
        n_words: int = 20,
        temperature: float = 1.0,
        no_unk: bool = True,
        seed: int | None = None,
        decode: bool = True,
    ) -> str | list[str]:
        """Continue ``text`` with ``n_words`` tokens sampled from the model (``temperature`` 0: greedy).

        Returns the decoded text (the tokenizer's rules undone, then ``detokenize``: no space before
        punctuation, "it's" joined), or the tokens with ``decode=False``.
        A backward model (data ``backwards=True``) writes the ``n_words`` that come *before* ``text``.
        """
        tokenizer = getattr(self.dls, "tokenizer", None)
        if tokenizer is None:
            raise ValueError("LMLearner.predict needs dls.tokenizer to read the prompt")
        if not isinstance(text, str):
            raise TypeError(f"LMLearner.predict: text must be a str, got {type(text).__name__}")
        itos = _vocab_of(self.dls)
        stoi = {tok: i for i, tok in enumerate(itos)}
        unk = stoi.get(_UNK, 0)
        tokens = list(tokenizer(text))
        if tokens and tokens[-1] == _EOS:  # the prompt goes on
            tokens = tokens[:-1]
        backwards = getattr(self.dls, "backwards", False)
        if backwards and tokens and tokens[0] == _BOS:  # text comes before the prompt
            tokens = tokens[1:]
        ids = [stoi.get(t, unk) for t in (tokens[::-1] if backwards else tokens)] or [stoi.get(_BOS, unk)]
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        model = self.model
        was_training = model.training
        model.eval()
        _reset(model)
        new_ids: list[int] = []
        try:
            with torch.no_grad():
                logits = model(torch.tensor([ids], device=self.device))[0, -1]
                for _ in range(n_words):
                    logits = logits.float().cpu()
                    if no_unk:
                        logits[unk] = float("-inf")
                    if temperature <= 0:
                        idx = int(logits.argmax())
                    else:
                        probs = torch.softmax(logits / temperature, dim=-1)
                        idx = int(torch.multinomial(probs, 1, generator=generator))
                    new_ids.append(idx)
                    logits = model(torch.tensor([[idx]], device=self.device))[0, -1]
        finally:
            _reset(model)
            model.train(was_training)
        new = [itos[i] for i in new_ids]
        out = new[::-1] + tokens if backwards else tokens + new
        return detokenize(tokenizer.decode(out)) if decode else out


def _reset(model: nn.Module) -> None:
    if hasattr(model, "reset"):
        model.reset()


def _as_metrics(metrics) -> list:
    if metrics is None:
        return []
    return [metrics] if callable(metrics) and not isinstance(metrics, (list, tuple)) else list(metrics)


def language_model_learner(
    dls,
    arch: type = AWD_LSTM,
    config: dict | None = None,
    pretrained: bool | str | Path = True,
    drop_mult: float = 1.0,
    metrics=(accuracy, perplexity),
    alpha: float = 2.0,
    beta: float = 1.0,
    opt_func: Callable = Adam,
    lr: float = 1e-3,
    wd: float | None = None,
    cbs: Iterable = (),
    path: str | Path = ".",
    model_dir: str | Path = "models",
    loss_func: Callable | None = None,
    train_bn: bool = True,
    slice_div: float = 3.0,
    progress: bool | None = None,
    device: torch.device | str | None = None,
    pretrained_cache_dir: str | Path | None = None,
    vectors: str | Path | None = None,
) -> LMLearner:
    """An AWD-LSTM language model on ``dls`` (language-model batches), tied decoder, ``RNNRegularizer``.

    ``pretrained``: ``True`` downloads fastai's WikiText-103 weights, a path loads local ones (see
    ``quickfit.text.pretrained`` for the formats), ``False`` starts from random weights. Pretrained
    rows are mapped onto ``dls.vocab`` (new tokens get the mean embedding and bias); the sizes come
    from the weights, and the learner is frozen to its last group (embeddings + decoder).
    ``config`` overrides keys of ``awd_lstm_lm_config``; ``drop_mult`` scales every dropout.

    ``vectors``: word vectors for the embedding (and so the tied decoder), ``"glove.6B.50d"`` or a
    file (see ``quickfit.text.vectors``); ``emb_sz`` follows their dimension and the coverage is
    printed. With ``pretrained`` weights too, the vectors fill only the rows of the tokens the
    weights do not know (instead of the mean).
    """
    _check_arch(arch)
    itos = _vocab_of(dls)
    pad_idx = _pad_idx(dls, itos)
    vv = None
    if vectors is not None:
        vv, config = _load_vectors(vectors, dls, itos, config)
    weights = None
    if pretrained is not False and pretrained is not None:
        weights = load_pretrained_lm(pretrained, cache_dir=pretrained_cache_dir)
        _check_vector_dim(weights, vv)
        sizes = lm_sizes(weights.state)
        for key, value in (config or {}).items():
            if key in sizes and sizes[key] != value and not (key == "n_hid" and sizes["n_layers"] == 1):
                raise ValueError(
                    f"config[{key!r}]={value} does not match the pretrained weights "
                    f"({weights.source}: {key}={sizes[key]})"
                )
        config = {**(config or {}), **sizes}
    model_config = LanguageModelConfig.of(len(itos), pad_idx, config, drop_mult)
    model = model_config.build()
    if vv is not None:
        _set_embedding(model, vv)
    if weights is not None:
        state = match_vocab(weights.state, weights.vocab, itos)
        if vv is not None:
            _vectors_for_new_tokens(state, vv, weights.vocab, itos)
        state["1.decoder.weight"] = state["0.encoder.weight"]
        if "1.decoder.bias" not in state:
            state["1.decoder.bias"] = torch.zeros(len(itos))
        model.load_state_dict(state)
    learn = LMLearner(
        dls,
        model,
        CrossEntropyFlat() if loss_func is None else loss_func,
        opt_func=opt_func,
        lr=lr,
        wd=wd,
        metrics=_as_metrics(metrics),
        splitter=awd_lstm_lm_split,
        cbs=[RNNCallback(), RNNRegularizer(alpha, beta), *cbs],
        path=path,
        model_dir=model_dir,
        train_bn=train_bn,
        slice_div=slice_div,
        progress=progress,
        device=device,
    )
    learn.export_info = export_record("text", LanguageModelTask(), model_config)
    if weights is not None:
        learn.freeze()
    return learn


def text_classifier_learner(
    dls,
    arch: type = AWD_LSTM,
    config: dict | None = None,
    drop_mult: float = 0.5,
    metrics=accuracy,
    pretrained: bool | str | Path | None = None,
    n_hidden: int = 50,
    alpha: float = 2.0,
    beta: float = 1.0,
    opt_func: Callable = Adam,
    lr: float = 1e-3,
    wd: float | None = None,
    cbs: Iterable = (),
    path: str | Path = ".",
    model_dir: str | Path = "models",
    loss_func: Callable | None = None,
    train_bn: bool = True,
    slice_div: float = 3.0,
    progress: bool | None = None,
    device: torch.device | str | None = None,
    pretrained_cache_dir: str | Path | None = None,
    vectors: str | Path | None = None,
) -> TextLearner:
    """An AWD-LSTM classifier on ``dls`` (padded text batches, ``dls.c`` classes), concat-pooling head.

    Usually the encoder comes from a fine-tuned language model: ``learn.load_encoder(name)``.
    ``pretrained`` may also name language-model weights (as in ``language_model_learner``) whose
    encoder is loaded directly; then the learner is frozen. ``config`` overrides keys of
    ``awd_lstm_clas_config`` (use the language model's sizes); ``drop_mult`` scales every dropout.
    ``vectors``: word vectors for the embedding, as in ``language_model_learner`` (``emb_sz``
    follows them); a later ``load_encoder`` replaces them with the language model's embedding.
    """
    _check_arch(arch)
    itos = _vocab_of(dls)
    pad_idx = _pad_idx(dls, itos)
    n_classes = getattr(dls, "c", None)
    if not isinstance(n_classes, int) or n_classes < 1:
        raise ValueError(f"text_classifier_learner needs dls.c (the number of classes), got {n_classes!r}")
    vv = None
    if vectors is not None:
        vv, config = _load_vectors(vectors, dls, itos, config)
    weights = None
    if pretrained is not False and pretrained is not None:
        weights = load_pretrained_lm(pretrained, cache_dir=pretrained_cache_dir)
        _check_vector_dim(weights, vv)
        config = {**(config or {}), **lm_sizes(weights.state)}
    model_config = TextClassifierConfig.of(len(itos), pad_idx, n_classes, n_hidden, config, drop_mult)
    model = model_config.build()
    if vv is not None:
        _set_embedding(model, vv)
    if weights is not None:
        state = match_vocab(weights.state, weights.vocab, itos)
        if vv is not None:
            _vectors_for_new_tokens(state, vv, weights.vocab, itos)
        encoder_of(model).load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("0.")})
    learn = TextLearner(
        dls,
        model,
        nn.CrossEntropyLoss() if loss_func is None else loss_func,
        opt_func=opt_func,
        lr=lr,
        wd=wd,
        metrics=_as_metrics(metrics),
        splitter=awd_lstm_clas_split,
        cbs=[RNNCallback(), RNNRegularizer(alpha, beta), *cbs],
        path=path,
        model_dir=model_dir,
        train_bn=train_bn,
        slice_div=slice_div,
        progress=progress,
        device=device,
    )
    learn.export_info = export_record("text", TextClassifierTask(), model_config)
    if weights is not None:
        learn.freeze()
    return learn


@dataclass
class LanguageModelTask(Task):
    """Next-token prediction: an `LMLearner` (`predict` writes on)."""

    type: ClassVar[str] = "language_model"

    def data(self, info: dict | None):
        from quickfit.text.data import text_dls_from_export

        if not info:
            raise ValueError("not a text export: the metadata lacks the data processing")
        return text_dls_from_export(info)

    def learner(self, dls, model: nn.Module, config: LanguageModelConfig) -> LMLearner:
        _check_vocab_size(dls, config.vocab_sz)
        return LMLearner(dls=dls, model=model, loss_func=CrossEntropyFlat(), splitter=awd_lstm_lm_split, lr=1e-3,
                         opt_func=Adam, cbs=[RNNCallback()], device="cpu")  # fmt: skip


@dataclass
class TextClassifierTask(Task):
    """Labels of texts: a `TextLearner` with cross-entropy."""

    type: ClassVar[str] = "text_classifier"

    data = LanguageModelTask.data

    def learner(self, dls, model: nn.Module, config: TextClassifierConfig) -> TextLearner:
        _check_vocab_size(dls, config.vocab_sz)
        check_outputs(dls.classes, config.n_classes, "n_classes")
        return TextLearner(dls=dls, model=model, loss_func=nn.CrossEntropyLoss(), splitter=awd_lstm_clas_split,
                           lr=1e-3, opt_func=Adam, cbs=[RNNCallback()], device="cpu")  # fmt: skip


def _check_vocab_size(dls, vocab_sz: int) -> None:
    if len(_vocab_of(dls)) != vocab_sz:
        raise ValueError(f"the export's vocabulary has {len(_vocab_of(dls))} tokens, its model {vocab_sz}")
