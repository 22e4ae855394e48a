"""AWD-LSTM (Merity et al., 2017): a stack of LSTMs with the dropouts that make it generalize.

Usage::

    import torch
    from quickfit.text.models.awd_lstm import AWD_LSTM

    enc = AWD_LSTM(vocab_sz=1000, emb_sz=64, n_hid=128, n_layers=2)
    out = enc(torch.randint(2, 1000, (8, 20)))  # (8, 20, 64): the last layer's output per token
    enc.reset()                                  # forget the hidden state carried between calls

The regularizers, each switched off in ``eval()``:

- embedding dropout (``embed_p``): whole words are dropped from the embedding matrix, so a word
  is either seen or not in a batch (``EmbeddingDropout``);
- input / hidden dropout (``input_p`` / ``hidden_p``): variational dropout, one mask per sequence
  shared by every time step (``RNNDropout``), on the embeddings and between LSTM layers;
- weight dropout (``weight_p``): DropConnect on the hidden-to-hidden matrices, recomputed at every
  forward from the raw weights (``WeightDropLSTM``), so nothing is ever written into a parameter.

The hidden state of every layer is kept (detached, i.e. truncated back-propagation through time)
between calls while the batch size stays the same: a language model reads its contiguous streams
batch after batch. ``reset()`` sets it back to zeros; classifiers call it before every batch.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import _VF, Tensor, nn

__all__ = ["AWD_LSTM", "EmbeddingDropout", "RNNDropout", "WeightDropLSTM"]

# cuDNN wants the weights of an RNN in one flat buffer; a weight recomputed at each forward never is,
# so cuDNN copies it (cheap next to the matmuls) and warns every call. The warning is expected here.
_CUDNN_FLAT_WARNING = "RNN module weights are not part of single contiguous chunk of memory"


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast runs ops in on this device, or None when autocast is off."""
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    if device_type == "cpu":
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


def _dropout_mask(like: Tensor, shape: tuple[int, ...], p: float) -> Tensor:
    """A Bernoulli keep-mask scaled by 1/(1-p), so activations keep their expectation."""
    return like.new_empty(shape).bernoulli_(1 - p).div_(1 - p)


class RNNDropout(nn.Module):
    """Variational dropout on a (batch, seq, features) tensor: the same units are dropped at every step."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * _dropout_mask(x, (x.size(0), 1, x.size(2)), self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class EmbeddingDropout(nn.Module):
    """Drops whole words: every occurrence of a dropped word in the batch gets a zero embedding.

    Called on the looked-up embeddings and the word ids: gathering one keep-mask per vocabulary entry
    at the words (``mask[words]``) gives the same values and gradients as masking the rows of the
    (vocab, emb) matrix, at the cost of the batch instead of the vocabulary.
    """

    def __init__(self, vocab_sz: int, p: float) -> None:
        super().__init__()
        self.vocab_sz, self.p = vocab_sz, p

    def forward(self, emb: Tensor, words: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return emb
        return emb * _dropout_mask(emb, (self.vocab_sz, 1), self.p)[words]

    def extra_repr(self) -> str:
        return f"p={self.p}"


class WeightDropLSTM(nn.Module):
    """One LSTM layer (batch first) with DropConnect on its hidden-to-hidden matrix.

    The parameters have ``nn.LSTM``'s shapes and initialization (``weight_ih``, ``weight_hh``,
    ``bias_ih``, ``bias_hh``). In training each forward uses ``dropout(weight_hh, weight_p)``; in eval
    the raw weight. The LSTM itself is the same fused kernel ``nn.LSTM`` calls (``torch._VF.lstm``).
    """

    def __init__(self, n_in: int, n_out: int, weight_p: float = 0.0) -> None:
        super().__init__()
        self.n_in, self.n_out, self.weight_p = n_in, n_out, weight_p
        self.weight_ih = nn.Parameter(torch.empty(4 * n_out, n_in))
        self.weight_hh = nn.Parameter(torch.empty(4 * n_out, n_out))
        self.bias_ih = nn.Parameter(torch.empty(4 * n_out))
        self.bias_hh = nn.Parameter(torch.empty(4 * n_out))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.n_out)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def effective_weight_hh(self) -> Tensor:
        """The hidden-to-hidden matrix this forward uses: dropped in training, raw in eval."""
        if self.training and self.weight_p > 0.0:
            return F.dropout(self.weight_hh, self.weight_p, training=True)
        return self.weight_hh

    def forward(self, x: Tensor, hidden: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x``: (batch, seq, n_in); ``hidden``: (h, c) each (1, batch, n_out)."""
        weights = [self.weight_ih, self.effective_weight_hh(), self.bias_ih, self.bias_hh]
        dtype = _autocast_dtype(x.device.type)
        if dtype is not None:  # autocast casts the weights; the LSTM kernel wants input and state alike
            x, hidden = x.to(dtype), (hidden[0].to(dtype), hidden[1].to(dtype))
        if not x.is_cuda:
            out, h, c = _VF.lstm(x, hidden, weights, True, 1, 0.0, self.training, False, True)
            return out, (h, c)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_CUDNN_FLAT_WARNING)
            out, h, c = _VF.lstm(x, hidden, weights, True, 1, 0.0, self.training, False, True)
        return out, (h, c)

    def extra_repr(self) -> str:
        return f"{self.n_in}, {self.n_out}, weight_p={self.weight_p}"


