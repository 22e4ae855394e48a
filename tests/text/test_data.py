"""Text data: LM stream layout, variable lengths, sortish batching, TextDataLoaders and its bad-input errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from quickfit.text.corpus import gather_texts
from quickfit.text.data import TextDataLoaders, text_dls_from_export
from quickfit.text.loaders import LMDataLoader, SortishDataLoader
from quickfit.text.tokens import reverse_texts


def shared_data() -> Path:
    env = os.environ.get("QUICKFIT_SHARED_DATA")
    for c in [Path(env)] if env else [Path(__file__).resolve().parents[2].parent / "shared" / "data"]:
        if c.is_dir():
            return c
    return Path("/work/shared/data")


def numbered_texts(lengths: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Text k is [1000k, 1000k + 1, ...]: every token says which text it is from and where."""
    ids = np.concatenate([1000 * k + np.arange(n) for k, n in enumerate(lengths)]).astype(np.int32)
    return ids, np.concatenate([[0], np.cumsum(lengths)])


def epoch(dl) -> list[tuple[torch.Tensor, ...]]:
    return list(dl)


# ---- language-model streams -------------------------------------------------------------------


def check_stream_layout(batches, bs: int) -> np.ndarray:
    """Checks targets and contiguity; returns the rows as read (bs, row_len)."""
    for x, y in batches:
        assert x.dtype == torch.long and x.shape == y.shape and x.shape[0] == bs
        assert torch.equal(y[:, :-1], x[:, 1:])  # targets are the inputs shifted by one
    for (_, y0), (x1, _) in zip(batches[:-1], batches[1:]):
        # the token after the last of row i in batch k is the first of row i in batch k + 1
        assert torch.equal(y0[:, -1], x1[:, 0])
    rows = torch.cat([x for x, _ in batches], dim=1)
    return torch.cat([rows, batches[-1][1][:, -1:]], dim=1).numpy()


