"""Pre-trained language-model weights: files, the WikiText-103 download, and mapping onto a new vocabulary.

Usage::

    from quickfit.text.pretrained import load_pretrained_lm, match_vocab, save_pretrained_lm

    save_pretrained_lm(lm_learn.model, lm_learn.dls.vocab.itos, "wt2_lm.safetensors")  # + wt2_lm.vocab.json
    weights = load_pretrained_lm("wt2_lm.safetensors")     # PretrainedLM(state, vocab, source)
    state = match_vocab(weights.state, weights.vocab, new_vocab)   # rows follow new_vocab

File formats ``load_pretrained_lm`` reads (weights are never unpickled as code):

- ``name.safetensors`` with the vocabulary beside it as ``name.vocab.json`` (a JSON list of tokens,
  row ``i`` of the embedding is token ``i``) -- what ``save_pretrained_lm`` writes;
- ``name.pth`` / ``name.pt``: a weights-only torch checkpoint ``{"model": state_dict, "vocab": [...]}``;
- a folder holding fastai's published ``lstm_fwd.pth`` + ``itos_wt103.pkl`` (the content of
  ``wt103-fwd.tgz``; the token list is read with an unpickler that refuses every class or function).

The state dict may use the names of ``get_language_model``'s model (``0.encoder.weight``,
``0.rnns.0.weight_ih``, ..., ``1.decoder.bias``), of a bare ``AWD_LSTM`` (``encoder.weight``, ...,
as ``save_encoder`` writes) or fastai's (``0.rnns.0.weight_hh_l0_raw``, ``0.rnns.0.module.weight_ih_l0``,
...). The decoder weight is ignored: it is tied to the embedding.
"""

from __future__ import annotations

import json
import pickle
import re
import tarfile
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from quickfit.data.download import DownloadError, default_cache_dir, download
from quickfit.io import UnsafeCheckpointError, atomic_write, safe_load

__all__ = [
    "WT103_FWD_URL",
    "PretrainedLM",
    "load_pretrained_lm",
    "save_pretrained_lm",
    "match_vocab",
    "lm_sizes",
    "download_wt103",
]

# fastai's AWD-LSTM language model trained on WikiText-103 (emb 400, hidden 1152, 3 layers, 60k tokens).
WT103_FWD_URL = "https://s3.amazonaws.com/fast-ai-modelzoo/wt103-fwd.tgz"

_FASTAI_RNN = {
    "weight_hh_l0_raw": "weight_hh",
    "module.weight_ih_l0": "weight_ih",
    "module.bias_ih_l0": "bias_ih",
    "module.bias_hh_l0": "bias_hh",
}


class PretrainedLM(NamedTuple):
    """Weights with ``get_language_model`` names, the vocabulary they were trained with, and their file."""

    state: dict[str, Tensor]
    vocab: list[str]
    source: Path


def _canonical_name(key: str) -> str | None:
    """``get_language_model``'s name for ``key``, or None for entries to ignore."""
    if not key.startswith(("0.", "1.")):  # a bare AWD_LSTM (save_encoder) or an encoder-only dict
        key = "0." + key
    m = re.fullmatch(r"0\.rnns\.(\d+)\.(.+)", key)
    if m:
        name = _FASTAI_RNN.get(m.group(2), m.group(2))
        return f"0.rnns.{m.group(1)}.{name}" if name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") else None
    if key in ("0.encoder.weight", "1.decoder.bias"):
        return key
    return None  # 0.encoder_dp.emb.weight (fastai's copy), 1.decoder.weight (tied), dropped weights


def _canonical_state(raw: dict, source: Path) -> dict[str, Tensor]:
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a state dict of tensors, got {type(raw).__name__}")
    state = {}
    for key, value in raw.items():
        name = _canonical_name(str(key))
        if name is not None and isinstance(value, Tensor):
            state[name] = value.detach().float().cpu()
    if "0.encoder.weight" not in state or "0.rnns.0.weight_ih" not in state:
        raise ValueError(
            f"{source}: not AWD-LSTM language-model weights (no encoder.weight / rnns.0.weight_ih among "
            f"{sorted(map(str, raw))[:8]}...)"
        )
    return state


class _TokensOnly(pickle.Unpickler):
    """Unpickles plain data (lists, strings, numbers) and refuses any class or function."""

    def find_class(self, module: str, name: str):
        raise UnsafeCheckpointError(f"refused to unpickle {module}.{name}: a vocabulary file holds only strings")


def _read_vocab_pickle(path: Path) -> list[str]:
    with open(path, "rb") as f:
        vocab = _TokensOnly(f).load()
    return _check_vocab(vocab, path)


def _check_vocab(vocab, path: Path) -> list[str]:
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise ValueError(f"{path}: the vocabulary must be a list of token strings")
    return vocab


def _load_folder(folder: Path) -> PretrainedLM:
    weights = sorted(folder.rglob("lstm_fwd.pth")) or sorted(folder.rglob("*.safetensors"))
    if not weights:
        raise FileNotFoundError(f"{folder}: no lstm_fwd.pth (fastai) or *.safetensors weight file inside")
    if weights[0].suffix == ".safetensors":
        return _load_file(weights[0])
    vocabs = sorted(weights[0].parent.glob("itos*.pkl"))
    if not vocabs:
        raise FileNotFoundError(f"{weights[0].parent}: no itos*.pkl vocabulary beside {weights[0].name}")
    raw = safe_load(weights[0])
    raw = raw.get("model", raw) if isinstance(raw, dict) else raw
    return PretrainedLM(_canonical_state(raw, weights[0]), _read_vocab_pickle(vocabs[0]), weights[0])


