"""Callbacks for recurrent text models: hidden-state resets, and AR / TAR regularization.

Usage::

    import quickfit as qf
    from quickfit.text.callbacks import RNNCallback, RNNRegularizer

    learn = qf.Learner(dls, lm_model, loss_func, cbs=[RNNCallback(), RNNRegularizer(alpha=2.0, beta=1.0)])

(``language_model_learner`` and ``text_classifier_learner`` add both.)

- ``RNNCallback`` calls ``model.reset()`` before each training and each validation pass: a language
  model carries its hidden state from batch to batch *within* a pass (its batches are contiguous
  streams), but the first batch of a pass must not continue the last batch of another.
- ``RNNRegularizer`` adds, in training, activation regularization (AR: ``alpha`` times the mean
  square of the last LSTM layer's output after dropout) and temporal activation regularization
  (TAR: ``beta`` times the mean square of the difference between consecutive raw outputs) to the
  loss that is back-propagated (``learn.loss_grad``); the logged loss stays the plain cross-entropy.
  The outputs are read through forward hooks, so the model returns plain scores.
"""

from __future__ import annotations

from torch import Tensor

from quickfit.callbacks.core import Callback
from quickfit.text.models.awd_lstm import AWD_LSTM
from quickfit.text.models.core import LinearDecoder, SentenceEncoder

__all__ = ["RNNCallback", "RNNRegularizer"]


class RNNCallback(Callback):
    """Resets the model's hidden state at the start of every training and validation pass."""

    order = 0

    def _reset(self, learn) -> None:
        model = getattr(learn.model, "module", learn.model)  # DDP wraps the model
        if hasattr(model, "reset"):
            model.reset()

    def before_train(self, learn) -> None:
        self._reset(learn)

    def before_validate(self, learn) -> None:
        self._reset(learn)


class RNNRegularizer(Callback):
    """AR (``alpha``) and TAR (``beta``) on the last AWD-LSTM layer, over real (non-pad) tokens."""

    # Before GradientAccumulation (5) divides and MixedPrecision (10) scales the loss to back-propagate.
    order = 1

    def __init__(self, alpha: float = 2.0, beta: float = 1.0) -> None:
        self.alpha, self.beta = alpha, beta
        self._handles: list = []
        self._clear()

    def _clear(self) -> None:
        self.raw: Tensor | None = None
        self.dropped: Tensor | None = None
        self.mask: Tensor | None = None

    def before_fit(self, learn) -> None:
        self.after_fit(learn)  # hooks left by a fit that ended in an error
        for module in learn.model.modules():
            if isinstance(module, AWD_LSTM):
                self._handles.append(module.register_forward_hook(self._keep("raw")))
            elif isinstance(module, LinearDecoder):
                self._handles.append(module.output_dp.register_forward_hook(self._keep("dropped")))
            elif isinstance(module, SentenceEncoder):
                self._handles.append(module.register_forward_hook(self._keep_mask))

    def _keep(self, attr: str):
        def hook(module, inputs, output) -> None:
            if module.training:
                setattr(self, attr, output)

        return hook

    def _keep_mask(self, module, inputs, output) -> None:
        if module.training:
            self.mask = output[1]

    def after_loss(self, learn) -> None:
        if not learn.training or self.raw is None or (self.alpha == 0 and self.beta == 0):
            return
        raw = self.raw.float()
        dropped = raw if self.dropped is None else self.dropped.float()  # a classifier has no output dropout
        reg = raw.new_zeros(())
        if self.mask is None:
            if self.alpha:
                reg = reg + self.alpha * dropped.pow(2).mean()
            if self.beta and raw.size(1) > 1:
                reg = reg + self.beta * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
        else:  # padded texts: average over the real tokens (and pairs of consecutive real tokens) only
            mask = self.mask.unsqueeze(-1).to(raw.dtype)
            n_feat = raw.size(-1)
            if self.alpha:
                reg = reg + self.alpha * (dropped.pow(2) * mask).sum() / (mask.sum() * n_feat).clamp(min=1)
            if self.beta and raw.size(1) > 1:
                pair = mask[:, 1:] * mask[:, :-1]
                diff = (raw[:, 1:] - raw[:, :-1]).pow(2) * pair
                reg = reg + self.beta * diff.sum() / (pair.sum() * n_feat).clamp(min=1)
        learn.loss_grad = learn.loss_grad + reg

    def after_batch(self, learn) -> None:
        self._clear()  # do not keep the batch's graph alive until the next one

    def after_fit(self, learn) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._clear()
