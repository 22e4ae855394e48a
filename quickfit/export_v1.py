"""Exports of format 1 in today's layout: the one place that knows how quickfit's applications wrote them.

    info = upgrade_v1(json.loads(metadata["quickfit"]))   # read_export_info does this for a format-1 file

Format 1 (quickfit before model configurations) let each application lay out its JSON its own way:
a `kind` at the top (vision "gan" / "image2image", text "seq2seq") or in `model` (vision "unet" /
"points", text "lm" / "classifier", collab "dot" / "nn"), and the model's arguments in `model`.
Format 2 names a `task` and a `model` configuration by their registered `type` (quickfit/configs.py).
This module only moves JSON values around: it imports no application, and a layout it does not know
is passed on for the loader to refuse. Files of format 1 never held a task's options that format 2
lacks, so every one of them loads to the same learner as before (tests/test_export_roundtrip.py
checks the files in tests/fixtures/exports_v1 to the last bit).
"""

from __future__ import annotations

from typing import Any

__all__ = ["upgrade_v1"]


def _vision(info: dict, kind: Any, m: dict, data: dict) -> tuple[dict, dict]:
    if kind == "gan":
        return {"type": "gan", "generator": info.pop("generator", None), "critic": info.pop("critic", None)}, {
            "type": "gan"
        }
    if kind == "image2image":
        model = {"type": "image_to_image", "arch": m.get("arch"), "encoder_cut": m.get("encoder_cut"),
                 "y_range": m.get("y_range"), "residual": m.get("residual", False), "scale": m.get("scale", 1),
                 "img_size": data.get("size", 64), "config": m.get("config")}  # fmt: skip
        return model, {"type": "image_to_image"}
    model_kind, loss = m.pop("kind", None), m.pop("loss", None)
    if model_kind == "unet":
        m.pop("void_code", None)  # the data's target holds it too: the loss takes it from there
        return {"type": "unet", **m}, {"type": "segmentation", "loss": loss}
    if model_kind == "points":
        return {"type": "vision_model", **m}, {"type": "points"}
    return {"type": "vision_model", **m}, {"type": "images", "loss": loss}


def _text(info: dict, kind: Any, m: dict, data: dict) -> tuple[dict, dict]:
    if kind == "seq2seq":
        tgt_vocab = data.get("tgt_vocab") or []
        model = {"type": "seq2seq", "arch": m.get("arch"), "src_vocab_sz": m.get("src_vocab_sz"),
                 "tgt_vocab_sz": m.get("tgt_vocab_sz"), "pad_idx": tgt_vocab.index("xxpad") if "xxpad" in tgt_vocab
                 else None, "sizes": m.get("config")}  # fmt: skip
        return model, {"type": "translation", "label_smoothing": info.pop("label_smoothing", 0.0)}
    model_kind = m.get("kind")
    common = {"vocab_sz": m.get("vocab_sz"), "pad_idx": m.get("pad_idx"), "sizes": m.get("config")}
    if model_kind == "lm":
        return {"type": "awd_lstm_lm", **common}, {"type": "language_model"}
    model = {"type": "awd_lstm_classifier", **common, "n_classes": m.get("n_classes"),
             "n_hidden": m.get("n_hidden", 50)}  # fmt: skip
    return model, {"type": "text_classifier"}


def _collab(info: dict, kind: Any, m: dict, data: dict) -> tuple[dict, dict]:
    model_kind = m.pop("kind", None)
    return {"type": {"dot": "embedding_dot_bias", "nn": "embedding_nn"}.get(model_kind), **m}, {"type": "collab"}


def _tabular(info: dict, kind: Any, m: dict, data: dict) -> tuple[dict, dict]:
    return {"type": "tabular_model", **m}, {"type": "tabular"}


_APPS = {"vision": _vision, "text": _text, "collab": _collab, "tabular": _tabular}


def upgrade_v1(info: dict) -> dict:
    """A format-1 export's JSON in the layout of format 2: `{"format": 2, "app", "task", "model", "data"}`.

    A plain Learner's file (no `app`) and an application this module does not know keep their keys."""
    info = dict(info)
    app = info.get("app")
    if not isinstance(app, str) or app not in _APPS or info.get("format", 1) != 1:
        return {**info, "format": 2}
    kind = info.pop("kind", None)
    m = dict(info.pop("model", None) or {})
    data = info.get("data") or {}
    model, task = _APPS[app](info, kind, m, data)
    return {**info, "format": 2, "task": task, "model": model}