def _load_file(path: Path) -> PretrainedLM:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        vocab_file = path.with_suffix(".vocab.json")
        if not vocab_file.exists():
            raise FileNotFoundError(f"{path}: the vocabulary {vocab_file.name} (a JSON list of tokens) is missing")
        vocab = _check_vocab(json.loads(vocab_file.read_text(encoding="utf-8")), vocab_file)
        return PretrainedLM(_canonical_state(load_file(str(path)), path), vocab, path)
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "vocab" not in ckpt:
        raise ValueError(f"{path}: expected a checkpoint {{'model': state_dict, 'vocab': [tokens]}}")
    return PretrainedLM(_canonical_state(ckpt["model"], path), _check_vocab(ckpt["vocab"], path), path)


def download_wt103(cache_dir: str | Path | None = None) -> Path:
    """Download (once) and unpack fastai's WikiText-103 AWD-LSTM; returns the folder."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = folder / "wt103-fwd"
    if any(target.rglob("lstm_fwd.pth")) and any(target.rglob("itos*.pkl")):
        return target
    try:
        archive = download(WT103_FWD_URL, cache_dir=folder)
    except DownloadError as e:
        raise DownloadError(
            f"pretrained=True needs fastai's WikiText-103 language model ({WT103_FWD_URL}) and the download "
            f"failed: {e}\nOffline, train without it (pretrained=False) or pass pretrained='path' to local "
            "weights (a .safetensors file with its .vocab.json, or the unpacked wt103-fwd folder)."
        ) from None
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and not Path(m.name).is_absolute()]
        members = [m for m in members if ".." not in Path(m.name).parts]  # no path traversal
        tar.extractall(target, members=members)
    return target


def load_pretrained_lm(source: str | Path | bool, cache_dir: str | Path | None = None) -> PretrainedLM:
    """Weights + vocabulary from a file or folder (see the module docstring); ``True`` = WikiText-103."""
    if source is True:
        return _load_folder(download_wt103(cache_dir))
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"pretrained weights not found: {path}")
    return _load_folder(path) if path.is_dir() else _load_file(path)


def save_pretrained_lm(model: nn.Module, vocab: list[str], fname: str | Path) -> Path:
    """Write a language model's weights as ``fname`` (safetensors) and its vocabulary as ``<stem>.vocab.json``."""
    from safetensors.torch import save_file

    fname = Path(fname)
    if fname.suffix != ".safetensors":
        raise ValueError(f"save_pretrained_lm: the file name must end in .safetensors, got {fname}")
    state = _canonical_state(model.state_dict(), fname)
    if state["0.encoder.weight"].shape[0] != len(vocab):
        raise ValueError(f"save_pretrained_lm: {len(vocab)} tokens for {state['0.encoder.weight'].shape[0]} rows")
    tensors = {k: v.contiguous() for k, v in state.items()}
    atomic_write(fname, lambda tmp: save_file(tensors, tmp))
    vocab_file = fname.with_suffix(".vocab.json")
    atomic_write(vocab_file, lambda tmp: Path(tmp).write_text(json.dumps(list(vocab)), encoding="utf-8"))
    return fname


def lm_sizes(state: dict[str, Tensor]) -> dict[str, int]:
    """``emb_sz``, ``n_hid`` and ``n_layers`` of the AWD-LSTM that produced ``state``."""
    n_layers = len([k for k in state if re.fullmatch(r"0\.rnns\.\d+\.weight_hh", k)])
    emb_sz = state["0.encoder.weight"].shape[1]
    n_hid = state["0.rnns.0.weight_hh"].shape[1] if n_layers > 1 else emb_sz
    return {"emb_sz": int(emb_sz), "n_hid": int(n_hid), "n_layers": n_layers}


def match_vocab(state: dict[str, Tensor], old_vocab: list[str], new_vocab: list[str]) -> dict[str, Tensor]:
    """Reorder the embedding rows (and decoder biases) from ``old_vocab`` to ``new_vocab``.

    A token of both keeps its trained row; a new token gets the mean row (the mean bias), a neutral
    start that fine-tuning moves.
    """
    emb = state["0.encoder.weight"]
    if emb.shape[0] != len(old_vocab):
        raise ValueError(f"match_vocab: {len(old_vocab)} tokens in the vocabulary for {emb.shape[0]} embedding rows")
    old_index = {tok: i for i, tok in enumerate(old_vocab)}
    pairs = [(i, old_index[tok]) for i, tok in enumerate(new_vocab) if tok in old_index]
    new_idx = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    old_idx = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    out = dict(state)
    new_emb = emb.mean(0, keepdim=True).repeat(len(new_vocab), 1)
    new_emb[new_idx] = emb[old_idx]
    out["0.encoder.weight"] = new_emb
    bias = state.get("1.decoder.bias")
    if bias is not None:
        new_bias = bias.mean().repeat(len(new_vocab))
        new_bias[new_idx] = bias[old_idx]
        out["1.decoder.bias"] = new_bias
    return out
