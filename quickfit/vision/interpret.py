"""What did the classifier get wrong, and where did it look?

    from quickfit.vision import ClassificationInterpretation, grad_cam
    interp = ClassificationInterpretation.from_learner(learn)   # on the validation set
    interp.confusion_matrix()          # counts: rows are actual classes, columns predicted
    interp.most_confused(min_val=2)    # [("bees", "ants", 5), ...]
    interp.plot_top_losses(9)          # the images the model was most confidently wrong about
    heat = grad_cam(learn, "photo.jpg")   # [H, W] in [0, 1]: where the predicted class's evidence is

Grad-CAM weights the body's last activation maps by the gradient of the class score averaged over
each map (Selvaraju et al., 2017), keeps the positive part and scales it to the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ClassificationInterpretation", "grad_cam", "plot_grad_cam"]


class ClassificationInterpretation:
    """Predictions, targets and per-item losses of a single-label classifier on one loader."""

    def __init__(self, learn, dl, preds: torch.Tensor, targs: torch.Tensor, losses: torch.Tensor) -> None:
        self.learn, self.dl, self.preds, self.targs, self.losses = learn, dl, preds, targs, losses
        self.vocab = list(getattr(learn.dls, "vocab", None) or range(preds.shape[1]))

    @classmethod
    def from_learner(cls, learn, dl=None) -> ClassificationInterpretation:
        "Run the model on `dl` (the validation images by default)."
        image_dls = getattr(learn, "image_dls", learn.dls)
        dl = image_dls.valid if dl is None else dl
        preds, targs, losses = learn.get_preds(dl=dl, with_loss=True)
        if targs is None:
            raise ValueError("ClassificationInterpretation needs labelled data; this loader has no targets")
        if targs.ndim != 1:
            raise ValueError(
                f"ClassificationInterpretation is for single-label targets, got shape {tuple(targs.shape)}"
            )
        return cls(learn, dl, preds, targs, losses)

    def confusion_matrix(self) -> np.ndarray:
        "`cm[i, j]`: how many images of class i were predicted as class j."
        n = len(self.vocab)
        pairs = self.targs.long() * n + self.preds.argmax(1)
        return torch.bincount(pairs, minlength=n * n).reshape(n, n).numpy()

    def most_confused(self, min_val: int = 1) -> list[tuple[str, str, int]]:
        "(actual, predicted, count) for every off-diagonal cell with at least `min_val`, most first."
        cm = self.confusion_matrix()
        cells = [(self.vocab[i], self.vocab[j], int(cm[i, j])) for i, j in zip(*np.nonzero(cm)) if i != j]
        return sorted([c for c in cells if c[2] >= min_val], key=lambda c: -c[2])

    def top_losses(self, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        "(losses, indices) of the `k` worst items (all, sorted, by default)."
        return self.losses.topk(len(self.losses) if k is None else min(k, len(self.losses)))

    def plot_confusion_matrix(self, normalize: bool = False, cmap: str = "Blues"):
        "The confusion matrix as a labelled heat map; returns the Figure."
        import matplotlib.pyplot as plt

        cm = self.confusion_matrix().astype(float)
        if normalize:
            cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        n = len(self.vocab)
        fig, ax = plt.subplots(figsize=(max(4, 0.5 * n + 2),) * 2)
        ax.imshow(cm, cmap=cmap)
        ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="actual", title="Confusion matrix")
        ax.set_xticklabels(self.vocab, rotation=90)
        ax.set_yticklabels(self.vocab)
        for i in range(n):
            for j in range(n):
                text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
        fig.tight_layout()
        return fig

    def plot_top_losses(self, k: int = 9, ncols: int | None = None):
        "The `k` worst images titled predicted / actual / loss / probability of the actual class; returns the Figure."
        import matplotlib.pyplot as plt

        dataset = getattr(self.dl, "dataset", None)
        if dataset is None:
            raise TypeError("plot_top_losses needs an image loader (with a dataset) to show the images")
        losses, idxs = self.top_losses(k)
        ncols = ncols or max(1, int(len(idxs) ** 0.5 + 0.999))
        nrows = -(-len(idxs) // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 3.3 * nrows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, loss, i in zip(axes.flat, losses.tolist(), idxs.tolist()):
            img = dataset[i][0]  # the uint8 [3, H, W] crop the model saw (before normalization)
            ax.imshow(img.permute(1, 2, 0).numpy())
            t, p = int(self.targs[i]), int(self.preds[i].argmax())
            prob = float(self.preds[i, t])
            ax.set_title(f"{self.vocab[p]} / {self.vocab[t]}\n{loss:.2f} / {prob:.2f}", fontsize=9)
        fig.suptitle("predicted / actual, loss / probability of actual")
        fig.tight_layout()
        return fig


def grad_cam(learn, item: str | Path, class_idx: int | None = None) -> torch.Tensor:
    """Grad-CAM heat map [H, W] in [0, 1] of `item` for `class_idx` (the predicted class by default)."""
    image_dls = getattr(learn, "image_dls", learn.dls)
    (x,) = next(iter(image_dls.test_dl([item])))[:1]
    model = learn.model
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            acts = model.body(x.to(learn.device)).detach().requires_grad_(True)
            scores = model.head(acts)
            idx = int(scores[0].argmax()) if class_idx is None else class_idx
            (grad,) = torch.autograd.grad(scores[0, idx], acts)
    finally:
        model.train(was_training)
    weights = grad.mean((2, 3), keepdim=True)
    cam = F.relu((weights * acts).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return (cam / cam.max().clamp(min=1e-12)).detach().cpu()


def plot_grad_cam(learn, item: str | Path, class_idx: int | None = None, alpha: float = 0.5):
    "The image the model saw with its Grad-CAM heat map on top; returns the Figure."
    import matplotlib.pyplot as plt

    image_dls = getattr(learn, "image_dls", learn.dls)
    (x,) = next(iter(image_dls.test_dl([item])))[:1]
    img = image_dls.normalize.decode(x.float()).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()
    heat = grad_cam(learn, item, class_idx)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(img)
    ax.imshow(heat.numpy(), cmap="magma", alpha=alpha)
    ax.axis("off")
    return fig
