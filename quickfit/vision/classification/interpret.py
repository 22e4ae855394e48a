"""What did the classifier get wrong, and where did it look?

    from quickfit.vision import ClassificationInterpretation, grad_cam
    interp = ClassificationInterpretation.from_learner(learn)   # on the validation set
    interp.confusion_matrix()          # counts: rows are actual classes, columns predicted
    interp.most_confused(min_val=2)    # [("bees", "ants", 5), ...]
    interp.plot_top_losses(9)          # the images the model was most confidently wrong about
    heat = grad_cam(learn, "photo.jpg")   # [H, W] in [0, 1]: where the predicted class's evidence is
    plot_grad_cam(learn, "photo.jpg")     # image | heat map with colour bar | overlay, titled class + probability
    learn.show_results()                  # validation images titled target / prediction (green right, red wrong)

Grad-CAM weights the body's last activation maps by the gradient of the class score averaged over
each map (Selvaraju et al., 2017), keeps the positive part and scales it to the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ClassificationInterpretation", "grad_cam", "plot_grad_cam", "show_results"]


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


def _grad_cam(learn, x: torch.Tensor, class_idx: int | None) -> tuple[torch.Tensor, int, torch.Tensor]:
    """(heat map [H, W] in [0, 1], class index, the model's probabilities) of one normalized image batch `x`."""
    model = learn.model
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            acts = model.body(x.to(learn.device)).detach().requires_grad_(True)
            scores = model.head(acts)
            idx = int(scores[0].argmax()) if class_idx is None else int(class_idx)
            if not 0 <= idx < scores.shape[1]:
                raise IndexError(f"class_idx={class_idx} but the model has {scores.shape[1]} classes")
            (grad,) = torch.autograd.grad(scores[0, idx], acts)
    finally:
        model.train(was_training)
    weights = grad.mean((2, 3), keepdim=True)
    cam = F.relu((weights * acts).sum(1, keepdim=True))
    # Bicubic from the 7x7-ish map gives smooth blobs instead of visible tiles; it overshoots a little
    # around peaks, hence the clamp.
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bicubic", align_corners=False)[0, 0].clamp(min=0)
    from quickfit.inference import activation_of

    probs = activation_of(learn.loss_func)(scores.detach())
    return (cam / cam.max().clamp(min=1e-12)).detach().cpu(), idx, probs[0].float().cpu()


def grad_cam(learn, item: str | Path, class_idx: int | None = None) -> torch.Tensor:
    """Grad-CAM heat map [H, W] in [0, 1] of `item` for `class_idx` (the predicted class by default)."""
    image_dls = getattr(learn, "image_dls", learn.dls)
    (x,) = next(iter(image_dls.test_dl([item])))[:1]
    return _grad_cam(learn, x, class_idx)[0]


def plot_grad_cam(learn, item: str | Path, class_idx: int | None = None, alpha: float = 0.6, cmap: str = "jet"):
    """Three panels: the image the model saw, its Grad-CAM heat map (with a colour bar) and the map laid
    over the image (opaque where the evidence is, clear elsewhere); titled with the class and its
    probability. Returns the Figure."""
    import matplotlib.pyplot as plt

    image_dls = getattr(learn, "image_dls", learn.dls)
    (x,) = next(iter(image_dls.test_dl([item])))[:1]
    img = image_dls.normalize.decode(x.float()).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()
    heat, idx, probs = _grad_cam(learn, x, class_idx)
    vocab = getattr(image_dls, "vocab", None) or [str(i) for i in range(len(probs))]
    pred = int(probs.argmax())
    name = Path(item).name if isinstance(item, (str, Path)) else "image"
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9))
    axes[0].imshow(img)
    axes[0].set_title(f"{name}\npredicted {vocab[pred]} ({float(probs[pred]):.2f})", fontsize=10)
    shown = axes[1].imshow(heat.numpy(), cmap=cmap, vmin=0, vmax=1)
    axes[1].set_title(f"Grad-CAM for {vocab[idx]}\nprobability {float(probs[idx]):.2f}", fontsize=10)
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04, label="relative evidence")
    axes[2].imshow(img)
    axes[2].imshow(heat.numpy(), cmap=cmap, vmin=0, vmax=1, alpha=alpha * heat.numpy())
    axes[2].set_title(f"overlay: where the model sees {vocab[idx]}", fontsize=10)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def show_results(learn, max_n: int = 9, dl=None, ncols: int | None = None):
    """Up to `max_n` images of the first batch of `dl` (the validation images by default), each titled
    with its target and the model's prediction (class and probability; green when right, red when
    wrong). Returns the Figure."""
    import matplotlib.pyplot as plt

    image_dls = getattr(learn, "image_dls", learn.dls)
    dl = image_dls.valid if dl is None else dl
    batch = next(iter(dl), None)
    if batch is None:
        raise ValueError("show_results: the loader has no images")
    preds, _ = learn.get_preds(dl=[batch], progress=False)
    x, y = batch[0], (batch[1] if len(batch) > 1 else None)
    n = min(max_n, x.shape[0])
    imgs = image_dls.normalize.decode(x[:n].float()).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    ncols = ncols or max(1, int(n**0.5 + 0.999))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.8 * ncols, 3.1 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(imgs[i])
        pred = image_dls.pred_text(preds[i])
        if y is None:
            ax.set_title(f"prediction: {pred}", fontsize=9)
            continue
        target = image_dls._label_text(y[i].cpu())
        right = image_dls.target.matches(target, pred)
        color = "black" if right is None else ("green" if right else "red")
        ax.set_title(f"target: {target}\nprediction: {pred}", fontsize=9, color=color)
    fig.suptitle("target / prediction")
    fig.tight_layout()
    return fig
