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

A file is data, and may be hostile: nothing in it is imported or unpickled, and nothing is built before
it is checked. Its header is read alone (quickfit/export_file.py), the stored SHA-256 of the weights
verified, the configuration's fields checked against their types (quickfit/configs.py), and the model
built first on the meta device (shapes, no memory) to compare every tensor with the stored shapes; only
a configuration that builds the file's own tensors is built for real. Every error names the file.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)

from quickfit.apps import app_names, get_app
from quickfit.data.core import DataLoaders
from quickfit.env import is_main_process
from quickfit.export_file import read_header, verify_export
from quickfit.export_v1 import upgrade_v1
from quickfit.io import CorruptFileError, check_regular_file, safe_load
from quickfit.learner import Learner
from quickfit.saving import EXPORT_FORMAT

__all__ = ["load_learner", "learner_from_info", "read_export_info", "ExportError"]

_SLACK_BYTES = 256 * 2**20  # buffers a model may build beyond its stored tensors (positional tables, ...)


class ExportError(ValueError):
    """An export file that cannot be loaded: its message names the file and what is wrong in it."""


def _header(fname: Path) -> dict:
    try:
        return read_header(fname)
    except CorruptFileError:
        if _is_checkpoint(fname):
            raise ExportError(
                f"{fname} is a training checkpoint written by learn.save(), not an export: "
                f"load it into a learner with learn.load({str(fname)!r}), or write an export with learn.export()"
            ) from None
        raise


def _info_of(fname: Path, metadata: dict) -> dict:
    """The quickfit JSON of a header's metadata, in today's layout (a file of format 1 is translated)."""
    raw = metadata.get("quickfit")
    if raw is None:
        raise ExportError(f"{fname} is a safetensors file without quickfit metadata: not a quickfit export")
    try:
        info = json.loads(raw)
    except (TypeError, json.JSONDecodeError) as e:
        raise ExportError(f"{fname}: its quickfit metadata is not JSON ({e})") from None
    if not isinstance(info, dict):
        raise ExportError(f"{fname}: its quickfit metadata is not a JSON object (got {type(info).__name__})")
    version = info.get("format", 1)
    if isinstance(version, bool) or version not in range(1, EXPORT_FORMAT + 1):
        newer = isinstance(version, int) and not isinstance(version, bool) and version > EXPORT_FORMAT
        hint = ": it was written by a newer quickfit, upgrade this one" if newer else ""
        raise ExportError(f"{fname} is an export of format {version!r}; this quickfit reads 1 to {EXPORT_FORMAT}{hint}")
    for key in ("data", "task", "model"):
        if info.get(key) is not None and not isinstance(info[key], dict):
            raise ExportError(f"{fname}: its {key!r} is not a JSON object (got {type(info[key]).__name__})")
    return upgrade_v1(info) if version == 1 else info


def read_export_info(fname: str | Path) -> dict:
    """The JSON an export holds, in today's layout (a file of format 1 is translated)."""
    fname = check_regular_file(fname, "exported learner")
    return _info_of(fname, _header(fname)["metadata"])


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


def _int_fields(value, path: str = "") -> list[tuple[str, int]]:
    """Every whole number of a configuration's JSON, with its path (`sizes.emb_sz`, `emb_szs[0][0]`)."""
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _int_fields(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, (list, tuple)):
        return [f for i, v in enumerate(value) for f in _int_fields(v, f"{path}[{i}]")]
    return [(path, value)] if isinstance(value, int) and not isinstance(value, bool) else []


def _fields_behind(config, dims: list[int], other: list[int] = ()) -> str:
    """The configuration fields whose values are among `dims` (and not `other`): the likely culprits."""
    fields = _int_fields(config.to_dict())
    names = [f"{p}={v}" for p, v in fields if v in dims and v not in other and v > 1]
    names = names or [f"{p}={v}" for p, v in fields if v in dims and v > 1]
    return f" (field {', '.join(names[:4])} of model {config.type!r})" if names else f" (model {config.type!r})"


