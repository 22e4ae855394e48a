"""Sequence to sequence: a toy language pair the models must learn exactly, attention and padding, beam
search against greedy, BLEU against sacreBLEU, export, and the bad inputs of the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sacrebleu
import torch

import quickfit as qf
from quickfit.text import (
    CorpusBLEU,
    Seq2SeqDataLoaders,
    Seq2SeqLoss,
    Seq2SeqRNN,
    Seq2SeqTransformer,
    TeacherForcing,
    detokenize,
    seq2seq_learner,
    token_accuracy,
)
from quickfit.text.seq2seq.search import beam_search, greedy_search

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SMALL_GRU = dict(emb_sz=32, n_hid=64, dec_hid=128, emb_drop=0.0, out_drop=0.0)
SMALL_TF = dict(d_model=64, n_heads=4, enc_layers=2, dec_layers=2, d_ff=128, dropout=0.0)


def toy_pairs(n: int, seed: int = 0) -> pd.DataFrame:
    """Digits -> their English words in reverse order ("3 1 4" -> "four one three")."""
    rng = np.random.default_rng(seed)
    src, tgt = [], []
    for _ in range(n):
        digits = rng.integers(0, 10, rng.integers(2, 7)).tolist()
        src.append(" ".join(map(str, digits)))
        tgt.append(" ".join(WORDS[d] for d in reversed(digits)))
    return pd.DataFrame({"src": src, "tgt": tgt})


def toy_dls(n: int = 1200, bs: int = 32, **kw) -> Seq2SeqDataLoaders:
    return Seq2SeqDataLoaders.from_df(toy_pairs(n), "src", "tgt", valid_pct=0.1, seed=0, bs=bs, cache_dir=False, **kw)


def write_lines(path, lines) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


# ---- data ---------------------------------------------------------------------------------------
def test_batches_shift_targets_and_pad_on_the_right():
    dls = toy_dls(200, bs=16)
    src, tgt_in, tgt_out = next(iter(dls.valid))
    assert tgt_in.shape == tgt_out.shape and src.shape[0] == 16
    assert (tgt_in[:, 0] == dls.bos_idx).all()
    real = tgt_out != dls.pad_idx
    assert torch.equal(tgt_in[:, 1:][real[:, 1:]], tgt_out[:, :-1][real[:, 1:]])  # shifted by one
    ends = real.sum(1) - 1
    assert (tgt_out[torch.arange(16), ends] == dls.eos_idx).all()  # each target ends with xxeos
    lengths = (src != dls.pad_idx).sum(1)
    assert (lengths[:-1] >= lengths[1:]).all()  # validation is sorted by length
    for row, n in zip(src, lengths):
        assert (row[n:] == dls.pad_idx).all() and (row[:n] != dls.pad_idx).all()
    i = int(dls.valid.last_idx[0])
    assert dls.decode(tgt_out[0]) == dls.valid.raw_targets[i]


def test_training_batches_are_sortish_and_cover_every_pair():
    dls = toy_dls(600, bs=16)
    idx = np.concatenate(dls.train.batches(np.random.default_rng(0)))
    assert sorted(idx.tolist()) == list(range(dls.train.n))
    pad = [(b[0] == dls.pad_idx).float().mean() for b in dls.train]
    assert float(torch.stack(pad).mean()) < 0.1  # similar lengths together: little padding


def test_from_files_and_bad_inputs(tmp_path):
    pairs = toy_pairs(60)
    s = write_lines(tmp_path / "train.src", pairs.src)
    t = write_lines(tmp_path / "train.tgt", pairs.tgt)
    dls = Seq2SeqDataLoaders.from_files(s, t, s, t, bs=8, min_freq=1, cache_dir=False)
    assert dls.train.n == dls.valid.n == 60 and "three" in dls.tgt_vocab.stoi

    short = write_lines(tmp_path / "short.tgt", pairs.tgt[:58])
    with pytest.raises(ValueError, match=r"has 60 lines but .*short.tgt has 58"):
        Seq2SeqDataLoaders.from_files(s, short, cache_dir=False)
    holes = list(pairs.tgt)
    holes[3] = holes[9] = "  "
    with pytest.raises(ValueError, match=r"holes.tgt: 2 empty line\(s\), at line\(s\) \[4, 10\]"):
        Seq2SeqDataLoaders.from_files(s, write_lines(tmp_path / "holes.tgt", holes), cache_dir=False)
    with pytest.raises(FileNotFoundError, match="nope.src"):
        Seq2SeqDataLoaders.from_files(tmp_path / "nope.src", t)
    with pytest.raises(ValueError, match="both src_valid and tgt_valid"):
        Seq2SeqDataLoaders.from_files(s, t, s, None)
    with pytest.raises(ValueError, match="too_long must be one of"):
        Seq2SeqDataLoaders.from_files(s, t, too_long="cut", cache_dir=False)


def test_over_long_pairs_dropped_with_a_count_or_refused():
    df = toy_pairs(100)
    n_long = int((df.src.str.split().str.len() + 2 > 6).sum())  # target tokens: words + xxbos + xxeos
    assert 0 < n_long < 100
    with pytest.warns(UserWarning, match=rf"dropped {n_long} of 100 training pairs longer than max_len=6"):
        dls = Seq2SeqDataLoaders.from_df(df, "src", "tgt", valid_pct=0.0, max_len=6, cache_dir=False)
    assert dls.train.n == 100 - n_long and dls.train.tgt_lengths.max() <= 6
    with pytest.raises(ValueError, match=rf"{n_long} training pair\(s\) have more than max_len=6 tokens"):
        Seq2SeqDataLoaders.from_df(df, "src", "tgt", valid_pct=0.0, max_len=6, too_long="error", cache_dir=False)


def test_from_df_bad_columns_and_values():
    df = toy_pairs(20)
    with pytest.raises(KeyError, match="tgt_col='en' is not a column"):
        Seq2SeqDataLoaders.from_df(df, "src", "en")
    bad = df.copy()
    bad.loc[5, "src"] = None
    with pytest.raises(TypeError, match="column 'src': 1 item\\(s\\) are not strings, e.g. at line 6"):
        Seq2SeqDataLoaders.from_df(bad, "src", "tgt", cache_dir=False)
    with pytest.raises(ValueError, match="must add xxbos and xxeos"):
        Seq2SeqDataLoaders.from_df(df, "src", "tgt", tgt_tokenizer=qf.text.Tokenizer(add_eos=False), cache_dir=False)


def test_detokenize_undoes_the_tokenizer_spacing():
    assert detokenize("A man in a t - shirt , it ' s hot .") == "A man in a t-shirt, it's hot."
    assert detokenize("( two ) dogs don ' t run !") == "(two) dogs don't run!"


# ---- models -------------------------------------------------------------------------------------
@pytest.mark.parametrize("attention", ["dot", "general", "additive"])
def test_attention_sums_to_one_over_real_source_tokens(attention):
    torch.manual_seed(0)
    cfg = dict(emb_sz=16, n_hid=16, dec_hid=32, attention=attention)
    model = Seq2SeqRNN(30, 20, **cfg).eval()
    src = torch.randint(2, 30, (3, 7))
    src[0, 4:] = 1
    src[2, 2:] = 1
    memory = model.encode(src)
    _, weights = model.decode(torch.randint(2, 20, (3, 5)), memory, return_attn=True)
    assert weights.shape == (3, 5, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
    assert (weights[0, :, 4:] == 0).all() and (weights[2, :, 2:] == 0).all()
    assert (weights[1] > 0).all()


@pytest.mark.parametrize("arch", ["gru_general", "gru_additive", "transformer"])
def test_padding_changes_no_output(arch):
    torch.manual_seed(0)
    if arch == "transformer":
        model = Seq2SeqTransformer(30, 20, d_model=32, n_heads=4, enc_layers=2, dec_layers=2, d_ff=64).eval()
    else:
        model = Seq2SeqRNN(30, 20, emb_sz=16, n_hid=16, dec_hid=32, attention=arch.split("_")[1]).eval()
    src, tgt = torch.randint(2, 30, (1, 5)), torch.randint(2, 20, (1, 4))
    alone = model(src, tgt)
    pad_src = torch.cat([src, torch.ones(1, 3, dtype=torch.long)], 1)
    pad_tgt = torch.cat([tgt, torch.ones(1, 2, dtype=torch.long)], 1)
    batch_src = torch.cat([pad_src, torch.randint(2, 30, (1, 8))])  # batched with a longer pair
    batch_tgt = torch.cat([pad_tgt, torch.randint(2, 20, (1, 6))])
    torch.testing.assert_close(model(batch_src, batch_tgt)[:1, :4], alone, atol=1e-5, rtol=1e-4)


def test_transformer_shared_embeddings_need_one_vocab():
    model = Seq2SeqTransformer(25, 25, d_model=16, n_heads=2, enc_layers=1, dec_layers=1, share_embeddings=True)
    assert model.src_emb is model.tgt_emb and model.out.weight is model.tgt_emb.weight
    with pytest.raises(ValueError, match="one vocabulary for both sides, got 30 source and 20 target"):
        Seq2SeqTransformer(30, 20, share_embeddings=True)


def test_tied_output_layer_and_bad_model_args():
    model = Seq2SeqRNN(30, 20, emb_sz=16, n_hid=16, dec_hid=32)
    assert model.out.weight is model.tgt_emb.weight
    assert Seq2SeqRNN(30, 20, emb_sz=16, tie_weights=False).out.weight is not None
    with pytest.raises(ValueError, match="attention must be one of"):
        Seq2SeqRNN(30, 20, attention="luong")
    with pytest.raises(ValueError, match="attention='dot' needs dec_hid == 2 \\* n_hid"):
        Seq2SeqRNN(30, 20, n_hid=16, dec_hid=48, attention="dot")


# ---- search -------------------------------------------------------------------------------------
def test_beam_one_is_greedy():
    torch.manual_seed(0)
    for model in (
        Seq2SeqRNN(30, 20, emb_sz=16, n_hid=16, dec_hid=32),
        Seq2SeqTransformer(30, 20, d_model=16, n_heads=2),
    ):
        model.eval()
        src = torch.randint(2, 30, (4, 6))
        memory = model.encode(src)
        step = lambda t, s, model=model, memory=memory: model.step(t, s, memory)  # noqa: E731
        g, g_score = greedy_search(step, model.init_state(memory), bos=2, eos=3, max_len=12)
        b, _ = beam_search(step, model.init_state(memory), bos=2, eos=3, max_len=12, beam_size=1, alpha=0.0)
        assert torch.equal(g, b)
        assert (g_score < 0).all()


def bigram_step(table: torch.Tensor):
    logp = table.log()

    def step(tokens, state):
        return logp[tokens], state

    return step


def test_beam_finds_a_better_sequence_than_greedy():
    # Tokens: 0 eos, 1 pad, 2 bos, 3 "a", 4 "b". Greedy takes "a" (0.6) whose continuations are all
    # unsure (best 0.4); "b" (0.4) is followed by eos with 0.99: P(b eos) = 0.396 > P(a . eos) <= 0.24.
    eps = 1e-6
    table = torch.tensor(
        [
            [1.0, eps, eps, eps, eps],  # after eos (never used)
            [1.0, eps, eps, eps, eps],  # after pad
            [eps, eps, eps, 0.6, 0.4],  # after bos
            [0.4, eps, eps, 0.3, 0.3],  # after a
            [0.99, eps, eps, 0.005, 0.005],  # after b
        ]
    )
    state = (torch.zeros(1, 1),)
    g, g_score = greedy_search(bigram_step(table), state, bos=2, eos=0, max_len=4)
    b, _ = beam_search(bigram_step(table), state, bos=2, eos=0, max_len=4, beam_size=2, alpha=0.0)
    assert g[0].tolist() == [3, 0]  # a eos: 0.6 * 0.4 = 0.24
    assert b[0].tolist() == [4, 0]  # b eos: 0.396
    assert float(table[2, 4].log() + table[4, 0].log()) > float(g_score[0])


def test_beam_length_normalisation_prefers_the_better_mean():
    # "a" then eos: 0.5 * 0.5; "b b b eos": 0.5 * 0.9^3 * ... the longer one has the higher mean log-prob.
    eps = 1e-6
    table = torch.tensor(
        [
            [1.0, eps, eps, eps, eps],
            [1.0, eps, eps, eps, eps],
            [eps, eps, eps, 0.5, 0.5],
            [0.5, eps, eps, 0.25, 0.25],
            [0.3, eps, eps, eps, 0.7],
        ]
    )
    state = (torch.zeros(1, 1),)
    raw, _ = beam_search(bigram_step(table), state, bos=2, eos=0, max_len=4, beam_size=3, alpha=0.0)
    norm, _ = beam_search(bigram_step(table), state, bos=2, eos=0, max_len=4, beam_size=3, alpha=1.0)
    assert raw[0].tolist()[:2] == [3, 0]
    assert norm[0].tolist()[0] == 4 and len([t for t in norm[0].tolist() if t != 1]) > 2


def test_search_bad_arguments():
    state = (torch.zeros(1, 1),)
    step = bigram_step(torch.full((5, 5), 0.2))
    with pytest.raises(ValueError, match="beam_size must be a positive int, got 0"):
        beam_search(step, state, bos=2, eos=0, max_len=4, beam_size=0)
    with pytest.raises(ValueError, match="max_len must be a positive int, got -1"):
        greedy_search(step, state, bos=2, eos=0, max_len=-1)


# ---- metrics ------------------------------------------------------------------------------------
def test_bleu_equals_sacrebleu():
    hyps = ["The cat sat on the mat.", "a dog runs in the park", "Two men play football ."]
    refs = ["The cat sat on a mat.", "A dog is running in the park.", "Two men are playing soccer."]
    assert CorpusBLEU(lowercase=True).score(hyps, refs) == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score, abs=1e-9
    )
    assert CorpusBLEU(lowercase=False).score(hyps, refs) == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9
    )
    # As a metric over batches: the sums of sacreBLEU's statistics give the corpus score exactly.
    m = CorpusBLEU()
    m.reset()
    for i in range(3):
        m.add(hyps[i : i + 1], refs[i : i + 1])
        m.accumulate(torch.zeros(1), torch.zeros(1))
    assert m.value == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score, abs=1e-9)
    with pytest.raises(ValueError, match="2 translations but 3 references"):
        m.score(hyps[:2], refs)
    m2 = CorpusBLEU()
    m2.reset()
    with pytest.raises(RuntimeError, match="CorpusBLEU needs generated translations"):
        m2.accumulate(torch.zeros(1), torch.zeros(1))


def test_loss_and_token_accuracy_ignore_padding():
    torch.manual_seed(0)
    pred, targ = torch.randn(2, 4, 10), torch.tensor([[3, 4, 5, 1], [6, 1, 1, 1]])
    real = targ != 1
    expected = torch.nn.functional.cross_entropy(pred[real], targ[real])
    torch.testing.assert_close(Seq2SeqLoss(pad_idx=1)(pred, targ), expected)
    pred[0, 0, 3] = pred[1, 0, 6] = 100.0  # 2 of the 4 real tokens right; padding never counts
    pred[0, 3, 1] = 100.0
    assert token_accuracy(pred, targ) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        Seq2SeqLoss(label_smoothing=1.5)


# ---- learners -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_gru():
    qf.set_seed(0)
    dls = toy_dls()
    learn = seq2seq_learner(dls, "gru_attention", config=SMALL_GRU, label_smoothing=0.0)
    learn.fit_one_cycle(6, 1e-2)
    return learn


def test_gru_learns_the_toy_pair_exactly(toy_gru):
    pairs = toy_pairs(60, seed=1)
    greedy = toy_gru.translate(list(pairs.src), beam_size=1)
    beam = toy_gru.translate(list(pairs.src), beam_size=4)
    assert np.mean([g == t for g, t in zip(greedy, pairs.tgt)]) >= 0.9
    assert np.mean([b == t for b, t in zip(beam, pairs.tgt)]) >= 0.9
    names = toy_gru.recorder.metric_names
    bleu = toy_gru.recorder.values[-1][3 + names.index("bleu")]
    assert bleu > 80  # the validation BLEU of greedy translations, measured during fit
    assert toy_gru.bleu(list(pairs.src), list(pairs.tgt), beam_size=2) > 80


def test_translate_keeps_the_order_and_checks_inputs(toy_gru):
    out = toy_gru.translate(["1 2 3 4 5 6", "7 8"], beam_size=3)
    assert len(out) == 2 and out[1] == "eight seven"
    with pytest.raises(TypeError, match="a list of sentences, got one str"):
        toy_gru.translate("1 2")
    with pytest.raises(ValueError, match="2 source sentences but 1 references"):
        toy_gru.bleu(["1", "2"], ["one"])


def test_predict_translates_one_sentence_also_after_load(toy_gru, tmp_path):
    """Issue 29 / 31: `predict("a sentence")` raised 'new(): invalid data type str' (no test_dl)."""
    loaded = qf.load_learner(toy_gru.export(tmp_path / "toy.qf"))
    assert loaded.predict("7 8") == "eight seven" == toy_gru.translate(["7 8"])[0]
    assert loaded.predict("3 1 4", beam_size=3) == toy_gru.translate(["3 1 4"], beam_size=3)[0]
    with pytest.raises(TypeError, match="takes a sentence"):
        loaded.predict(["7 8"])


def test_show_results_prints_source_reference_prediction(toy_gru, capsys):
    rows = toy_gru.show_results(n=2)
    text = capsys.readouterr().out
    assert len(rows) == 2 and text.count("source:") == 2 and "reference:" in text and "prediction:" in text
    assert list(rows.columns) == ["source", "reference", "prediction"]
    assert rows.reference[0] == toy_gru.dls.valid.raw_targets[0]


def test_export_and_load_learner_translate_the_same(toy_gru, tmp_path):
    f = toy_gru.export(tmp_path / "toy.qf")
    loaded = qf.load_learner(f)
    assert type(loaded).__name__ == "Seq2SeqLearner"
    src = ["3 1 4 1 5", "9 2 6"]
    assert loaded.translate(src, beam_size=3) == toy_gru.translate(src, beam_size=3)
    from safetensors import safe_open

    with safe_open(str(f), framework="pt") as fh:  # everything but the weights is JSON
        assert '"kind": "seq2seq"' in fh.metadata()["quickfit"]


@pytest.mark.slow
def test_transformer_learns_the_toy_pair():
    qf.set_seed(0)
    dls = toy_dls(1500)
    learn = seq2seq_learner(dls, "transformer", config=SMALL_TF, label_smoothing=0.0)
    learn.fit_one_cycle(8, 2e-3)
    pairs = toy_pairs(60, seed=1)
    out = learn.translate(list(pairs.src), beam_size=3)
    assert np.mean([o == t for o, t in zip(out, pairs.tgt)]) >= 0.8


def test_teacher_forcing_is_annealed_and_mixes_in_the_models_guesses():
    qf.set_seed(0)
    dls = toy_dls(200)
    learn = seq2seq_learner(dls, config=SMALL_GRU, teacher_forcing=(1.0, 0.0), metrics=[])
    seen = []

    class Watch(qf.Callback):
        order = 1  # after TeacherForcing (0) set this batch's ratio

        def before_batch(self, learn):
            if learn.training:
                seen.append(learn.step.teacher_forcing)

    learn.fit(2, 1e-3, cbs=[Watch()])
    assert seen[0] == 1.0 and seen[-1] < 0.1 and all(a >= b for a, b in zip(seen, seen[1:]))
    assert learn.step.teacher_forcing == 1.0  # back to the reference after training
    src, tgt_in, _ = next(iter(dls.valid))
    learn.step.teacher_forcing = 0.0
    mixed = learn.step._mixed_inputs(learn, src, tgt_in)
    guess = learn.model(src, tgt_in).argmax(-1)
    real = tgt_in != dls.pad_idx
    assert torch.equal(mixed[:, 0], tgt_in[:, 0])
    assert torch.equal(mixed[:, 1:][real[:, 1:]], guess[:, :-1][real[:, 1:]])
    with pytest.raises(ValueError, match="TeacherForcing: end must be in"):
        TeacherForcing(1.0, 2.0)


def test_seq2seq_learner_bad_arguments():
    dls = toy_dls(100)
    with pytest.raises(ValueError, match="arch must be one of"):
        seq2seq_learner(dls, arch="lstm")
    with pytest.raises(ValueError, match=r"unknown config keys \['hidden'\]"):
        seq2seq_learner(dls, config={"hidden": 3})
    with pytest.raises(TypeError, match="needs Seq2SeqDataLoaders"):
        seq2seq_learner(qf.DataLoaders([], None))
    with pytest.raises(ValueError, match="teacher_forcing must be in"):
        seq2seq_learner(dls, teacher_forcing=1.5)


def test_lr_find_runs_on_the_seq2seq_step():
    qf.set_seed(0)
    learn = seq2seq_learner(toy_dls(300), config=SMALL_GRU)
    sugg = learn.lr_find(num_it=10, show_plot=False)
    assert sugg.valley > 0


def test_transformer_step_with_its_cache_gives_the_log_probs_of_rerunning_the_prefix():
    torch.manual_seed(0)
    model = Seq2SeqTransformer(30, 20, d_model=16, n_heads=2, dec_layers=2).eval()
    src = torch.randint(2, 30, (4, 6))
    src[1, 4:], src[2, 2:] = 1, 1  # padded sources: their pads must stay unattended
    memory = model.encode(src)
    state = model.init_state(memory)
    tokens = torch.randint(2, 20, (4, 9))
    with torch.no_grad():
        for t in range(tokens.size(1)):
            logp, state = model.step(tokens[:, t], state, memory)
            full = torch.log_softmax(model.decode(tokens[:, : t + 1], memory)[:, -1], -1)
            assert torch.allclose(logp, full, atol=1e-5), t
    assert state[1].shape == (4, 2, 6, 8) and state[3].shape == (4, 2, 9, 8)  # cross K of the source; self K


def test_transformer_beam_search_reorders_the_cache_with_the_hypotheses():
    torch.manual_seed(1)
    model = Seq2SeqTransformer(30, 20, d_model=16, n_heads=2).eval()
    src = torch.randint(2, 30, (3, 7))
    src[0, 5:] = 1
    wide = model.expand(model.encode(src), 4)

    def rerun(tokens, state):  # the reference: the whole prefix through the decoder at every step
        prefix = torch.cat([state[0], tokens.unsqueeze(1)], 1)
        return torch.log_softmax(model.decode(prefix, wide)[:, -1], -1), (prefix,)

    cached, cached_score = beam_search(lambda t, s: model.step(t, s, wide), model.init_state(model.encode(src)),
                                       bos=2, eos=3, max_len=10, beam_size=4)  # fmt: skip
    ref, ref_score = beam_search(rerun, (torch.zeros(3, 0, dtype=torch.long),), bos=2, eos=3, max_len=10, beam_size=4)
    assert torch.equal(cached, ref) and torch.allclose(cached_score, ref_score, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision: the caches keep one dtype
        low, _ = greedy_search(lambda t, s: model.step(t, s, model.encode(src)), model.init_state(model.encode(src)),
                               bos=2, eos=3, max_len=10)  # fmt: skip
    assert low.shape[0] == 3


def test_an_empty_sentence_translates_to_an_empty_one(tmp_path):
    """Issue 29, item 15: translate([""]) raised where the text classifier accepts an empty text."""
    from tests.fixtures.make_exports import trained

    learn = trained("seq2seq", tmp_path)
    full = learn.translate(["3 1 4", "6 5"])
    assert learn.translate(["", "3 1 4", "  ", "6 5"]) == ["", full[0], "", full[1]]
    assert learn.predict("") == ""
