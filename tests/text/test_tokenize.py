"""Tokenizer: each rule, the batch pipeline against the per-text rules, round trips, parallel + cache, subword."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers.pre_tokenizers import Whitespace

from quickfit.text import rules as R
from quickfit.text.corpus import TokenizedCorpus, tokenize_corpus
from quickfit.text.tokenize import Tokenizer, tokenize_texts

TEXTS = [
    "Hello WORLD, it's sooo good!",
    "I like the BBC &amp; ha ha ha ha <br />great/bad #tag iPhone ÉCOLE 1000",
    "",
    "a",
    "NO NO NO",
    "Ha Ha Ha",
    "...",
    "x   y\n\nz\t!",
    "ß STRASSE İstanbul Σίσυφος ΟΔΥΣΣΕΥΣ",
    "#39;hi#39; amp; quot;yes quot; The 1 @,@ 000 men",
    "aaa\nbbb",
    "I I I I am",
    "don't stop -- e-mail me at a@b.com :)",
    "Ünïcödé naïve café 東京 😀😀😀",
    "<unk> is WikiText's unknown word",
    "word\x00with a NUL",
    "odd\xa0spaces\u3000here\u2003and\x1cthere\x1f!",
    "\x1c",
]

_pre = Whitespace()


def reference(text: str, add_bos: bool = True) -> list[str]:
    """The rules applied one text at a time with the functions of rules.py (the oracle)."""
    text = R.spec_add_spaces(R.replace_rep(R.fix_html(text)))
    toks = R.case_markers(R.replace_wrep([w for w, _ in _pre.pre_tokenize_str(text)]))
    return ([R.BOS] if add_bos else []) + toks


# ---- each rule ---------------------------------------------------------------------------------


def test_special_tokens_order_fixes_unk_and_pad_indices():
    assert R.SPECIAL_TOKENS[:4] == ("xxunk", "xxpad", "xxbos", "xxeos")
    assert set(R.SPECIAL_TOKENS) == {"xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj"}


def test_bos_and_eos():
    assert Tokenizer()("hi there") == ["xxbos", "hi", "there"]
    assert Tokenizer(add_eos=True)("hi") == ["xxbos", "hi", "xxeos"]
    assert Tokenizer(add_bos=False)("hi") == ["hi"]


def test_xxmaj_and_xxup_lowercase_without_losing_case():
    assert R.case_markers(["The", "BBC", "is", "I", "iPhone", "A1", ","]) == [
        "xxmaj", "the", "xxup", "bbc", "is", "xxmaj", "i", "iPhone", "xxup", "a1", ",",
    ]  # fmt: skip
    assert Tokenizer()("Paris IS nice") == ["xxbos", "xxmaj", "paris", "xxup", "is", "nice"]
    # a token that would not come back exactly is kept as it is
    assert R.case_markers(["İstanbul", "McDonald"]) == ["İstanbul", "McDonald"]


def test_xxrep_character_repetition():
    assert R.replace_rep("sooooo good") == "s xxrep 5 o  good"
    assert Tokenizer()("sooooo good") == ["xxbos", "s", "xxrep", "5", "o", "good"]
    assert Tokenizer()("so good") == ["xxbos", "so", "good"]  # two in a row is not a repetition
    assert Tokenizer()("wow!!!!") == ["xxbos", "wow", "xxrep", "4", "!"]


def test_xxwrep_word_repetition():
    assert R.replace_wrep(["ha", "ha", "ha", "ha", "no"]) == ["xxwrep", "4", "ha", "no"]
    assert R.replace_wrep(["ha", "ha", "no"]) == ["ha", "ha", "no"]
    assert Tokenizer()("ha ha ha ha. Ha ha") == ["xxbos", "xxwrep", "4", "ha", ".", "xxmaj", "ha", "ha"]
    assert Tokenizer()("NO NO NO") == ["xxbos", "xxwrep", "3", "xxup", "no"]


def test_fix_html():
    assert R.fix_html("Tom &amp; Jerry") == "Tom & Jerry"
    assert R.fix_html("a<br />b<br/>c") == "a\nb\nc"
    assert R.fix_html("it#39;s quot;fine quot; &lt;3 &#8364;") == "it's 'fine ' <3 €"
    assert R.fix_html("1 @,@ 000 and 3 @.@ 5 , x @-@ y") == "1,000 and 3.5 , x-y"
    assert R.fix_html("<unk> word") == "xxunk word"
    assert Tokenizer()("a<br /><br />b &amp; c") == ["xxbos", "a", "b", "&", "c"]


def test_spaces_around_slash_and_hash():
    assert R.spec_add_spaces("good/bad#tag") == "good / bad # tag"
    assert Tokenizer()("a//b ##c") == ["xxbos", "a", "/", "/", "b", "#", "#", "c"]
    assert Tokenizer(rules=("case_markers",))("a//b") == ["xxbos", "a", "//", "b"]


def test_rules_can_be_turned_off_and_are_checked():
    assert Tokenizer(rules=())("Hello sooo") == ["xxbos", "Hello", "sooo"]
    with pytest.raises(ValueError, match="unknown rules.*lowercase"):
        Tokenizer(rules=("lowercase",))
    with pytest.raises(ValueError, match="splitter"):
        Tokenizer(splitter="regex")
    with pytest.raises(TypeError, match="expected a str, got float"):
        Tokenizer()(float("nan"))


# ---- the batch pipeline is the per-text rules -------------------------------------------------


def test_batch_pipeline_matches_per_text_rules():
    tok = Tokenizer()
    texts = [t.replace("\x00", " ") for t in TEXTS]  # the reference does not clean NULs
    assert tok.tokenize_batch(texts) == [reference(t) for t in texts]
    assert tok.tokenize_batch(texts) == [tok(t) for t in texts]  # batch or one by one: the same


def test_python_whitespace_list():
    from quickfit.text.tokenize import PY_WHITESPACE

    assert PY_WHITESPACE == "".join(c for c in map(chr, range(0x110000)) if c.isspace())


def test_batch_pipeline_on_real_sentences():
    rng = np.random.default_rng(0)
    words = ["The", "film", "is", "GREAT", "sooo", "bad", ",", "...", "don't", "ha", "I", "&amp;", "a/b", "1000"]
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 15))) for _ in range(300)]
    assert Tokenizer().tokenize_batch(texts) == [reference(t) for t in texts]


def test_corpus_layout():
    corpus = Tokenizer().corpus(["A b", "", "b b"])
    assert len(corpus) == 3 and corpus.lengths.tolist() == [4, 1, 3]
    assert corpus.to_lists() == [["xxbos", "xxmaj", "a", "b"], ["xxbos"], ["xxbos", "b", "b"]]
    assert sorted(zip(corpus.tokens, corpus.counts().tolist())) == [("a", 1), ("b", 3), ("xxbos", 3), ("xxmaj", 1)]
    assert TokenizedCorpus.from_lists(corpus.to_lists()).to_lists() == corpus.to_lists()


# ---- round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_tokens_decode_tokens(text):
    tok = Tokenizer()
    tokens = tok(text)
    assert tok(tok.decode(tokens)) == tokens


def test_round_trip_rebuilds_the_text_up_to_spaces():
    tok = Tokenizer()
    for text in ["Hello World , THIS is I", "So ooooo good !", "ha ha ha ha", "iPhone and BBC / CNN", "NO NO NO ."]:
        assert tok.decode(tok(text)) == text
    assert tok.decode(tok("Hello,   world!\n")) == "Hello , world !"  # whitespace is not kept
    assert tok.decode(tok("sooooo")) == "s ooooo"  # a repeated character is a token of its own


def test_decode_keeps_special_tokens_inside_the_text():
    assert R.undo_rules(["xxbos", "xxmaj", "end", ".", "xxbos", "xxmaj", "next", "xxpad"]) == "End . xxbos Next"
    assert R.undo_rules(["xxbos", "xxrep", "4", "xxmaj", "a", "xxwrep", "2", "xxup", "no"]) == "AAAA NO NO"


# ---- settings -----------------------------------------------------------------------------------


def test_settings_are_json_and_round_trip():
    tok = Tokenizer(rules=("fix_html", "case_markers"), add_eos=True)
    d = json.loads(json.dumps(tok.to_dict()))
    again = Tokenizer.from_dict(d)
    assert again == tok and again("A &amp; B") == tok("A &amp; B") == [
        "xxbos",
        "xxmaj",
        "a",
        "&",
        "xxmaj",
        "b",
        "xxeos",
    ]
    with pytest.raises(ValueError, match="version"):
        Tokenizer.from_dict({"splitter": "hf"})


# ---- parallel and cached ------------------------------------------------------------------------


def test_parallel_gives_the_same_result_as_serial():
    texts = [f"Text number {i}: {'ha ' * (i % 4)} REALLY {'o' * (i % 5)}k &amp; done." for i in range(60)]
    tok = Tokenizer()
    serial = tokenize_texts(texts, tok, num_workers=1)
    assert tokenize_texts(texts, tok, num_workers=2) == serial
    assert serial == [reference(t) for t in texts]


def test_cache_hit_does_not_tokenize_again(tmp_path, monkeypatch):
    calls = []
    real = Tokenizer.corpus

    def counting(self, texts):
        calls.append(len(texts))
        return real(self, texts)

    monkeypatch.setattr(Tokenizer, "corpus", counting)
    texts = ["One text.", "Another ONE!", "third"]
    first = tokenize_texts(texts, Tokenizer(), num_workers=1, cache_dir=tmp_path)
    assert calls == [3] and len(list(tmp_path.glob("*.npz"))) == 1
    assert tokenize_texts(texts, Tokenizer(), num_workers=1, cache_dir=tmp_path) == first
    assert calls == [3]  # served from the cache
    tokenize_texts(texts, Tokenizer(add_eos=True), num_workers=1, cache_dir=tmp_path)  # other settings
    tokenize_texts(texts[:2] + ["third!"], Tokenizer(), num_workers=1, cache_dir=tmp_path)  # other texts
    tokenize_texts(["One text.Another ONE!", "third"], Tokenizer(), num_workers=1, cache_dir=tmp_path)  # same chars
    assert calls == [3, 3, 3, 2] and len(list(tmp_path.glob("*.npz"))) == 4


def test_corrupt_cache_entry_is_redone(tmp_path):
    texts = ["Some text", "more text"]
    first = tokenize_texts(texts, Tokenizer(), cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.npz")
    entry.write_bytes(b"not an npz file")
    assert tokenize_texts(texts, Tokenizer(), cache_dir=tmp_path) == first
    assert tokenize_texts(texts, Tokenizer(), cache_dir=tmp_path) == first  # rewritten, readable again


def test_unwritable_cache_warns_and_still_tokenizes(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not write the token cache"):
        assert tokenize_texts(["Hi"], Tokenizer(), cache_dir=blocker) == [["xxbos", "xxmaj", "hi"]]


def test_non_string_texts_are_named():
    with pytest.raises(TypeError, match=r"not strings.*position 1: nan \(float\)"):
        tokenize_texts(["ok", float("nan"), "fine"], Tokenizer())
    with pytest.raises(TypeError, match=r"position 0: None"):
        tokenize_corpus([None], Tokenizer())


# ---- subword ------------------------------------------------------------------------------------

SUBWORD_CORPUS = [
    "The movie was wonderful and the actors were wonderful too.",
    "A boring movie, a BORING plot and sooo many boring scenes!",
    "I liked the music; the music was the best part of the film.",
    "Nobody watches films like this one anymore, said the critic.",
] * 5


@pytest.mark.parametrize("kind", [True, "bpe"])
def test_subword_trains_on_the_corpus_and_round_trips(kind, tmp_path):
    tok = Tokenizer(subword=kind, vocab_size=120)
    assert not tok.is_trained
    with pytest.raises(ValueError, match="not trained"):
        tok("some text")
    pieces = tokenize_texts(SUBWORD_CORPUS, tok, cache_dir=tmp_path)
    assert tok.is_trained
    words = Tokenizer()
    for text, toks in zip(SUBWORD_CORPUS[:4], pieces):
        assert toks[:2] == ["xxbos", "xxmaj"]  # the markers stay whole tokens
        assert any(not p.startswith("\u2581") and p not in R.SPECIAL_TOKENS for p in toks)  # words were cut
        assert tok.decode(toks) == words.decode(words(text))
    assert tok.decode(tok("Unseen sentences ARE fine")) == "Unseen sentences ARE fine"
    # the trained model travels in the JSON settings
    again = Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.tokenize_batch(SUBWORD_CORPUS[:4]) == pieces[:4]
    # a cache hit restores the trained model into a fresh, untrained tokenizer
    fresh = Tokenizer(subword=kind, vocab_size=120)
    assert tokenize_texts(SUBWORD_CORPUS, fresh, cache_dir=tmp_path) == pieces and fresh.is_trained


def test_subword_pieces_word_by_word_equal_encoding_each_text():
    tok = Tokenizer(subword=True, vocab_size=100).train(SUBWORD_CORPUS)
    words = tok.word_level().tokenize_batch(SUBWORD_CORPUS[:4])
    per_text = [e.tokens for e in tok._subword.encode_batch(words, is_pretokenized=True)]
    assert tok.tokenize_batch(SUBWORD_CORPUS[:4]) == per_text


def test_subword_parallel_matches_serial():
    tok = Tokenizer(subword="bpe", vocab_size=100).train(SUBWORD_CORPUS)
    assert tokenize_texts(SUBWORD_CORPUS, tok, num_workers=2) == tokenize_texts(SUBWORD_CORPUS, tok, num_workers=1)


def test_subword_settings_are_checked():
    with pytest.raises(ValueError, match="subword"):
        Tokenizer(subword="wordpiece")
    with pytest.raises(ValueError, match="vocab_size"):
        Tokenizer(subword=True, vocab_size=5)
    with pytest.raises(ValueError, match="nothing to train"):
        Tokenizer().train(["text"])


def test_spacy_splitter():
    pytest.importorskip("spacy")
    tok = Tokenizer(splitter="spacy")
    assert tok("I don't like it   ALL!") == ["xxbos", "xxmaj", "i", "do", "n't", "like", "it", "xxup", "all", "!"]
    assert tokenize_texts(["Hi there", "ha ha ha"], tok, num_workers=2) == [
        ["xxbos", "xxmaj", "hi", "there"],
        ["xxbos", "xxwrep", "3", "ha"],
    ]


# ---- the "..." rule and tokenizers of settings version 1 ------------------------------------------------
def test_fix_html_writes_an_ellipsis_as_the_course_does_and_version_1_settings_keep_their_rule():
    from quickfit.text.rules import fix_html, fix_html_v1

    assert fix_html("Wait... what") == "Wait … what" and fix_html_v1("Wait... what") == "Wait... what"
    assert Tokenizer()("Wait...") == ["xxbos", "xxmaj", "wait", "…"]  # was xxrep 3 .
    assert Tokenizer().to_dict()["version"] == 2
    old = {**Tokenizer().to_dict(), "version": 1}  # what exports of version 1 store
    v1 = Tokenizer.from_dict(old)
    assert v1("Wait...") == ["xxbos", "xxmaj", "wait", "xxrep", "3", "."] and "fix_html_v1" in v1.rules
    assert Tokenizer.from_dict(v1.to_dict())("Wait...") == v1("Wait...")  # re-exported: still version 1's rule
    texts = ["a... b", "no dots.", "c..", "&amp; ...", "x" * 50 + "..."]
    assert tokenize_texts(texts, Tokenizer(), num_workers=1) == [Tokenizer()(t) for t in texts]  # vectorized scan


def test_a_text_export_of_version_1_tokenizes_as_it_was_trained():
    from pathlib import Path

    import quickfit as qf

    fixture = Path(__file__).parents[1] / "fixtures" / "exports_v1" / "text_classifier.qf"
    learn = qf.load_learner(fixture)  # its recorded predictions: tests/test_export_roundtrip.py
    assert learn.dls.tokenizer("Great...") == ["xxbos", "xxmaj", "great", "xxrep", "3", "."]
    assert Tokenizer()("Great...") == ["xxbos", "xxmaj", "great", "…"]
