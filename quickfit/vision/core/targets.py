"""What a batch's `y` is, one class per kind: how it is read, moved with its image, collated, learnt,
decoded for the user, drawn, and recorded in an export.

    from quickfit.vision.core.targets import Target
    Target("mask", n_codes=12, void_code=11)   # the class registered as "mask" (segmentation/target.py)
    Target.from_dict({"kind": "points", "flip_pairs": [[0, 1]]})

`Target` is the base; each kind is a frozen dataclass in the folder of its task, registered by its
`kind` name when its module is imported (every kind quickfit has is imported by `quickfit.vision`):

| kind | class | file | `y` of one image |
|---|---|---|---|
| "category" | `Category` | classification/targets.py | a class index |
| "multi_category" | `MultiCategory` | classification/targets.py | a multi-hot vector |
| "float" | `Regression` | classification/targets.py | float values |
| "mask" | `Mask` | segmentation/target.py | [H, W] class indices |
| "points" | `Points` | points/target.py | [n, 2] (x, y) |
| "boxes" | `Boxes` | detection/target.py | [n, 5] (x0, y0, x1, y1, label) |
| "image" | `ImageTarget` | generation/target.py | another image |

The loader, the item transforms and the batch augmentation call only the methods below; no code outside a
kind's own file asks which kind it is. A new kind is one new file: subclass `Target`, set `kind`,
override what differs (docs/design.md has a worked example).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import default_collate

__all__ = ["Target", "target_class", "target_kinds", "make_target", "collate_targets", "warp_target"]

_KINDS: dict[str, type[Target]] = {}


def target_kinds() -> list[str]:
    """The names of every registered kind."""
    return sorted(_KINDS)


def target_class(kind: str) -> type[Target]:
    """The class registered as `kind`; a ValueError listing the known kinds otherwise."""
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"Target kind must be one of {', '.join(target_kinds())}; got {kind!r}")
    return _KINDS[kind]


def make_target(target: Target | str, vocab: Sequence[str] | None = None) -> Target:
    """`target` as it is, or the kind it names, given `vocab` when that kind takes one."""
    if isinstance(target, Target):
        return target
    cls = target_class(target)
    takes_vocab = dataclasses.is_dataclass(cls) and any(f.name == "vocab" for f in dataclasses.fields(cls))
    return cls(vocab=vocab) if takes_vocab and vocab is not None else cls()


class _ByKind(type):
    """`Target("mask", n_codes=3)` builds the class registered as "mask"; a kind's class builds itself."""

    @property
    def __signature__(cls) -> inspect.Signature:  # what help() and editors show: the kind's own settings
        if cls is Target:
            kind = inspect.Parameter("kind", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="category")
            return inspect.Signature([kind, inspect.Parameter("settings", inspect.Parameter.VAR_KEYWORD)])
        sig = inspect.signature(cls.__init__)
        return sig.replace(parameters=list(sig.parameters.values())[1:])

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is not Target:
            return super().__call__(*args, **kwargs)
        if len(args) > 1:
            raise TypeError("Target(kind, ...): give the settings by name, e.g. Target('mask', n_codes=3)")
        kind = args[0] if args else kwargs.pop("kind", "category")
        return target_class(kind)(**kwargs)


