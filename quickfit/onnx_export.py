"""`learn.export_onnx("model.onnx")`: the model as ONNX (dynamic batch axis) for onnxruntime; each
application has the preprocessing its inputs need (see docs/onnx.md).

    learn.export_onnx("model.onnx")                       # needs pip install "quickfit[onnx]"

    import onnxruntime as ort
    from quickfit.onnx_export import onnx_info
    from quickfit.tabular.onnx import tabular_onnx_inputs   # each application's inputs: its own module
    from quickfit.vision.onnx import image_onnx_input
    sess = ort.InferenceSession("model.onnx")
    info = onnx_info(sess)                                # vocab, resize, normalization / processors
    probs = sess.run(None, {"image": image_onnx_input(["photo.jpg"], info)})[0]
    probs = sess.run(None, tabular_onnx_inputs(df, info, sess))[0]
    info["data"]["vocab"][probs.argmax(1)[0]]            # the predicted class (tabular: "y_vocab")

The graph is the model in eval mode followed by the loss's activation (softmax for cross-entropy,
sigmoid for BCE), so its output is what `learn.get_preds` returns; `activation=False` leaves the raw
outputs. The export's JSON (`learn.export_info` and the data processing) is stored in the ONNX file's
metadata under "quickfit"; each application turns its raw inputs into the graph's (quickfit/vision/onnx.py,
quickfit/tabular/onnx.py), as validation does. The export itself is checked: onnxruntime, when installed, must give the
PyTorch outputs on the example batch.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["export_onnx", "onnx_info"]

_MOVED = {"image_onnx_input": "quickfit.vision.onnx", "tabular_onnx_inputs": "quickfit.tabular.onnx"}


def __getattr__(name: str):
    # The preprocessing of each application's inputs lives with the application now.
    if name in _MOVED:
        raise ImportError(f"{name} moved to {_MOVED[name]}: from {_MOVED[name]} import {name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _input_names(learn, n: int) -> list[str]:
    names = list(getattr(learn.input_dls, "onnx_input_names", ()))  # the data names them (contracts.py)
    if len(names) == n:
        return names
    return ["input"] if n == 1 else [f"input_{i}" for i in range(n)]


def _example_inputs(learn) -> tuple:
    dls = learn.input_dls
    dl = dls.valid if getattr(dls, "valid", None) is not None else dls.train
    batch = next(iter(dl), None)
    if batch is None and hasattr(dls, "example_item"):  # a loaded learner: one item of the recorded size
        batch = next(iter(dls.test_dl([dls.example_item()])), None)
    if batch is None:
        raise ValueError("export_onnx needs an example batch, and the data has none: pass xb=")
    return tuple(batch)[: getattr(dls, "n_inp", 1)]


def _data_info(learn) -> dict | None:
    dls = learn.input_dls
    if "data" in learn.export_info:
        return learn.export_info["data"]
    return dls.export_info() if hasattr(dls, "export_info") else None


def export_onnx(
    learn,
    fname: str | Path = "model.onnx",
    xb=None,
    opset: int | None = None,
    activation: bool = True,
) -> Path:
    """Write `learn`'s model to `learn.path / fname` as ONNX; returns the path (see the module docstring).

    `xb`: example model inputs (a tensor or a tuple; default: the first validation batch); any batch
    size works with the file. `opset`: the ONNX opset (default: torch's choice).
    """
    from quickfit.extras import require
    from quickfit.inference import activation_of
    from quickfit.io import atomic_write

    onnx = require("onnx", package="onnx", extra="onnx", what="learn.export_onnx")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 7):
        raise ValueError(f"opset must be an ONNX opset number such as 17, got {opset!r}")
    xs = _example_inputs(learn) if xb is None else (tuple(xb) if isinstance(xb, (tuple, list)) else (xb,))
    if not all(isinstance(x, torch.Tensor) for x in xs):
        raise TypeError(f"export_onnx: the model inputs must be tensors, got {[type(x).__name__ for x in xs]}")
    check_xs = tuple(x[:3].cpu() for x in xs)
    xs = tuple(x[:2] for x in check_xs)  # two rows trace the same graph as a whole batch; three check it
    model = copy.deepcopy(learn._unwrapped()).cpu().float().eval()  # the learner's model stays where it is
    # a loss may say what of its activation a graph can carry (a detector's: no NMS, docs/onnx.md)
    act = (getattr(learn.loss_func, "onnx_activation", None) or activation_of(learn.loss_func)) if activation else None
    graph = _WithActivation(model, act) if act is not None else model
    names = _input_names(learn, len(xs))
    with torch.no_grad():
        expected = graph(*check_xs)
    if not isinstance(expected, torch.Tensor):
        raise TypeError(f"export_onnx: the model must return one tensor, it returned {type(expected).__name__}")
    dynamic = {n: {0: "batch"} for n in [*names, "output"]}
    info = {"format": 1, "inputs": names, "output": "activation" if act is not None else "raw"}
    info.update({k: v for k, v in learn.export_info.items() if k != "data"})
    data = _data_info(learn)
    if data is not None:
        info["data"] = data
    f = Path(learn.path) / fname

    def write(tmp: str) -> None:
        with warnings.catch_warnings():  # the TorchScript exporter announces its successor on every call
            warnings.simplefilter("ignore", DeprecationWarning)
            # sizes read from the input (EfficientNet's "same" padding) become constants: right, since only
            # the batch axis varies, and the onnxruntime check below runs another batch size
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                graph,
                xs,
                tmp,
                input_names=names,
                output_names=["output"],
                dynamic_axes=dynamic,
                opset_version=opset,
                dynamo=False,  # the torch.export-based exporter needs onnxscript, which [onnx] does not install
            )
        proto = onnx.load(tmp)
        onnx.helper.set_model_props(proto, {"quickfit": json.dumps(info)})
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        _check_with_onnxruntime(tmp, names, check_xs, expected)

    return atomic_write(f, write)


class _WithActivation(nn.Module):
    """`act(model(*xs))`: the graph ends with the activation `get_preds` applies."""

    def __init__(self, model: nn.Module, act: Callable) -> None:
        super().__init__()
        self.model, self.act = model, act

    def forward(self, *xs):
        return self.act(self.model(*xs))


def _check_with_onnxruntime(fname: str, names: list[str], xs: tuple, expected) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        return  # nothing to check with; the file passed onnx's checker
    sess = ort.InferenceSession(fname, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in sess.get_inputs()}  # inputs the model ignores are dropped from the graph
    got = sess.run(None, {n: x.numpy() for n, x in zip(names, xs) if n in wanted})[0]
    want = expected.numpy()
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-4):
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else f"shape {got.shape} vs {want.shape}"
        raise RuntimeError(f"the ONNX export of this model does not reproduce its outputs (max difference {diff})")


# ---- serving: what the model's inputs need, with numpy / pandas / Pillow only ---------------------------
def onnx_info(src) -> dict:
    """The JSON quickfit stored in an exported ONNX file: a path or an `onnxruntime.InferenceSession`."""
    if isinstance(src, (str, Path)):
        import onnx

        props = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    else:
        props = src.get_modelmeta().custom_metadata_map
    if "quickfit" not in props:
        raise ValueError(f"{src} has no quickfit metadata: it was not written by learn.export_onnx")
    return json.loads(props["quickfit"])
