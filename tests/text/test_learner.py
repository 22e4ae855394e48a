"""Text learners: tiny models that must learn, pretrained weights and their vocabulary mapping,
encoder transfer, the RNN callbacks, perplexity, export and prediction."""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict

import pytest
import torch

import quickfit as qf
from quickfit.data.download import DownloadError
from quickfit.io import UnsafeCheckpointError
from quickfit.text import pretrained as pretrained_mod
from quickfit.text.callbacks import RNNCallback, RNNRegularizer
from quickfit.text.learner import LMLearner, TextLearner, language_model_learner, text_classifier_learner
from quickfit.text.metrics import CrossEntropyFlat, perplexity
from quickfit.text.models import encoder_of, get_language_model
from quickfit.text.pretrained import load_pretrained_lm, save_pretrained_lm

SPECIALS = ["xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxmaj", "xxup", "xxrep", "xxwrep"]
SMALL = dict(emb_sz=16, n_hid=32, n_layers=2)


class WordTokenizer:
    """Whitespace tokens after xxbos (enough to test the learners without the text pipeline)."""

    def __call__(self, text: str) -> list[str]:
        return ["xxbos", *text.split()]

    def decode(self, tokens: list[str]) -> str:
        return " ".join(t for t in tokens if t != "xxbos")


class StubDataLoaders(qf.DataLoaders):
    def __init__(self, train, valid, vocab: list[str], c: int | None = None):
        super().__init__(train, valid)
        self.vocab, self.c, self.tokenizer = vocab, c, WordTokenizer()


def lm_batches(ids: torch.Tensor, bs: int, bptt: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    n = (len(ids) - 1) // bs
    x, y = ids[: n * bs].view(bs, n), ids[1 : n * bs + 1].view(bs, n)
    return [(x[:, i : i + bptt], y[:, i : i + bptt]) for i in range(0, n, bptt)]


def repeating_lm_dls() -> StubDataLoaders:
    vocab = SPECIALS + [f"w{i}" for i in range(8)]
    ids = torch.arange(9, 17).repeat(100)
    batches = lm_batches(ids, bs=4, bptt=10)
    return StubDataLoaders(batches, batches[:6], vocab)


def test_tiny_language_model_learns_a_repeating_sequence_and_continues_it():
    torch.manual_seed(0)
    learn = language_model_learner(repeating_lm_dls(), pretrained=False, config=SMALL, drop_mult=0.3)
    assert isinstance(learn, LMLearner)
    learn.fit_one_cycle(4, 3e-2)
    loss, acc, ppl = learn.validate()
    assert acc > 0.95
    assert ppl == pytest.approx(torch.tensor(loss).exp().item(), rel=1e-4)  # equal batches: exp(mean loss)
    assert learn.predict("w0 w1 w2", n_words=6, temperature=0) == "w0 w1 w2 w3 w4 w5 w6 w7 w0"
    sampled = learn.predict("w5", n_words=4, temperature=0.75, seed=0, decode=False)
    assert sampled[:2] == ["xxbos", "w5"] and len(sampled) == 6
    out = learn.predict("never seen words", n_words=3, temperature=0).split()  # read as xxunk, no crash
    assert out[:3] == ["never", "seen", "words"] and len(out) == 6 and "xxunk" not in out  # no_unk


def test_backward_language_model_learns_to_read_right_to_left_and_writes_what_comes_before(tmp_path):
    import pandas as pd

    from quickfit.text.data import TextDataLoaders

    torch.manual_seed(0)
    df = pd.DataFrame({"text": ["one two three four five six seven"] * 300})
    dls = TextDataLoaders.from_df(df, "text", is_lm=True, seed=0, bs=8, seq_len=12, cache_dir=False, backwards=True)
    learn = language_model_learner(dls, pretrained=False, config=SMALL, drop_mult=0.1, path=tmp_path)
    learn.fit_one_cycle(4, 3e-2)
    assert learn.validate()[1] > 0.9  # every word follows from the one after it
    assert learn.predict("four five", n_words=3, temperature=0, decode=False) == ["one", "two", "three", "four", "five"]
    loaded = qf.load_learner(learn.export("bwd.qf"))
    assert loaded.predict("six seven", n_words=2, temperature=0) == "four five six seven"


def test_rnn_callback_resets_hidden_state_before_each_validation():
    torch.manual_seed(0)
    learn = language_model_learner(repeating_lm_dls(), pretrained=False, config=SMALL)
    first = learn.validate()[0]
    assert learn.validate()[0] == pytest.approx(first)  # starts from zeros both times
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, RNNCallback)])
    assert learn.validate()[0] != pytest.approx(first)  # would continue the previous pass's state


