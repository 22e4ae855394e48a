"""AWD-LSTM, its dropouts, the language model, the classifier head and the layer groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quickfit.text.models import (
    AWD_LSTM,
    EmbeddingDropout,
    RNNDropout,
    WeightDropLSTM,
    awd_lstm_clas_split,
    awd_lstm_lm_split,
    encoder_of,
    get_language_model,
    get_text_classifier,
    masked_concat_pool,
)

SMALL = dict(emb_sz=8, n_hid=12, n_layers=3)


def _copy_to_lstm(layer: WeightDropLSTM) -> nn.LSTM:
    ref = nn.LSTM(layer.n_in, layer.n_out, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(layer.weight_ih)
        ref.weight_hh_l0.copy_(layer.weight_hh)
        ref.bias_ih_l0.copy_(layer.bias_ih)
        ref.bias_hh_l0.copy_(layer.bias_hh)
    return ref


def test_weight_drop_lstm_matches_nn_lstm_in_eval():
    torch.manual_seed(0)
    layer = WeightDropLSTM(5, 6, weight_p=0.5).eval()
    ref = _copy_to_lstm(layer)
    x = torch.randn(3, 7, 5)
    h = (torch.randn(1, 3, 6), torch.randn(1, 3, 6))
    out, (h1, c1) = layer(x, h)
    ref_out, (ref_h, ref_c) = ref(x, h)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(h1, ref_h)
    torch.testing.assert_close(c1, ref_c)
    # gradients too: the fused kernel is the same one nn.LSTM uses
    out.sum().backward()
    ref_out.sum().backward()
    torch.testing.assert_close(layer.weight_hh.grad, ref.weight_hh_l0.grad)


def test_weight_dropout_changes_the_weights_only_in_training():
    torch.manual_seed(0)
    layer = WeightDropLSTM(4, 10, weight_p=0.5)
    raw = layer.weight_hh.detach().clone()
    x, h = torch.randn(2, 5, 4), (torch.zeros(1, 2, 10), torch.zeros(1, 2, 10))
    layer.train()
    dropped = layer.effective_weight_hh()
    zeros = dropped == 0
    assert 0.3 < zeros.float().mean() < 0.7  # about weight_p of the connections cut
    torch.testing.assert_close(dropped[~zeros], raw[~zeros] * 2)  # the rest scaled by 1/(1-p)
    out1, _ = layer(x, h)
    out2, _ = layer(x, h)
    assert not torch.allclose(out1, out2)  # a new mask each forward
    assert torch.equal(layer.weight_hh.detach(), raw)  # the parameter itself is never overwritten
    layer.eval()
    assert layer.effective_weight_hh() is layer.weight_hh
    torch.testing.assert_close(layer(x, h)[0], layer(x, h)[0])
    torch.testing.assert_close(layer(x, h)[0], _copy_to_lstm(layer)(x, h)[0])


def test_weight_dropout_gradient_reaches_the_raw_weight_through_the_mask():
    torch.manual_seed(1)
    layer = WeightDropLSTM(3, 6, weight_p=0.5).train()
    x, h = torch.randn(2, 4, 3), (torch.randn(1, 2, 6), torch.randn(1, 2, 6))
    torch.manual_seed(5)
    out, _ = layer(x, h)
    out.sum().backward()
    torch.manual_seed(5)
    mask = layer.effective_weight_hh() == 0  # same seed, same mask
    assert layer.weight_hh.grad is not None
    assert torch.all(layer.weight_hh.grad[mask] == 0)  # cut connections get no gradient
    assert layer.weight_hh.grad[~mask].abs().sum() > 0


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    emb = nn.Embedding(50, 6)
    words = torch.randint(0, 50, (4, 30))
    drop = EmbeddingDropout(50, p=0.5).train()
    out = drop(emb(words), words)
    zero = (out == 0).all(-1)
    for w in words.unique():
        at = zero[words == w]
        assert at.all() or not at.any()  # every occurrence of a word is dropped together
    assert zero.any() and not zero.all()
    kept = ~zero
    torch.testing.assert_close(out[kept], emb(words)[kept] * 2)
    drop.eval()
    assert torch.equal(drop(emb(words), words), emb(words))


def test_rnn_dropout_uses_one_mask_for_all_time_steps():
    torch.manual_seed(0)
    x = torch.ones(3, 9, 20)
    out = RNNDropout(0.5).train()(x)
    assert torch.equal(out, out[:, :1].expand_as(out))  # same units dropped at every step
    assert (out == 0).any() and (out == 2).any()
    assert torch.equal(RNNDropout(0.5).eval()(x), x)


def test_hidden_state_is_carried_between_calls_and_reset():
    torch.manual_seed(0)
    enc = AWD_LSTM(30, **SMALL).eval()
    words = torch.randint(2, 30, (2, 12))
    whole = enc(words)
    enc.reset()
    first, second = enc(words[:, :5]), enc(words[:, 5:])
    torch.testing.assert_close(torch.cat([first, second], 1), whole)  # carried: same as reading it whole
    assert all(not h.requires_grad and not c.requires_grad for h, c in enc.hidden)  # detached (truncated BPTT)
    enc.reset()
    assert enc.hidden is None
    assert not torch.allclose(enc(words[:, 5:]), second)  # from zeros: a different continuation
    enc(torch.randint(2, 30, (3, 4)))  # another batch size starts from zeros instead of failing
    assert enc.hidden[0][0].shape == (1, 3, SMALL["n_hid"])


def test_hidden_state_does_not_leak_gradients_across_batches():
    enc = AWD_LSTM(30, **SMALL).train()
    enc(torch.randint(2, 30, (2, 6))).sum().backward()
    enc.zero_grad()
    enc(torch.randint(2, 30, (2, 6))).sum().backward()  # would fail if the graph of batch 1 were kept


def test_language_model_ties_decoder_to_embedding():
    lm = get_language_model(40, SMALL)
    enc, dec = lm[0], lm[1]
    assert dec.decoder.weight is enc.encoder.weight
    assert lm(torch.randint(2, 40, (3, 7))).shape == (3, 7, 40)
    opt = torch.optim.SGD(lm.parameters(), lr=1.0)
    before = enc.encoder.weight.detach().clone()
    nn.functional.cross_entropy(lm(torch.randint(2, 40, (3, 7))).view(-1, 40), torch.randint(0, 40, (21,))).backward()
    opt.step()
    assert not torch.equal(before, enc.encoder.weight.detach())
    assert torch.equal(dec.decoder.weight, enc.encoder.weight)  # still one matrix after a step
    # the tied matrix is counted once
    n_unique = len({id(p) for p in lm.parameters()})
    assert n_unique == len(list(lm.parameters()))


def test_padding_embedding_is_zero():
    enc = AWD_LSTM(20, pad_token=1, **SMALL)
    assert torch.equal(enc.encoder.weight[1], torch.zeros(SMALL["emb_sz"]))


def test_masked_concat_pool_matches_a_loop():
    torch.manual_seed(0)
    out = torch.randn(3, 5, 4)
    lengths = [5, 2, 3]
    mask = torch.arange(5)[None] < torch.tensor(lengths)[:, None]
    pooled = masked_concat_pool(out, mask)
    for i, n in enumerate(lengths):
        real = out[i, :n]
        expected = torch.cat([real[-1], real.max(0).values, real.mean(0)])
        torch.testing.assert_close(pooled[i], expected)


def test_classifier_ignores_padding_on_either_side():
    torch.manual_seed(0)
    clf = get_text_classifier(30, 3, SMALL).eval()
    texts = [torch.randint(2, 30, (n,)) for n in (6, 3, 9)]

    def batch(extra: int, left: bool) -> torch.Tensor:
        width = 9 + extra
        rows = []
        for t in texts:
            pad = torch.ones(width - len(t), dtype=torch.long)
            rows.append(torch.cat([pad, t]) if left else torch.cat([t, pad]))
        return torch.stack(rows)

    base = clf(batch(0, left=False))
    for extra, left in [(5, False), (0, True), (7, True)]:
        torch.testing.assert_close(clf(batch(extra, left)), base)
    # each text alone (no padding at all) gives its row of the batch
    for i, t in enumerate(texts):
        torch.testing.assert_close(clf(t[None]), base[i : i + 1], atol=1e-5, rtol=1e-4)


def test_classifier_resets_hidden_state_per_batch():
    torch.manual_seed(0)
    clf = get_text_classifier(30, 2, SMALL).eval()
    x = torch.randint(2, 30, (4, 8))
    first = clf(x)
    clf(torch.randint(2, 30, (4, 8)))
    torch.testing.assert_close(clf(x), first)  # the batch between leaves no trace
    assert encoder_of(clf).hidden is None


def test_classifier_head_layout():
    clf = get_text_classifier(30, 5, SMALL, drop_mult=0.5)
    layers = list(clf[1].layers)
    kinds = [type(m) for m in layers]
    assert kinds == [nn.BatchNorm1d, nn.Dropout, nn.Linear, nn.ReLU, nn.BatchNorm1d, nn.Dropout, nn.Linear]
    assert layers[0].num_features == 3 * SMALL["emb_sz"]  # last, max, mean
    assert (layers[2].out_features, layers[6].out_features) == (50, 5)
    assert layers[1].p == pytest.approx(0.4 * 0.5)  # drop_mult scales the dropouts


def test_lm_split_one_group_per_layer_then_tied_embedding_and_decoder():
    lm = get_language_model(40, SMALL)
    groups = awd_lstm_lm_split(lm)
    assert len(groups) == SMALL["n_layers"] + 1
    enc = lm[0]
    for g, rnn in zip(groups, enc.rnns):
        assert {id(p) for p in g} == {id(p) for p in rnn.parameters()}
    assert {id(p) for p in groups[-1]} == {id(enc.encoder.weight), id(lm[1].decoder.bias)}
    all_ids = [id(p) for g in groups for p in g]
    assert sorted(all_ids) == sorted(id(p) for p in lm.parameters())  # each parameter exactly once


def test_classifier_split_embedding_layers_head():
    clf = get_text_classifier(40, 2, SMALL)
    groups = awd_lstm_clas_split(clf)
    enc = encoder_of(clf)
    assert len(groups) == SMALL["n_layers"] + 2
    assert [id(p) for p in groups[0]] == [id(enc.encoder.weight)]
    for g, rnn in zip(groups[1:-1], enc.rnns):
        assert {id(p) for p in g} == {id(p) for p in rnn.parameters()}
    assert {id(p) for p in groups[-1]} == {id(p) for p in clf[1].parameters()}
    assert sorted(id(p) for g in groups for p in g) == sorted(id(p) for p in clf.parameters())


def test_config_overrides_sizes_and_rejects_unknown_keys():
    lm = get_language_model(40, dict(emb_sz=10, n_hid=20, n_layers=2))
    enc = encoder_of(lm)
    assert (enc.emb_sz, enc.n_hid, enc.n_layers) == (10, 20, 2)
    assert [(r.n_in, r.n_out) for r in enc.rnns] == [(10, 20), (20, 10)]
    with pytest.raises(ValueError, match="unknown key 'hidden_size'"):
        get_language_model(40, dict(hidden_size=3))
    with pytest.raises(ValueError, match="n_layers"):
        AWD_LSTM(40, n_layers=0)
    with pytest.raises(ValueError, match=r"\(batch, seq\)"):
        AWD_LSTM(40, **SMALL)(torch.randint(0, 40, (5,)))


def test_models_run_under_bf16_autocast():
    # nn.LSTM's CPU kernel fails on float32 input under bf16 autocast; ours casts input and state.
    x = torch.randint(2, 30, (3, 7))
    lm, clf = get_language_model(30, SMALL), get_text_classifier(30, 2, SMALL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, scores = lm(x), clf(x)
        lm(x)  # carries the bf16 hidden state
    assert out.dtype == torch.bfloat16 and scores.shape == (3, 2)
    out.float().sum().backward()
    assert lm[0].rnns[0].weight_hh.grad.dtype == torch.float32  # the parameters stay float32
