"""Inference on a Learner: `get_preds`, `validate`, `predict` and snapshot ensembles.

    preds, targs = learn.get_preds()                 # the validation set, through the loss's activation
    learn.validate()                                 # [valid_loss, *metrics]
    learn.predict(item)                              # one item, decoded by the data

A mixin of `Learner` (see quickfit/learner.py): these run the same loop as training (`_run_phase`
with `train=False`), so callbacks such as mixed precision and distributed gathering apply to them too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch import nn

from quickfit.io import safe_load

__all__ = ["InferenceMixin", "activation_of"]


def activation_of(loss_func) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation that turns raw outputs into predictions, derived from the loss."""
    act = getattr(loss_func, "activation", None)
    if act is not None:
        return act
    if isinstance(loss_func, nn.CrossEntropyLoss) or loss_func is nn.functional.cross_entropy:
        return lambda x: x.softmax(dim=-1)
    if isinstance(loss_func, nn.BCEWithLogitsLoss) or loss_func is nn.functional.binary_cross_entropy_with_logits:
        return torch.sigmoid
    return lambda x: x


class InferenceMixin:
    @property
    def input_dls(self):
        """The data whose batches are the model's inputs, where `summary` and `export_onnx` take an
        example batch: `self.dls`, unless a subclass trains on something else (VisionLearner's
        precomputed activations)."""
        return self.dls

    def get_preds(
        self,
        dl: Iterable | None = None,
        with_loss: bool = False,
        act: Callable | None = None,
        progress: bool | None = None,
    ):
        """Predictions on `dl` (the validation set by default): `(preds, targets[, losses])`.

        Predictions pass through the loss's activation (softmax for cross-entropy, sigmoid for BCE with
        logits) unless `act` is given. Targets are None for a test set without labels.
        """
        from quickfit.callbacks.gather import GatherPreds

        gather = GatherPreds(act or activation_of(self.loss_func), with_loss)
        was = self.progress_cb.enabled
        self.progress_cb.enabled = was if progress is None else progress
        try:
            with self.added_cbs([gather]), self._no_logging():
                self._run_phase(train=False, dl=dl)
        finally:
            self.progress_cb.enabled = was
        return gather.result()

    def validate(self, dl: Iterable | None = None) -> list[float]:
        """`[valid_loss, *metrics]` on `dl` (the validation set by default)."""
        with self._no_logging():
            self._run_phase(train=False, dl=dl)
        return self.recorder.last_valid

    def predict(self, item):
        """Prediction for one item, decoded by the data (e.g. `(label, index, probabilities)`).

        The data's `test_dl([item])` makes the batch (quickfit/contracts.py); data without one takes
        only items that are already tensors (or arrays, numbers), made a batch of one.
        """
        if hasattr(self.dls, "test_dl"):
            dl = self.dls.test_dl([item])
        else:
            try:
                dl = [(torch.as_tensor(item)[None],)]
            except (TypeError, ValueError, RuntimeError) as e:
                raise TypeError(
                    f"predict: {type(self.dls).__name__} has no test_dl(items) to turn a "
                    f"{type(item).__name__} into a batch, and the item is not a tensor ({e}). Give the data a "
                    "test_dl method, or pass the model's input as a tensor"
                ) from e
        preds, _ = self.get_preds(dl=dl, progress=False)
        return self.dls.decode_pred(preds[0]) if hasattr(self.dls, "decode_pred") else preds[0]

    @contextlib.contextmanager
    def _no_logging(self):
        was = self.recorder.log_table
        self.recorder.log_table = False
        try:
            yield
        finally:
            self.recorder.log_table = was

    def snapshot_ensemble_preds(self, name: str, dl: Iterable | None = None):
        """Average the predictions of the weights `fit_sgdr(snapshot=name)` saved; restores the weights."""
        files = sorted(
            self.path.joinpath(self.model_dir).glob(f"{name}_*.pth"),
            key=lambda f: int(f.stem.rsplit("_", 1)[1]),
        )
        if not files:
            raise FileNotFoundError(f"no snapshots named {name}_<i>.pth in {self.path / self.model_dir}")
        current = {k: v.clone() for k, v in self._unwrapped().state_dict().items()}
        preds, targs = [], None
        try:
            for f in files:
                self._unwrapped().load_state_dict(safe_load(f, self.device)["model"])
                p, targs = self.get_preds(dl=dl)
                preds.append(p)
        finally:
            self._unwrapped().load_state_dict(current)
        return torch.stack(preds).mean(0), targs