class _FakeLearn:
    training = True

    def __init__(self):
        self.loss_grad = torch.zeros(())


def test_rnn_regularizer_ar_tar_values():
    torch.manual_seed(0)
    raw, dropped = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    reg = RNNRegularizer(alpha=2.0, beta=1.0)
    reg.raw, reg.dropped = raw, dropped
    learn = _FakeLearn()
    reg.after_loss(learn)
    expected = 2.0 * dropped.pow(2).mean() + (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
    torch.testing.assert_close(learn.loss_grad, expected)


def test_rnn_regularizer_ignores_padding_positions():
    torch.manual_seed(0)
    raw = torch.randn(2, 6, 3)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]).bool()
    values = []
    for garbage in (0.0, 1e3):
        padded = raw.clone()
        padded[0, 4:] = garbage
        reg = RNNRegularizer(alpha=2.0, beta=1.0)
        reg.raw, reg.mask = padded, mask
        learn = _FakeLearn()
        reg.after_loss(learn)
        values.append(learn.loss_grad)
    torch.testing.assert_close(values[0], values[1])


def test_rnn_regularizer_adds_to_backpropagated_loss_only():
    torch.manual_seed(0)
    seen = []

    class Spy(qf.Callback):
        order = 30

        def after_loss(self, learn):
            if learn.training:
                seen.append((float(learn.loss.detach()), float(learn.loss_grad.detach())))

    learn = language_model_learner(repeating_lm_dls(), pretrained=False, config=SMALL, cbs=[Spy()])
    learn.fit(1, 1e-3)
    assert all(grad > loss for loss, grad in seen)
    seen.clear()
    learn = language_model_learner(repeating_lm_dls(), pretrained=False, config=SMALL, alpha=0.0, beta=0.0, cbs=[Spy()])
    learn.fit(1, 1e-3)
    assert all(grad == loss for loss, grad in seen)


def test_perplexity_is_exact_over_uneven_batches():
    torch.manual_seed(0)
    preds = [torch.randn(4, 7, 11), torch.randn(4, 2, 11)]
    targs = [torch.randint(0, 11, (4, 7)), torch.randint(0, 11, (4, 2))]
    m = qf.metrics.as_metric(perplexity)
    m.reset()
    for p, t in zip(preds, targs):
        m.accumulate(p, t)
    all_losses = torch.cat([CrossEntropyFlat(reduction="none")(p, t).flatten() for p, t in zip(preds, targs)])
    assert m.value == pytest.approx(all_losses.mean().exp().item(), rel=1e-6)


# ---- pretrained weights -------------------------------------------------------------------------


def _fake_pretrained(vocab: list[str]):
    torch.manual_seed(1)
    model = get_language_model(len(vocab), SMALL)
    with torch.no_grad():
        model[1].decoder.bias.normal_()
    return model


def _check_mapped(learn, old_model, old_vocab: list[str], new_vocab: list[str]) -> None:
    old_emb = old_model[0].encoder.weight.detach()
    old_bias = old_model[1].decoder.bias.detach()
    emb = learn.model[0].encoder.weight.detach()
    bias = learn.model[1].decoder.bias.detach()
    assert emb.shape == (len(new_vocab), SMALL["emb_sz"])
    for i, tok in enumerate(new_vocab):
        if tok in old_vocab:
            j = old_vocab.index(tok)
            torch.testing.assert_close(emb[i], old_emb[j])
            torch.testing.assert_close(bias[i], old_bias[j])
        else:
            torch.testing.assert_close(emb[i], old_emb.mean(0))
            torch.testing.assert_close(bias[i], old_bias.mean())
    assert learn.model[1].decoder.weight is learn.model[0].encoder.weight
    torch.testing.assert_close(learn.model[0].rnns[1].weight_hh, old_model[0].rnns[1].weight_hh)


OLD_VOCAB = SPECIALS + ["the", "movie", "was", "great", "bad"]
NEW_VOCAB = SPECIALS + ["bad", "film", "the", "superb", "movie"]  # reordered, two new words