@contextlib.contextmanager
def _bounded(config, n_stored: int, fname):
    """Refuse a build that registers far more modules, parameters and buffers than the file holds tensors
    (`n_layers=10**12` is a Python loop that the meta device does not shorten)."""
    limit, count = 20 * n_stored + 1000, 0

    def hook(*args) -> None:
        nonlocal count
        count += 1
        if count > limit:
            big = ", ".join(f"{p}={v}" for p, v in _int_fields(config.to_dict()) if v > n_stored) or "?"
            raise ExportError(f"{fname}: the model configuration builds more than {limit} modules and tensors, the "
                              f"file holds {n_stored} tensors (field {big} of model {config.type!r})")  # fmt: skip

    hooks = [register_module_module_registration_hook(hook), register_module_parameter_registration_hook(hook),
             register_module_buffer_registration_hook(hook)]  # fmt: skip
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def check_against_file(config, shapes: dict[str, list[int]], fname: Path | str) -> None:
    """Build `config` on the meta device (shapes only, no memory, no init) and refuse it unless it makes
    the tensors `shapes` lists (a safetensors header's), naming the field behind the first difference."""
    try:
        with _bounded(config, len(shapes), fname), torch.device("meta"):
            model = config.build()
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"{fname}: its model configuration {config.type!r} cannot be built: {e}") from None
    state = model.state_dict(keep_vars=True)
    groups: dict[int, list[str]] = {}
    for name, t in state.items():
        groups.setdefault(id(t), []).append(name)
    for names in groups.values():  # tied tensors are stored once (safetensors drops the aliases)
        expected = list(state[names[0]].shape)
        stored = [n for n in names if n in shapes]
        if not stored:
            raise ExportError(f"{fname}: the model configuration builds {names[0]} {expected}, which the file does "
                              f"not hold{_fields_behind(config, expected)}")  # fmt: skip
        for n in stored:
            if shapes[n] != expected:
                raise ExportError(f"{fname}: the model configuration builds {n} of shape {expected}, the file holds "
                                  f"{shapes[n]}{_fields_behind(config, expected, shapes[n])}")  # fmt: skip
    extra = sorted(set(shapes) - set(state))
    if extra:
        raise ExportError(f"{fname}: the file holds tensors its model configuration does not build: {extra[:5]}")
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}.values()
    built = sum(t.numel() * t.element_size() for t in tensors)
    stored_bytes = sum(t.numel() * t.element_size() for n, t in state.items() if n in shapes)
    if built > stored_bytes + _SLACK_BYTES:
        biggest = max(tensors, key=lambda t: t.numel())
        raise ExportError(f"{fname}: the model configuration builds {built / 2**20:.0f} MiB of tensors beyond the "
                          f"file's{_fields_behind(config, list(biggest.shape))}")  # fmt: skip


def learner_from_info(info: dict, shapes: dict[str, list[int]] | None = None, fname: str | Path = "export") -> Learner:
    """The learner an export's JSON describes, with fresh weights, on the CPU: its application's registered
    task and model configuration, matched by name (never imported). With `shapes` (the file's tensors) the
    model is first built on the meta device and compared with them (`check_against_file`)."""
    name = info.get("app")
    app = get_app(name) if isinstance(name, str) else None
    if app is None:
        raise ValueError(f"unknown application {name!r} (known: {', '.join(app_names())})")
    config = app.model_config(info.get("model"))
    task = app.task(info.get("task"))
    if shapes is not None:
        check_against_file(config, shapes, fname)
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
    A damaged or hostile file is refused before anything is built (see the module docstring, docs/files.md).
    """
    from safetensors.torch import load_model

    fname = check_regular_file(fname, "exported learner")
    header = _header(fname)
    info = _info_of(fname, header["metadata"])
    verify_export(fname, header)
    if model is not None:
        learn = Learner(DataLoaders([], None), model, loss_func, device=device)
        learn.export_info = {k: v for k, v in info.items() if k != "format"}
    elif info.get("app") is not None:
        try:
            learn = learner_from_info(info, header["shapes"], fname)
        except (ExportError, MemoryError):
            raise
        except Exception as e:  # an application's own parsing (a tokenizer's JSON, ...): named here
            raise ExportError(f"{fname}: cannot rebuild the learner from its metadata: {e}") from None
    else:
        raise ExportError(f"{fname} was exported from a plain Learner: pass model= to load its weights into")
    learn.model.to("cpu")
    try:
        load_model(learn._unwrapped(), str(fname), strict=True)
    except Exception as e:
        raise ExportError(f"{fname}: its weights do not load into the model: {str(e).strip()[:500]}") from None
    if device is not None:
        learn.device = torch.device(device)
        learn.model.to(learn.device)
    learn.is_main_process = is_main_process()
    return learn
