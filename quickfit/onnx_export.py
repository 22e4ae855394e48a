"""`learn.export_onnx("model.onnx")`: the model as ONNX (dynamic batch axis) for onnxruntime, and the
preprocessing its inputs need, as functions of numpy, pandas and Pillow only (see docs/onnx.md).

    learn.export_onnx("model.onnx")                       # needs pip install "quickfit[onnx]"

    import onnxruntime as ort
    from quickfit.onnx_export import image_onnx_input, onnx_info, tabular_onnx_inputs
    sess = ort.InferenceSession("model.onnx")
    info = onnx_info(sess)                                # vocab, resize, normalization / processors
    probs = sess.run(None, {"image": image_onnx_input(["photo.jpg"], info)})[0]
    probs = sess.run(None, tabular_onnx_inputs(df, info, sess))[0]
    info["data"]["vocab"][probs.argmax(1)[0]]            # the predicted class (tabular: "y_vocab")

The graph is the model in eval mode followed by the loss's activation (softmax for cross-entropy,
sigmoid for BCE), so its output is what `learn.get_preds` returns; `activation=False` leaves the raw
outputs. The export's JSON (`learn.export_info` and the data processing) is stored in the ONNX file's
metadata under "quickfit". The export itself is checked: onnxruntime, when installed, must give the
PyTorch outputs on the example batch.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["export_onnx", "onnx_info", "image_onnx_input", "tabular_onnx_inputs"]


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
    act = activation_of(learn.loss_func) if activation else None
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


def image_onnx_input(images: Sequence, info: dict) -> np.ndarray:
    """Images (paths or PIL images) -> the float32 `[n, 3, H, W]` batch the "image" input takes.

    As at validation: upright (EXIF), RGB (transparency on white), resized like the item transform
    (center crop, squish or pad), scaled to [0, 1] and normalized with the data's statistics.
    """
    from PIL import Image

    from quickfit.vision.core.image import load_image  # the one place images are opened

    data = info["data"]
    tfm, norm = data["item_tfm"], data["normalize"]
    out_h, out_w = tfm["size"]
    method = tfm.get("method", "crop")  # RandomResizedCrop validates with the center crop
    arrays = []
    for src in images:
        img = load_image(src)  # upright (EXIF), RGB, transparency on white
        w, h = img.size
        box, size, pad = (0.0, 0.0, float(w), float(h)), (out_w, out_h), (0, 0, 0, 0)
        if method == "crop":
            scale = max(out_w / w, out_h / h)
            cw, ch = min(w, out_w / scale), min(h, out_h / scale)
            box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
        elif method == "pad":
            scale = min(out_w / w, out_h / h)
            cw, ch = max(1, min(out_w, round(w * scale))), max(1, min(out_h, round(h * scale)))
            left, top = (out_w - cw) // 2, (out_h - ch) // 2
            size, pad = (cw, ch), (left, top, out_w - cw - left, out_h - ch - top)
        arr = np.asarray(img.resize(size, Image.Resampling.BILINEAR, box=box, reducing_gap=3.0))
        if any(pad):
            mode = "reflect" if tfm.get("pad_mode") == "reflection" else "constant"
            arr = np.pad(arr, ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), mode=mode)
        arrays.append(arr)
    x = np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32) / 255
    mean = np.asarray(norm["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(norm["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return (x - mean) / std


def _numeric(col, name: str) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(col, errors="coerce")
    if (values.isna() & col.notna()).any():
        raise ValueError(f"continuous column {name!r} holds non-numeric values such as {col[values.isna()].iloc[0]!r}")
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def tabular_onnx_inputs(df, info: dict, sess: Any = None) -> dict[str, np.ndarray]:
    """Rows (a DataFrame with the training's input columns) -> `{"x_cat": int64, "x_cont": float32}`.

    Runs the exported processors as in training: FillMissing (the training median, and the `<col>_na`
    flags), Categorify (codes of the training vocab; unseen or missing values are 0) and Normalize
    (the training mean and standard deviation). With `sess`, only the inputs the graph uses are kept
    (a model without categorical columns has no "x_cat").
    """
    import pandas as pd

    data = info["data"]
    needed = [*data["input_cat_names"], *data["input_cont_names"]]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise KeyError(f"column(s) {missing} missing from the rows (needed: {needed})")
    df = df[needed].copy()
    proc = data["processor"]
    for p in proc["procs"]:  # stored in the order they run
        state = p["state"]
        if p["name"] == "FillMissing":
            for name, fill in state["fill_values"].items():
                values = _numeric(df[name], name)
                if state["add_col"] and name in state["na_cols"]:
                    df[f"{name}_na"] = np.isnan(values)
                df[name] = np.where(np.isnan(values), fill, values)
        elif p["name"] == "Categorify":
            for name, vocab in state["vocabs"].items():
                df[name] = pd.Index(vocab[1:]).get_indexer(df[name]).astype(np.int64) + 1
        elif p["name"] == "Normalize":
            for name, mean in state["means"].items():
                df[name] = (_numeric(df[name], name) - mean) / state["stds"][name]
        else:
            raise ValueError(f"unknown tabular processor {p['name']!r} in the export")
    n, cats, conts = len(df), proc["cat_names"], proc["cont_names"]
    x_cat = np.stack([df[c].to_numpy(np.int64) for c in cats], 1) if cats else np.zeros((n, 0), np.int64)
    x_cont = np.stack([df[c].to_numpy(np.float32) for c in conts], 1) if conts else np.zeros((n, 0), np.float32)
    inputs = {"x_cat": x_cat, "x_cont": x_cont}
    if sess is not None:
        wanted = {i.name for i in sess.get_inputs()}
        inputs = {k: v for k, v in inputs.items() if k in wanted}
    return inputs
