"""The input of a vision model's ONNX export: images prepared as validation prepares them.

import onnxruntime as ort
from quickfit.onnx_export import onnx_info
from quickfit.vision.onnx import image_onnx_input

sess = ort.InferenceSession("model.onnx")
probs = sess.run(None, {"image": image_onnx_input(["photo.jpg"], onnx_info(sess))})[0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quickfit.vision.core.transforms import item_tfm_from_dict

__all__ = ["image_onnx_input"]


def image_onnx_input(images: Sequence, info: dict) -> np.ndarray:
    """Images (paths or PIL images) -> the float32 `[n, 3, H, W]` batch the "image" input takes.

    The exported item transform at validation (the one place images are opened: upright by EXIF, RGB,
    transparency on white; then its center crop, squish or pad), scaled to [0, 1] and normalized with the
    data's statistics."""
    data = info["data"]
    tfm, norm = item_tfm_from_dict(data["item_tfm"]), data["normalize"]
    x = np.stack([tfm(src, train=False).numpy() for src in images]).astype(np.float32) / 255
    mean = np.asarray(norm["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(norm["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return (x - mean) / std
