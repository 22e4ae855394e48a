"""Text: tokenizing, language-model streams, AWD-LSTM, ULMFiT language-model and classifier learners.

    from quickfit.text import TextDataLoaders, language_model_learner, text_classifier_learner

    lm = language_model_learner(TextDataLoaders.from_df(df, "text", is_lm=True), pretrained=True)
    lm.fit_one_cycle(1, 2e-2)
    lm.save_encoder("ft")
    clf = text_classifier_learner(TextDataLoaders.from_df(df, "text", "label", vocab=lm.dls.vocab))
    clf.load_encoder("ft")
    clf.fit_one_cycle(1, 2e-2)

See docs/text.md and examples/ulmfit.py.
"""

from quickfit.text.callbacks import RNNCallback, RNNRegularizer
from quickfit.text.data import TextDataLoaders, text_dls_from_export
from quickfit.text.learner import (
    LanguageModelTask,
    LMLearner,
    TextClassifierTask,
    TextLearner,
    language_model_learner,
    text_classifier_learner,
)
from quickfit.text.loaders import LMDataLoader, SortishDataLoader
from quickfit.text.metrics import CrossEntropyFlat, Perplexity, perplexity
from quickfit.text.models import (
    AWD_LSTM,
    PoolingLinearClassifier,
    SequentialRNN,
    awd_lstm_clas_config,
    awd_lstm_clas_split,
    awd_lstm_lm_config,
    awd_lstm_lm_split,
    get_language_model,
    get_text_classifier,
)
from quickfit.text.pretrained import load_pretrained_lm, match_vocab, save_pretrained_lm
from quickfit.text.rules import SPECIAL_TOKENS
from quickfit.text.seq2seq.data import Seq2SeqDataLoaders, detokenize
from quickfit.text.seq2seq.learner import Seq2SeqLearner, seq2seq_learner
from quickfit.text.seq2seq.loader import Seq2SeqDataLoader
from quickfit.text.seq2seq.metrics import CorpusBLEU, Seq2SeqLoss, corpus_bleu, token_accuracy
from quickfit.text.seq2seq.model import Seq2SeqRNN, Seq2SeqTransformer
from quickfit.text.seq2seq.step import Seq2SeqStep, TeacherForcing
from quickfit.text.tokenize import Tokenizer, tokenize_texts
from quickfit.text.vectors import GLOVE_6B_50D, VocabVectors, vocab_vectors
from quickfit.text.vocab import Vocab

__all__ = [
    # data (docs/text-data.md)
    "LMDataLoader",
    "SPECIAL_TOKENS",
    "SortishDataLoader",
    "TextDataLoaders",
    "Tokenizer",
    "Vocab",
    "text_dls_from_export",
    "tokenize_texts",
    # models and learners (docs/text.md)
    "AWD_LSTM",
    "CrossEntropyFlat",
    "LMLearner",
    "Perplexity",
    "PoolingLinearClassifier",
    "RNNCallback",
    "RNNRegularizer",
    "SequentialRNN",
    "TextLearner",
    "awd_lstm_clas_config",
    "awd_lstm_clas_split",
    "awd_lstm_lm_config",
    "awd_lstm_lm_split",
    "get_language_model",
    "get_text_classifier",
    "language_model_learner",
    "LanguageModelTask",
    "TextClassifierTask",
    "load_pretrained_lm",
    "match_vocab",
    "perplexity",
    "save_pretrained_lm",
    "text_classifier_learner",
    # word vectors (docs/text.md)
    "GLOVE_6B_50D",
    "VocabVectors",
    "vocab_vectors",
    # sequence to sequence (docs/seq2seq.md)
    "CorpusBLEU",
    "Seq2SeqDataLoader",
    "Seq2SeqDataLoaders",
    "Seq2SeqLearner",
    "Seq2SeqLoss",
    "Seq2SeqRNN",
    "Seq2SeqStep",
    "Seq2SeqTransformer",
    "TeacherForcing",
    "corpus_bleu",
    "detokenize",
    "seq2seq_learner",
    "token_accuracy",
]
from quickfit.text.app import APP as APP  # registers the application (load_learner, the CLI)
