"""Saving a Learner: checkpoints (`save` / `load`) and exports (`export`), no pickle.

    learn.save("stage1")                       # models/stage1.pth: weights + optimizer, to resume training
    learn.load("stage1")
    learn.export("model.qf")                   # weights (safetensors) + JSON of model and data processing
    learn = qf.load_learner("model.qf")        # in another process, for predictions (quickfit/loading.py)

A checkpoint is a weights-only `torch.save` file (tensors and plain containers); an export is a
safetensors file whose metadata holds the JSON its application needs to rebuild the learner
(`EXPORT_FORMAT` 2: app, task, model configuration, data processing; see quickfit/configs.py) and the
SHA-256 of its weights. Every write is atomic (quickfit/io.py): a crash leaves the previous file as it
was; a checkpoint's zip records carry CRC-32s, checked by `load`. docs/files.md says what is promised.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from quickfit.io import atomic_save, safe_load
from quickfit.optim import checkpoint_opt_state

__all__ = ["SavingMixin", "EXPORT_FORMAT"]

EXPORT_FORMAT = 2  # 1: each application's own layout (read through quickfit/export_v1.py)


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
            state["opt"] = self.opts.state_dict()  # every optimizer, a GAN's critic too
        return atomic_save(state, self._file(name))

    def load(self, name: str | Path, with_opt: bool = True, strict: bool = True):
        """Load weights saved by `save` (`name` or a path). Never unpickles code."""
        f = Path(name) if str(name).endswith(".pth") else self._file(str(name))
        state = safe_load(f, map_location=self.device)  # CRC-checked: a damaged file is named (quickfit/io.py)
        if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
            raise ValueError(f"{f} is not a quickfit checkpoint (no 'model' entry)")
        try:
            self._unwrapped().load_state_dict(state["model"], strict=strict)
        except (RuntimeError, TypeError, AttributeError) as e:
            raise ValueError(f"{f}: its weights do not fit this model: {str(e).strip()[:800]}") from None
        if with_opt and "opt" in state:
            if self.opt is None:
                self.create_opt()
            self.opts.load_state_dict(checkpoint_opt_state(state))
        return self

    def export(self, fname: str | Path = "export.qf") -> Path:
        """Weights (safetensors) + a JSON description of model and data processing in one file, with the
        SHA-256 of the weights (quickfit/export_file.py); no pickle."""
        from quickfit.export_file import write_export

        f = self.path / fname
        if not self.is_main_process:
            return f
        info = {"format": EXPORT_FORMAT, **self.export_info}
        if "data" not in info and hasattr(self.dls, "export_info"):
            info["data"] = self.dls.export_info()
        return write_export(self._unwrapped(), f, info)
