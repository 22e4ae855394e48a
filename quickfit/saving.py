"""Saving a Learner: checkpoints (`save` / `load`) and exports (`export` / `load_learner`), no pickle.

    learn.save("stage1")                       # models/stage1.pth: weights + optimizer, to resume training
    learn.load("stage1")
    learn.export("model.qf")                   # weights (safetensors) + JSON of model and data processing
    learn = qf.load_learner("model.qf")        # in another process, for predictions

A checkpoint is a weights-only `torch.save` file (tensors and plain containers); an export is a
safetensors file whose metadata holds the JSON its application needs to rebuild the learner.
Every write is atomic (quickfit/io.py): a crash leaves the previous file as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from quickfit import env
from quickfit.apps import app_names, get_app
from quickfit.io import atomic_save, atomic_write, safe_load

__all__ = ["SavingMixin", "load_learner"]


class SavingMixin:
    def _unwrapped(self) -> nn.Module:
        return getattr(self.model, "module", self.model)  # DDP / DataParallel wrap the model

    def _file(self, name: str) -> Path:
        return self.path / self.model_dir / f"{name}.pth"

    def save(self, name: str, with_opt: bool = True) -> Path | None:
        """Save the weights (and optimizer state) to `path/model_dir/name.pth`, atomically; rank 0 only."""
        if not self.is_main_process:
            return None
        state = {"model": self._unwrapped().state_dict()}
        if with_opt and self.opt is not None:
            state["opt"] = self.opt.state_dict()
            extra = self.step.extra_opts(self)
            if extra:
                state["extra_opts"] = [o.state_dict() for o in extra]
        return atomic_save(state, self._file(name))

    def load(self, name: str | Path, with_opt: bool = True, strict: bool = True):
        """Load weights saved by `save` (`name` or a path). Never unpickles code."""
        f = Path(name) if str(name).endswith(".pth") else self._file(str(name))
        state = safe_load(f, map_location=self.device)
        if not isinstance(state, dict) or "model" not in state:
            raise ValueError(f"{f} is not a quickfit checkpoint (no 'model' entry)")
        self._unwrapped().load_state_dict(state["model"], strict=strict)
        if with_opt and "opt" in state:
            if self.opt is None:
                self.create_opt()
            self.opt.load_state_dict(state["opt"])
            for opt, s in zip(self.step.extra_opts(self), state.get("extra_opts", [])):
                opt.load_state_dict(s)
        return self

    def export(self, fname: str | Path = "export.qf") -> Path:
        """Weights (safetensors) + a JSON description of model and data processing in one file; no pickle."""
        from safetensors.torch import save_model

        f = self.path / fname
        if not self.is_main_process:
            return f
        info = {"format": 1, **self.export_info}
        if "data" not in info and hasattr(self.dls, "export_info"):
            info["data"] = self.dls.export_info()
        metadata = {"quickfit": json.dumps(info)}
        atomic_write(f, lambda tmp: save_model(self._unwrapped(), tmp, metadata=metadata))
        return f


def _read_export_info(fname: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(fname), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("quickfit", "{}"))
    except Exception as e:
        if _is_checkpoint(fname):
            raise ValueError(
                f"{fname} is a training checkpoint written by learn.save(), not an export: "
                f"load it into a learner with learn.load({str(fname)!r}), or write an export with learn.export()"
            ) from None
        raise ValueError(f"{fname} is not a quickfit export (a safetensors file with quickfit metadata): {e}") from None


def _is_checkpoint(fname: Path) -> bool:
    """A torch.save file (a zip archive) holding a 'model' entry: what `Learner.save` writes."""
    import zipfile

    if not zipfile.is_zipfile(fname):
        return False
    try:
        state = safe_load(fname)
    except Exception:
        return False
    return isinstance(state, dict) and "model" in state


def load_learner(
    fname: str | Path,
    model: nn.Module | None = None,
    loss_func: Callable | None = None,
    device: torch.device | str | None = "cpu",
):
    """Load a file written by `Learner.export`. No pickle: weights from safetensors, the rest from JSON.

    Files of quickfit's applications rebuild their model and data processing themselves (each
    application registers how, see quickfit/apps.py); for a plain `Learner`, pass the `model` (and
    `loss_func`) to load the weights into.
    """
    from safetensors.torch import load_model

    from quickfit.data.core import DataLoaders
    from quickfit.learner import Learner

    fname = Path(fname)
    if not fname.exists():
        raise FileNotFoundError(f"no exported learner at {fname}")
    info = _read_export_info(fname)
    name = info.get("app")
    if model is None and name is not None:
        app = get_app(name) if isinstance(name, str) else None
        if app is None:
            raise ValueError(f"{fname} names an unknown application {name!r} (known: {', '.join(app_names())})")
        learn = app.learner_from_export(info)
    elif model is not None:
        learn = Learner(DataLoaders([], None), model, loss_func, device=device)
        learn.export_info = info
    else:
        raise ValueError(f"{fname} was exported from a plain Learner: pass model= to load its weights into")
    learn.model.to("cpu")
    load_model(learn._unwrapped(), str(fname), strict=True)
    if device is not None:
        learn.device = torch.device(device)
        learn.model.to(learn.device)
    learn.is_main_process = env.is_main_process()
    return learn
