"""The inputs of a tabular model's ONNX export: rows processed as in training, from the processors'
state stored with the model.

    import onnxruntime as ort
    from quickfit.onnx_export import onnx_info
    from quickfit.tabular.onnx import tabular_onnx_inputs

    sess = ort.InferenceSession("model.onnx")
    probs = sess.run(None, tabular_onnx_inputs(df, onnx_info(sess), sess))[0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["tabular_onnx_inputs"]


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
