"""Text models: the AWD-LSTM encoder, its language model and its classifier."""

from quickfit.text.models.awd_lstm import AWD_LSTM, EmbeddingDropout, RNNDropout, WeightDropLSTM
from quickfit.text.models.core import (
    LinearDecoder,
    PoolingLinearClassifier,
    SentenceEncoder,
    SequentialRNN,
    awd_lstm_clas_config,
    awd_lstm_clas_split,
    awd_lstm_lm_config,
    awd_lstm_lm_split,
    encoder_of,
    get_language_model,
    get_text_classifier,
    masked_concat_pool,
)

__all__ = [
    "AWD_LSTM",
    "EmbeddingDropout",
    "RNNDropout",
    "WeightDropLSTM",
    "LinearDecoder",
    "PoolingLinearClassifier",
    "SentenceEncoder",
    "SequentialRNN",
    "awd_lstm_clas_config",
    "awd_lstm_clas_split",
    "awd_lstm_lm_config",
    "awd_lstm_lm_split",
    "encoder_of",
    "get_language_model",
    "get_text_classifier",
    "masked_concat_pool",
]