def test_lm_stream_is_contiguous_within_and_across_batches():
    lengths = [5, 17, 3, 40, 9, 26, 12, 8, 30, 11]
    ids, offsets = numbered_texts(lengths)
    dl = LMDataLoader(ids, offsets, bs=3, seq_len=7, shuffle=True, seed=0)
    assert dl.row_len == sum(lengths) // 3 and len(dl) == -(-(dl.row_len - 1) // 7)
    orders = []
    for _ in range(2):
        batches = epoch(dl)
        assert len(batches) == len(dl)
        flat = check_stream_layout(batches, 3).reshape(-1)
        assert len(flat) == 3 * dl.row_len  # the rows, one after the other, are the stream
        # the stream is whole texts back to back (only the very end is cut), in a shuffled order
        starts = np.flatnonzero(flat % 1000 == 0)
        order = (flat[starts] // 1000).tolist()
        pieces = np.split(flat, starts[1:])
        for k, piece in zip(order[:-1], pieces[:-1]):
            assert piece.tolist() == list(range(1000 * k, 1000 * k + lengths[k]))
        assert sorted(order) == sorted(set(order)) and len(order) >= len(lengths) - 1
        orders.append(order)
    assert orders[0] != orders[1]  # texts are shuffled each epoch


def test_lm_validation_is_in_order_with_fixed_lengths():
    ids, offsets = numbered_texts([20, 20, 20, 21])
    dl = LMDataLoader(ids, offsets, bs=2, seq_len=8)
    batches = epoch(dl)
    assert dl.row_len == 40 and [x.shape[1] for x, _ in batches] == [8, 8, 8, 8, 7]
    flat = check_stream_layout(batches, 2).reshape(-1)
    assert flat.tolist() == ids[: 2 * dl.row_len].tolist()


def test_lm_sequence_length_varies_in_training_and_len_is_exact():
    ids, offsets = numbered_texts([50] * 40)
    dl = LMDataLoader(ids, offsets, bs=4, seq_len=20, shuffle=True, seed=1)
    seen = set()
    for _ in range(3):
        lens = []
        for x, _ in dl:
            assert dl.last_len == x.shape[1]  # the model can read the current length
            lens.append(x.shape[1])
        assert len(lens) == len(dl) and sum(lens) == dl.row_len - 1  # each row read exactly once
        seen.update(lens)
    assert len(seen) > 5 and min(seen) >= 5 and 15 <= np.mean(list(seen)) <= 25
    # the AWD-LSTM draw: seq_len with p=0.95, else seq_len / 2, plus normal noise (std 5)
    draws = np.concatenate([dl.batch_lengths(np.random.default_rng(s)) for s in range(200)])
    assert abs(np.median(draws) - 20) <= 1.5 and 0.01 < np.mean(draws < 13) < 0.1


def test_lm_seed_and_torch_seed_make_epochs_repeatable():
    ids, offsets = numbered_texts([13] * 30)
    a = [x for x, _ in LMDataLoader(ids, offsets, bs=4, seq_len=6, shuffle=True, seed=3)]
    b = [x for x, _ in LMDataLoader(ids, offsets, bs=4, seq_len=6, shuffle=True, seed=3)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    torch.manual_seed(0)
    c = [x for x, _ in LMDataLoader(ids, offsets, bs=4, seq_len=6, shuffle=True)]
    torch.manual_seed(0)
    d = [x for x, _ in LMDataLoader(ids, offsets, bs=4, seq_len=6, shuffle=True)]
    assert all(torch.equal(p, q) for p, q in zip(c, d))


def test_lm_too_little_validation_text_is_named():
    df = reviews(40)
    with pytest.raises(ValueError, match="the validation texts: .* too few for bs=64"):
        TextDataLoaders.from_df(df, "text", is_lm=True, valid_pct=0.05, seed=0, bs=64, cache_dir=False)


def test_lm_too_little_text_is_a_clear_error():
    ids, offsets = numbered_texts([3, 4])
    with pytest.raises(ValueError, match="7 tokens are too few for bs=4"):
        LMDataLoader(ids, offsets, bs=4, seq_len=5)
    with pytest.raises(ValueError, match="seq_len"):
        LMDataLoader(ids, offsets, bs=1, seq_len=0)


# ---- sortish classifier batches ---------------------------------------------------------------


def padding_fraction(dl: SortishDataLoader) -> float:
    x = [b[0] for b in dl]
    return sum((t == dl.pad_idx).sum().item() for t in x) / sum(t.numel() for t in x)


def test_sortish_batches_have_little_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=800).tolist()
    ids, offsets = numbered_texts(lengths)
    ids = ids % 997 + 2  # no token is the pad index
    sortish = SortishDataLoader(ids, offsets, labels=np.arange(800), bs=16, shuffle=True, seed=0)
    random = SortishDataLoader(ids, offsets, labels=np.arange(800), bs=16, shuffle=True, seed=0, chunk_mult=1)
    pad_sortish, pad_random = padding_fraction(sortish), padding_fraction(random)
    assert pad_sortish < 0.25 * pad_random and pad_random > 0.3
    first = next(iter(sortish))[0]
    assert first.shape[1] == max(lengths)  # the longest batch comes first
    assert sorted(sortish.order.tolist()) == list(range(800))  # every text once per epoch
    valid = SortishDataLoader(ids, offsets, labels=np.arange(800), bs=16)
    list(valid)
    assert (np.diff(np.array(lengths)[valid.order]) <= 0).all() and padding_fraction(valid) <= pad_sortish


def test_sortish_rows_hold_their_text_and_label_padded_right_or_left():
    lengths = [3, 7, 1, 5, 2]
    ids, offsets = numbered_texts(lengths)
    ids = ids + 2
    for pad_first in (False, True):
        dl = SortishDataLoader(ids, offsets, labels=np.arange(5), bs=2, shuffle=True, seed=0, pad_first=pad_first)
        for x, y in dl:
            for row, k in zip(x.tolist(), y.tolist()):
                text = ids[offsets[k] : offsets[k + 1]].tolist()
                pads = [1] * (len(row) - len(text))
                assert row == (pads + text if pad_first else text + pads)
    test = SortishDataLoader(ids, offsets, bs=2, sort=False)
    assert [b[0].shape[0] for b in test] == [2, 2, 1] and all(len(b) == 1 for b in test)
    assert test.order.tolist() == [0, 1, 2, 3, 4]  # test sets keep their order


# ---- TextDataLoaders ----------------------------------------------------------------------------

WORDS = ["the", "film", "plot", "actors", "was", "a", "story", "scene", "music", "long", "it", "and"]


def reviews(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(WORDS, size=rng.integers(3, 12)))
        words.insert(int(rng.integers(0, len(words))), "great" if i % 2 else "dull")
        texts.append(" ".join(words).capitalize() + ".")
        labels.append("pos" if i % 2 else "neg")
    return pd.DataFrame({"text": texts, "label": labels})


def test_classifier_dataloaders(tmp_path):
    df = reviews()
    dls = TextDataLoaders.from_df(df, "text", "label", seed=0, bs=8, cache_dir=tmp_path)
    assert dls.classes == ["neg", "pos"] and dls.c == 2 and not dls.is_lm
    assert dls.vocab.itos[:2] == ["xxunk", "xxpad"] and dls.pad_idx == 1 and dls.pad_first is False
    assert len(dls.train.lengths) == 48 and len(dls.valid.lengths) == 12
    x, y = next(iter(dls.train))
    assert x.dtype == torch.long and y.dtype == torch.long and x.shape[0] == 8
    assert (x[:, 0] == dls.vocab.stoi["xxbos"]).all()
    for xb, yb in dls.valid:  # the label follows its text: "great" is in the positive ones
        great = (xb == dls.vocab.stoi["great"]).any(1)
        assert torch.equal(great, yb == 1)
    a, b = (TextDataLoaders.from_df(df, "text", "label", seed=0, bs=8, cache_dir=tmp_path) for _ in range(2))
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a.train, b.train))  # the seed fixes everything