def _new_dls():
    ids = torch.randint(0, len(NEW_VOCAB), (400,))
    return StubDataLoaders(lm_batches(ids, 4, 8), None, NEW_VOCAB)


def test_pretrained_safetensors_maps_vocab(tmp_path):
    old = _fake_pretrained(OLD_VOCAB)
    f = save_pretrained_lm(old, OLD_VOCAB, tmp_path / "lm.safetensors")
    assert json.loads((tmp_path / "lm.vocab.json").read_text()) == OLD_VOCAB
    learn = language_model_learner(_new_dls(), pretrained=f)
    _check_mapped(learn, old, OLD_VOCAB, NEW_VOCAB)
    # sizes come from the file; the learner is frozen to embeddings + decoder
    assert encoder_of(learn.model).n_hid == SMALL["n_hid"]
    trainable = {id(p) for p in learn.model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in learn.layer_groups[-1]}


def test_pretrained_torch_checkpoint_maps_vocab(tmp_path):
    old = _fake_pretrained(OLD_VOCAB)
    torch.save({"model": old.state_dict(), "vocab": OLD_VOCAB}, tmp_path / "lm.pth")
    learn = language_model_learner(_new_dls(), pretrained=tmp_path / "lm.pth")
    _check_mapped(learn, old, OLD_VOCAB, NEW_VOCAB)


def test_pretrained_fastai_folder_maps_vocab(tmp_path):
    old = _fake_pretrained(OLD_VOCAB)
    state = OrderedDict()  # fastai's names, with its WeightDropout leftovers
    state["0.encoder.weight"] = old[0].encoder.weight.detach()
    state["0.encoder_dp.emb.weight"] = old[0].encoder.weight.detach()
    for i, rnn in enumerate(old[0].rnns):
        state[f"0.rnns.{i}.weight_hh_l0_raw"] = rnn.weight_hh.detach()
        state[f"0.rnns.{i}.module.weight_ih_l0"] = rnn.weight_ih.detach()
        state[f"0.rnns.{i}.module.weight_hh_l0"] = torch.zeros_like(rnn.weight_hh)
        state[f"0.rnns.{i}.module.bias_ih_l0"] = rnn.bias_ih.detach()
        state[f"0.rnns.{i}.module.bias_hh_l0"] = rnn.bias_hh.detach()
    state["1.decoder.weight"] = old[0].encoder.weight.detach()
    state["1.decoder.bias"] = old[1].decoder.bias.detach()
    folder = tmp_path / "wt103-fwd"
    folder.mkdir()
    torch.save(state, folder / "lstm_fwd.pth")
    (folder / "itos_wt103.pkl").write_bytes(pickle.dumps(OLD_VOCAB))
    learn = language_model_learner(_new_dls(), pretrained=folder)
    _check_mapped(learn, old, OLD_VOCAB, NEW_VOCAB)


