"""Loading an export: one generic path rebuilds the learner of every application, no pickle.

    learn = qf.load_learner("model.qf")              # model, data processing and weights, on the CPU
    learn.predict(item)
    learn = qf.load_learner("plain.qf", model=net)   # a plain Learner's export: its weights into `net`

The file's JSON (`read_export_info`) names the application, its task and its model configuration
(quickfit/configs.py). `learner_from_info` looks the application up among the registered ones
(quickfit/apps.py), the task and the configuration among the classes it registered, and builds
`task.learner(task.data(info["data"]), config.build(), config)`; the weights then come from the
safetensors part. Files of format 1 (each application's own layout) are translated first, in one
place: quickfit/export_v1.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from quickfit.apps import app_names, get_app
from quickfit.data.core import DataLoaders
from quickfit.env import is_main_process
from quickfit.export_v1 import upgrade_v1
from quickfit.io import safe_load
from quickfit.learner import Learner
from quickfit.saving import EXPORT_FORMAT

__all__ = ["load_learner", "learner_from_info", "read_export_info"]


def read_export_info(fname: str | Path) -> dict:
    """The JSON an export holds, in today's layout (a file of format 1 is translated)."""
    from safetensors import safe_open

    fname = Path(fname)
    try:
        with safe_open(str(fname), framework="pt") as f:
            info = json.loads((f.metadata() or {}).get("quickfit", "{}"))
    except Exception as e:
        if _is_checkpoint(fname):
            raise ValueError(
                f"{fname} is a training checkpoint written by learn.save(), not an export: "
                f"load it into a learner with learn.load({str(fname)!r}), or write an export with learn.export()"
            ) from None
        raise ValueError(f"{fname} is not a quickfit export (a safetensors file with quickfit metadata): {e}") from None
    if not isinstance(info, dict):
        raise ValueError(f"{fname}: its quickfit metadata is not a JSON object")
    version = info.get("format", 1)
    if version == 1:
        return upgrade_v1(info)
    if version != EXPORT_FORMAT:
        raise ValueError(f"{fname} is an export of format {version!r}; this quickfit reads 1 to {EXPORT_FORMAT}")
    return info


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


def learner_from_info(info: dict) -> Learner:
    """The learner an export's JSON describes, with fresh weights, on the CPU: its application's registered
    task and model configuration, matched by name (never imported)."""
    name = info.get("app")
    app = get_app(name) if isinstance(name, str) else None
    if app is None:
        raise ValueError(f"unknown application {name!r} (known: {', '.join(app_names())})")
    config = app.model_config(info.get("model"))
    task = app.task(info.get("task"))
    learn = task.learner(task.data(info.get("data")), config.build(), config)
    learn.export_info = {k: v for k, v in info.items() if k not in ("format", "data")}
    return learn


def load_learner(
    fname: str | Path,
    model: nn.Module | None = None,
    loss_func: Callable | None = None,
    device: torch.device | str | None = "cpu",
) -> Learner:
    """Load a file written by `Learner.export`. No pickle: weights from safetensors, the rest from JSON.

    Files of quickfit's applications (and of any registered one) rebuild their model and data
    processing; for a plain `Learner`'s file, pass the `model` (and `loss_func`) to load the weights into.
    """
    from safetensors.torch import load_model

    fname = Path(fname)
    if not fname.exists():
        raise FileNotFoundError(f"no exported learner at {fname}")
    info = read_export_info(fname)
    if model is not None:
        learn = Learner(DataLoaders([], None), model, loss_func, device=device)
        learn.export_info = {k: v for k, v in info.items() if k != "format"}
    elif info.get("app") is not None:
        learn = learner_from_info(info)
    else:
        raise ValueError(f"{fname} was exported from a plain Learner: pass model= to load its weights into")
    learn.model.to("cpu")
    load_model(learn._unwrapped(), str(fname), strict=True)
    if device is not None:
        learn.device = torch.device(device)
        learn.model.to(learn.device)
    learn.is_main_process = is_main_process()
    return learn