def test_vocab_is_built_on_training_rows_and_can_be_shared():
    df = reviews()
    df.loc[df.index[-1], "text"] = "Zebra zebra zebra zebra unique"
    df["is_valid"] = df.index >= 50
    lm = TextDataLoaders.from_df(df, "text", is_lm=True, valid_col="is_valid", bs=4, seq_len=10, cache_dir=False)
    assert "zebra" not in lm.vocab and lm.c == len(lm.vocab)
    clf = TextDataLoaders.from_df(df, "text", "label", valid_col="is_valid", vocab=lm.vocab, cache_dir=False)
    assert clf.vocab is lm.vocab


def test_language_model_dataloaders():
    df = reviews(80)
    dls = TextDataLoaders.from_df(df, "text", is_lm=True, seed=0, bs=4, seq_len=10, cache_dir=False)
    assert dls.is_lm and dls.classes is None and isinstance(dls.train, LMDataLoader)
    batches = epoch(dls.train)
    rows = check_stream_layout(batches, 4)
    bos = dls.vocab.stoi["xxbos"]
    assert abs((rows == bos).sum() - 64) <= 4  # every training text starts with xxbos
    assert dls.valid.shuffle is False and dls.valid.vary_seq_len is False


def test_bad_input_is_named():
    df = reviews(10)
    bad = df.copy()
    bad.loc[3, "text"] = np.nan
    with pytest.raises(TypeError, match=r"text column 'text'.*not strings \(float\) in rows 3"):
        TextDataLoaders.from_df(bad, "text", "label", cache_dir=False)
    bad = df.copy()
    bad["text"] = bad["text"].astype(object)
    bad.loc[5, "text"] = 42
    with pytest.raises(TypeError, match=r"\(int\) in rows 5"):
        TextDataLoaders.from_df(bad, "text", "label", cache_dir=False)
    bad = df.copy()
    bad.loc[[2, 7], "text"] = ["", "   "]
    with pytest.raises(ValueError, match=r"2 empty text\(s\) in rows 2, 7"):
        TextDataLoaders.from_df(bad, "text", "label", cache_dir=False)
    bad = df.copy()
    bad.loc[4, "label"] = None
    with pytest.raises(ValueError, match=r"label column 'label': 1 missing value.*rows 4"):
        TextDataLoaders.from_df(bad, "text", "label", cache_dir=False)
    with pytest.raises(KeyError, match=r"label_col: column\(s\) \['sentiment'\] not in.*\['text', 'label'\]"):
        TextDataLoaders.from_df(df, "text", "sentiment", cache_dir=False)
    with pytest.raises(ValueError, match="label_col is needed"):
        TextDataLoaders.from_df(df, "text", cache_dir=False)
    with pytest.raises(TypeError, match="valid_col 'label' must be a boolean column"):
        TextDataLoaders.from_df(df, "text", "label", valid_col="label", cache_dir=False)
    with pytest.raises(TypeError, match="pandas DataFrame"):
        TextDataLoaders.from_df(df.to_dict(), "text", "label")