def test_vocab_pickle_with_code_is_refused(tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    torch.save(_fake_pretrained(OLD_VOCAB).state_dict(), folder / "lstm_fwd.pth")
    (folder / "itos_wt103.pkl").write_bytes(pickle.dumps(OrderedDict(a=1)))  # needs a class to load
    with pytest.raises(UnsafeCheckpointError, match="refused to unpickle collections.OrderedDict"):
        load_pretrained_lm(folder)


def test_pretrained_errors_name_the_file(tmp_path):
    old = _fake_pretrained(OLD_VOCAB)
    f = save_pretrained_lm(old, OLD_VOCAB, tmp_path / "lm.safetensors")
    (tmp_path / "lm.vocab.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"lm.vocab.json"):
        language_model_learner(_new_dls(), pretrained=f)
    with pytest.raises(FileNotFoundError, match="pretrained weights not found"):
        language_model_learner(_new_dls(), pretrained=tmp_path / "nope.safetensors")
    save_pretrained_lm(old, OLD_VOCAB, f)
    with pytest.raises(ValueError, match=r"config\['n_hid'\]=64 does not match"):
        language_model_learner(_new_dls(), pretrained=f, config=dict(n_hid=64))
    torch.save({"weights": {}}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"bad.pth: expected a checkpoint"):
        language_model_learner(_new_dls(), pretrained=tmp_path / "bad.pth")


def test_pretrained_true_offline_fails_at_once_with_a_clear_message(tmp_path, monkeypatch):
    def offline(url, fname=None, sha256=None, cache_dir=None, **_):
        raise DownloadError(f"could not download {url} (Name or service not known)")

    monkeypatch.setattr(pretrained_mod, "download", offline)
    with pytest.raises(DownloadError, match=r"(?s)WikiText-103.*pretrained=False.*pretrained='path'") as e:
        language_model_learner(_new_dls(), pretrained=True, pretrained_cache_dir=tmp_path)
    assert "wt103-fwd.tgz" in str(e.value)


def test_pretrained_true_uses_the_unpacked_cache(tmp_path, monkeypatch):
    old = _fake_pretrained(OLD_VOCAB)
    folder = tmp_path / "wt103-fwd"
    folder.mkdir()
    torch.save({"model": old.state_dict()}, folder / "lstm_fwd.pth")  # fastai may wrap it in {"model": ...}
    (folder / "itos_wt103.pkl").write_bytes(pickle.dumps(OLD_VOCAB))
    monkeypatch.setattr(pretrained_mod, "download", lambda *a, **k: pytest.fail("must not download"))
    learn = language_model_learner(_new_dls(), pretrained=True, pretrained_cache_dir=tmp_path)
    _check_mapped(learn, old, OLD_VOCAB, NEW_VOCAB)


# ---- encoder transfer ---------------------------------------------------------------------------


def test_save_encoder_then_load_encoder_into_classifier(tmp_path):
    torch.manual_seed(0)
    lm = language_model_learner(_new_dls(), pretrained=False, config=SMALL, path=tmp_path)
    lm.save_encoder("enc")
    vocab = NEW_VOCAB
    clf_dls = StubDataLoaders([(torch.randint(0, len(vocab), (4, 6)), torch.tensor([0, 1, 0, 1]))], None, vocab, 2)
    clf = text_classifier_learner(clf_dls, config=SMALL, path=tmp_path)
    clf.load_encoder("enc")
    lm_state, clf_state = encoder_of(lm.model).state_dict(), encoder_of(clf.model).state_dict()
    assert lm_state.keys() == clf_state.keys()
    for k in lm_state:
        torch.testing.assert_close(lm_state[k], clf_state[k])
    # frozen: the head (and BatchNorm) trains, the encoder does not
    assert not any(p.requires_grad for p in encoder_of(clf.model).parameters())
    assert all(p.requires_grad for p in clf.model[1].parameters())
    # gradual unfreezing, group by group from the end
    n_groups = len(clf.layer_groups)
    assert n_groups == SMALL["n_layers"] + 2
    for n in (-2, -3):
        clf.freeze_to(n)
        flags = [all(p.requires_grad for p in g) for g in clf.layer_groups]
        assert flags == [i >= n_groups + n for i in range(n_groups)]
    clf.unfreeze()
    assert all(p.requires_grad for p in clf.model.parameters())


def test_load_encoder_maps_a_different_vocabulary(tmp_path):
    torch.manual_seed(0)
    lm = language_model_learner(_new_dls(), pretrained=False, config=SMALL, path=tmp_path)
    lm.save_encoder("enc")
    vocab = SPECIALS + ["movie", "unseen"]
    clf_dls = StubDataLoaders([], None, vocab, 2)
    clf = text_classifier_learner(clf_dls, config=SMALL, path=tmp_path)
    clf.load_encoder("enc")
    old = lm.model[0].encoder.weight.detach()
    new = encoder_of(clf.model).encoder.weight.detach()
    torch.testing.assert_close(new[vocab.index("movie")], old[NEW_VOCAB.index("movie")])
    torch.testing.assert_close(new[vocab.index("unseen")], old.mean(0))


def test_load_encoder_errors(tmp_path):
    clf = text_classifier_learner(StubDataLoaders([], None, NEW_VOCAB, 2), config=SMALL, path=tmp_path)
    with pytest.raises(FileNotFoundError, match="enc.pth"):
        clf.load_encoder("enc")
    lm = language_model_learner(_new_dls(), pretrained=False, config=dict(emb_sz=8, n_hid=8, n_layers=1), path=tmp_path)
    lm.save_encoder("enc")
    with pytest.raises(ValueError, match="does not fit this model's sizes"):
        clf.load_encoder("enc")


def test_factories_check_their_inputs():
    with pytest.raises(ValueError, match="dls.vocab"):
        language_model_learner(qf.DataLoaders([], None), pretrained=False)
    with pytest.raises(ValueError, match=r"dls.c"):
        text_classifier_learner(StubDataLoaders([], None, NEW_VOCAB, None))
    with pytest.raises(ValueError, match="only AWD_LSTM"):
        language_model_learner(_new_dls(), arch=torch.nn.LSTM, pretrained=False)


# ---- with the real text pipeline: keyword rule, export round trip, unseen tokens ----------------


def keyword_df(n: int, seed: int):
    pd = pytest.importorskip("pandas")
    g = torch.Generator().manual_seed(seed)
    words = ["the", "film", "plot", "actors", "was", "a", "story", "scene", "music", "long", "it", "and"]
    texts, labels = [], []
    for i in range(n):
        idx = torch.randint(0, len(words), (int(torch.randint(3, 10, (1,), generator=g)),), generator=g).tolist()
        text = [words[j] for j in idx]
        if i % 2:
            text.insert(int(torch.randint(0, len(text), (1,), generator=g)), "great")
        texts.append(" ".join(text).capitalize() + ".")
        labels.append("pos" if i % 2 else "neg")
    return pd.DataFrame({"text": texts, "label": labels})


@pytest.fixture(scope="module")
def keyword_learner():
    from quickfit.text.data import TextDataLoaders

    torch.manual_seed(0)
    dls = TextDataLoaders.from_df(keyword_df(800, 0), "text", "label", seed=0, bs=32, cache_dir=False)
    learn = text_classifier_learner(dls, config=SMALL, drop_mult=0.1)
    learn.fit_one_cycle(3, 1e-2)
    return learn


def test_classifier_on_text_dataloaders_learns_the_keyword(keyword_learner):
    assert keyword_learner.validate()[1] > 0.95
    label, index, probs = keyword_learner.predict("The music was great and long.")
    assert (label, index) == ("pos", 1) and probs.shape == (2,) and probs.sum() == pytest.approx(1.0)
    assert keyword_learner.predict("The music was long.")[0] == "neg"


def test_classifier_export_round_trip(keyword_learner, tmp_path):
    keyword_learner.path = tmp_path
    f = keyword_learner.export("clf.qf")
    loaded = qf.load_learner(f)
    assert isinstance(loaded, TextLearner)
    for text in ["A great scene.", "The plot and the actors.", "Zyzzyva quuxly frobnicated!!"]:  # last: unseen
        label, index, probs = loaded.predict(text)
        ref_label, ref_index, ref_probs = keyword_learner.predict(text)
        assert (label, index) == (ref_label, ref_index)
        torch.testing.assert_close(probs, ref_probs)
    # the export is data: JSON metadata + tensors, no pickle
    from safetensors import safe_open

    with safe_open(str(f), framework="pt") as sf:
        info = json.loads(sf.metadata()["quickfit"])
    assert info["app"] == "text" and info["model"]["type"] == "awd_lstm_classifier"
    assert info["data"]["classes"] == ["neg", "pos"] and info["data"]["vocab"][:2] == ["xxunk", "xxpad"]


def test_language_model_export_round_trip(tmp_path):
    from quickfit.text.data import TextDataLoaders

    torch.manual_seed(0)
    df = keyword_df(200, 1)
    dls = TextDataLoaders.from_df(df, "text", is_lm=True, seed=0, bs=8, seq_len=12, cache_dir=False)
    learn = language_model_learner(dls, pretrained=False, config=SMALL, path=tmp_path)
    learn.fit(1, 1e-2)
    loaded = qf.load_learner(learn.export("lm.qf"))
    assert isinstance(loaded, LMLearner)
    assert loaded.model[1].decoder.weight is loaded.model[0].encoder.weight  # still tied after loading
    tokens = loaded.predict("The film", n_words=5, temperature=0, decode=False)
    assert tokens == learn.predict("The film", n_words=5, temperature=0, decode=False)
    assert tokens[:4] == ["xxbos", "xxmaj", "the", "film"] and len(tokens) == 4 + 5
    assert loaded.predict("The film", n_words=5, temperature=0).startswith("The film")
