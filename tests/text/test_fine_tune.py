"""fine_tune on the text learners: the stages, their layer groups and rates, on tiny real models."""

from __future__ import annotations

import pytest
import torch

from quickfit.text.learner import CLF_BASE_LR, CLF_LR_MULT, language_model_learner, text_classifier_learner
from quickfit.text.pretrained import save_pretrained_lm
from tests.text.test_vectors import SPECIALS, StubDataLoaders, _sentiment_task

SMALL = dict(emb_sz=8, n_hid=16, n_layers=2)


def _spy(learn):
    """Record (epochs, lr per group, trainable groups) of every fit_one_cycle, then run the real one."""
    calls, real = [], learn.fit_one_cycle

    def fit_one_cycle(n_epoch, lr_max=None, **kw):
        trainable = [any(p.requires_grad for p in g) for g in learn.layer_groups]
        real(n_epoch, lr_max, **kw)
        calls.append((n_epoch, [round(x, 8) for x in learn.hypers("lr")], trainable, lr_max))

    learn.fit_one_cycle = fit_one_cycle
    return calls


def _classifier_on_an_encoder(tmp_path):
    """A classifier after `load_encoder` of a (tiny, untrained) language model's encoder: frozen."""
    dls, _ = _sentiment_task()
    torch.manual_seed(0)
    lm = language_model_learner(StubDataLoaders(dls.train, None, dls.vocab), pretrained=False, config=SMALL,
                                path=tmp_path)  # fmt: skip
    lm.save_encoder("enc")
    clf = text_classifier_learner(dls, pretrained=False, config=SMALL, path=tmp_path)
    clf.load_encoder("enc")
    return clf


def test_classifier_fine_tune_unfreezes_gradually_after_load_encoder(tmp_path):
    clf = _classifier_on_an_encoder(tmp_path)  # frozen: the head only
    calls = _spy(clf)
    clf.fine_tune(1, base_lr=1e-2, freeze_epochs=1)
    # groups: embedding, LSTM 1, LSTM 2, head
    assert [c[2] for c in calls] == [
        [False, False, False, True],
        [False, False, True, True],
        [False, True, True, True],
        [True, True, True, True],
    ]
    assert [c[0] for c in calls] == [1, 1, 1, 1]
    assert calls[0][3] == pytest.approx(2e-2) and calls[1][3] == slice(1e-2 / CLF_LR_MULT, 1e-2)
    last = calls[-1][3]
    assert last.start == pytest.approx(1e-2 / CLF_LR_MULT) and last.stop == 1e-2
    assert CLF_BASE_LR / CLF_LR_MULT > 5e-4  # the embedding still moves (fastai's 2e-3 / 2.6**4 = 4e-5 did not)


def test_classifier_fine_tune_default_trains_every_layer_at_discriminative_rates(tmp_path):
    clf = _classifier_on_an_encoder(tmp_path)  # frozen, but the default recipe has no frozen stages
    calls = _spy(clf)
    clf.fine_tune(2)
    assert len(calls) == 1 and calls[0][0] == 2 and calls[0][2] == [True] * 4
    lrs = calls[0][1]  # per group at the end of the cycle: rising from the embedding to the head
    assert lrs == sorted(lrs) and lrs[-1] / lrs[0] == pytest.approx(CLF_LR_MULT, rel=1e-3)
    assert calls[0][3] == slice(CLF_BASE_LR / CLF_LR_MULT, CLF_BASE_LR)


def test_classifier_fine_tune_from_scratch_trains_everything_at_once(tmp_path):
    dls, _ = _sentiment_task()
    clf = text_classifier_learner(dls, pretrained=False, config=SMALL, path=tmp_path)
    calls = _spy(clf)
    clf.fine_tune(1, base_lr=1e-2)
    assert len(calls) == 1 and calls[0][2] == [True] * 4


def test_language_model_fine_tune_trains_the_new_rows_first_when_pretrained(tmp_path):
    vocab = SPECIALS + [f"w{i}" for i in range(8)]
    ids = torch.arange(9, 17).repeat(100)
    n = (len(ids) - 1) // 4
    x, y = ids[: n * 4].view(4, n), ids[1 : n * 4 + 1].view(4, n)
    batches = [(x[:, i : i + 10], y[:, i : i + 10]) for i in range(0, n, 10)]
    dls = StubDataLoaders(batches, batches[:3], vocab)
    torch.manual_seed(0)
    scratch = language_model_learner(dls, pretrained=False, config=SMALL, drop_mult=0.3, path=tmp_path)
    calls = _spy(scratch)
    scratch.fine_tune(6, base_lr=3e-2)
    assert len(calls) == 1 and calls[0][0] == 6  # not frozen: one stage, every layer
    assert scratch.validate()[1] > 0.9  # the repeating sequence is learned
    save_pretrained_lm(scratch.model, vocab, tmp_path / "lm.safetensors")
    lm = language_model_learner(dls, pretrained=tmp_path / "lm.safetensors", drop_mult=0.3, path=tmp_path)  # frozen
    calls = _spy(lm)
    lm.fine_tune(1, base_lr=1e-3)
    assert [c[2] for c in calls] == [[False, False, True], [True, True, True]]  # LSTMs, [embedding, decoder]
    assert calls[0][3] == pytest.approx(2e-3) and calls[1][3] == pytest.approx(1e-3)
    assert lm.validate()[1] > 0.9