def test_prediction_side_unseen_tokens_export(tmp_path):
    dls = TextDataLoaders.from_df(reviews(), "text", "label", seed=0, bs=8, cache_dir=False)
    (x,) = next(iter(dls.test_dl(["Qwzx blorf the film"])))
    stoi = dls.vocab.stoi
    assert x.tolist() == [[stoi["xxbos"], stoi["xxmaj"], 0, 0, stoi["the"], stoi["film"]]]  # unseen: xxunk (0)
    assert dls.decode_pred(torch.tensor([0.3, 0.7]))[:2] == ("pos", 1)
    texts = ["A great story.", "It was long and dull", "Music!"]
    info = json.loads(json.dumps(dls.export_info()))  # JSON, no pickle
    assert info["pad_first"] is False and info["classes"] == ["neg", "pos"]
    restored = text_dls_from_export(info)
    for a, b in zip(dls.test_dl(texts, bs=2), restored.test_dl(texts, bs=2)):
        assert torch.equal(a[0], b[0])
    assert [len(b[0]) for b in dls.test_dl(texts, bs=2)] == [2, 1]
    (xt, yt), *_ = dls.test_dl(texts, labels=["pos", "neg", "pos"])
    assert yt.tolist() == [1, 0, 1]
    assert restored.decode_pred(torch.tensor([0.9, 0.1]))[:2] == ("neg", 0) and restored.c == 2
    (empty,) = next(iter(dls.test_dl([""])))  # an empty text is allowed when predicting: just xxbos
    assert empty.tolist() == [[stoi["xxbos"]]]
    with pytest.raises(TypeError, match="position 1"):
        dls.test_dl(["fine", None])
    with pytest.raises(ValueError, match="not among the classes"):
        dls.test_dl(texts, labels=["pos", "neutral", "pos"])


def test_from_folder(tmp_path):
    for split, label, i, text in [
        ("train", "pos", 0, "A great film."),
        ("train", "pos", 1, "Great acting, great music."),
        ("train", "neg", 0, "A dull film."),
        ("train", "neg", 1, "Dull and long."),
        ("test", "pos", 0, "Great!"),
        ("test", "neg", 0, "Dull!"),
        ("train", "unsup", 0, "Some text without a label."),
    ]:
        (tmp_path / split / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / split / label / f"{i}.txt").write_text(text, encoding="utf-8")
    dls = TextDataLoaders.from_folder(tmp_path, bs=2, cache_dir=False)
    assert dls.classes == ["neg", "pos", "unsup"] and len(dls.valid.lengths) == 2
    lm = TextDataLoaders.from_folder(tmp_path, is_lm=True, bs=2, seq_len=4, cache_dir=False)
    assert lm.train.n_texts == 5 and lm.valid.n_texts == 2  # every file, unsup included
    (tmp_path / "test" / "meh").mkdir()
    (tmp_path / "test" / "meh" / "0.txt").write_text("So so.")
    with pytest.raises(ValueError, match=r"labels \['meh'\] are in .*test but not in .*train"):
        TextDataLoaders.from_folder(tmp_path, cache_dir=False)
    (tmp_path / "test" / "meh" / "0.txt").unlink()
    (tmp_path / "train" / "neg" / "2.txt").write_bytes(b"caf\xe9 in latin-1")
    with pytest.raises(ValueError, match=r"2\.txt: not UTF-8"):
        TextDataLoaders.from_folder(tmp_path, cache_dir=False)
    (tmp_path / "train" / "neg" / "2.txt").write_text("  \n")
    with pytest.raises(ValueError, match=r"1 empty file.*2\.txt"):
        TextDataLoaders.from_folder(tmp_path, cache_dir=False)
    with pytest.raises(FileNotFoundError, match="no folder .*valid"):
        TextDataLoaders.from_folder(tmp_path, valid="valid", cache_dir=False)