class AWD_LSTM(nn.Module):
    """Embedding + ``n_layers`` weight-dropped LSTMs; returns the last layer's output (batch, seq, emb_sz).

    Layer ``i`` maps ``emb_sz`` (first) or ``n_hid`` to ``n_hid``, and the last one back to ``emb_sz``
    so a decoder can share (tie) the embedding matrix.
    """

    def __init__(
        self,
        vocab_sz: int,
        emb_sz: int = 400,
        n_hid: int = 1152,
        n_layers: int = 3,
        pad_token: int = 1,
        hidden_p: float = 0.3,
        input_p: float = 0.4,
        embed_p: float = 0.1,
        weight_p: float = 0.5,
    ) -> None:
        super().__init__()
        if vocab_sz < 1 or emb_sz < 1 or n_hid < 1 or n_layers < 1:
            raise ValueError(
                f"AWD_LSTM: vocab_sz, emb_sz, n_hid and n_layers must be >= 1, got "
                f"vocab_sz={vocab_sz}, emb_sz={emb_sz}, n_hid={n_hid}, n_layers={n_layers}"
            )
        self.vocab_sz, self.emb_sz, self.n_hid, self.n_layers = vocab_sz, emb_sz, n_hid, n_layers
        self.pad_token = pad_token
        self.encoder = nn.Embedding(vocab_sz, emb_sz, padding_idx=pad_token)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        with torch.no_grad():
            self.encoder.weight[pad_token].zero_()
        self.encoder_dp = EmbeddingDropout(vocab_sz, embed_p)
        sizes = [emb_sz] + [n_hid] * (n_layers - 1) + [emb_sz]
        self.rnns = nn.ModuleList(WeightDropLSTM(sizes[i], sizes[i + 1], weight_p) for i in range(n_layers))
        self.input_dp = RNNDropout(input_p)
        self.hidden_dps = nn.ModuleList(RNNDropout(hidden_p) for _ in range(n_layers - 1))
        self.hidden: list[tuple[Tensor, Tensor]] | None = None

    def reset(self) -> None:
        """Forget the hidden state: the next call starts from zeros."""
        self.hidden = None

    def _initial_hidden(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        bs = x.size(0)
        hidden = self.hidden
        if hidden is not None and hidden[0][0].size(1) == bs and hidden[0][0].device == x.device:
            return hidden
        weight = self.encoder.weight
        return [(weight.new_zeros(1, bs, rnn.n_out), weight.new_zeros(1, bs, rnn.n_out)) for rnn in self.rnns]

    def forward(self, words: Tensor) -> Tensor:
        """``words``: (batch, seq) token ids. Continues from the stored hidden state if it fits the batch."""
        if words.dim() != 2:
            raise ValueError(f"AWD_LSTM expects token ids of shape (batch, seq), got {tuple(words.shape)}")
        hidden = self._initial_hidden(words)
        out = self.input_dp(self.encoder_dp(self.encoder(words), words))
        new_hidden = []
        for i, rnn in enumerate(self.rnns):
            out, h = rnn(out, hidden[i])
            new_hidden.append((h[0].detach(), h[1].detach()))
            if i < self.n_layers - 1:
                out = self.hidden_dps[i](out)
        self.hidden = new_hidden
        return out
