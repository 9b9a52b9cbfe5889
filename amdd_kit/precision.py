"""Mixed precision: float16 autocast on CUDA (fastai's ``to_fp16``), bfloat16 on a CPU that
computes it natively.

fastai's ``MixedPrecision`` callback only knows CUDA. On a CPU with AVX512-BF16 or AMX
(recent Xeon and EPYC), oneDNN runs convolutions and matrix products in bfloat16 about 1.7x
faster than in float32 (a tiny training step on 2 cores: ~0.6 s instead of ~1.0 s). bfloat16
keeps float32's exponent range, so no gradient scaling is needed; the weights and the optimiser
state stay float32 and ``losses.py`` computes every loss term in float32. On a CPU without
native bf16 it is emulated and slower, so it is left off there (``train.cpu_bf16`` only asks
for it where it pays).

Training and inference use the same rule (:func:`autocast_for`), so a model is scored with
the arithmetic it was trained with.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from pathlib import Path

import torch
from fastai.callback.fp16 import MixedPrecision

from .config import Config


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (the ``avx512_bf16`` or ``amx_bf16`` flag
    in ``/proc/cpuinfo``); False elsewhere (not Linux, ARM, older x86)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def cpu_bf16_active(cfg: Config, device: torch.device | str) -> bool:
    """Does a run with ``cfg`` on ``device`` use bfloat16 autocast on the CPU?"""
    return torch.device(device).type == "cpu" and cfg.train.cpu_bf16 and cpu_has_native_bf16()


def autocast_for(cfg: Config, device: torch.device | str) -> AbstractContextManager:
    """The autocast context a forward pass on ``device`` runs in: float16 on CUDA (when
    ``train.fp16``), bfloat16 on a CPU with native bf16 (when ``train.cpu_bf16``), else none."""
    device = torch.device(device)
    if device.type == "cuda" and cfg.train.fp16:
        return torch.autocast("cuda")
    if cpu_bf16_active(cfg, device):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def describe(cfg: Config, device: torch.device | str) -> str:
    """One line for a notebook: the arithmetic a run on ``device`` trains in, and why."""
    device = torch.device(device)
    if device.type == "cuda":
        return ("float16 mixed precision (fastai to_fp16)" if cfg.train.fp16
                else "float32 (train.fp16 is off)")
    if cpu_bf16_active(cfg, device):
        return ("bfloat16 autocast on the CPU (it computes bf16 natively: about 1.7x faster "
                "than float32; train.cpu_bf16=False trains in float32)")
    if not cfg.train.cpu_bf16:
        return "float32 on the CPU (train.cpu_bf16 is off)"
    return "float32 on the CPU (it has no native bfloat16, where autocast would be slower)"


def precision_callbacks(cfg: Config, device: torch.device | str) -> list[MixedPrecision]:
    """The fastai callback that runs a Learner's forward passes in :func:`autocast_for`'s
    arithmetic: ``[MixedPrecision()]`` (fastai's ``to_fp16``) on CUDA, ``[CPUBFloat16()]`` on a
    native-bf16 CPU, else ``[]``. Training and inference add the same one."""
    device = torch.device(device)
    if device.type == "cuda" and cfg.train.fp16:
        return [MixedPrecision()]
    return [CPUBFloat16()] if cpu_bf16_active(cfg, device) else []


class CPUBFloat16(MixedPrecision):
    """fastai's ``MixedPrecision`` with ``torch.autocast("cpu", bfloat16)``: the forward pass
    and the loss call run under autocast (the predictions are cast back to float32 before the
    loss, as fastai does on CUDA); no gradient scaler."""

    def __init__(self):
        super().__init__(amp_mode="bf16")

    def before_fit(self):
        self.autocast = torch.autocast("cpu", dtype=torch.bfloat16)
        self.learn.scaler, self.scales = torch.amp.GradScaler("cpu", enabled=False), []


__all__ = ["cpu_has_native_bf16", "cpu_bf16_active", "autocast_for", "describe",
           "precision_callbacks", "CPUBFloat16"]
