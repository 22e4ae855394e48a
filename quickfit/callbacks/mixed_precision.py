"""Mixed precision: one switch, `learn.to_fp16()`, `learn.to_bf16()` or `learn.to_fp32()`.

float16 (CUDA) runs the forward pass under autocast and scales the loss so small gradients survive
in half precision; a step whose gradients overflowed is skipped and the scale lowered
(`torch.amp.GradScaler`). bfloat16 has float32's range, so it needs no scaling, and works on CPU too
-- but only CPUs with native bf16 instructions (AVX512_BF16 or AMX) run it faster than float32;
elsewhere it is emulated and several times slower, and we say so.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from quickfit.callbacks.core import Callback, Order

__all__ = ["MixedPrecision", "cpu_has_native_bf16"]


def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 instructions (AVX512_BF16 or AMX), so bf16 autocast pays off."""
    cpu = getattr(torch, "cpu", None)
    for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, check, None)
        if fn is not None:
            try:
                if fn():
                    return True
            except RuntimeError:
                pass
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


class MixedPrecision(Callback):
    order = Order.MIXED_PRECISION

    def __init__(self, dtype: torch.dtype = torch.float16):
        if dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"mixed precision runs in torch.float16 or torch.bfloat16, got {dtype}")
        self.dtype = dtype

    def before_fit(self, learn) -> None:
        if self.dtype == torch.float16 and learn.device.type == "cpu":
            raise RuntimeError("to_fp16() needs a CUDA device; on CPU use to_bf16() (or stay in fp32)")
        if self.dtype == torch.bfloat16 and learn.device.type == "cpu" and not cpu_has_native_bf16():
            warnings.warn(
                "bf16 mixed precision on a CPU without native bf16 instructions (AVX512_BF16/AMX) is emulated "
                "and typically 3-13x slower than fp32 here; call learn.to_fp32() unless you need the memory.",
                RuntimeWarning,
                stacklevel=2,
            )
        self.in_fit = True
        self._enter(learn, with_scaler=self.dtype == torch.float16)

    def before_validate(self, learn) -> None:
        if not getattr(self, "in_fit", False):  # get_preds / validate outside fit run under autocast too
            self._enter(learn, with_scaler=False)

    def _enter(self, learn, with_scaler: bool) -> None:
        learn.autocast = torch.autocast(device_type=learn.device.type, dtype=self.dtype)
        if with_scaler:
            learn.scaler = torch.amp.GradScaler(learn.device.type)

    def after_loss(self, learn) -> None:
        if learn.training and learn.scaler is not None:
            learn.loss_grad = learn.scaler.scale(learn.loss_grad)

    def before_step(self, learn) -> None:
        if learn.scaler is not None:
            learn.scaler.unscale_(learn.stepping_opt)  # so clipping sees true gradients; once per step

    def after_validate(self, learn) -> None:
        if not getattr(self, "in_fit", False):
            self._exit(learn)

    def cleanup_fit(self, learn) -> None:
        self.in_fit = False
        self._exit(learn)

    def _exit(self, learn) -> None:
        learn.autocast, learn.scaler = contextlib.nullcontext(), None