def test_from_csv(tmp_path):
    f = tmp_path / "reviews.tsv"
    f.write_text('label\tsentence\n1\ta "quoted" great film\n0\tdull\n1\tgreat\n0\tso dull\n', encoding="utf-8")
    dls = TextDataLoaders.from_csv(f, "sentence", "label", sep="\t", quoting=3, valid_pct=0.25, seed=0, cache_dir=False)
    assert dls.classes == [0, 1] and "xxbos" in dls.vocab
    f.write_text("label\tsentence\n1\t\n0\tdull\n", encoding="utf-8")
    with pytest.raises(TypeError, match=r"reviews\.tsv: text column 'sentence'.*rows 0"):
        TextDataLoaders.from_csv(f, "sentence", "label", sep="\t", cache_dir=False)
    with pytest.raises(FileNotFoundError, match="no file"):
        TextDataLoaders.from_csv(tmp_path / "missing.csv", "text", "label")


def test_sst2_dev_set():
    path = shared_data() / "sst2" / "dev.tsv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    dls = TextDataLoaders.from_csv(path, "content", "label", sep="\t", quoting=3, seed=0, bs=32, cache_dir=False)
    assert dls.classes == [0, 1] and len(dls.train.lengths) + len(dls.valid.lengths) == 872
    assert padding_fraction(dls.train) < 0.1


def test_reverse_texts():
    ids, offsets = numbered_texts([2, 3, 1, 0, 2])
    assert reverse_texts(ids, offsets).tolist() == [1, 0, 1002, 1001, 1000, 2000, 4001, 4000]
    assert reverse_texts(ids[:0], np.zeros(1, dtype=np.int64)).tolist() == []


def test_backwards_loaders_read_every_text_from_its_end(tmp_path):
    df = reviews()
    fwd = TextDataLoaders.from_df(df, "text", "label", seed=0, bs=8, cache_dir=False)
    bwd = TextDataLoaders.from_df(df, "text", "label", seed=0, bs=8, cache_dir=False, backwards=True)
    assert bwd.backwards and not fwd.backwards and bwd.vocab.itos == fwd.vocab.itos
    pad, bos = fwd.pad_idx, fwd.vocab.stoi["xxbos"]
    for (xf, yf), (xb, yb) in zip(fwd.valid, bwd.valid):  # same lengths, so the same order and padding
        assert torch.equal(yf, yb) and xf.shape == xb.shape
        for rf, rb in zip(xf, xb):
            n = int((rf != pad).sum())
            assert torch.equal(rb[:n], rf[:n].flip(0)) and (rb[n:] == pad).all() and rb[n - 1] == bos
    texts = ["A great story.", "It was long and dull"]
    (xt,) = next(iter(bwd.test_dl(texts[:1])))
    (xf,) = next(iter(fwd.test_dl(texts[:1])))
    assert torch.equal(xt, xf.flip(1))
    restored = text_dls_from_export(json.loads(json.dumps(bwd.export_info())))
    assert restored.backwards and torch.equal(next(iter(restored.test_dl(texts[:1])))[0], xt)
    old = {k: v for k, v in fwd.export_info().items() if k != "backwards"}  # an export from before the option
    assert text_dls_from_export(old).backwards is False
    lm = TextDataLoaders.from_df(df, "text", is_lm=True, seed=0, bs=4, seq_len=10, cache_dir=False, backwards=True)
    rows = check_stream_layout(epoch(lm.valid), 4)
    # reversed texts end with xxbos: in the stream it is followed by the last token of the next text, "."
    after_bos = rows[:, 1:][rows[:, :-1] == lm.vocab.stoi["xxbos"]]
    assert len(after_bos) and (after_bos == lm.vocab.stoi["."]).all()


def test_gather_texts():
    ids, offsets = numbered_texts([2, 3, 1])
    out, new = gather_texts(ids, offsets, np.array([2, 0, 1]))
    assert out.tolist() == [2000, 0, 1, 1000, 1001, 1002] and new.tolist() == [0, 1, 3, 6]
