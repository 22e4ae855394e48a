"""Sequence to sequence (translation): parallel-text data, the encoder-decoder model, its learner,
beam search and BLEU."""
