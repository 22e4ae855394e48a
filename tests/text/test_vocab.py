"""Vocab: special tokens first, min_freq / max_vocab, frequency order, numericalize / decode round trip, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from quickfit.text.rules import SPECIAL_TOKENS
from quickfit.text.tokenize import Tokenizer
from quickfit.text.vocab import Vocab

# a: 5, b: 4, c: 3, d: 3, e: 2, f: 1
LISTS = [["a", "b", "c", "a"], ["a", "b", "d", "e"], ["a", "b", "c", "d"], ["a", "b", "c", "d", "e", "f"]]


def test_special_tokens_first_then_by_frequency():
    vocab = Vocab(LISTS, min_freq=1)
    assert vocab.itos[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert vocab.unk_idx == 0 and vocab.pad_idx == 1 and vocab.stoi["xxbos"] == 2
    assert vocab.itos[len(SPECIAL_TOKENS) :] == ["a", "b", "c", "d", "e", "f"]  # c, d tie: alphabetical


def test_min_freq_and_max_vocab():
    assert Vocab(LISTS, min_freq=3).itos[9:] == ["a", "b", "c", "d"]
    assert Vocab(LISTS).itos[9:] == ["a", "b", "c", "d"]  # default min_freq=3
    small = Vocab(LISTS, min_freq=1, max_vocab=len(SPECIAL_TOKENS) + 2)
    assert len(small) == len(SPECIAL_TOKENS) + 2 and small.itos[9:] == ["a", "b"]  # max_vocab counts the specials
    assert len(Vocab([], min_freq=1)) == len(SPECIAL_TOKENS)


def test_special_tokens_in_the_texts_are_not_duplicated():
    vocab = Vocab([["xxbos", "xxmaj", "hi"]] * 3)
    assert vocab.itos == list(SPECIAL_TOKENS) + ["hi"]


def test_numericalize_maps_unseen_tokens_to_xxunk():
    vocab = Vocab(LISTS, min_freq=3)
    ids = vocab.numericalize(["a", "f", "never-seen", "xxpad"])
    assert ids.dtype == torch.long and ids.tolist() == [9, 0, 0, 1]
    assert vocab.decode(ids) == ["a", "xxunk", "xxunk", "xxpad"]


def test_round_trip_through_tokenizer_and_vocab():
    tok = Tokenizer()
    texts = ["The cat SAT on the mat.", "The dog sat on the cat!"] * 3
    vocab = Vocab([tok(t) for t in texts])
    for text in texts[:2]:
        ids = vocab.numericalize(tok(text))
        assert vocab.decode(ids) == tok(text)
        assert vocab.textify(ids) == tok.decode(tok(text)) == text.replace(".", " .").replace("!", " !")
        assert vocab.textify(ids.numpy(), tokenizer=tok) == vocab.textify(ids.tolist())


def test_corpus_path_equals_lists_path():
    tok = Tokenizer()
    texts = [f"Word{i % 7} and word{i % 3} THE end{i % 2}" for i in range(40)]
    corpus = tok.corpus(texts)
    assert Vocab(corpus, min_freq=2) == Vocab(corpus.to_lists(), min_freq=2)
    shuffled = tok.corpus(texts[::-1])
    assert Vocab(shuffled, min_freq=1) == Vocab(corpus, min_freq=1)  # the order of the texts does not matter
    vocab = Vocab(corpus, min_freq=2)
    ids, offsets = vocab.numericalize_corpus(corpus)
    assert ids.dtype == np.int32 and offsets.tolist() == corpus.offsets.tolist()
    for i, toks in enumerate(corpus.to_lists()):
        assert ids[offsets[i] : offsets[i + 1]].tolist() == vocab.numericalize(toks).tolist()


def test_to_list_from_list_json():
    vocab = Vocab(LISTS, min_freq=2)
    again = Vocab.from_list(json.loads(json.dumps(vocab.to_list())))
    assert again == vocab and again.stoi == vocab.stoi
    with pytest.raises(ValueError, match="start with the special tokens"):
        Vocab.from_list(["a", "b"])
    with pytest.raises(ValueError, match="duplicate tokens \\['a'\\]"):
        Vocab.from_list([*SPECIAL_TOKENS, "a", "a"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_freq"):
        Vocab(LISTS, min_freq=0)
    with pytest.raises(ValueError, match="max_vocab"):
        Vocab(LISTS, max_vocab=3)
    with pytest.raises(TypeError, match="item 0 is a str.*tokenize first"):
        Vocab(["a text, not tokens"])