class Target(metaclass=_ByKind):
    """The base of every kind of target. Defaults are those of a label that does not move (a class).

    Class attributes of a kind: `kind` (its name, also in files), `aliases` (other names it answers to),
    `spatial` (True: it moves with its image, and the loader calls its item and batch steps).
    """

    kind: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    spatial: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            for name in (cls.kind, *cls.aliases):
                _KINDS[name] = cls

    # ---- item level (loader workers) -----------------------------------------------------------------
    def item(self, y: Any, tfm: Any, plan: tuple, train: bool, src: Any = None) -> Any:
        """One image's target through the item transform `tfm` that produced its image with `plan`
        (box, out, pad, (w, h)): `src` is the image (for messages). A label does not move."""
        return y

    def collate(self, ys: Sequence[Any]) -> torch.Tensor:
        """One batch's targets as one tensor."""
        return default_collate(list(ys))

    # ---- batch level (device) ------------------------------------------------------------------------
    def prepare(self, y: torch.Tensor) -> torch.Tensor:
        """A collated batch on the device, before any augmentation (an image target: uint8 -> float)."""
        return y

    def warp(self, y: torch.Tensor, mats: torch.Tensor, grid: torch.Tensor | None, pad_mode: str) -> torch.Tensor:
        """`y` moved as its images were, resampled by the sampling matrices `mats` [B, 3, 3] on `grid`
        (the images' grid_sample grid, or None: compute one at `y`'s size)."""
        return y

    def relight(self, y: torch.Tensor, coefficients: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """`y` after the images' lighting change y * c + o (only an image target may take it)."""
        return y

    def normalized(self, y: torch.Tensor, normalize: Any) -> torch.Tensor:
        """`y` after the images' normalization (only an image target may take it)."""
        return y

    def finish(self, y: torch.Tensor) -> torch.Tensor:
        """The batch as the loss sees it (a mask: int64 indices)."""
        return y

    # ---- learning ------------------------------------------------------------------------------------
    def loss(self, dls: Any = None) -> nn.Module:
        """The loss a learner of the data `dls` uses when given none (it may look at the data, e.g. the
        frequency of each class)."""
        raise NotImplementedError(f"{self.kind} targets have no default loss: pass loss_func=")

    def activation(self, out: torch.Tensor) -> torch.Tensor:
        """The model's raw output -> predictions (probabilities, pixels, coordinates)."""
        return out

    # ---- for the user --------------------------------------------------------------------------------
    def decode(self, pred: torch.Tensor, thresh: float = 0.5) -> tuple[Any, Any, torch.Tensor]:
        """One prediction (after `activation`) -> (what the user reads, an index or mask, the raw values)."""
        pred = pred.detach().cpu()
        return pred, None, pred

    def text(self, y: torch.Tensor) -> str:
        """One target as a short caption."""
        return ", ".join(f"{v:.3g}" for v in torch.as_tensor(y, dtype=torch.float32).flatten().tolist())

    def caption(self, pred: torch.Tensor, thresh: float = 0.5) -> str:
        """One prediction (after `activation`) as a short caption."""
        return self.text(pred)

    def matches(self, y_text: str, pred_text: str) -> bool | None:
        """Whether a caption of a prediction agrees with the target's (None: no right or wrong)."""
        return None

    def draw(self, ax: Any, y: torch.Tensor, size: tuple[int, int], pred: bool = False) -> None:
        """Draw one target (or with `pred`, one prediction after `activation`) on a Matplotlib axis that
        shows its (h, w) = `size` image. A label draws nothing: its `text` is the axis's title."""

    def predict(self, pred: torch.Tensor, item: Any, item_tfm: Any) -> Any:
        """What `learn.predict(item)` returns for one prediction (after `activation`) of `item`, whose
        image the item transform `item_tfm` made (it can map the prediction back to the original pixels)."""
        return self.decode(pred)

    def tta(self, learn: Any, dl: Any = None, n: int | None = None, beta: float | None = 0.25):
        """`learn.tta(dl, n, beta)`: `(preds, targets)` on `dl` (the validation set by default), each
        prediction averaged over views of its image. A label does not move, so the data's augmentation
        makes the views: the plain images' predictions blended with the mean of `n` (default 4) augmented
        passes by `beta` (classification/tta.py). A kind that moves with its image must turn each view's
        prediction back, so it has no TTA unless it says how (an image target: generation/tta.py)."""
        if self.spatial:
            raise NotImplementedError(
                f"tta is for labels; {self.kind} targets would need each augmented prediction moved back"
            )
        from quickfit.vision.classification.tta import tta

        return tta(learn, dl=dl, n=4 if n is None else n, beta=beta)

    def report(self, result: Any, item: Any, out_dir: Path) -> str:
        """One line for `quickfit predict`: what `predict(item)` gave (`result`), readable; a kind whose
        prediction is a picture (a mask, an image) writes it into `out_dir` and names the file."""
        return str(result)

    def show(self, dls: Any, x: torch.Tensor, y: torch.Tensor | None, preds: torch.Tensor | None = None,
             ncols: int | None = None, path: str | Path | None = None):  # fmt: skip
        """A Figure of the images `x` (normalized, as batches hold them) with their targets `y` and the
        predictions `preds` (after `activation`): each target drawn (`draw`) and captioned (`text`), each
        prediction drawn and captioned (`caption`), green when it `matches` the target, red when not;
        saved as a PNG at `path` when given."""
        import matplotlib.pyplot as plt

        n = x.shape[0]
        imgs = dls.normalize.decode(x.float()).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        size = tuple(x.shape[-2:])
        ncols = ncols or max(1, int(n**0.5 + 0.999))
        nrows = -(-n // ncols)
        tall = 3.1 if preds is not None else 2.5
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.8 * ncols, tall * nrows), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i >= n:
                continue
            ax.imshow(imgs[i])
            truth = caption = None
            if y is not None:
                self.draw(ax, y[i].cpu(), size)
                truth = self.text(y[i].cpu())
            if preds is not None:
                self.draw(ax, preds[i].cpu(), size, pred=True)
                caption = self.caption(preds[i].cpu())
            right = self.matches(truth, caption) if truth and caption else None
            colour = "black" if right is None else ("green" if right else "red")
            lines = [truth] if caption is None else ([f"target: {truth}"] if truth else []) + [f"prediction: {caption}"]
            ax.set_title("\n".join(line for line in lines if line), fontsize=9, color=colour)
        if preds is not None and y is not None:
            fig.suptitle("target / prediction")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig

    # ---- files ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The target's part of an export's configuration: its kind and its settings (JSON values)."""
        d: dict = {"kind": self.kind}
        for f in dataclasses.fields(self) if dataclasses.is_dataclass(self) else ():
            v = getattr(self, f.name)
            if f.init and v != f.default and not (f.default_factory is not dataclasses.MISSING and not v):
                d[f.name] = _jsonable(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Target:
        """The target `d` (a `to_dict`) describes; the kind's class reads its own settings."""
        if not isinstance(d, dict):
            raise ValueError(f"a target must be a JSON object with a 'kind', got {type(d).__name__}")
        sub = target_class(d.get("kind", "category"))
        return sub._from_settings({k: v for k, v in d.items() if k != "kind"})

    @classmethod
    def _from_settings(cls, settings: dict) -> Target:
        names = {f.name for f in dataclasses.fields(cls) if f.init} if dataclasses.is_dataclass(cls) else set()
        unknown = sorted(set(settings) - names)
        if unknown:
            raise ValueError(f"a {cls.kind} target has no setting(s) {unknown} (its settings: {sorted(names)})")
        return cls(**settings)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_jsonable(e) for e in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(e) for k, e in v.items()}
    return v


def collate_targets(ys: Sequence[Any], target: Target) -> torch.Tensor:
    """One batch's targets collated by their kind (`target.collate`)."""
    return target.collate(ys)


def warp_target(y: torch.Tensor, target: Target, mats: torch.Tensor, grid: torch.Tensor | None, pad_mode: str):
    """`y` moved like its images, which were resampled by `mats` on `grid` (`target.warp`)."""
    return target.warp(y, mats, grid, pad_mode)
