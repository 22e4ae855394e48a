"""Language model and classifier built on an AWD-LSTM encoder, with their layer-group splitters.

Usage::

    import torch
    from quickfit.text.models.core import get_language_model, get_text_classifier

    lm = get_language_model(vocab_sz=1000, config=dict(emb_sz=64, n_hid=128, n_layers=2))
    logits = lm(torch.randint(2, 1000, (8, 20)))         # (8, 20, 1000) next-token scores
    clf = get_text_classifier(vocab_sz=1000, n_classes=2, config=dict(emb_sz=64, n_hid=128, n_layers=2))
    scores = clf(torch.randint(2, 1000, (8, 30)))        # (8, 2); token id 1 (xxpad) is ignored

The language model is ``SequentialRNN(AWD_LSTM, LinearDecoder)`` with the decoder's weight tied to
the embedding matrix. The classifier is ``SequentialRNN(SentenceEncoder(AWD_LSTM), PoolingLinearClassifier)``:
the encoder reads each padded text from a fresh (zero) hidden state, and the head concatenates the last
hidden state of the last real token, the max and the mean over real tokens (concat pooling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from quickfit.configs import ModelConfig
from quickfit.text.models.awd_lstm import AWD_LSTM, RNNDropout

__all__ = [
    "LinearDecoder",
    "SequentialRNN",
    "SentenceEncoder",
    "PoolingLinearClassifier",
    "masked_concat_pool",
    "get_language_model",
    "get_text_classifier",
    "awd_lstm_lm_split",
    "awd_lstm_clas_split",
    "encoder_of",
    "awd_lstm_lm_config",
    "awd_lstm_clas_config",
    "LanguageModelConfig",
    "TextClassifierConfig",
]

# AWD-LSTM sizes and dropouts of the ULMFiT paper (fastai's published WikiText-103 weights use them).
# The learners multiply every *_p by drop_mult.
awd_lstm_lm_config: dict[str, float] = dict(
    emb_sz=400, n_hid=1152, n_layers=3, hidden_p=0.15, input_p=0.25, embed_p=0.02, weight_p=0.2, output_p=0.1
)
awd_lstm_clas_config: dict[str, float] = dict(
    emb_sz=400, n_hid=1152, n_layers=3, hidden_p=0.3, input_p=0.4, embed_p=0.05, weight_p=0.5, output_p=0.4
)
_SIZE_KEYS = ("emb_sz", "n_hid", "n_layers")
_DROP_KEYS = ("hidden_p", "input_p", "embed_p", "weight_p", "output_p")


class SequentialRNN(nn.Sequential):
    """``nn.Sequential`` whose ``reset()`` resets every child that keeps a hidden state."""

    def reset(self) -> None:
        for child in self.children():
            if hasattr(child, "reset"):
                child.reset()


class LinearDecoder(nn.Module):
    """Output dropout then a linear layer to the vocabulary, its weight shared with ``tie_to`` if given."""

    def __init__(self, vocab_sz: int, emb_sz: int, output_p: float = 0.1, tie_to: nn.Embedding | None = None):
        super().__init__()
        self.output_dp = RNNDropout(output_p)
        self.decoder = nn.Linear(emb_sz, vocab_sz)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if tie_to is not None:
            # One Parameter in two modules: an update of either is an update of both.
            self.decoder.weight = tie_to.weight

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.output_dp(x))


class SentenceEncoder(nn.Module):
    """Runs the encoder over a padded batch of texts from a zero state; returns (outputs, non-pad mask).

    The texts are first moved to the left of their rows (padding at the end) whatever side the data
    padded them on: an LSTM reads left to right, so trailing padding cannot change the outputs at the
    real tokens, and more padding gives exactly the same result.
    """

    def __init__(self, encoder: AWD_LSTM, pad_idx: int = 1) -> None:
        super().__init__()
        self.module = encoder
        self.pad_idx = pad_idx

    def reset(self) -> None:
        self.module.reset()

    def forward(self, words: Tensor) -> tuple[Tensor, Tensor]:
        is_pad = words == self.pad_idx
        # A stable sort of the pad flags moves the real tokens first, in their order (no host sync).
        order = torch.sort(is_pad.to(torch.uint8), dim=1, stable=True).indices
        words, mask = words.gather(1, order), ~is_pad.gather(1, order)
        self.module.reset()
        out = self.module(words)
        self.module.reset()  # the state of a text is no use to the next batch
        return out, mask


def masked_concat_pool(out: Tensor, mask: Tensor) -> Tensor:
    """[last real output, max, mean over real positions] of ``out`` (batch, seq, n) -> (batch, 3n).

    ``mask`` (batch, seq) is true at real tokens, which come first in each row.
    """
    lengths = mask.sum(1)
    last_idx = (lengths - 1).clamp(min=0)
    last = out[torch.arange(out.size(0), device=out.device), last_idx]
    m = mask.unsqueeze(-1)
    max_pool = out.masked_fill(~m, float("-inf")).max(1).values
    max_pool = torch.where(lengths.unsqueeze(-1) > 0, max_pool, torch.zeros_like(max_pool))  # empty text
    mean_pool = (out * m).sum(1) / lengths.clamp(min=1).unsqueeze(-1).to(out.dtype)
    return torch.cat([last, max_pool, mean_pool], dim=1)


class PoolingLinearClassifier(nn.Module):
    """Concat pooling then ``BatchNorm1d, Dropout, Linear(->n_hidden), ReLU, BatchNorm1d, Dropout, Linear``."""

    def __init__(self, n_in: int, n_classes: int, n_hidden: int = 50, ps: tuple[float, float] = (0.4, 0.1)):
        super().__init__()
        self.layers = nn.Sequential(
            nn.BatchNorm1d(3 * n_in),
            nn.Dropout(ps[0]),
            nn.Linear(3 * n_in, n_hidden),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(n_hidden),
            nn.Dropout(ps[1]),
            nn.Linear(n_hidden, n_classes),
        )

    def forward(self, inp: tuple[Tensor, Tensor]) -> Tensor:
        out, mask = inp
        return self.layers(masked_concat_pool(out, mask))


def _merge_config(base: dict[str, float], config: dict | None, drop_mult: float) -> dict:
    cfg = dict(base)
    for key, value in (config or {}).items():
        if key not in cfg:
            raise ValueError(f"config: unknown key {key!r}; expected some of {sorted(cfg)}")
        cfg[key] = value
    for key in _SIZE_KEYS:
        cfg[key] = int(cfg[key])
    for key in _DROP_KEYS:
        cfg[key] = float(cfg[key]) * drop_mult
    return cfg


def _encoder(vocab_sz: int, cfg: dict, pad_idx: int) -> AWD_LSTM:
    return AWD_LSTM(
        vocab_sz,
        emb_sz=cfg["emb_sz"],
        n_hid=cfg["n_hid"],
        n_layers=cfg["n_layers"],
        pad_token=pad_idx,
        hidden_p=cfg["hidden_p"],
        input_p=cfg["input_p"],
        embed_p=cfg["embed_p"],
        weight_p=cfg["weight_p"],
    )


def get_language_model(
    vocab_sz: int, config: dict | None = None, drop_mult: float = 1.0, pad_idx: int = 1
) -> SequentialRNN:
    """AWD-LSTM + tied decoder. ``config`` overrides keys of ``awd_lstm_lm_config``."""
    cfg = _merge_config(awd_lstm_lm_config, config, drop_mult)
    encoder = _encoder(vocab_sz, cfg, pad_idx)
    return SequentialRNN(encoder, LinearDecoder(vocab_sz, cfg["emb_sz"], cfg["output_p"], tie_to=encoder.encoder))


def get_text_classifier(
    vocab_sz: int,
    n_classes: int,
    config: dict | None = None,
    drop_mult: float = 1.0,
    pad_idx: int = 1,
    n_hidden: int = 50,
) -> SequentialRNN:
    """AWD-LSTM sentence encoder + concat-pooling head. ``config`` overrides keys of ``awd_lstm_clas_config``."""
    if n_classes < 1:
        raise ValueError(f"get_text_classifier: n_classes must be >= 1, got {n_classes}")
    cfg = _merge_config(awd_lstm_clas_config, config, drop_mult)
    encoder = _encoder(vocab_sz, cfg, pad_idx)
    head = PoolingLinearClassifier(cfg["emb_sz"], n_classes, n_hidden, ps=(cfg["output_p"], 0.1))
    return SequentialRNN(SentenceEncoder(encoder, pad_idx), head)


@dataclass
class LanguageModelConfig(ModelConfig):
    """An AWD-LSTM language model with a tied decoder (`get_language_model`). `sizes`: every key of
    `awd_lstm_lm_config`, the dropouts already multiplied by `drop_mult` (`of` does both)."""

    type: ClassVar[str] = "awd_lstm_lm"
    vocab_sz: int
    pad_idx: int
    sizes: dict

    @classmethod
    def of(cls, vocab_sz: int, pad_idx: int, config: dict | None = None, drop_mult: float = 1.0):
        return cls(int(vocab_sz), int(pad_idx), _merge_config(awd_lstm_lm_config, config, drop_mult))

    def build(self) -> SequentialRNN:
        return get_language_model(self.vocab_sz, self.sizes, 1.0, self.pad_idx)


@dataclass
class TextClassifierConfig(ModelConfig):
    """An AWD-LSTM classifier of `n_classes` (`get_text_classifier`); `sizes` as `LanguageModelConfig`'s,
    over `awd_lstm_clas_config`."""

    type: ClassVar[str] = "awd_lstm_classifier"
    vocab_sz: int
    pad_idx: int
    n_classes: int
    n_hidden: int = 50
    sizes: dict | None = None

    @classmethod
    def of(cls, vocab_sz: int, pad_idx: int, n_classes: int, n_hidden: int = 50, config: dict | None = None,
           drop_mult: float = 1.0):  # fmt: skip
        sizes = _merge_config(awd_lstm_clas_config, config, drop_mult)
        return cls(int(vocab_sz), int(pad_idx), int(n_classes), int(n_hidden), sizes)

    def build(self) -> SequentialRNN:
        return get_text_classifier(self.vocab_sz, self.n_classes, self.sizes, 1.0, self.pad_idx, self.n_hidden)


def encoder_of(model: nn.Module) -> AWD_LSTM:
    """The AWD-LSTM inside a language model or a classifier."""
    for module in model.modules():
        if isinstance(module, AWD_LSTM):
            return module
    raise TypeError(f"encoder_of: no AWD_LSTM inside {type(model).__name__}")


def awd_lstm_lm_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """Layer groups of a language model: one per LSTM layer, then embedding + (tied) decoder.

    The embedding matrix is the decoder's weight, so it sits with the decoder in the last group:
    ``freeze()`` trains the embeddings and the output layer only (the first step of LM fine-tuning,
    where new words start from the mean embedding).
    """
    encoder = encoder_of(model)
    groups = [list(rnn.parameters()) for rnn in encoder.rnns]
    seen = {id(p) for g in groups for p in g}
    last = [p for p in model.parameters() if id(p) not in seen]  # parameters() yields tied weights once
    return groups + [last]


def awd_lstm_clas_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """Layer groups of a classifier: [embedding], one per LSTM layer, [head].

    So ``freeze()`` trains the head, ``freeze_to(-2)`` the last LSTM layer too, ``freeze_to(-3)`` the
    last two, and ``unfreeze()`` everything: ULMFiT's gradual unfreezing.
    """
    encoder = encoder_of(model)
    groups = [list(encoder.encoder.parameters())] + [list(rnn.parameters()) for rnn in encoder.rnns]
    seen = {id(p) for g in groups for p in g}
    return groups + [[p for p in model.parameters() if id(p) not in seen]]
