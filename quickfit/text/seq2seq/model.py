"""Encoder-decoder translation models: an attention GRU and a transformer, both masking padding everywhere.

    import torch
    from quickfit.text.seq2seq.model import Seq2SeqRNN, Seq2SeqTransformer
    model = Seq2SeqRNN(src_vocab_sz=100, tgt_vocab_sz=80)            # bidirectional GRU + Luong attention
    src, tgt_in = torch.randint(2, 100, (4, 7)), torch.randint(2, 80, (4, 5))
    logits = model(src, tgt_in)                                      # (4, 5, 80): teacher-forced scores
    memory = model.encode(src)                                       # then model.step(tokens, state, memory)

Both models share one interface the search (quickfit/text/seq2seq/search.py) uses: `encode(src)` ->
memory, `init_state(memory)` -> a tuple of batch-first tensors, `step(tokens, state, memory)` ->
(log-probabilities of the next token, state), `expand(memory, k)` for beams.

`Seq2SeqRNN` with `attention="dot"` or `"general"` (Luong) runs the decoder GRU over the whole target
in one call and attends from every position at once (batched matrix products): no Python loop over
time steps in training, which is what made the tutorial's GRUCell loop slow on a CPU. `"additive"`
(Bahdanau) feeds each step's context into the GRU, so it needs that loop (slower, kept for study).
Scores go through a projection to the embedding size and an output layer tied to the target
embedding: `n_hid x V` weights become `emb_sz x V` shared ones (about 4x less output-layer work).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["Seq2SeqRNN", "Seq2SeqTransformer", "ATTENTIONS", "seq2seq_rnn_config", "seq2seq_transformer_config"]

ATTENTIONS = ("dot", "general", "additive")


def seq2seq_rnn_config() -> dict:
    """Default sizes of `Seq2SeqRNN`, chosen for a corpus of Multi30k's size (29k pairs, 6-8k words a side)."""
    return dict(
        emb_sz=256, n_hid=256, enc_layers=1, dec_hid=256, dec_layers=1, attention="general",
        emb_drop=0.2, rnn_drop=0.0, out_drop=0.3, tie_weights=True,
    )  # fmt: skip


def seq2seq_transformer_config() -> dict:
    """Default sizes of `Seq2SeqTransformer` (a 3-layer base, smaller feed-forward for a CPU)."""
    return dict(d_model=256, n_heads=4, enc_layers=3, dec_layers=3, d_ff=1024, dropout=0.1, share_embeddings=False)


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


class Seq2SeqRNN(nn.Module):
    """Embedding, bidirectional GRU encoder, GRU decoder with attention, projection, tied output layer.

    `pad_idx` positions of the source are never attended to and packed out of the encoder (its
    backward direction starts at each sentence's last real token), so padding changes no output.
    """

    def __init__(
        self,
        src_vocab_sz: int,
        tgt_vocab_sz: int,
        emb_sz: int = 256,
        n_hid: int = 256,
        enc_layers: int = 1,
        dec_hid: int = 256,
        dec_layers: int = 1,
        attention: str = "general",
        emb_drop: float = 0.2,
        rnn_drop: float = 0.0,
        out_drop: float = 0.3,
        tie_weights: bool = True,
        pad_idx: int = 1,
    ) -> None:
        super().__init__()
        _check_choice("attention", attention, ATTENTIONS)
        for name, v in (("src_vocab_sz", src_vocab_sz), ("tgt_vocab_sz", tgt_vocab_sz), ("emb_sz", emb_sz)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"Seq2SeqRNN: {name} must be a positive int, got {v!r}")
        self.attention, self.pad_idx, self.dec_layers = attention, pad_idx, dec_layers
        self.src_emb = nn.Embedding(src_vocab_sz, emb_sz, padding_idx=pad_idx)
        self.tgt_emb = nn.Embedding(tgt_vocab_sz, emb_sz, padding_idx=pad_idx)
        self.emb_drop = nn.Dropout(emb_drop)
        rd = rnn_drop if enc_layers > 1 else 0.0
        self.encoder = nn.GRU(emb_sz, n_hid, enc_layers, batch_first=True, bidirectional=True, dropout=rd)
        self.bridge = nn.Linear(2 * n_hid, dec_hid * dec_layers)  # encoder summary -> decoder start state
        ctx = 2 * n_hid
        dec_in = emb_sz + ctx if attention == "additive" else emb_sz
        rd = rnn_drop if dec_layers > 1 else 0.0
        self.decoder = nn.GRU(dec_in, dec_hid, dec_layers, batch_first=True, dropout=rd)
        if attention == "general":
            self.keys = nn.Linear(ctx, dec_hid, bias=False)
        elif attention == "additive":
            self.keys = nn.Linear(ctx, dec_hid, bias=False)
            self.query = nn.Linear(dec_hid, dec_hid, bias=True)
            self.v = nn.Linear(dec_hid, 1, bias=False)
        elif ctx != dec_hid:
            raise ValueError(f"attention='dot' needs dec_hid == 2 * n_hid, got dec_hid={dec_hid}, n_hid={n_hid}")
        self.combine = nn.Linear(dec_hid + ctx, emb_sz)  # the projection before the output layer
        self.out_drop = nn.Dropout(out_drop)
        self.out = nn.Linear(emb_sz, tgt_vocab_sz)
        if tie_weights:
            self.out.weight = self.tgt_emb.weight

    # ---- encoder -------------------------------------------------------------------------------
    def encode(self, src: Tensor) -> tuple[Tensor, ...]:
        """`(enc_out (B, S, 2h), keys (B, S, d) or enc_out, mask (B, S) True at real tokens, h0 (B, L, d))`."""
        mask = src != self.pad_idx
        lengths = mask.sum(1).clamp(min=1).cpu()  # pack_padded_sequence wants lengths on the CPU
        emb = self.emb_drop(self.src_emb(src))
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        out, h = self.encoder(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        summary = torch.cat([h[-2], h[-1]], dim=-1)  # last layer, both directions
        h0 = torch.tanh(self.bridge(summary)).view(src.size(0), self.dec_layers, -1)
        keys = self.keys(out) if self.attention != "dot" else out
        return out, keys, mask, h0

    @staticmethod
    def expand(memory: tuple[Tensor, ...], k: int) -> tuple[Tensor, ...]:
        """Each item's memory repeated `k` times (item b's copies at rows b*k .. b*k+k-1), for beam search."""
        return tuple(t.repeat_interleave(k, dim=0) for t in memory)

    def init_state(self, memory: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return (memory[3],)  # batch first, so the search can reorder every state tensor on dim 0

    # ---- attention -----------------------------------------------------------------------------
    def attend(self, query: Tensor, enc_out: Tensor, keys: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Context (B, T, 2h) and weights (B, T, S) for queries (B, T, d); weights are 0 on padding."""
        if self.attention == "additive":
            scores = self.v(torch.tanh(self.query(query).unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)
        else:
            scores = query @ keys.transpose(1, 2)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = scores.softmax(-1)
        return weights @ enc_out, weights

    # ---- decoder -------------------------------------------------------------------------------
    def _project(self, dec_out: Tensor, context: Tensor) -> Tensor:
        return self.out(self.out_drop(torch.tanh(self.combine(torch.cat([dec_out, context], -1)))))

    def decode(self, tgt_in: Tensor, memory: tuple[Tensor, ...], return_attn: bool = False):
        """Teacher-forced scores (B, T, V) of every next token; with `return_attn`, also the weights (B, T, S)."""
        enc_out, keys, mask, h0 = memory
        emb = self.emb_drop(self.tgt_emb(tgt_in))
        h = h0.transpose(0, 1).contiguous()
        if self.attention == "additive":  # the context of step t is an input of step t: a loop
            outs, ctxs, attns = [], [], []
            for t in range(tgt_in.size(1)):
                context, w = self.attend(h[-1].unsqueeze(1), enc_out, keys, mask)
                out, h = self.decoder(torch.cat([emb[:, t : t + 1], context], -1), h)
                outs.append(out), ctxs.append(context), attns.append(w)
            dec_out, context, weights = torch.cat(outs, 1), torch.cat(ctxs, 1), torch.cat(attns, 1)
        else:  # Luong: the GRU over the whole target at once, then attention from every position
            dec_out, _ = self.decoder(emb, h)
            context, weights = self.attend(dec_out, enc_out, keys, mask)
        logits = self._project(dec_out, context)
        return (logits, weights) if return_attn else logits

    def step(self, tokens: Tensor, state: tuple[Tensor, ...], memory: tuple[Tensor, ...]):
        """Log-probabilities (N, V) of the token after `tokens` (N,), and the new state."""
        enc_out, keys, mask, _ = memory
        h = state[0].transpose(0, 1).contiguous()
        emb = self.emb_drop(self.tgt_emb(tokens.unsqueeze(1)))
        if self.attention == "additive":
            context, _ = self.attend(h[-1].unsqueeze(1), enc_out, keys, mask)
            out, h = self.decoder(torch.cat([emb, context], -1), h)
        else:
            out, h = self.decoder(emb, h)
            context, _ = self.attend(out, enc_out, keys, mask)
        logits = self._project(out, context).squeeze(1)
        return F.log_softmax(logits.float(), -1), (h.transpose(0, 1),)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        return self.decode(tgt_in, self.encode(src))


class _Positions(nn.Module):
    """Sinusoidal positions (Vaswani et al.), added to the scaled embeddings."""

    def __init__(self, d_model: int, max_len: int = 1024) -> None:
        super().__init__()
        pos = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pe", pe, persistent=False)  # derived, so not in the weights file

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        if start + x.size(1) > self.pe.size(0):
            raise ValueError(f"sequence of {start + x.size(1)} tokens is longer than the {self.pe.size(0)} positions")
        return x + self.pe[start : start + x.size(1)]


class Seq2SeqTransformer(nn.Module):
    """PyTorch's transformer encoder and decoder layers (pre-norm), sinusoidal positions, tied output layer.

    `share_embeddings=True` uses one embedding for source, target and output (needs one shared vocabulary).
    """

    def __init__(
        self,
        src_vocab_sz: int,
        tgt_vocab_sz: int,
        d_model: int = 256,
        n_heads: int = 4,
        enc_layers: int = 3,
        dec_layers: int = 3,
        d_ff: int = 1024,
        dropout: float = 0.1,
        share_embeddings: bool = False,
        pad_idx: int = 1,
        max_len: int = 1024,
    ) -> None:
        super().__init__()
        if share_embeddings and src_vocab_sz != tgt_vocab_sz:
            raise ValueError(
                f"share_embeddings=True needs one vocabulary for both sides, got {src_vocab_sz} source "
                f"and {tgt_vocab_sz} target tokens (build the data with shared_vocab=True)"
            )
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        self.pad_idx, self.scale, self.n_heads = pad_idx, math.sqrt(d_model), n_heads
        self.tgt_emb = nn.Embedding(tgt_vocab_sz, d_model, padding_idx=pad_idx)
        self.src_emb = self.tgt_emb if share_embeddings else nn.Embedding(src_vocab_sz, d_model, padding_idx=pad_idx)
        self.pos, self.drop = _Positions(d_model, max_len), nn.Dropout(dropout)
        layer = dict(d_model=d_model, nhead=n_heads, dim_feedforward=d_ff, dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(**layer, norm_first=True), enc_layers, norm=nn.LayerNorm(d_model),
            enable_nested_tensor=False,
        )  # fmt: skip
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(**layer, norm_first=True), dec_layers, norm=nn.LayerNorm(d_model)
        )
        self.out = nn.Linear(d_model, tgt_vocab_sz)
        self.out.weight = self.tgt_emb.weight
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        with torch.no_grad():
            for emb in {self.src_emb, self.tgt_emb}:
                emb.weight.normal_(0, d_model**-0.5)
                emb.weight[pad_idx].zero_()

    def _embed(self, emb: nn.Embedding, x: Tensor) -> Tensor:
        return self.drop(self.pos(emb(x) * self.scale))

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """`(memory (B, S, d), mask (B, S) True at real tokens)`."""
        mask = src != self.pad_idx
        return self.encoder(self._embed(self.src_emb, src), src_key_padding_mask=~mask), mask

    @staticmethod
    def expand(memory: tuple[Tensor, ...], k: int) -> tuple[Tensor, ...]:
        return tuple(t.repeat_interleave(k, dim=0) for t in memory)

    def init_state(self, memory: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """`(tokens so far (N, 0), then for each decoder layer: the cross-attention keys and values of the
        memory (N, heads, S, d / heads), computed once, and the self-attention key / value cache (N, heads,
        0, d / heads), which each step extends)`: every tensor batch-first, so beams reorder them all."""
        enc = memory[0]
        n = enc.size(0)
        state = [enc.new_zeros(n, 0, dtype=torch.long)]
        for layer in self.decoder.layers:
            k, v = self._keys_values(layer.multihead_attn, enc)
            empty = k.new_zeros(n, k.size(1), 0, k.size(3))
            state += [k, v, empty, empty]
        return tuple(state)

    def _heads(self, x: Tensor) -> Tensor:
        """(N, T, d) -> (N, heads, T, d / heads)."""
        return x.reshape(x.size(0), x.size(1), self.n_heads, -1).transpose(1, 2)

    def _keys_values(self, attn: nn.MultiheadAttention, x: Tensor) -> tuple[Tensor, Tensor]:
        """`attn`'s key and value projections of `x` (N, T, d), split into heads."""
        d, w, b = x.size(-1), attn.in_proj_weight, attn.in_proj_bias
        k, v = F.linear(x, w[d:], None if b is None else b[d:]).chunk(2, -1)  # one matmul for both
        return self._heads(k), self._heads(v)

    def _attend(self, attn: nn.MultiheadAttention, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None):
        """`attn` from the queries of `x` (N, 1, d) to cached keys / values (`mask` (N, 1, 1, S): True where
        a key may be attended to): the same sums as `nn.MultiheadAttention` (scaled dot products)."""
        d, w, b = x.size(-1), attn.in_proj_weight, attn.in_proj_bias
        q = self._heads(F.linear(x, w[:d], None if b is None else b[:d]))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return attn.out_proj(out.transpose(1, 2).reshape(x.size(0), x.size(1), d))

    def decode(self, tgt_in: Tensor, memory: tuple[Tensor, Tensor]) -> Tensor:
        enc, mask = memory
        t = tgt_in.size(1)
        causal = torch.triu(torch.full((t, t), float("-inf"), device=tgt_in.device), diagonal=1)
        # A pad key is never attended to; causality already keeps a real query off the pads after it,
        # so masking the target's padding too would only give fully masked rows (NaN) at pad queries.
        out = self.decoder(
            self._embed(self.tgt_emb, tgt_in), enc, tgt_mask=causal, memory_key_padding_mask=~mask, tgt_is_causal=True
        )
        return self.out(out)

    def step(self, tokens: Tensor, state: tuple[Tensor, ...], memory: tuple[Tensor, Tensor]):
        """The next token's log-probabilities, running only the new token through the decoder: each layer's
        self-attention keys and values of the earlier tokens come from the cache in `state`, the memory's
        from `init_state` (O(T) a step instead of rerunning the prefix). Search runs it in eval mode: no
        dropout."""
        prefix, caches = state[0], state[1:]
        mask = memory[1][:, None, None, :]  # source padding: never attended to
        x = self.pos(self.tgt_emb(tokens.unsqueeze(1)) * self.scale, start=prefix.size(1))
        new: list[Tensor] = []
        for i, layer in enumerate(self.decoder.layers):  # pre-norm layers, as nn.TransformerDecoderLayer
            cross_k, cross_v, self_k, self_v = caches[4 * i : 4 * i + 4]
            h = layer.norm1(x)
            k, v = self._keys_values(layer.self_attn, h)
            self_k, self_v = torch.cat([self_k, k], 2), torch.cat([self_v, v], 2)
            x = x + self._attend(layer.self_attn, h, self_k, self_v)  # all earlier tokens and itself: causal
            x = x + self._attend(layer.multihead_attn, layer.norm2(x), cross_k, cross_v, mask)
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm3(x))))
            new += [cross_k, cross_v, self_k, self_v]
        logits = self.out(self.decoder.norm(x))[:, -1]
        return F.log_softmax(logits.float(), -1), (torch.cat([prefix, tokens.unsqueeze(1)], 1), *new)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        return self.decode(tgt_in, self.encode(src))
